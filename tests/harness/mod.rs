//! Harness for the interop tests: real peers (opentracker, libtorrent, aria2, transmission)
//! on 127.0.0.1, our CLI, and the payloads and torrents they share.
//!
//! Every external process lives in a [`Proc`] guard that kills it on drop (also while a test
//! panics, when it prints the tail of that process's log first). Peers are told to stop by
//! themselves if the test process disappears (`--stop-with-pid`, aria2's `--stop-with-process`).
//! Ports come from binding 127.0.0.1:0; every test has its own temporary directory, so the
//! tests may run in parallel.
//!
//! One job per file; the names the tests use are re-exported here:
//! - [`tools`]: finding the real peers' programs, skipping a test without them ([`require!`]).
//! - [`proc`]: process guards ([`Proc`]): logs, signals, waiting for a line or an exit.
//! - [`wait`]: waiting for an event with a deadline ([`wait_for`]), the shared timeouts.
//! - [`net`]: free loopback ports, waiting until one accepts.
//! - [`payload`]: scratch directories and generated payloads (files, trees, videos).
//! - [`mktorrent`]: .torrent files made with mktorrent.
//! - [`compare`]: downloaded content against the original, byte for byte.
//! - [`peers`]: libtorrent, aria2 and transmission seeders and leechers.
//! - [`leech`]: a whole download with a chosen client ([`Leecher`], [`leech_with`]).
//! - [`dht`]: a loopback DHT of libtorrent nodes, our CLI with its DHT on.
//! - [`cli`]: running our CLI, stopping it, reading its `--json` lines.
//! - [`opentracker`]: the tracker ([`Tracker`]) and its scrape counts; [`trackers`]: tiers
//!   and tracker URLs; [`qbt_tracker`]: qBittorrent-nox's embedded tracker on `[::1]`, an IPv6
//!   tracker answering with `peers6`.
//! - [`fixture`]: a payload, its torrent and info-hash in a scratch directory; the shared
//!   piece size and payload shapes.
//! - [`meta`]: .torrent metadata and resume records (serde_bencode), piece checks of data on
//!   disk, crafted torrents.
//! - [`evil`]: an in-process peer, honest or malicious, that counts its connections.
//! - [`system`]: peak memory of a process, a small tmpfs.
//! - [`daemon`]: a qBittorrent Web API server, ours (`bittorrent-cli daemon`) or qbittorrent-nox,
//!   started, stopped, killed and restarted on its data directory; the python Web API flows.
//! - [`http`]: nginx as a web seed, its access log; [`badhttp`]: a hostile HTTP server (404
//!   for everything, or half a body then a close).
//!
//! Environment:
//! - `BT_INTEROP_REQUIRED=1`: a missing peer binary (or nginx) fails the test instead of skipping it.
//! - `BT_INTEROP_LEECHER=cli|aria2|libtorrent`: which leecher the scenarios drive (default
//!   `cli`, our binary); the others check the harness and the seeders on their own.
//! - `BT_INTEROP_CLI`: run this program instead of our bittorrent-cli as the seeder of the
//!   seeding tests (tests/peers/lt_cli.py, a libtorrent stand-in, checks the tests themselves).
//! - `BT_INTEROP_DAEMON=ours|qbittorrent`: which Web API server tests/interop_daemon.rs drives
//!   (default ours; qbittorrent-nox checks the tests themselves).
//! - `BT_PYTHON`: python interpreter that has the `libtorrent` module (else `python3`, then
//!   `/usr/bin/python3` are probed).

// Each test file uses a part of the harness.
#![allow(dead_code)]

pub mod badhttp;
pub mod cli;
pub mod compare;
pub mod daemon;
pub mod dht;
pub mod evil;
pub mod fixture;
pub mod http;
pub mod leech;
pub mod meta;
pub mod mktorrent;
pub mod net;
pub mod opentracker;
pub mod payload;
pub mod peers;
pub mod proc;
pub mod qbt_tracker;
pub mod restart;
pub mod system;
pub mod tools;
pub mod trackers;
pub mod wait;

// The names the tests use, at the harness's root; each test file uses a part of them.
#[allow(unused_imports)]
pub use self::{
    cli::{
        cli_command, cli_seeder, cli_stop, cli_stop_incomplete, cli_stopped, parse_cli_json,
        stats_for, CliStats, CLI, STOP_TIMEOUT,
    },
    compare::{assert_same_content, walk},
    leech::{leech_with, Leecher},
    meta::info_hash,
    mktorrent::make_torrent,
    net::{free_port, wait_port},
    opentracker::Tracker,
    payload::{scratch, write_payload, write_tree, write_video},
    peers::{
        aria2_seeder, lt_leecher, lt_list_files, lt_seeder, lt_seeder_with, lt_uploaded,
        lt_uploaded_now, transmission_leecher,
    },
    proc::Proc,
    system::{peak_rss_kib, Tmpfs},
    tools::{have, lt_peer_script, python, which, workspace_root, Tool},
    wait::{poll, wait_for, LEECH_TIMEOUT, START_TIMEOUT},
};

/// Returns from the test early (skip) unless all the tools are installed:
/// `require!(Tool::Aria2, ...)`, or `require!(@leecher l)` for what a [`Leecher`] needs.
macro_rules! require {
    (@leecher $leecher:expr) => {
        if !$crate::harness::have(&$leecher.tools()) {
            return;
        }
    };
    ($($tool:expr),* $(,)?) => {
        if !$crate::harness::have(&[$($tool),*]) {
            return;
        }
    };
}
