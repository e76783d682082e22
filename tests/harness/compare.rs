//! Comparing downloaded files and trees with the originals, byte for byte.

use std::fs;
use std::path::{Path, PathBuf};

/// Appends the paths (relative to `root`, sorted) of every file under `dir` to `out`.
pub fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).expect("under root").to_path_buf());
        }
    }
}

/// Panics unless `actual` (file or directory) has exactly the files and bytes of `expected`.
pub fn assert_same_content(expected: &Path, actual: &Path) {
    assert!(actual.exists(), "{} was not created", actual.display());
    if expected.is_file() {
        assert!(actual.is_file(), "{} is not a file", actual.display());
        assert_same_file(expected, actual);
        return;
    }
    let (mut want, mut got) = (Vec::new(), Vec::new());
    walk(expected, expected, &mut want);
    walk(actual, actual, &mut got);
    assert_eq!(
        want,
        got,
        "different file sets under {} and {}",
        expected.display(),
        actual.display()
    );
    for rel in &want {
        assert_same_file(&expected.join(rel), &actual.join(rel));
    }
}

fn assert_same_file(expected: &Path, actual: &Path) {
    let (a, b) = (
        fs::read(expected).expect("read expected"),
        fs::read(actual).expect("read actual"),
    );
    assert_eq!(a.len(), b.len(), "size of {} differs", actual.display());
    if a == b {
        return; // memcmp; the byte loop below is slow in debug builds
    }
    if let Some(pos) = a.iter().zip(&b).position(|(x, y)| x != y) {
        panic!(
            "{} differs from {} at byte {pos}",
            actual.display(),
            expected.display()
        );
    }
}
