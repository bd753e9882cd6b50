//! The checks behind dlstatic's fuzz targets, one module per target (docs/fuzzing.md).
//! Each `check` takes libFuzzer's bytes and panics only on a defect: a panic inside
//! dlstatic, or a broken invariant the check states. The targets in `fuzz_targets/`
//! call these; `tests/seeds.rs` runs them over the committed seeds on stable Rust.

pub mod archive;
pub mod codegen;
pub mod codegen_cc;
pub mod compiler_args;
pub mod elf_summary;
pub mod modules_txt;
pub mod rename;
pub mod rename_objcopy;

/// A directory of its own for each fuzzing process, removed when the process ends; in
/// /dev/shm where there is one (memory: the checks that write files are I/O-bound).
pub(crate) fn scratch_dir() -> &'static std::path::Path {
    static DIR: std::sync::LazyLock<tempfile::TempDir> = std::sync::LazyLock::new(|| {
        tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("cannot create a scratch directory")
    });
    DIR.path()
}
