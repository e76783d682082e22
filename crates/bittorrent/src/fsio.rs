//! Small filesystem helpers shared by the store and the DHT: a leaf module.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// A failed step of [`write_atomically`]: what was done, to which path.
#[derive(Debug)]
pub(crate) struct FsError {
    /// The step: "create directory", "create", "write", "sync" or "rename".
    pub op: &'static str,
    /// The path it was done to.
    pub path: PathBuf,
    /// The error of the operating system.
    pub source: io::Error,
}

/// Writes `bytes` to `path` so that a crash of the process leaves either the
/// old or the new content: write a temporary file beside it (`path` with
/// `.tmp` appended), rename it over `path`, creating the directory first.
/// With `sync`, also after a power loss: the temporary file is fsynced
/// before the rename, the directory after it (best effort).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], sync: bool) -> Result<(), FsError> {
    let fail = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| FsError { op, path, source }
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail("create directory", dir))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(fail("create", &tmp))?;
    io::Write::write_all(&mut file, bytes).map_err(fail("write", &tmp))?;
    if sync {
        file.sync_all().map_err(fail("sync", &tmp))?;
    }
    drop(file);
    std::fs::rename(&tmp, path).map_err(fail("rename", path))?;
    if sync {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_content_and_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/state");
        write_atomically(&path, b"one", false).unwrap();
        write_atomically(&path, b"two", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state"], "no temporary file is left behind");
    }

    #[test]
    fn a_failed_step_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = write_atomically(&blocker.join("below"), b"y", false).unwrap_err();
        assert_eq!(err.op, "create directory");
        assert_eq!(err.path, blocker);
    }
}
