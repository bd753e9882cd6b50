//! dlstatic: Python (or any dlopen-based program) with its compiled extension
//! modules as one statically linked executable.
//!
//! The pipeline, one module per stage:
//! capture (compiler wrapper → capture db) → analyze → resolve → mangle → archive →
//! codegen → link (static executable with the runtime shim that answers dlopen from a
//! registry). audit reports on the same analysis without linking.
//! For Python: cpython (build under capture) → link → payload → verify, driven by build.

pub mod cli;

pub mod analyze;
pub mod archive;
pub mod audit;
pub mod capture;
pub mod codegen;
pub mod compiler_args;
pub mod db;
pub mod elf;
pub mod fsutil;
pub mod libs;
pub mod link;
pub mod mangle;
pub mod progress;
pub mod resolve;
pub mod toolchain;

pub mod build;
pub mod cpython;
pub mod deploy;
pub mod modules_txt;
pub mod packages;
pub mod payload;
pub mod verify;
