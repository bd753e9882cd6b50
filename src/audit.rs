//! `dlstatic audit`: explains, from the capture db alone, everything that blocks or
//! changes a static link: symbol conflicts and how renaming resolves them, references
//! between modules, unresolved symbols, missing static libraries, duplicate basenames,
//! objects that cannot be linked, constructors, modules that dlopen by themselves, and
//! libc calls that need NSS files. The JSON form is documented in docs/audit.md.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Result;
use rayon::prelude::*;
use serde::Serialize;

use crate::analyze::{self, Module};
use crate::db::CaptureDb;
use crate::libs;
use crate::resolve::{self, ProgramSymbols};

/// Bumped when the JSON report changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

/// libc functions that read NSS configuration (/etc/nsswitch.conf, hosts, passwd, …).
const NSS_FUNCTIONS: &[&str] = &[
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname2",
    "gethostbyaddr",
    "gethostbyname_r",
    "gethostbyaddr_r",
    "getnameinfo",
    "getpwnam",
    "getpwuid",
    "getpwnam_r",
    "getpwuid_r",
    "getpwent",
    "getgrnam",
    "getgrgid",
    "getgrnam_r",
    "getgrgid_r",
    "getgrent",
    "getgrouplist",
    "initgroups",
    "getservbyname",
    "getservbyport",
    "getprotobyname",
    "getprotobynumber",
    "getspnam",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub kind: &'static str,
    pub severity: Severity,
    /// Module basenames involved (`main` for the main program).
    pub modules: Vec<String>,
    pub symbols: Vec<String>,
    /// What it means and what dlstatic does or the user should do.
    pub message: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub modules: usize,
    pub objects: usize,
    pub symbols_renamed: usize,
    pub exports_registered: usize,
    pub cross_module_bindings: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: u32,
    pub findings: Vec<Finding>,
    pub totals: Totals,
}

impl Report {
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

fn finding(
    kind: &'static str,
    severity: Severity,
    modules: Vec<String>,
    symbols: Vec<String>,
    message: String,
) -> Finding {
    Finding {
        kind,
        severity,
        modules,
        symbols,
        message,
    }
}

/// Audit every captured module of `db` (those matching `exclude` left out) against the
/// main program made of `main_inputs`.
/// `extra_dbs` as in link.rs: more dbs with the ids of the records to take from them.
/// `link_work`: a link's work dir whose current `.km.json` analyses can be reused.
pub fn audit(
    db_dir: &Path,
    extra_dbs: &[(PathBuf, BTreeSet<String>)],
    main_inputs: &[String],
    exclude: &[String],
    link_work: Option<&Path>,
) -> Result<Report> {
    let db = CaptureDb::open_existing(db_dir)?;
    let scratch = tempfile::tempdir()?;
    let mut findings = Vec::new();
    let mut modules: Vec<Module> = Vec::new();
    let excluded = crate::link::glob_set(exclude, "skip")?;
    let mut sources: Vec<(CaptureDb, Option<&BTreeSet<String>>)> = vec![(db, None)];
    for (path, ids) in extra_dbs {
        sources.push((CaptureDb::open_existing(path)?, Some(ids)));
    }
    let mut records = Vec::new();
    for (index, (db, ids)) in sources.iter().enumerate() {
        records.extend(
            db.records()?
                .into_iter()
                .filter(|r| ids.is_none_or(|ids| ids.contains(&r.md5)))
                .map(|r| (index, r)),
        );
    }
    records.retain(|(_, record)| !excluded.is_match(record.file_name()));
    let analyzed: Vec<Result<Module>> = records
        .par_iter()
        .map(|(index, record)| match link_work {
            Some(work) => crate::link::analyzed_module(&sources[*index].0, record, work)
                .map(|(module, _)| module),
            None => analyze::analyze(&sources[*index].0, record, scratch.path()),
        })
        .collect();
    for ((_, record), analysis) in records.iter().zip(analyzed) {
        let so_name = record.file_name().to_string();
        match analysis {
            Ok(module) => modules.push(module),
            Err(error) => findings.push(finding(
                "unlinkable-object",
                Severity::Error,
                vec![so_name],
                vec![],
                format!(
                    "{error:#}; the module cannot be linked statically until this object is rebuilt"
                ),
            )),
        }
    }

    let mut archives: Vec<PathBuf> = Vec::new();
    for module in &modules {
        archives.extend(system_library_findings(module, &mut findings));
    }
    let cxx = modules.iter().any(|m| m.driver == "c++");
    let program = ProgramSymbols::collect(main_inputs, &archives, cxx)?;
    let resolution = resolve::resolve(&modules, &program);

    duplicate_definition_findings(&modules, &program, &mut findings);
    for (from, name, to) in &resolution.bindings {
        findings.push(finding("cross-module-reference", Severity::Info, vec![modules[*from].so_name.clone(), modules[*to].so_name.clone()], vec![name.clone()],
            format!("{} uses {name}, which only {} exports (dynamically this worked through RTLD_GLOBAL load order); the link binds it to {}'s renamed copy",
                modules[*from].so_name, modules[*to].so_name, modules[*to].so_name)));
    }
    for (from, name, providers) in &resolution.ambiguous {
        let mut names: Vec<String> = providers
            .iter()
            .map(|&p| modules[p].so_name.clone())
            .collect();
        let message = format!(
            "{} uses {name}, which {} all export; which one it got depended on load order, so the link refuses (link only one of them with --only)",
            modules[*from].so_name,
            names.join(", ")
        );
        names.insert(0, modules[*from].so_name.clone());
        findings.push(finding(
            "ambiguous-reference",
            Severity::Error,
            names,
            vec![name.clone()],
            message,
        ));
    }
    let mut unresolved: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (from, name) in &resolution.unresolved {
        unresolved.entry(*from).or_default().push(name.clone());
    }
    for (from, names) in unresolved {
        findings.push(finding("unresolved-symbol", Severity::Error, vec![modules[from].so_name.clone()], names.clone(),
            format!("{} uses {} that no module, main input or static library defines; a static link fails on it (add the library that defines it to the main inputs)",
                modules[from].so_name, plural(names.len(), "symbol"))));
    }
    duplicate_basename_findings(&modules, &mut findings);
    for module in &modules {
        module_behaviour_findings(module, &modules, &mut findings);
    }

    let totals = Totals {
        modules: modules.len(),
        objects: modules.iter().map(|m| m.objects.len()).sum(),
        symbols_renamed: modules.iter().map(|m| m.mangled).sum(),
        exports_registered: modules.iter().map(|m| m.exports.len()).sum(),
        cross_module_bindings: resolution.bindings.len(),
    };
    findings.sort_by(|a, b| {
        (a.severity, a.kind, &a.modules, &a.symbols)
            .cmp(&(b.severity, b.kind, &b.modules, &b.symbols))
    });
    Ok(Report {
        schema: SCHEMA_VERSION,
        findings,
        totals,
    })
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Missing static archives; returns the archives that exist (for symbol resolution).
fn system_library_findings(module: &Module, findings: &mut Vec<Finding>) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending: Vec<(String, Option<String>)> =
        module.libs.iter().map(|l| (l.clone(), None)).collect();
    let mut seen = BTreeSet::new();
    while let Some((lib, needed_by)) = pending.pop() {
        if libs::provided_by_driver(&lib) || !seen.insert(lib.clone()) {
            continue;
        }
        match libs::static_archive_for(&lib, &module.lib_dirs) {
            Some(archive) => {
                found.push(archive);
                pending.extend(
                    libs::static_dependencies(&lib, &module.lib_dirs)
                        .into_iter()
                        .map(|d| (d, Some(lib.clone()))),
                );
            }
            None => {
                let (severity, why) = match &needed_by {
                    None => (
                        Severity::Error,
                        format!("{} is linked with -l{lib}", module.so_name),
                    ),
                    Some(parent) => (
                        Severity::Warning,
                        format!(
                            "-l{parent} (used by {}) needs -l{lib} as a shared library; linked statically it matters only if the members used call into it, and the link then fails on undefined symbols",
                            module.so_name
                        ),
                    ),
                };
                findings.push(finding(
                    "missing-static-library",
                    severity,
                    vec![module.so_name.clone()],
                    vec![],
                    format!(
                        "no lib{}.a: {why}; {}",
                        lib.trim_start_matches(':'),
                        libs::static_archive_advice(&lib, &module.lib_dirs)
                    ),
                ));
            }
        }
    }
    found
}

fn duplicate_definition_findings(
    modules: &[Module],
    program: &ProgramSymbols,
    findings: &mut Vec<Finding>,
) {
    let mut definers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for module in modules {
        for symbol in &module.defined {
            definers
                .entry(symbol.name.as_str())
                .or_default()
                .push(module.so_name.as_str());
        }
    }
    for (name, mut owners) in definers {
        let in_program = program.provides(name);
        if owners.len() < 2 && !in_program {
            continue;
        }
        let what = if in_program {
            owners.push("main");
            "the main program (or a static library) and"
        } else {
            ""
        };
        let count = owners.len() - usize::from(in_program);
        findings.push(finding("duplicate-definition", Severity::Info, owners.iter().map(|s| s.to_string()).collect(), vec![name.to_string()],
            format!("{name} is defined by {what} {}; each module's copy is renamed to {name}_<id>_km, so they no longer collide and each module uses its own",
                plural(count, "module")).replace("  ", " ")));
    }
}

fn duplicate_basename_findings(modules: &[Module], findings: &mut Vec<Finding>) {
    let mut by_name: BTreeMap<&str, Vec<&Module>> = BTreeMap::new();
    for module in modules {
        by_name
            .entry(module.so_name.as_str())
            .or_default()
            .push(module);
    }
    for (name, same) in by_name.into_iter().filter(|(_, v)| v.len() > 1) {
        let ids: Vec<String> = same
            .iter()
            .map(|m| format!("{} ({})", m.path, &m.md5[..8]))
            .collect();
        findings.push(finding("duplicate-basename", Severity::Info, vec![name.to_string()], vec![],
            format!("{} modules are named {name}: {}; dlopen tells them apart by md5 id (stub or original file), a bare name is ambiguous", same.len(), ids.join(", "))));
    }
}

/// Constructors, self-made dlopen calls, NSS-dependent libc calls, LTO conversions.
fn module_behaviour_findings(module: &Module, modules: &[Module], findings: &mut Vec<Finding>) {
    let name = vec![module.so_name.clone()];
    if !module.constructors.is_empty() {
        findings.push(finding("constructor", Severity::Warning, name.clone(), vec![],
            format!("{} has load-time constructors (.init_array/.ctors in {}); they run at the module's first dlopen, as with the dynamic loader, or at program start with `dlstatic link --eager-constructors`", module.so_name, module.constructors.join(", "))));
    }
    let lto: Vec<&str> = module
        .objects
        .iter()
        .filter_map(|o| o.origin.strip_prefix("lto:"))
        .collect();
    if !lto.is_empty() {
        findings.push(finding(
            "lto-object",
            Severity::Info,
            name.clone(),
            vec![],
            format!(
                "{} held GCC LTO IR, turned into regular code before renaming: {}",
                plural(lto.len(), "object"),
                lto.join(", ")
            ),
        ));
    }
    if module
        .undefined
        .iter()
        .chain(&module.weak_undefined)
        .any(|s| s == "dlopen")
    {
        let known: BTreeSet<&str> = modules
            .iter()
            .flat_map(|m| [Some(m.so_name.as_str()), m.soname.as_deref()])
            .flatten()
            .chain(libs::GLIBC_SONAMES.iter().copied())
            .collect();
        let unknown: Vec<String> = module
            .library_names
            .iter()
            .filter(|l| !known.contains(l.as_str()))
            .cloned()
            .collect();
        let detail = if unknown.is_empty() {
            "no library name in its data is unknown".to_string()
        } else {
            format!(
                "names in its data that are not linked in: {} (dlopen of those fails unless DLSTATIC_FALLBACK=1)",
                unknown.join(", ")
            )
        };
        findings.push(finding(
            "dlopen-call",
            Severity::Warning,
            name.clone(),
            unknown,
            format!("{} calls dlopen itself; {detail}", module.so_name),
        ));
    }
    let nss: Vec<String> = module
        .undefined
        .iter()
        .filter(|s| NSS_FUNCTIONS.contains(&s.as_str()))
        .cloned()
        .collect();
    if !nss.is_empty() {
        findings.push(finding("nss-call", Severity::Info, name, nss,
            format!("{} calls libc functions that read NSS data at run time; static glibc needs /etc/nsswitch.conf (files, dns), hosts, passwd, group: `dlstatic build` ships minimal ones", module.so_name)));
    }
}

/// Human form: grouped by severity, aligned, coloured on a terminal.
pub fn render_text(report: &Report, colour: bool) -> String {
    let paint = |code: &str, text: &str| {
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let kind_width = report
        .findings
        .iter()
        .map(|f| f.kind.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (severity, label, code) in [
        (Severity::Error, "error", "1;31"),
        (Severity::Warning, "warning", "1;33"),
        (Severity::Info, "info", "36"),
    ] {
        let group: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .collect();
        if group.is_empty() {
            continue;
        }
        out.push_str(&paint(
            code,
            &format!("{} ({})\n", label.to_uppercase(), group.len()),
        ));
        for f in group {
            let symbols = if f.symbols.is_empty() {
                String::new()
            } else {
                let shown: Vec<&str> = f.symbols.iter().take(8).map(String::as_str).collect();
                let more = if f.symbols.len() > 8 {
                    format!(" (+{} more)", f.symbols.len() - 8)
                } else {
                    String::new()
                };
                format!(" [{}{more}]", shown.join(", "))
            };
            out.push_str(&format!(
                "  {}  {:kind_width$}  {}{symbols}\n",
                paint(code, &format!("{label:7}")),
                f.kind,
                f.message
            ));
        }
    }
    let t = &report.totals;
    out.push_str(&format!(
        "totals: {} modules, {} objects, {} symbols renamed, {} exports registered, {} cross-module bindings; {} errors, {} warnings, {} info\n",
        t.modules, t.objects, t.symbols_renamed, t.exports_registered, t.cross_module_bindings,
        report.count(Severity::Error), report.count(Severity::Warning), report.count(Severity::Info)
    ));
    out
}

pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}
