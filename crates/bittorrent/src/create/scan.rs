//! What goes into a torrent: the files under the path given, in mktorrent's
//! order, with symbolic links and special files refused.

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::create::CreateError;

/// One file of the content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InputFile {
    /// Where it is on disk.
    pub disk_path: PathBuf,
    /// Its path inside the torrent, one element per folder level (empty for
    /// a single-file torrent).
    pub components: Vec<OsString>,
    /// Its length when it was scanned.
    pub length: u64,
}

impl InputFile {
    /// The path inside the torrent as bytes, elements joined by `/`: the key
    /// mktorrent sorts by (`strcmp` of that string).
    pub fn sort_key(&self) -> Vec<u8> {
        let parts: Vec<&[u8]> = self.components.iter().map(|c| c.as_bytes()).collect();
        parts.join(&b'/')
    }
}

/// The content of a torrent to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Content {
    /// The torrent's name: the last element of the path given.
    pub name: OsString,
    /// Whether the path was a folder (the `files` layout, even for a folder
    /// holding one file, as mktorrent writes it).
    pub is_folder: bool,
    /// The files, sorted by [`InputFile::sort_key`].
    pub files: Vec<InputFile>,
}

impl Content {
    /// The sum of the files' lengths.
    pub fn total_length(&self) -> u64 {
        self.files.iter().map(|f| f.length).sum()
    }
}

/// Lists the content of `root`: a regular file, or a folder walked
/// recursively. Hidden entries (a name starting with `.`) inside a folder are
/// skipped unless `include_hidden`. Empty folders add nothing; empty files are
/// listed (mktorrent lists them too).
///
/// # Errors
/// [`CreateError::Missing`] when `root` cannot be inspected,
/// [`CreateError::Symlink`] and [`CreateError::SpecialFile`] for such an entry
/// anywhere, [`CreateError::Io`] when a folder cannot be read,
/// [`CreateError::Empty`] when there is no byte to share and
/// [`CreateError::NoName`] when `root` has no last element.
pub(crate) fn scan(root: &Path, include_hidden: bool) -> Result<Content, CreateError> {
    let meta = fs::symlink_metadata(root).map_err(|source| CreateError::Missing {
        path: root.to_owned(),
        source,
    })?;
    let name = torrent_name(root)?;
    let content = if meta.is_dir() {
        let mut files = Vec::new();
        walk(root, &mut Vec::new(), include_hidden, &mut files)?;
        files.sort_by_cached_key(InputFile::sort_key);
        Content {
            name,
            is_folder: true,
            files,
        }
    } else {
        check_kind(root, &meta)?;
        let file = InputFile {
            disk_path: root.to_owned(),
            components: Vec::new(),
            length: meta.len(),
        };
        Content {
            name,
            is_folder: false,
            files: vec![file],
        }
    };
    if content.total_length() == 0 {
        return Err(CreateError::Empty {
            path: root.to_owned(),
        });
    }
    Ok(content)
}

/// The last element of `root` (trailing `/` ignored; `.` and `..` resolved).
fn torrent_name(root: &Path) -> Result<OsString, CreateError> {
    let no_name = || CreateError::NoName {
        path: root.to_owned(),
    };
    if let Some(name) = root.file_name() {
        return Ok(name.to_owned());
    }
    let absolute = fs::canonicalize(root).map_err(|_| no_name())?;
    absolute
        .file_name()
        .map(|n| n.to_owned())
        .ok_or_else(no_name)
}

/// Refuses anything that is not a regular file or a folder.
fn check_kind(path: &Path, meta: &Metadata) -> Result<(), CreateError> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(CreateError::Symlink {
            path: path.to_owned(),
        });
    }
    if !kind.is_file() && !kind.is_dir() {
        return Err(CreateError::SpecialFile {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// Adds the files under `dir` (whose path inside the torrent is `prefix`)
/// to `out`, in no particular order.
fn walk(
    dir: &Path,
    prefix: &mut Vec<OsString>,
    include_hidden: bool,
    out: &mut Vec<InputFile>,
) -> Result<(), CreateError> {
    let io_error = |source| CreateError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let name = entry.file_name();
        if !include_hidden && name.as_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|source| CreateError::Io {
            path: path.clone(),
            source,
        })?;
        check_kind(&path, &meta)?;
        prefix.push(name);
        if meta.is_dir() {
            walk(&path, prefix, include_hidden, out)?;
        } else {
            out.push(InputFile {
                disk_path: path,
                components: prefix.clone(),
                length: meta.len(),
            });
        }
        prefix.pop();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(root: &Path, rel: &str, len: usize) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, vec![7u8; len]).unwrap();
    }

    fn keys(content: &Content) -> Vec<String> {
        content
            .files
            .iter()
            .map(|f| String::from_utf8(f.sort_key()).unwrap())
            .collect()
    }

    #[test]
    fn files_are_sorted_by_their_whole_path_as_bytes_like_strcmp() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("set");
        // '.' (0x2e) sorts before '/' (0x2f): "a.txt" before "a/..."; upper
        // case before lower case; empty files are kept.
        for rel in ["b", "a/z", "a.txt", "a/b/c", "B", "a-", "a/b0"] {
            write(&root, rel, 3);
        }
        write(&root, "empty", 0);
        fs::create_dir_all(root.join("no-files/inside")).unwrap();
        let content = scan(&root, true).unwrap();
        assert!(content.is_folder);
        assert_eq!(content.name, "set");
        assert_eq!(
            keys(&content),
            ["B", "a-", "a.txt", "a/b/c", "a/b0", "a/z", "b", "empty"]
        );
        assert_eq!(content.total_length(), 21);
        assert_eq!(content.files[3].components, ["a", "b", "c"]);
    }

    #[test]
    fn hidden_entries_are_included_unless_excluded() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "x/.hidden", 1);
        write(dir.path(), "x/.git/config", 1);
        write(dir.path(), "x/seen", 1);
        let all = scan(&dir.path().join("x"), true).unwrap();
        assert_eq!(keys(&all), [".git/config", ".hidden", "seen"]);
        let visible = scan(&dir.path().join("x"), false).unwrap();
        assert_eq!(keys(&visible), ["seen"]);
    }

    #[test]
    fn a_single_file_has_no_components_and_keeps_its_name() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "movie.mkv", 5);
        let content = scan(&dir.path().join("movie.mkv"), true).unwrap();
        assert!(!content.is_folder);
        assert_eq!(content.name, "movie.mkv");
        assert_eq!(content.files.len(), 1);
        assert!(content.files[0].components.is_empty());
        // A trailing slash on a folder does not change its name.
        write(dir.path(), "d/f", 1);
        let content = scan(&dir.path().join("d/"), true).unwrap();
        assert_eq!(content.name, "d");
    }

    #[test]
    fn symlinks_and_special_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "x/real", 4);
        symlink(dir.path().join("x/real"), dir.path().join("x/link")).unwrap();
        let err = scan(&dir.path().join("x"), true).unwrap_err();
        assert!(matches!(err, CreateError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = scan(&dir.path().join("x/link"), true).unwrap_err();
        assert!(matches!(err, CreateError::Symlink { .. }), "{err}");

        let sock_dir = dir.path().join("s");
        fs::create_dir(&sock_dir).unwrap();
        write(dir.path(), "s/data", 4);
        let _listener = std::os::unix::net::UnixListener::bind(sock_dir.join("sock")).unwrap();
        let err = scan(&sock_dir, true).unwrap_err();
        assert!(matches!(err, CreateError::SpecialFile { .. }), "{err}");
    }

    #[test]
    fn missing_and_empty_content_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = scan(&dir.path().join("nope"), true).unwrap_err();
        assert!(matches!(err, CreateError::Missing { .. }), "{err}");
        fs::create_dir_all(dir.path().join("empty/sub")).unwrap();
        write(dir.path(), "empty/sub/zero", 0);
        let err = scan(&dir.path().join("empty"), true).unwrap_err();
        assert!(matches!(err, CreateError::Empty { .. }), "{err}");
        write(dir.path(), "zero", 0);
        let err = scan(&dir.path().join("zero"), true).unwrap_err();
        assert!(matches!(err, CreateError::Empty { .. }), "{err}");
    }
}
