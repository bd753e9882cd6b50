//! Writing outputs so that nothing is ever half-written: a temporary file in the
//! destination's directory, renamed into place once complete.

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
