//! File helpers: writing outputs so that nothing is ever half-written (a temporary file
//! in the destination's directory, renamed into place once complete), and copying trees.

use std::path::Path;

use anyhow::{Context, Result};

pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".dlstatic-tmp")
        .tempfile_in(dir)
        .with_context(|| format!("{}: cannot create a file here", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes).with_context(|| format!("{}: cannot write", dest.display()))?;
    tmp.persist(dest).with_context(|| format!("{}: cannot write", dest.display()))?;
    Ok(())
}

/// Copy a tree, leaving out what `skip` says (given the path relative to the top).
pub fn copy_tree(from: &Path, to: &Path, rel: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("{}: cannot create", to.display()))?;
    let mut entries: Vec<_> = std::fs::read_dir(from).with_context(|| format!("{}: cannot read", from.display()))?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let rel = rel.join(entry.file_name());
        if skip(&rel) {
            continue;
        }
        let (src, dest) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&src, &dest, &rel, skip)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dest)?;
        } else {
            std::fs::copy(&src, &dest).with_context(|| format!("{}: cannot copy", src.display()))?;
        }
    }
    Ok(())
}
