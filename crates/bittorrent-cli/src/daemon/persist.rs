//! The data directory, crash-safe: every file is written to a temporary file
//! beside it, fsynced, renamed over the old one, and the directory fsynced, so
//! a kill at any moment leaves either the old or the new file, never a torn one.
//!
//! - `DATA/config.json`: credentials, preferences, categories, tags ([`Config`]).
//! - `DATA/torrents.json`: every torrent's record ([`TorrentsFile`]).
//! - `DATA/torrents/<infohash>.torrent`: the metainfo.
//!
//! A JSON file that does not parse is never overwritten: the daemon falls
//! back to the copy `<file>.bak` made at the last good start, or refuses to
//! start with an error that names the file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::daemon::model::{Config, TorrentsFile};

/// The data directory and the paths of its files.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

/// Why the data directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Reading, writing or renaming failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file is not the JSON we write (torn by hand, another program's file).
    #[error("{path} is corrupt ({source}); fix or remove it (a good copy is kept as .bak when there is one)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What serde_json said.
        source: serde_json::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl DataDir {
    /// Creates `root` and `root/torrents` if missing.
    ///
    /// # Errors
    /// [`PersistError::Io`] when they cannot be created.
    pub fn open(root: &Path) -> Result<Self, PersistError> {
        let dir = Self {
            root: root.to_path_buf(),
        };
        fs::create_dir_all(dir.torrents_dir()).map_err(io_error(&dir.torrents_dir()))?;
        Ok(dir)
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `DATA/config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// `DATA/torrents.json`.
    pub fn records_path(&self) -> PathBuf {
        self.root.join("torrents.json")
    }

    /// `DATA/torrents`.
    pub fn torrents_dir(&self) -> PathBuf {
        self.root.join("torrents")
    }

    /// `DATA/torrents/<hex>.torrent`.
    pub fn torrent_path(&self, hex: &str) -> PathBuf {
        self.torrents_dir().join(format!("{hex}.torrent"))
    }

    /// The config, `None` when there is none yet.
    ///
    /// # Errors
    /// As [`load_json`].
    pub fn load_config(&self) -> Result<Option<Config>, PersistError> {
        load_json(&self.config_path())
    }

    /// The torrents' records, `None` when there are none yet.
    ///
    /// # Errors
    /// As [`load_json`].
    pub fn load_records(&self) -> Result<Option<TorrentsFile>, PersistError> {
        load_json(&self.records_path())
    }

    /// Writes the config.
    ///
    /// # Errors
    /// [`PersistError::Io`].
    pub fn save_config(&self, config: &Config) -> Result<(), PersistError> {
        save_json(&self.config_path(), config)
    }

    /// Writes the torrents' records.
    ///
    /// # Errors
    /// [`PersistError::Io`].
    pub fn save_records(&self, records: &TorrentsFile) -> Result<(), PersistError> {
        save_json(&self.records_path(), records)
    }

    /// Keeps `DATA/<file>.bak` copies of the config and records just read
    /// (the fallback if a file is ever found corrupt).
    pub fn keep_backups(&self) {
        for path in [self.config_path(), self.records_path()] {
            let Ok(bytes) = fs::read(&path) else { continue };
            if let Err(e) = write_atomic(&backup_of(&path), &bytes) {
                log::warn!("cannot keep a backup of {}: {e}", path.display());
            }
        }
    }
}

/// `path` with `.bak` appended.
fn backup_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".bak");
    PathBuf::from(name)
}

/// Reads a JSON file: `None` when it does not exist. A file that does not
/// parse falls back to its `.bak` copy (with a warning) if that one parses.
///
/// # Errors
/// [`PersistError::Io`] when it cannot be read, [`PersistError::Corrupt`] when
/// neither it nor its backup parse.
pub fn load_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, PersistError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    match serde_json::from_slice(&bytes) {
        Ok(value) => Ok(Some(value)),
        Err(source) => {
            let backup = backup_of(path);
            if let Ok(bytes) = fs::read(&backup) {
                if let Ok(value) = serde_json::from_slice(&bytes) {
                    log::warn!(
                        "{} is corrupt ({source}); using {}",
                        path.display(),
                        backup.display()
                    );
                    return Ok(Some(value));
                }
            }
            Err(PersistError::Corrupt {
                path: path.to_path_buf(),
                source,
            })
        }
    }
}

/// Writes `value` as pretty JSON, atomically.
///
/// # Errors
/// [`PersistError::Io`].
pub fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<(), PersistError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| PersistError::Io {
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, fsynced, renamed over `path`, then the directory fsynced.
///
/// # Errors
/// [`PersistError::Io`]; `path` is then unchanged.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::daemon::model::Config;

    #[test]
    fn a_written_file_reads_back_and_no_temporary_stays() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        assert!(data.load_config().unwrap().is_none());
        let mut config = Config::new("hash");
        config.tags.insert("x".into());
        data.save_config(&config).unwrap();
        assert_eq!(data.load_config().unwrap(), Some(config));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")),
            "{names:?}"
        );
    }

    #[test]
    fn a_corrupt_file_is_an_error_or_its_backup() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let config = Config::new("hash");
        data.save_config(&config).unwrap();
        // A torn write (as if another program cut it short).
        let good = fs::read(data.config_path()).unwrap();
        fs::write(data.config_path(), &good[..good.len() / 2]).unwrap();
        let error = data.load_config().unwrap_err().to_string();
        assert!(error.contains("config.json is corrupt"), "{error}");
        // The corrupt file is left alone.
        assert_eq!(
            fs::read(data.config_path()).unwrap(),
            &good[..good.len() / 2]
        );
        // With a backup of the last good start, that is used.
        fs::write(backup_of(&data.config_path()), &good).unwrap();
        assert_eq!(data.load_config().unwrap(), Some(config));
    }

    #[test]
    fn keep_backups_copies_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        data.keep_backups();
        assert!(!backup_of(&data.config_path()).exists());
        data.save_config(&Config::new("h")).unwrap();
        data.keep_backups();
        assert_eq!(
            fs::read(backup_of(&data.config_path())).unwrap(),
            fs::read(data.config_path()).unwrap()
        );
    }

    #[test]
    fn writing_into_a_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope/config.json");
        assert!(matches!(
            write_atomic(&path, b"{}"),
            Err(PersistError::Io { .. })
        ));
    }
}
