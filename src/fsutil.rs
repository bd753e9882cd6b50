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

/// Copy a tree as `cp -a` would, leaving out what `skip` says (given the path relative
/// to `from`): symlinks stay symlinks, files keep their permissions and mtimes.
/// Directories and symlinks are made first, then the files are copied in parallel (the
/// stdlib is thousands of small files).
pub fn copy_tree(from: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<()> {
    let files = make_tree(from, to, skip)?;
    files.par_iter().try_for_each(|(src, dest)| {
        copy_keeping_mtime(src, dest).with_context(|| format!("{}: cannot copy", src.display()))
    })
}

/// A copy with the source's modification time: a `.pyc` is valid only while its `.py`
/// has the mtime recorded in it, so a fresh mtime would make Python recompile every
/// module at every start (and try to write into a read-only image); and make would
/// rebuild a copied source tree's generated files.
fn copy_keeping_mtime(src: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::copy(src, dest)?;
    let modified = std::fs::metadata(src)?.modified()?;
    // opened for reading: setting a given time needs ownership, not write permission,
    // and the copy has the source's mode, which may be read-only
    File::open(dest)?.set_modified(modified)
}

/// The directories and symlinks of `copy_tree`; returns the files to copy.
fn make_tree(
    from: &Path,
    to: &Path,
    skip: &dyn Fn(&Path) -> bool,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut files = Vec::new();
    let relative = |path: &Path| path.strip_prefix(from).unwrap_or(path).to_path_buf();
    let walk = walkdir::WalkDir::new(from)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| entry.depth() == 0 || !skip(&relative(entry.path())));
    for entry in walk {
        let entry = entry.with_context(|| format!("{}: cannot read", from.display()))?;
        let (src, dest) = (entry.path(), to.join(relative(entry.path())));
        let kind = entry.file_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&dest)
                .with_context(|| format!("{}: cannot create", dest.display()))?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(src)?, &dest)
                .with_context(|| format!("{}: cannot create", dest.display()))?;
        } else {
            files.push((src.to_path_buf(), dest));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    /// What `cp -a` kept for the CPython source: symlinks, modes (an executable
    /// `configure`, read-only files) and mtimes (or make regenerates files).
    #[test]
    fn copy_tree_keeps_symlinks_modes_and_mtimes_and_leaves_out_what_skip_says() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        std::fs::create_dir_all(from.join("sub/skipped")).unwrap();
        let configure = from.join("configure");
        std::fs::write(&configure, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&configure, std::fs::Permissions::from_mode(0o755)).unwrap();
        let read_only = from.join("sub/read-only");
        std::fs::write(&read_only, "x").unwrap();
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        File::open(&read_only).unwrap().set_modified(old).unwrap();
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o444)).unwrap();
        std::os::unix::fs::symlink("../configure", from.join("sub/link")).unwrap();

        let to = dir.path().join("to");
        copy_tree(&from, &to, &|rel| rel == Path::new("sub/skipped")).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&to.join("configure")), 0o755);
        assert_eq!(mode(&to.join("sub/read-only")), 0o444);
        let copied = std::fs::metadata(to.join("sub/read-only")).unwrap();
        assert_eq!(copied.modified().unwrap(), old);
        let link = std::fs::read_link(to.join("sub/link")).unwrap();
        assert_eq!(link, Path::new("../configure"));
        assert!(!to.join("sub/skipped").exists());
    }
}
