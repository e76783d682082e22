//! `bittorrent-cli create`: a .torrent from a file or a folder.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bittorrent::create::{CreatedTorrent, TorrentBuilder, MIN_PIECE_LENGTH};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Make a .torrent from a file or a folder.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  bittorrent-cli create photos/ -o photos.torrent \
                  --tracker udp://tracker.example:6969/announce --web-seed https://example.org/pub/"
)]
pub struct CreateArgs {
    /// File or folder to share (symbolic links and special files are refused).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,

    /// Where to write the .torrent (written whole or not at all).
    #[arg(short, long, value_name = "OUT.torrent")]
    pub output: PathBuf,

    /// Tracker announce URL (repeatable). Each --tracker is a tier of its
    /// own; URLs joined by commas in one --tracker share a tier (mktorrent's
    /// -a). The first URL is `announce`.
    #[arg(long = "tracker", value_name = "URL[,URL...]")]
    pub trackers: Vec<String>,

    /// Web seed URL, BEP 19 url-list (repeatable; commas also separate
    /// URLs, as in mktorrent's -w).
    #[arg(long = "web-seed", value_name = "URL")]
    pub web_seeds: Vec<String>,

    /// Piece size: a power of two from 16K to 256M (e.g. 256K, 1M, 4MiB, 65536)
    /// [default: the smallest giving at most 2,000 pieces, 16K to 16M].
    #[arg(long, value_name = "SIZE")]
    pub piece_size: Option<String>,

    /// Set the private flag (BEP 27): peers from the trackers only.
    #[arg(long)]
    pub private: bool,

    /// A comment stored in the .torrent.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,

    /// A source string in the info dictionary (mktorrent's -s; changes the
    /// info-hash).
    #[arg(long, value_name = "TEXT")]
    pub source: Option<String>,

    /// Write no creation date (the same input then gives the same bytes).
    #[arg(long)]
    pub no_date: bool,

    /// Skip files and folders whose name starts with '.'.
    #[arg(long)]
    pub exclude_hidden: bool,

    /// Hashing threads, which take turns reading [default: the number of
    /// cores plus one].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Replace OUT.torrent if it exists.
    #[arg(short, long)]
    pub force: bool,

    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Runs `create`: the .torrent is written, then its info-hash and magnet
/// link are printed. The error is one line.
pub fn run(args: &CreateArgs) -> Result<(), String> {
    let piece_length = args
        .piece_size
        .as_deref()
        .map(parse_piece_size)
        .transpose()?;
    check_output(&args.output, args.force)?;
    let builder = builder(args, piece_length);
    let bar = progress_bar(args.quiet);
    let created = builder
        .build_with_progress(|p| {
            bar.set_length(p.total);
            bar.set_position(p.hashed);
        })
        .map_err(|e| e.to_string());
    bar.finish_and_clear();
    let created = created?;
    write_file(&args.output, &created.bytes)?;
    print_summary(&args.output, &created);
    Ok(())
}

fn builder(args: &CreateArgs, piece_length: Option<u64>) -> TorrentBuilder {
    let mut builder = TorrentBuilder::new(&args.path)
        .piece_length(piece_length)
        .private(args.private)
        .comment(args.comment.clone())
        .source(args.source.clone())
        .include_hidden(!args.exclude_hidden)
        .creation_date((!args.no_date).then(now));
    if let Some(threads) = args.threads {
        builder = builder.threads(threads);
    }
    for tier in &args.trackers {
        builder = builder.tracker_tier(split_urls(tier));
    }
    for url in args.web_seeds.iter().flat_map(|w| split_urls(w)) {
        builder = builder.web_seed(url);
    }
    builder
}

/// The non-empty URLs of a comma-separated list.
fn split_urls(list: &str) -> Vec<&str> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(0)
}

/// `256K`, `1M`, `4MiB`, `65536`: a power of two of at least 16 KiB (the
/// library checks the upper bound).
pub fn parse_piece_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "invalid --piece-size '{text}': expected a power of two of at least 16K \
             (e.g. 256K, 1M, 4M)"
        )
    };
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let shift = match unit.trim() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(bad()),
    };
    let size = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(bad)?;
    if !size.is_power_of_two() || size < u64::from(MIN_PIECE_LENGTH) {
        return Err(bad());
    }
    Ok(size)
}

/// Fails early, before any hashing, if `output` exists (without `force`),
/// or cannot be written: a probe file is made beside it and removed.
fn check_output(output: &Path, force: bool) -> Result<(), String> {
    if output.is_dir() {
        return Err(format!("{} is a directory", output.display()));
    }
    if !force && output.exists() {
        return Err(format!(
            "{} exists (use --force to replace it)",
            output.display()
        ));
    }
    let probe = temp_path(output);
    let created = OpenOptions::new().write(true).create_new(true).open(&probe);
    match created {
        Ok(file) => {
            drop(file);
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("cannot write {}: {e}", output.display())),
    }
}

/// A hidden temporary name beside `output`, unique to this process.
fn temp_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    output.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `bytes` to a temporary file beside `output`, then renames it over
/// `output`: the .torrent appears whole or not at all.
fn write_file(output: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = temp_path(output);
    let written = File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, output));
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write {}: {e}", output.display())
    })
}

fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "hashing [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar
}

fn print_summary(output: &Path, created: &CreatedTorrent) {
    println!(
        "wrote {}: {} ({} file{}, {} bytes, {} pieces of {} KiB)",
        output.display(),
        created.name,
        created.file_count,
        if created.file_count == 1 { "" } else { "s" },
        created.total_length,
        created.piece_count,
        created.piece_length / 1024
    );
    println!("info-hash: {}", created.info_hash);
    println!("magnet: {}", created.magnet());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_sizes_take_binary_units_and_must_be_powers_of_two() {
        assert_eq!(parse_piece_size("256K"), Ok(256 << 10));
        assert_eq!(parse_piece_size("1M"), Ok(1 << 20));
        assert_eq!(parse_piece_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_piece_size("16k"), Ok(16 << 10));
        assert_eq!(parse_piece_size("65536"), Ok(65536));
        for bad in [
            "",
            "K",
            "8K",
            "100K",
            "1.5M",
            "3M",
            "1T",
            "-1M",
            "99999999999999999999G",
        ] {
            let err = parse_piece_size(bad).unwrap_err();
            assert!(err.starts_with("invalid --piece-size"), "{bad}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn commas_split_a_tier() {
        assert_eq!(split_urls("http://a, http://b,"), ["http://a", "http://b"]);
        assert_eq!(split_urls("udp://c"), ["udp://c"]);
    }

    #[test]
    fn the_output_is_checked_before_hashing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.torrent");
        assert_eq!(check_output(&out, false), Ok(()));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        fs::write(&out, b"old").unwrap();
        assert!(check_output(&out, false).unwrap_err().contains("exists"));
        assert_eq!(check_output(&out, true), Ok(()));
        let missing_dir = dir.path().join("no/such/dir/x.torrent");
        assert!(check_output(&missing_dir, false)
            .unwrap_err()
            .starts_with("cannot write"));
        write_file(&out, b"new").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
