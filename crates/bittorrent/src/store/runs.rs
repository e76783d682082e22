//! Where a block's bytes lie on disk, for zero-copy uploads: the
//! [`FileStore`]'s answer to [`Store::file_runs`](crate::store::Store::file_runs).

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::store::{FileRun, FileSlice, FileStore, StoreError};

impl FileStore {
    /// The open file and offset holding `slice` (a run of piece `index`),
    /// for reading: its own file, or the part file holding it. A file that
    /// is not there is a [`StoreError::ShortRead`] (never written).
    pub(super) fn read_target(
        &self,
        index: u32,
        slice: FileSlice,
    ) -> Result<(Arc<File>, u64, &Path), StoreError> {
        let short_read = |path: &Path| StoreError::ShortRead {
            path: path.to_path_buf(),
            offset: slice.offset,
            length: slice.length,
        };
        let target = match self.target(index, slice, false) {
            Ok(target) => target,
            Err(StoreError::Io { source, path, .. })
                if source.kind() == io::ErrorKind::NotFound =>
            {
                return Err(short_read(&path));
            }
            Err(e) => return Err(e),
        };
        match target.file {
            Some(file) => Ok((file, target.offset, target.path)),
            None => Err(short_read(target.path)),
        }
    }

    /// The file runs holding `length` bytes at `begin` of piece `index`, in
    /// order; `None` when a pad file (read back as zeros, never on disk)
    /// has a share of them.
    pub(super) fn runs_of(
        &self,
        index: u32,
        begin: u32,
        length: u32,
    ) -> Result<Option<Vec<FileRun>>, StoreError> {
        let slices =
            self.layout
                .slices(index, begin, u64::from(length))
                .ok_or(StoreError::OutOfRange {
                    index,
                    begin,
                    length: u64::from(length),
                })?;
        if slices.iter().any(|s| self.layout.files[s.file].pad) {
            return Ok(None);
        }
        let mut runs = Vec::with_capacity(slices.len());
        for slice in slices {
            let (file, offset, _) = self.read_target(index, slice)?;
            runs.push(FileRun {
                file,
                offset,
                len: slice.length,
            });
        }
        Ok(Some(runs))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use bytes::Bytes;

    use crate::metainfo::MetaInfo;
    use crate::store::{FileRun, FileStore, Store, StoreError};

    /// What `runs` hold, read back from their files.
    fn read_runs(runs: &[FileRun]) -> Vec<u8> {
        let mut out = Vec::new();
        for run in runs {
            let mut buf = vec![0u8; run.len as usize];
            run.file.read_exact_at(&mut buf, run.offset).unwrap();
            out.extend_from_slice(&buf);
        }
        out
    }

    /// A torrent of three files (5, 3 and 9 bytes) in 4-byte pieces, all
    /// written: bytes 0..17.
    fn three_files(dir: &std::path::Path) -> (FileStore, Vec<u8>) {
        let meta = MetaInfo::for_test("t", 4, &[("a", 5, false), ("b", 3, false), ("c", 9, false)]);
        let store = FileStore::from_meta_info(dir, &meta).unwrap();
        let data: Vec<u8> = (0..17).collect();
        for (index, piece) in data.chunks(4).enumerate() {
            store
                .write_piece(index as u32, &[Bytes::copy_from_slice(piece)])
                .unwrap();
        }
        (store, data)
    }

    #[test]
    fn a_block_spanning_files_gives_one_run_per_file() {
        let dir = tempfile::tempdir().unwrap();
        let (store, data) = three_files(dir.path());
        // Piece 1 is bytes 4..8: the last byte of `a`, all of `b`.
        let runs = store.file_runs(1, 0, 4).unwrap().expect("runs");
        let spans: Vec<(u64, u64)> = runs.iter().map(|r| (r.offset, r.len)).collect();
        assert_eq!(spans, [(4, 1), (0, 3)]);
        assert_eq!(read_runs(&runs), data[4..8]);
        // Piece 2 from its second byte: `c` alone.
        let runs = store.file_runs(2, 1, 3).unwrap().expect("runs");
        assert_eq!(runs.len(), 1);
        assert_eq!(read_runs(&runs), data[9..12]);
        // Every block of every piece reads back what `read_into` reads.
        for index in 0..5u32 {
            let len = if index == 4 { 1 } else { 4 };
            let runs = store.file_runs(index, 0, len).unwrap().expect("runs");
            let mut buf = vec![0u8; len as usize];
            store.read_into(index, 0, &mut buf).unwrap();
            assert_eq!(read_runs(&runs), buf, "piece {index}");
        }
    }

    #[test]
    fn out_of_range_missing_and_pad_files() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = three_files(dir.path());
        assert!(matches!(
            store.file_runs(1, 2, 3),
            Err(StoreError::OutOfRange { .. })
        ));
        assert!(matches!(
            store.file_runs(9, 0, 1),
            Err(StoreError::OutOfRange { .. })
        ));
        // A file never written is a short read, as for `read_into`.
        std::fs::remove_file(dir.path().join("t").join("b")).unwrap();
        let fresh = FileStore::from_meta_info(
            dir.path(),
            &MetaInfo::for_test("t", 4, &[("a", 5, false), ("b", 3, false), ("c", 9, false)]),
        )
        .unwrap();
        assert!(matches!(
            fresh.file_runs(1, 0, 4),
            Err(StoreError::ShortRead { .. })
        ));
        // A pad file's share is not on disk: no runs, the caller reads.
        let meta = MetaInfo::for_test(
            "p",
            4,
            &[("a", 2, false), ("pad", 2, true), ("b", 4, false)],
        );
        let padded = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        padded
            .write_piece(0, &[Bytes::from_static(b"ab\0\0")])
            .unwrap();
        padded
            .write_piece(1, &[Bytes::from_static(b"cdef")])
            .unwrap();
        assert!(padded.file_runs(0, 0, 4).unwrap().is_none());
        assert!(padded.file_runs(0, 0, 2).unwrap().is_some());
        assert_eq!(
            read_runs(&padded.file_runs(1, 0, 4).unwrap().unwrap()),
            b"cdef"
        );
    }

    #[test]
    fn other_stores_say_not_available() {
        let meta = MetaInfo::for_test("m", 4, &[("m", 8, false)]);
        let store = crate::store::MemoryStore::new(&meta);
        assert!(store.file_runs(0, 0, 4).unwrap().is_none());
    }
}
