//! `dlstatic link`: runs the stages for every captured shared object — analyze,
//! resolve (references between modules), mangle, archive, codegen — then links
//! everything into one static executable.
//!
//! The main program's own dlsym table is made from the binary itself: a first link
//! without it tells which globals the program holds, a second link adds the table.
//!
//! Work files go to `OUT.km/`; a module whose `.km.json` is there and current is reused.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::analyze::{self, MODULE_FORMAT, Module};
use crate::capture::Driver;
use crate::codegen::{self, Table, TableSymbol};
use crate::db::{CaptureDb, LinkRecord};
use crate::elf::{self, SymbolKind};
use crate::fsutil::{write_atomic, write_atomic_with};
use crate::resolve::{self, ProgramSymbols};
use crate::{archive, libs, mangle, progress, toolchain};

const RUNTIME_C: &str = include_str!("../runtime/dlstatic.c");
const RUNTIME_H: &str = include_str!("../runtime/dlstatic.h");

pub struct LinkOptions {
    pub db: PathBuf,
    pub output: PathBuf,
    /// Where the per-module work files go (`OUT.km` for `dlstatic link`).
    pub work: PathBuf,
    /// Globs over the captured output path or its basename; empty = every module.
    pub only: Vec<String>,
    /// Globs of modules to leave out, matched the same way.
    pub exclude: Vec<String>,
    /// More capture dbs, each with the md5 ids of the records to take from it (a pip
    /// build captures build dependencies too; only what was installed is linked).
    pub extra_dbs: Vec<(PathBuf, BTreeSet<String>)>,
    pub main_inputs: Vec<String>,
    pub linker_args: Vec<String>,
    /// Link static-pie (`-static-pie`) instead of `-static`.
    pub pie: bool,
}

/// What a finished link reports.
pub struct LinkSummary {
    pub modules: Vec<Module>,
    /// Modules whose work files in OUT.km were current and reused.
    pub reused: usize,
    pub main_symbols: usize,
    /// Wall time of each phase, in order.
    pub timings: Vec<(String, Duration)>,
}

pub fn link(options: &LinkOptions) -> Result<LinkSummary> {
    let mut clock = Instant::now();
    let mut timings = Vec::new();
    let mut lap = |phase: &str| {
        timings.push((phase.to_string(), clock.elapsed()));
        clock = Instant::now();
    };
    let mut dbs = vec![CaptureDb::open_existing(&options.db)?];
    let mut records: Vec<(usize, LinkRecord)> = select_records(
        dbs[0].records()?,
        &options.only,
        &options.exclude,
        &options.db,
    )?
    .into_iter()
    .map(|r| (0, r))
    .collect();
    for (path, ids) in &options.extra_dbs {
        let db = CaptureDb::open_existing(path)?;
        records.extend(
            db.records()?
                .into_iter()
                .filter(|r| ids.contains(&r.md5))
                .map(|r| (dbs.len(), r)),
        );
        dbs.push(db);
    }
    let work = options.work.clone();
    std::fs::create_dir_all(&work)
        .with_context(|| format!("{}: cannot create work dir", work.display()))?;

    // the runtime header must be in place before module tables compile against it
    let runtime = compile_runtime(&work)?;
    let progress = progress::bar(records.len() as u64, "modules analyzed");
    let analyzed: Vec<(Module, bool)> = records
        .par_iter()
        .map(|(db, record)| {
            let module = analyzed_module(&dbs[*db], record, &work)
                .with_context(|| format!("{} ({})", record.output, &record.md5[..8]));
            progress.inc(1);
            module
        })
        .collect::<Result<_>>()?;
    progress.finish_and_clear();
    lap("link: analyze modules");

    let modules: Vec<Module> = analyzed.iter().map(|(m, _)| m.clone()).collect();
    let SystemLibs {
        libs: system_libs,
        unavailable,
    } = resolve_system_libs(&modules)?;
    let explain = |result: Result<()>| {
        result.map_err(|e| match unavailable.is_empty() {
            true => e,
            false => e.context(format!(
                "no static archive exists for {}",
                unavailable.join(", ")
            )),
        })
    };
    let cxx = modules.iter().any(|m| m.driver == "c++");
    let archives: Vec<PathBuf> = system_libs.iter().map(|l| l.archive.clone()).collect();
    let program = ProgramSymbols::collect(&options.main_inputs, &archives, cxx)?;
    let resolution = resolve::resolve(&modules, &program);
    if let Some((from, name, providers)) = resolution.ambiguous.first() {
        let names: Vec<&str> = providers
            .iter()
            .map(|&p| modules[p].so_name.as_str())
            .collect();
        bail!(
            "{}: uses {name}, which several modules export ({}); which one it meant depended on load order (dlstatic audit lists all such symbols)",
            modules[*from].path,
            names.join(", ")
        );
    }
    let bindings = resolve::bindings_by_module(&modules, &resolution);
    lap("link: resolve symbols");

    let progress = progress::bar(modules.len() as u64, "modules renamed and archived");
    let prepared: Vec<(Module, bool)> = analyzed
        .into_par_iter()
        .zip(bindings)
        .zip(records.par_iter().map(|(db, _)| *db))
        .map(|(((module, analysis_cached), bindings), db)| {
            let path = module.path.clone();
            let prepared = prepare_module(&dbs[db], module, analysis_cached, bindings, &work)
                .with_context(|| path);
            progress.inc(1);
            prepared
        })
        .collect::<Result<_>>()?;
    progress.finish_and_clear();
    let reused = prepared.iter().filter(|(_, reused)| *reused).count();
    let modules: Vec<Module> = prepared.into_iter().map(|(module, _)| module).collect();
    lap("link: rename, archive, tables");

    let driver = if cxx { Driver::Cxx } else { Driver::C };

    let mut inputs: Vec<String> = options.main_inputs.clone();
    for module in &modules {
        inputs.push(path_arg(
            &work.join(format!("{}.km.symbols.o", module.base())),
        ));
    }
    inputs.push("-Wl,--whole-archive".into());
    inputs.extend(
        modules
            .iter()
            .map(|m| path_arg(&work.join(format!("{}.km.a", m.base())))),
    );
    inputs.push("-Wl,--no-whole-archive".into());
    inputs.push(path_arg(&runtime));
    let mut tail = vec!["-Wl,--start-group".to_string()];
    tail.extend(system_libs.iter().map(|l| path_arg(&l.archive)));
    tail.push("-Wl,--end-group".into());
    let mut driver_flags: Vec<String> = modules
        .iter()
        .flat_map(|m| m.linker_flags.iter())
        .filter(|f| !f.starts_with("-Wl,"))
        .cloned()
        .collect();
    driver_flags.sort();
    driver_flags.dedup();
    tail.extend(driver_flags);
    tail.extend(options.linker_args.iter().cloned());

    // Pass 1: the program without its own table, to learn which globals it holds.
    eprintln!(
        "dlstatic: linking {} modules into {} (pass 1 of 2)",
        modules.len(),
        options.output.display()
    );
    let pass1 = work.join("pass1.out");
    // (its debug info is of no use, and not writing it makes this pass cheaper)
    let static_flag = if options.pie {
        "-static-pie"
    } else {
        "-static"
    };
    let mut args = vec![
        static_flag.to_string(),
        "-Wl,--strip-debug".into(),
        "-o".into(),
        path_arg(&pass1),
    ];
    args.extend(inputs.iter().cloned());
    args.extend(tail.iter().cloned());
    explain(toolchain::link(driver, &args, &work.join("link-pass1.log")))?;
    lap("link: pass 1");

    // Pass 2: add the main program's table and write OUT.
    let aliases = main_aliases(&system_libs, &options.main_inputs);
    let main_table = main_program_table(&std::fs::read(&pass1)?, aliases, &options.output)
        .with_context(|| format!("{}: reading the first link's symbols", pass1.display()))?;
    let main_symbols = main_table.symbols.len();
    let main_object = compile_table(&main_table, &work.join("main.symbols.c"), &work)?;
    eprintln!(
        "dlstatic: linking {} (pass 2 of 2, {} main-program symbols)",
        options.output.display(),
        main_symbols
    );
    let tmp_out = temp_output_path(&options.output);
    let mut args = vec![static_flag.to_string(), "-o".into(), path_arg(&tmp_out)];
    args.extend(inputs);
    args.push(path_arg(&main_object));
    args.extend(tail);
    let linked = toolchain::link(driver, &args, &work.join("link.log"));
    if linked.is_err() {
        let _ = std::fs::remove_file(&tmp_out);
    }
    explain(linked)?;
    std::fs::rename(&tmp_out, &options.output)
        .with_context(|| format!("{}: cannot write", options.output.display()))?;
    let _ = std::fs::remove_file(&pass1);
    lap("link: pass 2");
    Ok(LinkSummary {
        modules,
        reused,
        main_symbols,
        timings,
    })
}

/// `OUT.km`, next to OUT.
pub fn work_dir(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".km");
    output.with_file_name(name)
}

fn temp_output_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".dlstatic-tmp{}", std::process::id()));
    output.with_file_name(name)
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn select_records(
    records: Vec<LinkRecord>,
    only: &[String],
    exclude: &[String],
    db: &Path,
) -> Result<Vec<LinkRecord>> {
    if records.is_empty() {
        bail!(
            "{}: no shared-object links were captured (run the build under `dlstatic capture --db {}`)",
            db.display(),
            db.display()
        );
    }
    let matches =
        |set: &GlobSet, r: &LinkRecord| set.is_match(&r.output) || set.is_match(r.file_name());
    let (only_set, exclude_set) = (glob_set(only, "--only")?, glob_set(exclude, "skip")?);
    let selected: Vec<LinkRecord> = records
        .into_iter()
        .filter(|r| (only.is_empty() || matches(&only_set, r)) && !matches(&exclude_set, r))
        .collect();
    if selected.is_empty() && !only.is_empty() {
        bail!(
            "{}: no captured shared object matches --only {}",
            db.display(),
            only.join(" --only ")
        );
    }
    Ok(selected)
}

pub fn glob_set(patterns: &[String], what: &str) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        set.add(Glob::new(pattern).with_context(|| format!("{what} {pattern}: not a valid glob"))?);
    }
    Ok(set.build()?)
}

fn work_file(work: &Path, module: &Module, suffix: &str) -> PathBuf {
    work.join(format!("{}.{suffix}", module.base()))
}

/// The module's analysis: from its `.km.json` when that is current (the flag is then
/// true), else analyzed anew.
pub fn analyzed_module(db: &CaptureDb, record: &LinkRecord, work: &Path) -> Result<(Module, bool)> {
    let json_path = work.join(format!(
        "{}.km.json",
        Module::base_for(record.file_name(), &record.md5)
    ));
    if let Some(cached) = std::fs::read(&json_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Module>(&b).ok())
    {
        if cached.format == MODULE_FORMAT && cached.md5 == record.md5 {
            return Ok((cached, true));
        }
    }
    Ok((analyze::analyze(db, record, work)?, false))
}

/// mangle → archive → codegen for one analyzed module; reused (flag true) when its work
/// files exist and were made with the same bindings.
fn prepare_module(
    db: &CaptureDb,
    mut module: Module,
    analysis_cached: bool,
    bindings: BTreeMap<String, String>,
    work: &Path,
) -> Result<(Module, bool)> {
    let archive_path = work_file(work, &module, "km.a");
    let table_object = work_file(work, &module, "km.symbols.o");
    if analysis_cached
        && module.bindings == bindings
        && archive_path.exists()
        && table_object.exists()
    {
        return Ok((module, true));
    }
    module.bindings = bindings;
    let renames = module_renames(&module);
    write_renamed_archive(db, &module, &renames, &archive_path)?;
    write_atomic(
        &work_file(work, &module, "km.symmap"),
        mangle::symmap_text(&renames).as_bytes(),
    )?;
    write_atomic(
        &work_file(work, &module, "km.id"),
        format!("{}\n", module.md5).as_bytes(),
    )?;
    compile_table(
        &Table::for_module(&module),
        &work_file(work, &module, "km.symbols.c"),
        work,
    )?;
    // written last: its presence marks the module's work files complete
    write_atomic(
        &work_file(work, &module, "km.json"),
        &serde_json::to_vec_pretty(&module)?,
    )?;
    Ok((module, false))
}

/// Every global the module defines → its per-module name; every cross-module reference
/// → the provider's renamed symbol.
pub fn module_renames(module: &Module) -> HashMap<String, String> {
    let mut renames: HashMap<String, String> = module
        .defined
        .iter()
        .map(|s| (s.name.clone(), module.renamed(&s.name)))
        .collect();
    renames.extend(module.bindings.iter().map(|(k, v)| (k.clone(), v.clone())));
    renames
}

/// The module's objects, each renamed by `renames`, written as the archive `dest`.
pub fn write_renamed_archive(
    db: &CaptureDb,
    module: &Module,
    renames: &HashMap<String, String>,
    dest: &Path,
) -> Result<()> {
    // objects are renamed in parallel; collect keeps their order
    let renamed_objects: Vec<(String, Vec<u8>)> = module
        .objects
        .par_iter()
        .map(|object| {
            let (bytes, _) = mangle::rename_symbols(db.read_object(&object.md5)?, renames)
                .with_context(|| object.origin.clone())?;
            Ok((object.origin.clone(), bytes))
        })
        .collect::<Result<_>>()?;
    write_atomic_with(dest, |out| archive::write_archive(&renamed_objects, out))
}

/// Render a table to `source` and compile it next to it (`x.symbols.c` → `x.symbols.o`).
fn compile_table(table: &Table, source: &Path, work: &Path) -> Result<PathBuf> {
    compile_generated(source, &codegen::render(table)?, &work.join("runtime"))
}

fn compile_runtime(work: &Path) -> Result<PathBuf> {
    let dir = work.join("runtime");
    std::fs::create_dir_all(&dir)?;
    if std::fs::read(dir.join("dlstatic.h")).ok().as_deref() != Some(RUNTIME_H.as_bytes()) {
        write_atomic(&dir.join("dlstatic.h"), RUNTIME_H.as_bytes())?;
    }
    compile_generated(&dir.join("dlstatic.c"), RUNTIME_C, &dir)
}

/// Write `text` to `source` and compile it to `source` with extension `.o`, unless the
/// object there was compiled from the same text and header by the same compiler (a
/// `.key` file next to it says): a relink after one module changed recompiles nothing else.
fn compile_generated(source: &Path, text: &str, include_dir: &Path) -> Result<PathBuf> {
    let object = source.with_extension("o");
    let key_file = source.with_extension("o.key");
    let key = format!(
        "{:x}",
        md5::compute(format!(
            "{text}\0{RUNTIME_H}\0{:?}",
            Driver::C.real_command()
        ))
    );
    if object.exists() && std::fs::read_to_string(&key_file).ok().as_deref() == Some(key.as_str()) {
        return Ok(object);
    }
    write_atomic(source, text.as_bytes())?;
    let tmp = source.with_extension("o.tmp");
    toolchain::compile_c(source, &tmp, include_dir)?;
    std::fs::rename(&tmp, &object)?;
    write_atomic(&key_file, key.as_bytes())?;
    Ok(object)
}

pub struct SystemLib {
    pub name: String,
    pub archive: PathBuf,
    pub soname: Option<String>,
}

/// The static archives that replace the modules' `-l` libraries and shared inputs,
/// in first-use order, and what their own dependencies lacked.
struct SystemLibs {
    libs: Vec<SystemLib>,
    /// Dependencies of a system library (its DT_NEEDED, pkg-config --static) that have
    /// no static archive. Often the archive members a module uses do not need them, so
    /// they are not an error by themselves; if the link fails, they are the likely cause.
    unavailable: Vec<String>,
}

/// A module's own `-l` library without a static archive stops the link, naming it and
/// the module.
fn resolve_system_libs(modules: &[Module]) -> Result<SystemLibs> {
    let mut out = SystemLibs {
        libs: Vec::new(),
        unavailable: Vec::new(),
    };
    for module in modules {
        // (library, the -l that needs it when linked statically, if not the module itself)
        let mut pending: std::collections::VecDeque<(String, Option<String>)> =
            module.libs.iter().map(|lib| (lib.clone(), None)).collect();
        while let Some((lib, needed_by)) = pending.pop_front() {
            if libs::provided_by_driver(&lib) || out.libs.iter().any(|l| l.name == lib) {
                continue;
            }
            let Some(archive) = libs::static_archive_for(&lib, &module.lib_dirs) else {
                match needed_by {
                    None => bail!(
                        "{}: linked with -l{lib}, but no static archive lib{}.a exists on the search path (install the package that ships it, or rebuild the module without it)",
                        module.path,
                        lib.trim_start_matches(':')
                    ),
                    Some(parent) => out
                        .unavailable
                        .push(format!("lib{lib}.a (for -l{parent} of {})", module.so_name)),
                }
                continue;
            };
            out.libs.push(SystemLib {
                name: lib.clone(),
                soname: libs::soname_for(&lib, &module.lib_dirs),
                archive,
            });
            pending.extend(
                libs::static_dependencies(&lib, &module.lib_dirs)
                    .into_iter()
                    .map(|dep| (dep, Some(lib.clone()))),
            );
        }
        for shared in &module.shared_inputs {
            let archive = libs::static_archive_for_shared(shared).with_context(|| {
                format!(
                    "{}: linked with {shared}, for which no static archive exists",
                    module.path
                )
            })?;
            let soname = crate::fsutil::map(Path::new(shared))
                .ok()
                .and_then(|b| elf::shared_object_interface(&b).ok())
                .and_then(|i| i.soname);
            out.libs.push(SystemLib {
                name: shared.clone(),
                archive,
                soname,
            });
        }
    }
    out.unavailable.sort();
    out.unavailable.dedup();
    Ok(out)
}

/// Sonames dlopen answers with the main program: glibc's, the modules' system
/// libraries', and those of `-l` flags among the main inputs.
fn main_aliases(system_libs: &[SystemLib], main_inputs: &[String]) -> Vec<String> {
    let mut aliases: Vec<String> = libs::GLIBC_SONAMES.iter().map(|s| s.to_string()).collect();
    aliases.extend(system_libs.iter().filter_map(|l| l.soname.clone()));
    aliases.extend(
        main_inputs
            .iter()
            .filter_map(|i| i.strip_prefix("-l"))
            .filter_map(|l| libs::soname_for(l, &[])),
    );
    aliases.sort();
    aliases.dedup();
    aliases
}

/// Names that never go into the main program's table: module symbols (reachable through
/// their modules), the runtime's internals, and what the linker and crt files define.
fn excluded_from_main_table(name: &str) -> bool {
    const LINKER_DEFINED: &[&str] = &[
        "_start",
        "_init",
        "_fini",
        "__bss_start",
        "_edata",
        "_end",
        "__ehdr_start",
        "__dso_handle",
        "_IO_stdin_used",
        "__data_start",
        "data_start",
        "__TMC_END__",
        "_DYNAMIC",
        "_GLOBAL_OFFSET_TABLE_",
    ];
    const LINKER_PREFIXES: &[&str] = &[
        "__init_array",
        "__fini_array",
        "__preinit_array",
        "__rela_iplt",
        "__start_",
        "__stop_",
        "dlstatic_register",
    ];
    LINKER_DEFINED.contains(&name)
        || LINKER_PREFIXES.iter().any(|p| name.starts_with(p))
        || is_renamed_module_symbol(name)
}

/// `name_<32 hex>_km`, as Module::renamed makes them.
fn is_renamed_module_symbol(name: &str) -> bool {
    name.strip_suffix("_km")
        .and_then(|rest| rest.len().checked_sub(33).map(|at| &rest[at..]))
        .is_some_and(|tail| {
            tail.starts_with('_') && tail[1..].bytes().all(|b| b.is_ascii_hexdigit())
        })
}

fn main_program_table(executable: &[u8], aliases: Vec<String>, output: &Path) -> Result<Table> {
    let mut symbols: Vec<TableSymbol> = elf::executable_globals(executable)?
        .into_iter()
        .filter(|(name, kind, _)| *kind != SymbolKind::Other && !excluded_from_main_table(name))
        .map(|(name, kind, size)| TableSymbol {
            target: name.clone(),
            name,
            tls: kind == SymbolKind::Tls,
            size,
            exported: true,
        })
        .collect();
    symbols.sort_by(|a, b| a.name.cmp(&b.name));
    symbols.dedup_by(|a, b| a.name == b.name);
    let so_name = output
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    Ok(Table {
        so_name,
        path: String::new(),
        soname: None,
        id: String::new(),
        is_main: true,
        symbols,
        aliases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renamed_module_symbols_are_recognised() {
        assert!(is_renamed_module_symbol(
            "helper_0123456789abcdef0123456789abcdef_km"
        ));
        assert!(!is_renamed_module_symbol("helper_km"));
        assert!(!is_renamed_module_symbol("_km"));
        assert!(excluded_from_main_table("__init_array_start"));
        assert!(!excluded_from_main_table("printf"));
    }
}
