//! dlstatic: Python (or any dlopen-based program) with its compiled extension
//! modules as one statically linked executable.
//!
//! The pipeline, in the order data flows (docs/architecture.md draws it):
//! capture (compiler wrapper → capture db) → plan (select records → analyze → system
//! libraries → resolution: one `Plan`) → link (rename → archive → codegen → two linker
//! passes, executing the Plan); audit reports on the same Plan without linking.
//! For Python: python::build drives cpython → packages → plan → link → payload → verify.

pub mod cli;

pub mod fsutil;
pub mod module_id;
pub mod process;
pub mod progress;
pub mod toolchain;
pub mod workdir;

pub mod capture;
pub mod elf;
pub mod plan;

pub mod codegen;
pub mod link;

pub mod audit;

pub mod python;

pub mod deploy;
pub mod deps;
