//! Stage 2, plan: everything a link will do, decided once, before anything is written.
//!
//! select records → analyze each module → system libraries (static archives for every
//! `-l` and shared input, with their own static needs) → the program (main inputs and
//! archives, resolved down to the members the linker will pull) → resolution (which
//! module reference binds to which other module). `link` executes a Plan; `audit`
//! reports on the same Plan; `dlstatic plan --json` prints it.

pub mod analyze;
pub mod libc_exports;
pub mod members;
pub mod program;
pub mod resolve;
pub mod select;
pub mod system_libs;

use std::path::PathBuf;

use anyhow::{Result, bail};
use rayon::prelude::*;
use serde::Serialize;

use crate::capture::db::CaptureDb;
use crate::module_id::ModuleId;
use crate::toolchain::Driver;
use crate::workdir::LinkWork;
use analyze::Module;
use members::Pulled;
use program::Program;
use resolve::Resolution;
pub use select::Source;
use system_libs::{MissingLib, SystemLib, UnfitArchive};

/// What to plan: where the modules come from and what the main program is.
pub struct Request<'a> {
    pub sources: Vec<Source>,
    /// Globs over the captured output path or its basename; empty = every module.
    pub only: Vec<String>,
    /// Globs of modules to leave out, matched the same way.
    pub exclude: Vec<String>,
    pub program: ProgramSettings,
    /// Prefixes of libraries dlstatic built (src/deps/): their `lib/` is searched first.
    pub dep_prefixes: Vec<PathBuf>,
    /// Where module analyses are kept and reused.
    pub work: &'a LinkWork,
}

/// The main program and how it is linked: what a plan takes as given and carries to
/// the link unchanged.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramSettings {
    /// The main program's objects, archives and `-l`/`-L`/`-Wl,` flags, in link order.
    pub main_inputs: Vec<String>,
    /// More arguments for the end of the final link line (`-lm`, `-Wl,…`).
    pub linker_args: Vec<String>,
    /// Run every module's constructors at program start, as a plain static link would,
    /// instead of at its first dlopen.
    pub eager_constructors: bool,
    /// Link a static-pie executable (glibc's `-static-pie`) instead of `-static`.
    pub pie: bool,
    /// Force glibc's public functions into the link, so `dlopen(NULL)` and
    /// `dlopen("libc.so.6")` offer all of them, as in a dynamic process (libc_exports.rs).
    pub libc_exports: bool,
}

/// One module of the link.
pub struct PlannedModule {
    pub module: Module,
    /// Which of the plan's dbs holds its objects.
    pub db: usize,
    /// Its analysis came from a current `.km.json` made with the same bindings: the
    /// work files beside it can be reused.
    pub reusable: bool,
}

/// A captured module that cannot be linked statically, and why.
pub struct Unlinkable {
    pub file_name: String,
    pub path: String,
    pub id: ModuleId,
    pub reason: String,
}

/// Everything one link does.
pub struct Plan {
    pub dbs: Vec<CaptureDb>,
    pub modules: Vec<PlannedModule>,
    pub unlinkable: Vec<Unlinkable>,
    pub settings: ProgramSettings,
    /// C++ when any module was linked by the C++ driver (libstdc++ comes along).
    pub driver: Driver,
    pub system_libs: Vec<SystemLib>,
    pub missing_libs: Vec<MissingLib>,
    /// Archives the link takes that a module needs replaced (filled by `deps::plan`).
    pub unfit_archives: Vec<UnfitArchive>,
    pub program: Program,
    /// The archive members the final link will pull, and what nothing defines.
    pub pulled: Pulled,
    pub resolution: Resolution,
    /// Per module (index), what its `.so` exported that nothing in this link defines:
    /// dlsym would miss them, so the link refuses.
    pub missing_exports: Vec<(usize, Vec<String>)>,
}

impl Plan {
    pub fn build(request: &Request) -> Result<Plan> {
        let (dbs, records) = select::records(request)?;
        let analyzed: Vec<Result<(Module, bool)>> = progress_map(&records, |(db, record)| {
            analyze::cached_or_new(&dbs[*db], record, request.work)
        });
        let (mut modules, mut unlinkable) = (Vec::new(), Vec::new());
        for ((db, record), analysis) in records.iter().zip(analyzed) {
            match analyze::Unlinkable::triage(analysis)? {
                Ok((module, reusable)) => modules.push(PlannedModule {
                    module,
                    db: *db,
                    reusable,
                }),
                Err(reason) => unlinkable.push(Unlinkable {
                    file_name: record.file_name().to_string(),
                    path: record.output.clone(),
                    id: record.id.clone(),
                    reason,
                }),
            }
        }
        let driver = match modules.iter().any(|m| m.module.driver == Driver::Cxx) {
            true => Driver::Cxx,
            false => Driver::C,
        };
        let just_modules: Vec<&Module> = modules.iter().map(|m| &m.module).collect();
        let (system_libs, mut missing_libs) =
            system_libs::resolve(&just_modules, &request.dep_prefixes);
        let program = Program::collect(request, &system_libs, driver)?;
        let resolution = resolve::resolve(&just_modules, &program);
        for (from, bindings) in resolve::bindings_by_module(&just_modules, &resolution)
            .into_iter()
            .enumerate()
        {
            let planned = &mut modules[from];
            planned.reusable &= planned.module.bindings == bindings;
            planned.module.bindings = bindings;
        }
        let pulled = members::pull(&program, &modules, &resolution)?;
        let missing_exports = missing_exports(&modules, &program);
        let just_modules: Vec<&Module> = modules.iter().map(|m| &m.module).collect();
        system_libs::attribute_unresolved(&mut missing_libs, &just_modules, &pulled.unresolved);
        Ok(Plan {
            dbs,
            modules,
            unlinkable,
            settings: request.program.clone(),
            driver,
            system_libs,
            missing_libs,
            unfit_archives: Vec::new(),
            program,
            pulled,
            resolution,
            missing_exports,
        })
    }

    pub fn module(&self, index: usize) -> &Module {
        &self.modules[index].module
    }

    /// The first finding that makes a static link impossible, as `link` reports it.
    /// (Unresolved symbols are left to the linker, whose message names the reference.)
    pub fn check_linkable(&self) -> Result<()> {
        if let Some(u) = self.unlinkable.first() {
            bail!("{} ({}): {}", u.path, u.id.short(), u.reason);
        }
        if let Some((module, names)) = self.missing_exports.first() {
            bail!(
                "{}: {}",
                self.module(*module).path,
                missing_export_reason(names)
            );
        }
        let blocking: Vec<&MissingLib> = (self.missing_libs.iter())
            .filter(|m| m.blocks_link())
            .collect();
        // the one a module names itself, else the one most of the missing names come
        // from (libpq.a's GSSAPI, not the libbsd its stray strlcpy happens to find)
        let worst = (blocking.iter()).min_by_key(|m| {
            (
                m.needed_by.is_some(),
                std::cmp::Reverse(m.needed_symbols.len()),
            )
        });
        if let Some(missing) = worst {
            let others = match blocking.len() - 1 {
                0 => String::new(),
                1 => " (and 1 more library without a static archive: dlstatic audit names them)"
                    .to_string(),
                n => format!(
                    " (and {n} more libraries without a static archive: dlstatic audit names them)"
                ),
            };
            bail!(
                "{}{others}",
                missing.link_error(self.module(missing.module))
            );
        }
        if let Some((from, name, providers)) = self.resolution.ambiguous.first() {
            let names: Vec<&str> = providers
                .iter()
                .map(|&p| self.module(p).file_name.as_str())
                .collect();
            bail!(
                "{}: uses {name}, which several modules export ({}); which one it meant depended on load order (dlstatic audit lists all such symbols)",
                self.module(*from).path,
                names.join(", ")
            );
        }
        Ok(())
    }

    /// The plan as `dlstatic plan --json` prints it and `OUT.km/plan.json` keeps it.
    pub fn summary(&self) -> Summary {
        Summary {
            settings: self.settings.clone(),
            driver: self.driver,
            modules: self.modules.iter().map(ModuleSummary::of).collect(),
            system_libraries: self
                .system_libs
                .iter()
                .map(|lib| LibrarySummary {
                    name: lib.name.clone(),
                    archive: lib.archive.clone(),
                    soname: lib.soname.clone(),
                    members: self.pulled.members_of(&lib.archive),
                    for_module: self.module(lib.module).file_name.clone(),
                })
                .collect(),
        }
    }
}

/// The ground-truth check: whatever a module's `.so` exported must be defined by the
/// module's objects or, for what the shared link took from a static system library,
/// by the main program side.
fn missing_exports(modules: &[PlannedModule], program: &Program) -> Vec<(usize, Vec<String>)> {
    modules
        .iter()
        .enumerate()
        .map(|(index, m)| {
            let names = m.module.unprovided_exports.iter();
            (
                index,
                names
                    .filter(|n| !program.provides(n))
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, names)| !names.is_empty())
        .collect()
}

/// What the link and the audit say about exports nothing defines.
pub fn missing_export_reason(names: &[String]) -> String {
    format!(
        "its shared object exports {} that no object its link took defines; a static link would drop {} (made by a linker script, --defsym or an input dlstatic did not capture?)",
        names.join(", "),
        if names.len() == 1 { "it" } else { "them" }
    )
}

/// `work` over every item in parallel with a progress bar; results keep their order.
fn progress_map<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let bar = crate::progress::bar(items.len() as u64, "modules analyzed");
    let results = items
        .par_iter()
        .map(|item| {
            let result = work(item);
            bar.inc(1);
            result
        })
        .collect();
    bar.finish_and_clear();
    results
}

#[derive(Debug, Serialize)]
pub struct Summary {
    #[serde(flatten)]
    pub settings: ProgramSettings,
    pub driver: Driver,
    pub modules: Vec<ModuleSummary>,
    pub system_libraries: Vec<LibrarySummary>,
}

#[derive(Debug, Serialize)]
pub struct ModuleSummary {
    pub so_name: String,
    pub id: ModuleId,
    /// Origins of the objects that go into its archive, in order.
    pub objects: Vec<String>,
    pub exports: usize,
    pub renamed: usize,
    pub bindings: usize,
}

impl ModuleSummary {
    fn of(planned: &PlannedModule) -> ModuleSummary {
        let m = &planned.module;
        ModuleSummary {
            so_name: m.file_name.clone(),
            id: m.id.clone(),
            objects: m.objects.iter().map(|o| o.origin.clone()).collect(),
            exports: m.exports.len(),
            renamed: m.renamed_count,
            bindings: m.bindings.len(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LibrarySummary {
    /// `-l` name, or the shared library's path it replaces.
    pub name: String,
    pub archive: PathBuf,
    pub soname: Option<String>,
    /// The archive members the link pulls, sorted.
    pub members: Vec<String>,
    /// The module whose link named it first.
    pub for_module: String,
}

impl Summary {
    /// One line per module and per system library.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for m in &self.modules {
            out.push_str(&format!(
                "module   {} ({}): {} objects, {} exports, {} renamed, {} bound to other modules\n",
                m.so_name,
                m.id.short(),
                m.objects.len(),
                m.exports,
                m.renamed,
                m.bindings
            ));
        }
        for lib in &self.system_libraries {
            out.push_str(&format!(
                "library  {} → {}: {} members pulled\n",
                lib.name,
                lib.archive.display(),
                lib.members.len()
            ));
        }
        let objects: usize = self.modules.iter().map(|m| m.objects.len()).sum();
        out.push_str(&format!(
            "totals: {} modules, {objects} objects, {} system libraries\n",
            self.modules.len(),
            self.system_libraries.len()
        ));
        out
    }
}
