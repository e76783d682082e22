//! A loopback DHT of libtorrent nodes (tests/peers/lt_dht.py), and our CLI with its DHT on,
//! bootstrapped only from loopback nodes (never the public routers).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::harness::cli::CLI;
use crate::harness::proc::Proc;
use crate::harness::tools::{python, workspace_root};
use crate::harness::wait::START_TIMEOUT;

/// `lt_dht.py` with `args` (see its doc: `--nodes N`, `--bootstrap H:P`, `--seed`, `--leech`),
/// stopping with the test; returns it once every node listens, with the nodes' addresses.
pub fn lt_dht(name: &str, args: &[String], log_dir: &Path) -> (Proc, Vec<SocketAddr>) {
    let mut cmd = Command::new(python().expect("python with libtorrent"));
    cmd.arg(workspace_root().join("tests/peers/lt_dht.py"))
        .args(args)
        .args(["--stop-with-pid", &std::process::id().to_string()])
        .env("PYTHONUNBUFFERED", "1");
    let mut proc = Proc::spawn(name, cmd, log_dir);
    let line = proc
        .wait_line("READY nodes=", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let nodes: Vec<SocketAddr> = line["READY nodes=".len()..]
        .trim()
        .split(',')
        .map(|a| {
            a.parse()
                .unwrap_or_else(|_| panic!("bad READY line {line:?}"))
        })
        .collect();
    (proc, nodes)
}

/// Our CLI with its DHT on (no `--no-dht`), bootstrapped only from `bootstrap`, every one of
/// them on loopback: an empty list would make it resolve the public routers.
pub fn cli_with_dht(bootstrap: &[SocketAddr]) -> Command {
    assert!(
        !bootstrap.is_empty(),
        "the DHT needs loopback bootstrap nodes"
    );
    let mut cmd = Command::new(CLI);
    for addr in bootstrap {
        assert!(addr.ip().is_loopback(), "{addr} is not a loopback address");
        cmd.arg("--dht-bootstrap").arg(addr.to_string());
    }
    cmd
}
