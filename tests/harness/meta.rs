//! Torrent metadata and resume records, read with serde_bencode (not the engine's code), and
//! checks of data on disk against piece hashes.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_bencode::value::Value;
use serde_bytes::ByteBuf;
use sha1::{Digest, Sha1};

/// What the tests need of a .torrent file.
#[derive(Clone, Debug)]
pub struct Meta {
    pub info_hash: [u8; 20],
    /// The raw `name` (unsanitized).
    pub name: Vec<u8>,
    pub piece_len: u64,
    pub pieces: Vec<[u8; 20]>,
    /// Raw path components (unsanitized, without the name) and length of each file, in
    /// torrent order; a single-file torrent has one entry with no components.
    pub files: Vec<(Vec<Vec<u8>>, u64)>,
    pub multi_file: bool,
}

/// A .torrent file: its `info` dictionary as it is (to hash it), and `announce`.
#[derive(Deserialize, Serialize)]
struct TorrentFile<I> {
    info: I,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    announce: Option<ByteBuf>,
}

/// The fields of an `info` dictionary the tests read or write.
#[derive(Deserialize, Serialize)]
struct Info {
    name: ByteBuf,
    #[serde(rename = "piece length")]
    piece_length: u64,
    pieces: ByteBuf,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    length: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    files: Option<Vec<FileEntry>>,
}

#[derive(Deserialize, Serialize)]
struct FileEntry {
    length: u64,
    path: Vec<ByteBuf>,
}

/// The bencoded `info` dictionary of a .torrent file, as its bytes appear in the file: the
/// decoded dictionary encoded again, which must be found right after the `4:info` key (a
/// non-canonical dictionary would not be, and its hash would differ).
fn raw_info(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let root: TorrentFile<Value> = serde_bencode::from_bytes(bytes).map_err(|e| e.to_string())?;
    let info = serde_bencode::to_bytes(&root.info).map_err(|e| e.to_string())?;
    let found = bytes
        .windows(6)
        .enumerate()
        .any(|(at, key)| key == b"4:info" && bytes[at + 6..].starts_with(&info));
    if !found {
        return Err("the info dictionary is not in canonical bencode".into());
    }
    Ok(info)
}

/// SHA-1 of the bencoded `info` value of a .torrent file (independent of the engine's code).
pub fn info_hash(torrent: &Path) -> [u8; 20] {
    let bytes = fs::read(torrent).unwrap_or_else(|e| panic!("read {}: {e}", torrent.display()));
    let info = raw_info(&bytes).unwrap_or_else(|e| panic!("{}: {e}", torrent.display()));
    Sha1::digest(info).into()
}

impl Meta {
    pub fn load(torrent: &Path) -> Meta {
        let bytes = fs::read(torrent).unwrap_or_else(|e| panic!("read {}: {e}", torrent.display()));
        Meta::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", torrent.display()))
    }

    pub fn parse(bytes: &[u8]) -> Result<Meta, String> {
        let raw = raw_info(bytes)?;
        let info: Info = serde_bencode::from_bytes(&raw).map_err(|e| format!("info: {e}"))?;
        let pieces = info
            .pieces
            .chunks(20)
            .map(|c| c.try_into().map_err(|_| "pieces not a multiple of 20"))
            .collect::<Result<Vec<[u8; 20]>, _>>()?;
        let (files, multi_file) = match (info.files, info.length) {
            (Some(list), _) => {
                let files = list
                    .into_iter()
                    .map(|f| {
                        (
                            f.path.into_iter().map(ByteBuf::into_vec).collect(),
                            f.length,
                        )
                    })
                    .collect();
                (files, true)
            }
            (None, Some(len)) => (vec![(Vec::new(), len)], false),
            (None, None) => return Err("no length".into()),
        };
        Ok(Meta {
            info_hash: Sha1::digest(&raw).into(),
            name: info.name.into_vec(),
            piece_len: info.piece_length,
            pieces,
            files,
            multi_file,
        })
    }

    pub fn total_len(&self) -> u64 {
        self.files.iter().map(|(_, l)| l).sum()
    }

    pub fn piece_size(&self, index: usize) -> u64 {
        let start = index as u64 * self.piece_len;
        self.piece_len.min(self.total_len() - start)
    }

    /// Where a well-behaved client puts the files of a torrent with harmless names under
    /// `dir`: `dir/name` (single file) or `dir/name/path...`.
    pub fn plain_paths(&self, dir: &Path) -> Vec<PathBuf> {
        let base = dir.join(String::from_utf8_lossy(&self.name).as_ref());
        self.files
            .iter()
            .map(|(comps, _)| {
                comps.iter().fold(base.clone(), |p, c| {
                    p.join(String::from_utf8_lossy(c).as_ref())
                })
            })
            .collect()
    }

    /// Which pieces of the data in `paths` (one per file, torrent order) match their SHA-1.
    /// A missing or short file makes the pieces over it fail.
    pub fn check_pieces(&self, paths: &[PathBuf]) -> Vec<bool> {
        assert_eq!(paths.len(), self.files.len());
        let mut handles: Vec<Option<File>> = paths.iter().map(|p| File::open(p).ok()).collect();
        let mut buf = vec![0u8; self.piece_len as usize];
        (0..self.pieces.len())
            .map(|i| {
                let len = self.piece_size(i) as usize;
                self.read_span(&mut handles, i as u64 * self.piece_len, &mut buf[..len])
                    && Sha1::digest(&buf[..len]).as_slice() == self.pieces[i]
            })
            .collect()
    }

    /// Reads `buf.len()` bytes at torrent offset `at` from the files; false if one is short.
    fn read_span(&self, handles: &mut [Option<File>], at: u64, buf: &mut [u8]) -> bool {
        let mut file_start = 0u64;
        let mut done = 0usize;
        for (i, (_, len)) in self.files.iter().enumerate() {
            let file_end = file_start + len;
            let want_at = at + done as u64;
            if done < buf.len() && want_at < file_end && want_at >= file_start {
                let n = ((file_end - want_at) as usize).min(buf.len() - done);
                let Some(f) = handles[i].as_mut() else {
                    return false;
                };
                if f.seek(SeekFrom::Start(want_at - file_start)).is_err()
                    || f.read_exact(&mut buf[done..done + n]).is_err()
                {
                    return false;
                }
                done += n;
            }
            file_start = file_end;
        }
        done == buf.len()
    }
}

/// Path of our CLI's resume record for `hash` under the data directory `dir`.
pub fn resume_path(dir: &Path, hash: &[u8; 20]) -> PathBuf {
    dir.join(".bittorrent")
        .join(format!("{}.resume", hex::encode(hash)))
}

/// A resume record as the CLI documents it.
#[derive(Clone, Debug)]
pub struct Resume {
    pub info_hash: Vec<u8>,
    pub piece_count: usize,
    pub have: Vec<bool>,
    /// `[length, mtime_secs, mtime_nanos, ctime_secs, ctime_nanos, dev, inode]` per file
    /// (version 2); `None` for a file that did not exist.
    pub files: Vec<Option<[i64; 7]>>,
    pub version: i64,
}

/// The fields of a resume record the tests check.
#[derive(Deserialize)]
struct ResumeRecord {
    version: i64,
    #[serde(rename = "piece-count")]
    piece_count: usize,
    #[serde(rename = "info-hash")]
    info_hash: ByteBuf,
    pieces: ByteBuf,
    files: Vec<Vec<i64>>,
}

impl Resume {
    /// Parses and checks the record's own consistency (sizes, spare bits).
    pub fn parse(bytes: &[u8]) -> Result<Resume, String> {
        let record: ResumeRecord = serde_bencode::from_bytes(bytes).map_err(|e| e.to_string())?;
        let (piece_count, bits) = (record.piece_count, &record.pieces);
        if bits.len() != piece_count.div_ceil(8) {
            return Err(format!(
                "\"pieces\" is {} bytes for {piece_count} pieces",
                bits.len()
            ));
        }
        let have: Vec<bool> = (0..bits.len() * 8)
            .map(|i| bits[i / 8] & (0x80 >> (i % 8)) != 0)
            .collect();
        if have[piece_count..].iter().any(|&b| b) {
            return Err("spare bits set in \"pieces\"".into());
        }
        let files = record
            .files
            .iter()
            .map(|f| match f.as_slice() {
                [] => Ok(None),
                stamp => <[i64; 7]>::try_from(stamp)
                    .map(Some)
                    .map_err(|_| "bad file stamp".to_string()),
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Resume {
            info_hash: record.info_hash.into_vec(),
            piece_count,
            have: have[..piece_count].to_vec(),
            files,
            version: record.version,
        })
    }

    pub fn count(&self) -> usize {
        self.have.iter().filter(|&&b| b).count()
    }
}

/// Writes a crafted .torrent: `files` are (raw path components, bytes) — a single entry with
/// no components makes a single-file torrent — hashed with `piece_len` pieces. Returns its
/// info-hash.
pub fn craft_torrent(
    out: &Path,
    announce: Option<&str>,
    name: &[u8],
    files: &[(Vec<Vec<u8>>, Vec<u8>)],
    piece_len: u64,
) -> [u8; 20] {
    let all: Vec<u8> = files.iter().flat_map(|(_, d)| d.iter().copied()).collect();
    let pieces: Vec<u8> = all
        .chunks(piece_len as usize)
        .flat_map(|c| Sha1::digest(c).to_vec())
        .collect();
    let single = matches!(files, [(comps, _)] if comps.is_empty());
    let info = Info {
        name: ByteBuf::from(name),
        piece_length: piece_len,
        pieces: ByteBuf::from(pieces),
        length: single.then_some(all.len() as u64),
        files: (!single).then(|| {
            files
                .iter()
                .map(|(comps, data)| FileEntry {
                    length: data.len() as u64,
                    path: comps.iter().map(|c| ByteBuf::from(c.as_slice())).collect(),
                })
                .collect()
        }),
    };
    let hash: [u8; 20] = Sha1::digest(serde_bencode::to_bytes(&info).expect("encode info")).into();
    let torrent = TorrentFile {
        info,
        announce: announce.map(ByteBuf::from),
    };
    let bytes = serde_bencode::to_bytes(&torrent).expect("encode a crafted torrent");
    fs::write(out, bytes).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    hash
}
