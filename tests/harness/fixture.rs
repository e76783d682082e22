//! The interop tests' common fixture: a payload on disk, its torrent (made with mktorrent) and
//! info-hash in a scratch directory of its own; and the payload shapes the tests share.

use std::path::{Path, PathBuf};

use crate::harness::cli::{cli_command, stats_for, CliStats};
use crate::harness::compare::{assert_same_content, walk};
use crate::harness::leech::{leech_with, Leecher};
use crate::harness::meta::info_hash;
use crate::harness::mktorrent::make_torrent;
use crate::harness::net::{accepts, free_port};
use crate::harness::payload::{scratch, write_payload, write_tree};
use crate::harness::peers::lt_seeder_with;
use crate::harness::proc::Proc;
use crate::harness::wait::{wait_for, START_TIMEOUT};

/// Piece length exponent: 256 KiB pieces.
pub const PIECE_LOG2: u32 = 18;
pub const PIECE: u64 = 1 << PIECE_LOG2;
pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;

/// 3 MiB + 12345 bytes: the last of the 256 KiB pieces is short.
pub const SINGLE: &[(&str, u64)] = &[("", 3 * MIB + 12345)];

/// Nested folders, files smaller than a piece, one over many pieces, an empty one; files
/// straddle piece boundaries.
pub const TREE: &[(&str, u64)] = &[
    ("a.txt", 1000),
    ("empty.bin", 0),
    ("docs/readme.md", 4321),
    ("docs/deep/er/nested.bin", PIECE + 1),
    ("media/big.bin", 9 * PIECE / 2 + 777),
    ("media/small.bin", 17),
    ("z-last.bin", 200_000),
];

/// The seed of the pseudo-random payload bytes [`Fixture::new`] writes.
pub const PAYLOAD_SEED: u64 = 7;

/// Our CLI serving a fixture over HTTP while it downloads it from a libtorrent seeder.
pub struct Serving {
    _seeder: Proc,
    pub cli: Proc,
    /// The URL of the fixture's (first) file.
    pub url: String,
}

/// A payload on disk, its torrent and info-hash.
pub struct Fixture {
    /// The test's scratch directory (logs go here too).
    pub dir: tempfile::TempDir,
    /// Directory the seeders serve from (`seed/<name>` is the content).
    pub seed_dir: PathBuf,
    /// The torrent's content: `seed/<name>`, a file or a directory.
    pub content: PathBuf,
    pub torrent: PathBuf,
    pub hash: [u8; 20],
    /// Total payload bytes.
    pub size: u64,
}

impl Fixture {
    /// Writes `files` (relative path, size) under `seed/<name>`; a single `("", size)` entry
    /// makes a single-file torrent named `name`. Makes the torrent `<name>.torrent` with
    /// `announce` and 256 KiB pieces.
    pub fn new(name: &str, files: &[(&str, u64)], announce: Option<&str>) -> Self {
        Self::with_payload_seed(name, files, announce, PAYLOAD_SEED)
    }

    /// [`Fixture::new`] with the payload bytes drawn from `payload_seed`.
    pub fn with_payload_seed(
        name: &str,
        files: &[(&str, u64)],
        announce: Option<&str>,
        payload_seed: u64,
    ) -> Self {
        Self::build(
            name,
            files,
            payload_seed,
            &format!("{name}.torrent"),
            |content, torrent| make_torrent(content, announce, PIECE_LOG2, torrent),
        )
    }

    /// Writes the payload as [`Fixture::with_payload_seed`] does, then has `make_torrent`
    /// (content, torrent path) write the scratch directory's `torrent_file` from it.
    pub fn build(
        name: &str,
        files: &[(&str, u64)],
        payload_seed: u64,
        torrent_file: &str,
        make_torrent: impl FnOnce(&Path, &Path),
    ) -> Self {
        Self::assemble(
            name,
            |content| match files {
                [("", len)] => write_payload(content, *len, payload_seed),
                _ => write_tree(content, files),
            },
            torrent_file,
            make_torrent,
        )
    }

    /// Has `write` create the content `seed/<name>` (a file or a directory, e.g. a video made
    /// with [`write_video`](crate::harness::write_video)), then makes the torrent
    /// `<name>.torrent` with `announce` and 256 KiB pieces.
    pub fn from_content(name: &str, announce: Option<&str>, write: impl FnOnce(&Path)) -> Self {
        Self::assemble(
            name,
            write,
            &format!("{name}.torrent"),
            |content, torrent| make_torrent(content, announce, PIECE_LOG2, torrent),
        )
    }

    /// A scratch directory with `seed/`, where `write` creates the content `seed/<name>` and
    /// `make_torrent` (content, torrent path) then writes `torrent_file`.
    fn assemble(
        name: &str,
        write: impl FnOnce(&Path),
        torrent_file: &str,
        make_torrent: impl FnOnce(&Path, &Path),
    ) -> Self {
        let dir = scratch();
        let seed_dir = dir.path().join("seed");
        std::fs::create_dir_all(&seed_dir).expect("create seed dir");
        let content = seed_dir.join(name);
        write(&content);
        let torrent = dir.path().join(torrent_file);
        make_torrent(&content, &torrent);
        let hash = info_hash(&torrent);
        let size = content_size(&content);
        Fixture {
            dir,
            seed_dir,
            content,
            torrent,
            hash,
            size,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The content's name: `<name>`.
    pub fn name(&self) -> String {
        self.content
            .file_name()
            .expect("content name")
            .to_string_lossy()
            .into_owned()
    }

    /// Where the leechers download to: `out`.
    pub fn out_dir(&self) -> PathBuf {
        self.path().join("out")
    }

    /// Where a leecher puts the content: `out/<name>`.
    pub fn downloaded(&self) -> PathBuf {
        self.out_dir()
            .join(self.content.file_name().expect("content name"))
    }

    /// Checks that `out_dir/<name>` holds exactly the content.
    pub fn check(&self, out_dir: &Path) {
        assert_same_content(&self.content, &out_dir.join(self.name()));
    }

    /// Downloads into [`Fixture::out_dir`] with `leecher` (dialing `peers` too), checks the
    /// bytes, and returns the leecher (exited).
    pub fn leech_and_check(&self, leecher: Leecher, peers: &[u16]) -> Proc {
        let (_took, proc) = leech_with(leecher, &self.torrent, &self.out_dir(), peers, self.path())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_same_content(&self.content, &self.downloaded());
        proc
    }

    /// Starts a libtorrent seeder of the fixture capped at `upload_limit` bytes/s, and our CLI
    /// downloading from it with `--serve` and `--json` (stdout apart, see
    /// [`Proc::spawn_split`]); returns once the HTTP server answers.
    pub fn serve_while_downloading(&self, upload_limit: u64) -> Serving {
        let limit = upload_limit.to_string();
        let (seeder, seed_port) = lt_seeder_with(
            "lt-seeder",
            &self.torrent,
            &self.seed_dir,
            self.path(),
            // libtorrent hands out upload quota once a tick (500 ms by default): a short tick
            // spreads a capped rate evenly instead of in bursts.
            &["--upload-limit", &limit, "--tick-interval", "50"],
        );
        let http_port = free_port();
        let mut cmd = cli_command();
        cmd.args(["--bind", "127.0.0.1", "-p", "0", "--no-tracker"])
            .args(["-q", "--json", "-o"])
            .arg(self.out_dir())
            .arg("--peer")
            .arg(format!("127.0.0.1:{seed_port}"))
            .arg("--serve")
            .arg(format!("127.0.0.1:{http_port}"))
            .arg(&self.torrent)
            .env("RUST_LOG", "info");
        let mut cli = Proc::spawn_split("cli-serve", cmd, self.path());
        wait_for("the HTTP server", START_TIMEOUT, &mut [&mut cli], || {
            accepts(http_port)
        });
        Serving {
            _seeder: seeder,
            cli,
            url: format!("http://127.0.0.1:{http_port}/files/0/{}", self.name()),
        }
    }

    /// Checks the `--json` line of our CLI as a seeder that started on complete data and
    /// served the whole payload `copies` times (at least).
    pub fn check_seed_stats(&self, stats: &[CliStats], copies: u64) {
        let s = stats_for(stats, &self.hash);
        eprintln!("seeder --json: {s:?}");
        assert_eq!(s.name, self.name(), "name in --json");
        assert!(
            s.complete,
            "a seeder of complete data says complete=false: {s:?}"
        );
        assert_eq!(
            s.downloaded, 0,
            "a seeder of complete data downloaded: {s:?}"
        );
        assert!(
            s.uploaded >= copies * self.size,
            "seeder uploaded {} bytes, but the leechers got {copies} x {} bytes from it alone",
            s.uploaded,
            self.size
        );
    }
}

/// Total bytes of the file, or of every file under the directory, `content`.
fn content_size(content: &Path) -> u64 {
    if content.is_file() {
        return std::fs::metadata(content)
            .unwrap_or_else(|e| panic!("stat {}: {e}", content.display()))
            .len();
    }
    let mut files = Vec::new();
    walk(content, content, &mut files);
    files
        .iter()
        .map(|rel| content_size(&content.join(rel)))
        .sum()
}
