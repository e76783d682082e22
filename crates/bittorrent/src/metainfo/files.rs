//! The file list of an info dictionary: lengths, offsets, sanitized paths,
//! pad files and the renaming of duplicate paths (see the policy in
//! [`crate::metainfo`]).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::bencode::Node;
use crate::metainfo::{invalid, FileEntry, MetaInfoError, MAX_DUPLICATE_FILES};

/// File names starting with this are pad files even without a BEP 47 `attr`.
const OLD_PAD_FILE_PREFIX: &str = "_____padding_file_";

/// The one file of a single-file info dictionary, called `name`.
pub(crate) fn single_file(info: &Node<'_>, name: &str) -> Result<FileEntry, MetaInfoError> {
    let length = info
        .get(b"length")
        .ok_or_else(|| invalid("missing 'length' and 'files'"))?;
    Ok(FileEntry {
        path: PathBuf::from(name),
        length: file_length(length)?,
        offset: 0,
        pad: false,
    })
}

/// The files of a multi-file info dictionary, with offsets and deduplicated
/// sanitized paths under `name`.
pub(crate) fn multi_files(info: &Node<'_>, name: &str) -> Result<Vec<FileEntry>, MetaInfoError> {
    let list = info
        .get(b"files")
        .and_then(|n| n.value.as_list())
        .ok_or_else(|| invalid("'files' is not a list"))?;
    if list.is_empty() {
        return Err(invalid("no files"));
    }
    let mut tree = PathTree::default();
    let mut files = Vec::with_capacity(list.len());
    let mut offset: u64 = 0;
    for file in list {
        let entry = file_entry(file, name, offset, &mut tree)?;
        offset = offset
            .checked_add(entry.length)
            .ok_or_else(|| invalid("total length overflows"))?;
        files.push(entry);
    }
    Ok(files)
}

/// One entry of `files`, starting at `offset`; its path is recorded in
/// `tree` (and renamed if it repeats an earlier one) unless it is a pad file.
fn file_entry(
    file: &Node<'_>,
    name: &str,
    offset: u64,
    tree: &mut PathTree,
) -> Result<FileEntry, MetaInfoError> {
    if file.value.as_dict().is_none() {
        return Err(invalid("a 'files' entry is not a dictionary"));
    }
    let length = file_length(
        file.get(b"length")
            .ok_or_else(|| invalid("file without 'length'"))?,
    )?;
    let pad_attr = file
        .get(b"attr")
        .and_then(|n| n.value.as_bytes())
        .unwrap_or_default()
        .contains(&b'p');
    check_symlink_target(file)?;
    let mut components = file_components(file, name, length, pad_attr)?;
    // BitComet's pad files predate BEP 47 and are recognised by name.
    let pad = pad_attr
        || components
            .last()
            .is_some_and(|c| c.starts_with(OLD_PAD_FILE_PREFIX));
    if !pad {
        tree.insert(&mut components)?;
    }
    Ok(FileEntry {
        path: components.iter().collect(),
        length,
        offset,
        pad,
    })
}

/// We do not create symlinks, but a malformed `symlink path` is a broken
/// torrent.
fn check_symlink_target(file: &Node<'_>) -> Result<(), MetaInfoError> {
    let Some(target) = file.get(b"symlink path") else {
        return Ok(());
    };
    let valid = target
        .value
        .as_list()
        .is_some_and(|l| l.iter().all(|n| n.value.as_bytes().is_some()));
    if valid {
        Ok(())
    } else {
        Err(invalid("'symlink path' is not a list of strings"))
    }
}

/// The sanitized path of a file under `name`: its own components, `_` when
/// all were dropped, or `.pad/<length>` for a pad file without a path.
fn file_components(
    file: &Node<'_>,
    name: &str,
    length: u64,
    pad: bool,
) -> Result<Vec<String>, MetaInfoError> {
    let mut components = vec![name.to_owned()];
    match path_elements(file)? {
        Some(elements) if !elements.is_empty() || !pad => {
            if elements.is_empty() {
                return Err(invalid("file with an empty 'path'"));
            }
            components.extend(elements.into_iter().filter_map(sanitize_component));
            if components.len() == 1 {
                components.push("_".to_owned());
            }
        }
        Some(_) => components.extend([".pad".to_owned(), length.to_string()]),
        None if pad => components.extend([".pad".to_owned(), length.to_string()]),
        None => return Err(invalid("file without 'path'")),
    }
    Ok(components)
}

/// A file length: a non-negative integer.
fn file_length(node: &Node<'_>) -> Result<u64, MetaInfoError> {
    node.value
        .as_int()
        .and_then(|len| u64::try_from(len).ok())
        .ok_or_else(|| invalid("file 'length' is not a non-negative integer"))
}

/// Sanitizes one name or path component: `None` when it must be dropped
/// (`.` or `..`), `_` when it is empty.
pub(crate) fn sanitize_component(raw: &[u8]) -> Option<String> {
    let cleaned: String = String::from_utf8_lossy(raw)
        .chars()
        .filter(|&c| c != '/' && c != '\\')
        .map(|c| if c == '\0' { '_' } else { c })
        .collect();
    match cleaned.as_str() {
        "." | ".." => None,
        "" => Some("_".to_owned()),
        _ => Some(cleaned),
    }
}

/// The path components of a file dictionary, preferring `path.utf-8` when it
/// is a valid path list.
fn path_elements<'a>(file: &Node<'a>) -> Result<Option<Vec<&'a [u8]>>, MetaInfoError> {
    let as_path = |key: &[u8]| -> Option<Result<Vec<&'a [u8]>, MetaInfoError>> {
        let node = file.get(key)?;
        Some(
            node.value
                .as_list()
                .and_then(|list| list.iter().map(|n| n.value.as_bytes()).collect())
                .ok_or_else(|| invalid("file 'path' is not a list of strings")),
        )
    };
    match as_path(b"path.utf-8") {
        Some(Ok(path)) => Ok(Some(path)),
        _ => as_path(b"path").transpose(),
    }
}

/// The directory tree of the files seen so far, to find duplicate paths with
/// memory linear in the input.
#[derive(Default)]
struct PathTree {
    /// Node 0 is the root directory (created on first insert).
    nodes: Vec<TreeNode>,
    renamed: usize,
}

#[derive(Default)]
struct TreeNode {
    children: HashMap<String, usize>,
    is_file: bool,
}

impl PathTree {
    /// Records a file path, renaming its last component if the path is taken.
    fn insert(&mut self, components: &mut [String]) -> Result<(), MetaInfoError> {
        let Some((file_name, dirs)) = components.split_last_mut() else {
            return Err(invalid("empty file path"));
        };
        if self.nodes.is_empty() {
            self.nodes.push(TreeNode::default());
        }
        let mut dir = 0;
        for component in dirs.iter() {
            dir = match self.nodes[dir].children.get(component) {
                Some(&child) if self.nodes[child].is_file => {
                    return Err(invalid(format!(
                        "file path {component:?} is also used as a directory"
                    )))
                }
                Some(&child) => child,
                None => self.add(dir, component.clone(), false),
            };
        }
        if self.nodes[dir].children.contains_key(file_name.as_str()) {
            let mut n = 1;
            let renamed = loop {
                if n > MAX_DUPLICATE_FILES {
                    return Err(MetaInfoError::TooManyDuplicateFiles {
                        max: MAX_DUPLICATE_FILES,
                    });
                }
                let candidate = numbered(file_name, n);
                if !self.nodes[dir].children.contains_key(&candidate) {
                    break candidate;
                }
                n += 1;
            };
            self.renamed += 1;
            if self.renamed > MAX_DUPLICATE_FILES {
                return Err(MetaInfoError::TooManyDuplicateFiles {
                    max: MAX_DUPLICATE_FILES,
                });
            }
            *file_name = renamed;
        }
        self.add(dir, file_name.clone(), true);
        Ok(())
    }

    fn add(&mut self, parent: usize, name: String, is_file: bool) -> usize {
        let id = self.nodes.len();
        self.nodes.push(TreeNode {
            children: HashMap::new(),
            is_file,
        });
        self.nodes[parent].children.insert(name, id);
        id
    }
}

/// `bar.txt` → `bar.<n>.txt`; `foo` and `.hidden` → `foo.<n>`, `.hidden.<n>`.
pub(crate) fn numbered(file_name: &str, n: usize) -> String {
    match file_name.rfind('.') {
        Some(dot) if dot > 0 => format!("{}.{n}{}", &file_name[..dot], &file_name[dot..]),
        _ => format!("{file_name}.{n}"),
    }
}
