//! The logger: env_logger, at a level chosen by `-v` (or `RUST_LOG`), writing
//! above the progress bars instead of through them.

use indicatif::MultiProgress;
use indicatif_log_bridge::LogWrapper;

/// The filter for `-v` given `verbose` times: warnings by default; our own
/// crates' info, debug, then everything's trace.
pub fn filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn",
        1 => "warn,bittorrent=info,bittorrent_cli=info",
        2 => "warn,bittorrent=debug,bittorrent_cli=debug",
        _ => "trace",
    }
}

/// Installs the logger. Each record is written while `bars` are cleared from
/// the terminal, then the bars are drawn again below it (a line written
/// straight to stderr would land in the middle of a bar and leave a torn
/// copy of it behind). With `RUST_LOG` set or `-v`, lines carry a time stamp
/// and the module; the default lines are short.
pub fn init(verbose: u8, bars: &MultiProgress) {
    let from_env = std::env::var_os("RUST_LOG").is_some();
    let mut builder = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(filter(verbose)),
    );
    if from_env || verbose > 0 {
        builder.format_timestamp_millis();
    } else {
        builder.format_timestamp(None).format_target(false);
    }
    let logger = builder.build();
    let level = logger.filter();
    // Not LogWrapper::try_init: it probes the level with an empty target,
    // which misses filters that name a module (RUST_LOG=bittorrent=debug).
    if log::set_boxed_logger(Box::new(LogWrapper::new(bars.clone(), logger))).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_v_more_lines() {
        assert_eq!(filter(0), "warn");
        assert!(filter(1).contains("bittorrent=info"));
        assert!(filter(2).contains("bittorrent=debug"));
        assert_eq!(filter(3), "trace");
        assert_eq!(filter(9), "trace");
    }
}
