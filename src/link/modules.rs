//! The per-module steps of a link — rename → archive → registration table — and the
//! compiled C that goes with them (the runtime shim, generated tables).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rayon::prelude::*;

use crate::capture::db::CaptureDb;
use crate::codegen::{self, Table};
use crate::elf::initfini::{self, MovedSection};
use crate::elf::{archive, rename};
use crate::fsutil::{write_atomic, write_atomic_with};
use crate::plan::analyze::Module;
use crate::plan::{Plan, PlannedModule};
use crate::toolchain::{self, Driver};
use crate::workdir::{LinkWork, ModuleFile, Stamp};

const RUNTIME_C: &str = include_str!("../../runtime/dlstatic.c");
/// The runtime's headers: dlstatic.h is the tables' too; the others are parts of the
/// runtime's one translation unit.
const RUNTIME_HEADERS: [(&str, &str); 5] = [
    ("dlstatic.h", include_str!("../../runtime/dlstatic.h")),
    ("registry.h", include_str!("../../runtime/registry.h")),
    ("addrmap.h", include_str!("../../runtime/addrmap.h")),
    ("loader.h", include_str!("../../runtime/loader.h")),
    ("md5.h", include_str!("../../runtime/md5.h")),
];

/// Every module's archive and table, in parallel; returns how many were reused.
pub fn prepare_all(plan: &Plan, work: &LinkWork) -> Result<usize> {
    let bar = crate::progress::bar(plan.modules.len() as u64, "modules renamed and archived");
    let reused: Vec<bool> = plan
        .modules
        .par_iter()
        .map(|planned| {
            let done = prepare(&plan.dbs[planned.db], planned, work)
                .with_context(|| planned.module.path.clone());
            bar.inc(1);
            done
        })
        .collect::<Result<_>>()?;
    bar.finish_and_clear();
    Ok(reused.into_iter().filter(|r| *r).count())
}

/// rename → archive → table for one module; reused (true) when the plan found its
/// work files current.
fn prepare(db: &CaptureDb, planned: &PlannedModule, work: &LinkWork) -> Result<bool> {
    let module = &planned.module;
    let file = |kind| work.module_file(&module.base(), kind);
    if planned.reusable
        && file(ModuleFile::Archive).exists()
        && file(ModuleFile::TableObject).exists()
    {
        return Ok(true);
    }
    let renames = module.renames();
    let moved = write_renamed_archive(db, module, &renames, &file(ModuleFile::Archive))?;
    write_atomic(&file(ModuleFile::Symmap), &rename::symmap_text(&renames))?;
    write_atomic(&file(ModuleFile::Id), format!("{}\n", module.id).as_bytes())?;
    let mut table = Table::for_module(module);
    table.set_initfini(&moved);
    compile_table(&table, &file(ModuleFile::TableSource), work)?;
    // written last: its presence marks the module's work files complete
    write_atomic(
        &file(ModuleFile::Analysis),
        &serde_json::to_vec_pretty(module)?,
    )?;
    Ok(false)
}

/// The module's objects, each renamed by `renames` and with its init/fini sections moved
/// to the module's own (`initfini`), written as the archive `dest`. Returns the moved
/// sections.
pub fn write_renamed_archive(
    db: &CaptureDb,
    module: &Module,
    renames: &HashMap<String, String>,
    dest: &Path,
) -> Result<BTreeSet<MovedSection>> {
    // objects are renamed in parallel; collect keeps their order
    let renamed: Vec<((String, Vec<u8>), Vec<MovedSection>)> = module
        .objects
        .par_iter()
        .map(|object| {
            let (bytes, _) = rename::rename_symbols(db.read_object(&object.md5)?, renames)
                .with_context(|| object.origin.clone())?;
            let (bytes, moved) = initfini::move_init_sections(bytes, module.id.as_str())
                .with_context(|| object.origin.clone())?;
            Ok(((object.origin.clone(), bytes), moved))
        })
        .collect::<Result<_>>()?;
    let (members, moved): (Vec<_>, Vec<_>) = renamed.into_iter().unzip();
    write_atomic_with(dest, |out| archive::write_archive(&members, out))?;
    Ok(moved.into_iter().flatten().collect())
}

/// Render a table to `source` and compile it next to it (`x.symbols.c` → `x.symbols.o`).
pub fn compile_table(table: &Table, source: &Path, work: &LinkWork) -> Result<PathBuf> {
    compile_generated(source, &codegen::render(table)?, &work.runtime_dir())
}

pub fn compile_runtime(work: &LinkWork) -> Result<PathBuf> {
    let dir = work.runtime_dir();
    std::fs::create_dir_all(&dir)?;
    for (name, text) in RUNTIME_HEADERS {
        if std::fs::read(dir.join(name)).ok().as_deref() != Some(text.as_bytes()) {
            write_atomic(&dir.join(name), text.as_bytes())?;
        }
    }
    compile_generated(&dir.join("dlstatic.c"), RUNTIME_C, &dir)
}

/// Write `text` to `source` and compile it to `source` with extension `.o`, unless the
/// object there was compiled from the same text and header by the same compiler (its
/// stamp says): a relink after one module changed recompiles nothing else.
fn compile_generated(source: &Path, text: &str, include_dir: &Path) -> Result<PathBuf> {
    let object = source.with_extension("o");
    let stamp = Stamp::at(source.with_extension("o.key"));
    let key = crate::module_id::md5_hex(
        format!(
            "{text}\0{RUNTIME_HEADERS:?}\0{:?}\0{}",
            Driver::C.real_command(),
            toolchain::compile_environment()
        )
        .as_bytes(),
    );
    if object.exists() && stamp.matches(&key) {
        return Ok(object);
    }
    write_atomic(source, text.as_bytes())?;
    let tmp = source.with_extension("o.tmp");
    toolchain::compile_c(source, &tmp, include_dir)?;
    std::fs::rename(&tmp, &object)?;
    stamp.write(&key)?;
    Ok(object)
}
