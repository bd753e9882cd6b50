//! The launcher (launcher.c) that `dlstatic build` links in front of CPython's `main`:
//! single-file start-up, multi-call dispatch on argv[0] and the PID 1 init mode.

use std::path::Path;

use anyhow::Result;

use crate::fsutil::write_atomic;

const LAUNCHER_C: &str = include_str!("launcher.c");

/// Compiles the launcher into `work` against the installed CPython headers and returns
/// what the final link needs: its object and `--wrap=main`.
pub fn link_args(installed: &Path, version: &str, work: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(work)?;
    let source = work.join("launcher.c");
    let object = work.join("launcher.o");
    write_atomic(&source, LAUNCHER_C.as_bytes())?;
    let include = installed.join("include").join(format!("python{version}"));
    crate::toolchain::compile_c(&source, &object, &include)?;
    Ok(vec![
        object.to_string_lossy().into_owned(),
        "-Wl,--wrap=main".into(),
    ])
}
