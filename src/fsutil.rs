//! File helpers: mapping inputs, writing outputs so that nothing is ever half-written (a
//! temporary file in the destination's directory, renamed into place once complete), and
//! copying trees.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rayon::prelude::*;

/// A file's bytes, mapped rather than copied: for the large inputs of which dlstatic
/// needs only a part — the symbol index of a system archive (libc.a, libpython, …), the
/// dynamic section of a shared library.
pub fn map(path: &Path) -> Result<memmap2::Mmap> {
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    // SAFETY: dlstatic maps only installed libraries and the main program's inputs, which
    // are not rewritten in place while it runs (package managers install by rename).
    unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("{}: cannot map", path.display()))
}

pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(dest, |out| Ok(out.write_all(bytes)?))
}

/// As write_atomic, for output produced piece by piece: `write` gets a buffered writer
/// on the temporary file (large pieces go straight to the file, not through a copy).
pub fn write_atomic_with(
    dest: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".dlstatic-tmp")
        // what File::create gives (0666 less the umask), not tempfile's private 0600: the
        // payload's stubs and /etc files must be readable by whichever user runs it
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| format!("{}: cannot create a file here", dir.display()))?;
    let (file, tmp_path) = tmp.into_parts();
    let mut out = BufWriter::new(file);
    write(&mut out)
        .and_then(|()| Ok(out.flush()?))
        .with_context(|| format!("{}: cannot write", dest.display()))?;
    tmp_path
        .persist(dest)
        .with_context(|| format!("{}: cannot write", dest.display()))?;
    Ok(())
}

/// Put the finished file or directory `tmp` in place as `dest`, durably: its data is
/// on disk before the rename publishes it, and the rename is on disk before this
/// returns — a crash leaves the old `dest` or the new one, never a torn one.
pub fn publish(tmp: &Path, dest: &Path) -> Result<()> {
    sync_filesystem_of(tmp)?;
    std::fs::rename(tmp, dest).with_context(|| format!("{}: cannot write", dest.display()))?;
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("{}: cannot sync", dir.display()))
}

/// Everything written to the filesystem holding `path` reaches the disk (one syncfs,
/// not one fsync per file of a payload of thousands).
fn sync_filesystem_of(path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    // SAFETY: syncfs only reads the descriptor, which `file` keeps open for the call.
    if unsafe { libc::syncfs(file.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("{}: cannot sync", path.display()));
    }
    Ok(())
}

/// Copy a tree, leaving out what `skip` says (given the path relative to the top).
/// Directories and symlinks are made first, then the files are copied in parallel (the
/// stdlib is thousands of small files).
pub fn copy_tree(
    from: &Path,
    to: &Path,
    rel: &Path,
    skip: &(dyn Fn(&Path) -> bool + Sync),
) -> Result<()> {
    let mut files = Vec::new();
    make_tree(from, to, rel, skip, &mut files)?;
    files.par_iter().try_for_each(|(src, dest)| {
        copy_keeping_mtime(src, dest).with_context(|| format!("{}: cannot copy", src.display()))
    })
}

/// A copy with the source's modification time: a `.pyc` is valid only while its `.py`
/// has the mtime recorded in it, so a fresh mtime would make Python recompile every
/// module at every start (and try to write into a read-only image).
fn copy_keeping_mtime(src: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::copy(src, dest)?;
    let modified = std::fs::metadata(src)?.modified()?;
    std::fs::File::options()
        .write(true)
        .open(dest)?
        .set_modified(modified)
}

/// The directories and symlinks of `copy_tree`; the files to copy go to `files`.
fn make_tree(
    from: &Path,
    to: &Path,
    rel: &Path,
    skip: &dyn Fn(&Path) -> bool,
    files: &mut Vec<(PathBuf, PathBuf)>,
) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("{}: cannot create", to.display()))?;
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .with_context(|| format!("{}: cannot read", from.display()))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let rel = rel.join(entry.file_name());
        if skip(&rel) {
            continue;
        }
        let (src, dest) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            make_tree(&src, &dest, &rel, skip, files)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dest)?;
        } else {
            files.push((src, dest));
        }
    }
    Ok(())
}
