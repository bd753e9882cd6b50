//! A file tree held in memory, as every output format writes it: paths relative to the
//! artefact's root, in byte order, with the mode and mtime each archive records.
//!
//! File mtimes are kept from the payload (a `.pyc` is valid only while its `.py` has the
//! mtime recorded in it); generated entries get mtime 0. Owners are always root. Same
//! payload, same tree, same bytes.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// What an entry holds.
pub enum Content {
    /// A file on disk, read when the archive is written.
    File(PathBuf),
    Bytes(Vec<u8>),
    Dir,
    Symlink(String),
    /// A character device node (major, minor), e.g. /dev/console in an initramfs.
    CharDevice(u32, u32),
}

pub struct Entry {
    /// Permission bits only (the type is in `content`).
    pub mode: u32,
    pub mtime: u64,
    pub content: Content,
}

impl Entry {
    /// The bytes of a file entry (empty for the other kinds).
    pub fn data(&self) -> Result<Vec<u8>> {
        match &self.content {
            Content::File(path) => {
                std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))
            }
            Content::Bytes(bytes) => Ok(bytes.clone()),
            _ => Ok(Vec::new()),
        }
    }
}

/// Entries by path (`bin/python3.11`, no leading `/`); parents are added as needed.
#[derive(Default)]
pub struct Tree {
    pub entries: BTreeMap<String, Entry>,
}

impl Tree {
    /// Everything below `dir` (symlinks kept as links), placed under `at` ("" = root).
    pub fn add_dir_contents(&mut self, dir: &Path, at: &str) -> Result<()> {
        let mut pending = vec![(dir.to_path_buf(), at.to_string())];
        while let Some((from, to)) = pending.pop() {
            let listing = std::fs::read_dir(&from)
                .with_context(|| format!("{}: cannot read", from.display()))?;
            for entry in listing {
                let entry = entry?;
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                let rel = join(&to, &name);
                let meta = std::fs::symlink_metadata(&path)?;
                let content = if meta.file_type().is_symlink() {
                    Content::Symlink(std::fs::read_link(&path)?.to_string_lossy().into_owned())
                } else if meta.is_dir() {
                    pending.push((path.clone(), rel.clone()));
                    Content::Dir
                } else if meta.is_file() {
                    Content::File(path.clone())
                } else {
                    bail!("{}: not a file, directory or symlink", path.display());
                };
                let mode = meta.permissions().mode() & 0o7777;
                // a directory's mtime changes with any write into it; only files' matter
                let mtime = match content {
                    Content::File(_) => meta.mtime().max(0) as u64,
                    _ => 0,
                };
                self.insert(&rel, mode, mtime, content)?;
            }
        }
        Ok(())
    }

    /// A generated file (mtime 0).
    pub fn add_bytes(&mut self, path: &str, mode: u32, bytes: Vec<u8>) -> Result<()> {
        self.insert(path, mode, 0, Content::Bytes(bytes))
    }

    /// Adds `content` at `path`, creating missing parent directories; a path that is
    /// already taken is an error, so user files never silently replace the payload's.
    pub fn insert(&mut self, path: &str, mode: u32, mtime: u64, content: Content) -> Result<()> {
        if self.entries.contains_key(path) {
            bail!("{path}: two files would have this path in the artefact");
        }
        let mut parent = path;
        while let Some((up, _)) = parent.rsplit_once('/') {
            self.entries.entry(up.to_string()).or_insert(Entry {
                mode: 0o755,
                mtime: 0,
                content: Content::Dir,
            });
            parent = up;
        }
        self.entries.insert(
            path.to_string(),
            Entry {
                mode,
                mtime,
                content,
            },
        );
        Ok(())
    }
}

/// `dir/name`, or `name` at the root.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}
