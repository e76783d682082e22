//! Torrent metadata and resume records, read with the harness's own bencode code (not the
//! engine's), and checks of data on disk against piece hashes.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use super::bencode::Bencode;

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

impl Meta {
    pub fn load(torrent: &Path) -> Meta {
        let bytes = fs::read(torrent).unwrap_or_else(|e| panic!("read {}: {e}", torrent.display()));
        Meta::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", torrent.display()))
    }

    pub fn parse(bytes: &[u8]) -> Result<Meta, String> {
        let root = Bencode::decode(bytes)?;
        let info = root.get("info").ok_or("no info")?;
        let info_hash: [u8; 20] = Sha1::digest(info.encode()).into();
        let name = info
            .get("name")
            .and_then(Bencode::as_bytes)
            .ok_or("no name")?;
        let piece_len = info
            .get("piece length")
            .and_then(Bencode::as_int)
            .ok_or("no piece length")? as u64;
        let raw = info
            .get("pieces")
            .and_then(Bencode::as_bytes)
            .ok_or("no pieces")?;
        let pieces = raw
            .chunks(20)
            .map(|c| c.try_into().map_err(|_| "pieces not a multiple of 20"))
            .collect::<Result<Vec<[u8; 20]>, _>>()?;
        let (files, multi_file) = match info.get("files").and_then(Bencode::as_list) {
            Some(list) => {
                let mut files = Vec::new();
                for f in list {
                    let len = f
                        .get("length")
                        .and_then(Bencode::as_int)
                        .ok_or("file length")?;
                    let path = f
                        .get("path")
                        .and_then(Bencode::as_list)
                        .ok_or("file path")?
                        .iter()
                        .map(|c| c.as_bytes().map(<[u8]>::to_vec).ok_or("path component"))
                        .collect::<Result<Vec<_>, _>>()?;
                    files.push((path, len as u64));
                }
                (files, true)
            }
            None => {
                let len = info
                    .get("length")
                    .and_then(Bencode::as_int)
                    .ok_or("no length")?;
                (vec![(Vec::new(), len as u64)], false)
            }
        };
        Ok(Meta {
            info_hash,
            name: name.to_vec(),
            piece_len,
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

impl Resume {
    /// Parses and checks the record's own consistency (sizes, spare bits).
    pub fn parse(bytes: &[u8]) -> Result<Resume, String> {
        let root = Bencode::decode(bytes)?;
        let int = |k: &str| {
            root.get(k)
                .and_then(Bencode::as_int)
                .ok_or(format!("no {k:?}"))
        };
        let version = int("version")?;
        let piece_count = usize::try_from(int("piece-count")?).map_err(|e| e.to_string())?;
        let info_hash = root
            .get("info-hash")
            .and_then(Bencode::as_bytes)
            .ok_or("no \"info-hash\"")?
            .to_vec();
        let bits = root
            .get("pieces")
            .and_then(Bencode::as_bytes)
            .ok_or("no \"pieces\"")?;
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
        let files = root
            .get("files")
            .and_then(Bencode::as_list)
            .ok_or("no \"files\"")?
            .iter()
            .map(|f| {
                let l = f.as_list().ok_or("bad file stamp")?;
                if l.is_empty() {
                    return Ok(None);
                }
                let mut out = [0i64; 7];
                if l.len() != out.len() {
                    return Err("bad file stamp".to_string());
                }
                for (o, v) in out.iter_mut().zip(l) {
                    *o = v.as_int().ok_or("file stamp not an integer")?;
                }
                Ok(Some(out))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Resume {
            info_hash,
            piece_count,
            have: have[..piece_count].to_vec(),
            files,
            version,
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
    let mut info = vec![
        ("name", Bencode::bytes(name)),
        ("piece length", Bencode::Int(piece_len as i64)),
        ("pieces", Bencode::Bytes(pieces)),
    ];
    match files {
        [(comps, data)] if comps.is_empty() => {
            info.push(("length", Bencode::Int(data.len() as i64)))
        }
        _ => info.push((
            "files",
            Bencode::List(
                files
                    .iter()
                    .map(|(comps, data)| {
                        Bencode::dict([
                            ("length", Bencode::Int(data.len() as i64)),
                            (
                                "path",
                                Bencode::List(comps.iter().map(Bencode::bytes).collect()),
                            ),
                        ])
                    })
                    .collect(),
            ),
        )),
    }
    let info = Bencode::dict(info);
    let hash: [u8; 20] = Sha1::digest(info.encode()).into();
    let mut root = vec![("info", info)];
    if let Some(url) = announce {
        root.push(("announce", Bencode::bytes(url)));
    }
    fs::write(out, Bencode::dict(root).encode())
        .unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    hash
}
