//! qBittorrent's torrent state strings (`state` in `torrents/info` and
//! `sync/maindata`), decided from the library's [`TorrentState`], the rates,
//! the force-start flag and completion as qBittorrent 5.0's
//! `TorrentImpl::updateState` decides them, and the state groups its
//! `torrents/info` filters test.

use bittorrent::torrent::TorrentState;
use serde::Serialize;

/// A torrent's state as qBittorrent 5.0 names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QbtState {
    /// Stopped by an error (a store error).
    Error,
    /// Seeding, sending data.
    Uploading,
    /// Complete and stopped.
    StoppedUp,
    /// Complete, held back by the queue.
    QueuedUp,
    /// Seeding, nothing sent right now.
    StalledUp,
    /// Checking data that was complete.
    CheckingUp,
    /// Seeding, force-started (outside the queue).
    ForcedUp,
    /// Downloading, receiving data.
    Downloading,
    /// Fetching a magnet link's metadata.
    MetaDl,
    /// Fetching metadata, force-started.
    ForcedMetaDl,
    /// Incomplete and stopped.
    StoppedDl,
    /// Incomplete, held back by the queue.
    QueuedDl,
    /// Downloading, nothing received right now.
    StalledDl,
    /// Checking data that was not complete.
    CheckingDl,
    /// Downloading, force-started.
    ForcedDl,
}

/// What the state string is decided from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StateInputs {
    /// The library's state.
    pub state: TorrentState,
    /// Every wanted piece is verified.
    pub complete: bool,
    /// It was complete before (a completion time is known): a check of its
    /// data is `checkingUP` rather than `checkingDL`.
    pub was_complete: bool,
    /// Force-started.
    pub force_start: bool,
    /// Download rate, bytes per second.
    pub download_rate: f64,
    /// Upload rate, bytes per second.
    pub upload_rate: f64,
}

impl QbtState {
    /// The state qBittorrent would show. A rate counts once it is a whole
    /// byte per second (qBittorrent's rates are integers).
    pub fn decide(inputs: &StateInputs) -> Self {
        let sending = inputs.upload_rate >= 1.0;
        let receiving = inputs.download_rate >= 1.0;
        let upload_side = inputs.complete;
        match inputs.state {
            TorrentState::Error => Self::Error,
            TorrentState::FetchingMetadata if inputs.force_start => Self::ForcedMetaDl,
            TorrentState::FetchingMetadata => Self::MetaDl,
            TorrentState::Checking if upload_side || inputs.was_complete => Self::CheckingUp,
            TorrentState::Checking => Self::CheckingDl,
            TorrentState::Paused if upload_side => Self::StoppedUp,
            TorrentState::Paused => Self::StoppedDl,
            TorrentState::Queued if upload_side => Self::QueuedUp,
            TorrentState::Queued => Self::QueuedDl,
            TorrentState::Seeding | TorrentState::Finished => {
                if inputs.force_start {
                    Self::ForcedUp
                } else if sending {
                    Self::Uploading
                } else {
                    Self::StalledUp
                }
            }
            TorrentState::Downloading => {
                if inputs.force_start {
                    Self::ForcedDl
                } else if receiving {
                    Self::Downloading
                } else {
                    Self::StalledDl
                }
            }
        }
    }

    /// The string qBittorrent sends.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Uploading => "uploading",
            Self::StoppedUp => "stoppedUP",
            Self::QueuedUp => "queuedUP",
            Self::StalledUp => "stalledUP",
            Self::CheckingUp => "checkingUP",
            Self::ForcedUp => "forcedUP",
            Self::Downloading => "downloading",
            Self::MetaDl => "metaDL",
            Self::ForcedMetaDl => "forcedMetaDL",
            Self::StoppedDl => "stoppedDL",
            Self::QueuedDl => "queuedDL",
            Self::StalledDl => "stalledDL",
            Self::CheckingDl => "checkingDL",
            Self::ForcedDl => "forcedDL",
        }
    }

    /// Stopped by the user (qBittorrent's `isStopped`).
    pub fn is_stopped(self) -> bool {
        matches!(self, Self::StoppedUp | Self::StoppedDl)
    }

    /// The `downloading` filter (qBittorrent's `isDownloading`).
    pub fn is_downloading(self) -> bool {
        matches!(
            self,
            Self::Downloading
                | Self::MetaDl
                | Self::ForcedMetaDl
                | Self::StalledDl
                | Self::CheckingDl
                | Self::StoppedDl
                | Self::QueuedDl
                | Self::ForcedDl
        )
    }

    /// The `seeding` filter (qBittorrent's `isUploading`).
    pub fn is_uploading(self) -> bool {
        matches!(
            self,
            Self::Uploading | Self::StalledUp | Self::CheckingUp | Self::QueuedUp | Self::ForcedUp
        )
    }

    /// The `completed` filter.
    pub fn is_completed(self) -> bool {
        self.is_uploading() || self == Self::StoppedUp
    }

    /// The `active` filter: moving data (a stalled download counts when it
    /// uploads).
    pub fn is_active(self, upload_rate: u64) -> bool {
        match self {
            Self::StalledDl => upload_rate > 0,
            Self::MetaDl
            | Self::ForcedMetaDl
            | Self::Downloading
            | Self::ForcedDl
            | Self::Uploading
            | Self::ForcedUp => true,
            _ => false,
        }
    }

    /// The `checking` filter.
    pub fn is_checking(self) -> bool {
        matches!(self, Self::CheckingUp | Self::CheckingDl)
    }
}

impl Serialize for QbtState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(state: TorrentState) -> StateInputs {
        StateInputs {
            state,
            complete: false,
            was_complete: false,
            force_start: false,
            download_rate: 0.0,
            upload_rate: 0.0,
        }
    }

    fn decide(state: TorrentState, edit: impl FnOnce(&mut StateInputs)) -> &'static str {
        let mut i = inputs(state);
        edit(&mut i);
        QbtState::decide(&i).as_str()
    }

    #[test]
    fn downloading_states_follow_the_rate_and_the_force_flag() {
        use TorrentState::Downloading;
        assert_eq!(decide(Downloading, |_| {}), "stalledDL");
        assert_eq!(decide(Downloading, |i| i.download_rate = 0.5), "stalledDL");
        assert_eq!(
            decide(Downloading, |i| i.download_rate = 10.0),
            "downloading"
        );
        // An upload alone does not make a download "downloading".
        assert_eq!(decide(Downloading, |i| i.upload_rate = 10.0), "stalledDL");
        assert_eq!(decide(Downloading, |i| i.force_start = true), "forcedDL");
    }

    #[test]
    fn seeding_states_follow_the_upload_rate_and_the_force_flag() {
        for state in [TorrentState::Seeding, TorrentState::Finished] {
            let complete = |i: &mut StateInputs| i.complete = true;
            assert_eq!(decide(state, complete), "stalledUP");
            assert_eq!(
                decide(state, |i| {
                    i.complete = true;
                    i.upload_rate = 2.0
                }),
                "uploading"
            );
            assert_eq!(
                decide(state, |i| {
                    i.complete = true;
                    i.force_start = true;
                    i.upload_rate = 2.0
                }),
                "forcedUP"
            );
        }
    }

    #[test]
    fn stopped_queued_and_checking_take_the_side_of_completion() {
        use TorrentState::{Checking, Paused, Queued};
        assert_eq!(decide(Paused, |_| {}), "stoppedDL");
        assert_eq!(decide(Paused, |i| i.complete = true), "stoppedUP");
        assert_eq!(decide(Queued, |_| {}), "queuedDL");
        assert_eq!(decide(Queued, |i| i.complete = true), "queuedUP");
        assert_eq!(decide(Checking, |_| {}), "checkingDL");
        assert_eq!(decide(Checking, |i| i.was_complete = true), "checkingUP");
        // A paused torrent stays stopped even when force-started.
        assert_eq!(decide(Paused, |i| i.force_start = true), "stoppedDL");
    }

    #[test]
    fn metadata_and_error_states() {
        use TorrentState::{Error, FetchingMetadata};
        assert_eq!(decide(FetchingMetadata, |_| {}), "metaDL");
        assert_eq!(
            decide(FetchingMetadata, |i| i.force_start = true),
            "forcedMetaDL"
        );
        assert_eq!(decide(Error, |i| i.complete = true), "error");
    }

    #[test]
    fn serialized_as_its_string() {
        let json = serde_json::to_string(&[QbtState::StalledDl, QbtState::ForcedMetaDl]).unwrap();
        assert_eq!(json, r#"["stalledDL","forcedMetaDL"]"#);
    }

    #[test]
    fn filter_groups() {
        assert!(QbtState::StoppedDl.is_downloading());
        assert!(!QbtState::StoppedUp.is_uploading());
        assert!(QbtState::StoppedUp.is_completed());
        assert!(QbtState::StalledDl.is_active(1));
        assert!(!QbtState::StalledDl.is_active(0));
        assert!(!QbtState::StalledUp.is_active(0));
        assert!(QbtState::MetaDl.is_active(0));
        assert!(QbtState::CheckingUp.is_checking());
        assert!(QbtState::StoppedDl.is_stopped());
    }
}
