//! `dlstatic audit`: explains, from the Plan the link would execute, everything that
//! blocks or changes the static link: symbol conflicts and how renaming resolves them, references
//! between modules, unresolved symbols, missing static libraries, duplicate basenames,
//! objects that cannot be linked, constructors, modules that dlopen by themselves, and
//! libc calls that need NSS files. The JSON form is documented in docs/audit.md.

mod render;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

pub use render::{render_text, stdout_is_terminal};

use crate::plan::analyze::Module;
use crate::plan::program::Program;
use crate::plan::resolve::Resolution;
use crate::plan::system_libs::{self, MissingLib, UnfitArchive};
use crate::plan::{Plan, Summary};

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
    /// The link the findings are about: modules with their objects, system libraries
    /// with the members the link pulls.
    pub plan: Summary,
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

/// Every finding about the link `plan` describes.
pub fn report(plan: &Plan) -> Report {
    let modules: Vec<&Module> = plan.modules.iter().map(|m| &m.module).collect();
    let mut findings = Vec::new();
    for u in &plan.unlinkable {
        findings.push(finding(
            "unlinkable-object",
            Severity::Error,
            vec![u.file_name.clone()],
            vec![],
            format!(
                "{}; the module cannot be linked statically until this object is rebuilt",
                u.reason
            ),
        ));
    }
    for missing in &plan.missing_libs {
        findings.push(missing_library_finding(missing, modules[missing.module]));
    }
    for unfit in &plan.unfit_archives {
        findings.push(unfit_archive_finding(unfit, modules[unfit.module]));
    }
    unresolved_in_libraries(plan, &mut findings);
    for (module, names) in &plan.missing_exports {
        findings.push(finding(
            "missing-export",
            Severity::Error,
            vec![modules[*module].file_name.clone()],
            names.clone(),
            format!(
                "{} {}",
                modules[*module].file_name,
                crate::plan::missing_export_reason(names)
            ),
        ));
    }
    duplicate_definition_findings(&modules, &plan.program, &mut findings);
    // modules that link a library dlstatic will build: it may define what they miss
    let awaiting_builds: BTreeSet<usize> = (plan.missing_libs.iter())
        .filter(|m| m.build_from.is_some())
        .map(|m| m.module)
        .collect();
    resolution_findings(&modules, &plan.resolution, &awaiting_builds, &mut findings);
    duplicate_basename_findings(&modules, &mut findings);
    for module in &modules {
        module_behaviour_findings(module, &modules, &mut findings);
    }
    let totals = Totals {
        modules: modules.len(),
        objects: modules.iter().map(|m| m.objects.len()).sum(),
        symbols_renamed: modules.iter().map(|m| m.renamed_count).sum(),
        exports_registered: modules.iter().map(|m| m.exports.len()).sum(),
        cross_module_bindings: plan.resolution.bindings.len(),
    };
    findings.sort_by(|a, b| {
        (a.severity, a.kind, &a.modules, &a.symbols)
            .cmp(&(b.severity, b.kind, &b.modules, &b.symbols))
    });
    Report {
        schema: SCHEMA_VERSION,
        findings,
        totals,
        plan: plan.summary(),
    }
}

/// Bindings, ambiguous and unresolved module references.
fn resolution_findings(
    modules: &[&Module],
    resolution: &Resolution,
    awaiting_builds: &BTreeSet<usize>,
    findings: &mut Vec<Finding>,
) {
    for (from, name, to) in &resolution.bindings {
        let (from, to) = (&modules[*from].file_name, &modules[*to].file_name);
        findings.push(finding("cross-module-reference", Severity::Info, vec![from.clone(), to.clone()], vec![name.clone()],
            format!("{from} uses {name}, which only {to} exports (dynamically this worked through RTLD_GLOBAL load order); the link binds it to {to}'s renamed copy")));
    }
    for (from, name, providers) in &resolution.ambiguous {
        let mut names: Vec<String> = providers
            .iter()
            .map(|&p| modules[p].file_name.clone())
            .collect();
        let message = format!(
            "{} uses {name}, which {} all export; which one it got depended on load order, so the link refuses (link only one of them with --only)",
            modules[*from].file_name,
            names.join(", ")
        );
        names.insert(0, modules[*from].file_name.clone());
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
        let module = &modules[from].file_name;
        if awaiting_builds.contains(&from) {
            findings.push(finding("unresolved-symbol", Severity::Info, vec![module.clone()], names.clone(),
                format!("{module} uses {} that nothing defines yet; the libraries dlstatic will build for it are expected to (the link says if they do not)",
                    plural(names.len(), "symbol"))));
            continue;
        }
        findings.push(finding("unresolved-symbol", Severity::Error, vec![module.clone()], names.clone(),
            format!("{module} uses {} that no module, main input or static library defines; a static link fails on it (add the library that defines it to the main inputs)",
                plural(names.len(), "symbol"))));
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn missing_library_finding(missing: &MissingLib, module: &Module) -> Finding {
    let lib = &missing.lib;
    let why = match &missing.needed_by {
        None if lib.starts_with('/') => format!("{} is linked with {lib}", module.file_name),
        None => format!("{} is linked with -l{lib}", module.file_name),
        Some(parent) if missing.blocks_link() => format!(
            "the members of lib{parent}.a that {} uses need {} from it; the link fails without it",
            module.file_name,
            missing.needed_names()
        ),
        Some(parent) => format!(
            "-l{parent} (used by {}) needs -l{lib} as a shared library; the members it uses do not, so the link works without it",
            module.file_name
        ),
    };
    let severity = match (missing.blocks_link(), &missing.build_from) {
        (true, None) => Severity::Error,
        (false, None) => Severity::Warning,
        (_, Some(_)) => Severity::Info,
    };
    let advice = match &missing.build_from {
        Some(source) => format!(
            "dlstatic will build it from source package {source} (--no-build-deps: it stays an error)"
        ),
        None => missing.advice(module),
    };
    let archive = match lib.starts_with('/') {
        true => format!("static archive for {lib}"),
        false => format!("lib{}.a", lib.trim_start_matches(':')),
    };
    finding(
        "missing-static-library",
        severity,
        vec![module.file_name.clone()],
        missing.needed_symbols.clone(),
        format!("no {archive}: {why}; {advice}"),
    )
}

/// An archive the link would take that cannot do what a module uses it for: dlstatic
/// replaces it (info), or the module fails at run time (warning).
fn unfit_archive_finding(unfit: &UnfitArchive, module: &Module) -> Finding {
    let (severity, outcome) = match &unfit.build_from {
        Some(source) => (
            Severity::Info,
            format!(
                "dlstatic will build lib{} from source package {source} and link that instead (--no-build-deps: the module fails when it does this)",
                unfit.lib
            ),
        ),
        None => (
            Severity::Warning,
            "the module fails when it does this in the static program".to_string(),
        ),
    };
    finding(
        "unfit-static-library",
        severity,
        vec![module.file_name.clone()],
        unfit.used.clone(),
        format!(
            "{} uses {}: {}; {outcome}",
            module.file_name,
            unfit.used.join(", "),
            unfit.why
        ),
    )
}

/// Names that archive members or main objects need and nothing defines, beyond what
/// a missing library explains: the link fails on them.
fn unresolved_in_libraries(plan: &Plan, findings: &mut Vec<Finding>) {
    let explained: BTreeSet<&str> = plan
        .missing_libs
        .iter()
        .flat_map(|m| m.needed_symbols.iter().map(String::as_str))
        .collect();
    let mut by_origin: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, origin) in &plan.pulled.unresolved {
        if !explained.contains(name.as_str()) {
            by_origin
                .entry(origin.as_str())
                .or_default()
                .push(name.clone());
        }
    }
    for (origin, names) in by_origin {
        findings.push(finding("unresolved-symbol", Severity::Error, vec!["main".into()], names.clone(),
            format!("{origin} (pulled into the link) uses {} that nothing in the link defines; a static link fails on it",
                plural(names.len(), "symbol"))));
    }
}

fn duplicate_definition_findings(
    modules: &[&Module],
    program: &Program,
    findings: &mut Vec<Finding>,
) {
    let mut definers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for module in modules {
        for symbol in &module.defined {
            definers
                .entry(symbol.name.as_str())
                .or_default()
                .push(module.file_name.as_str());
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

fn duplicate_basename_findings(modules: &[&Module], findings: &mut Vec<Finding>) {
    let mut by_name: BTreeMap<&str, Vec<&Module>> = BTreeMap::new();
    for module in modules {
        by_name
            .entry(module.file_name.as_str())
            .or_default()
            .push(module);
    }
    for (name, same) in by_name.into_iter().filter(|(_, v)| v.len() > 1) {
        let ids: Vec<String> = same
            .iter()
            .map(|m| format!("{} ({})", m.path, m.id.short()))
            .collect();
        findings.push(finding("duplicate-basename", Severity::Info, vec![name.to_string()], vec![],
            format!("{} modules are named {name}: {}; dlopen tells them apart by md5 id (stub or original file), a bare name is ambiguous", same.len(), ids.join(", "))));
    }
}

/// Constructors, self-made dlopen calls, NSS-dependent libc calls, LTO conversions.
fn module_behaviour_findings(module: &Module, modules: &[&Module], findings: &mut Vec<Finding>) {
    let name = vec![module.file_name.clone()];
    if !module.constructors.is_empty() {
        findings.push(finding("constructor", Severity::Warning, name.clone(), vec![],
            format!("{} has load-time constructors (.init_array/.ctors in {}); they run at the module's first dlopen, as with the dynamic loader, or at program start with `dlstatic link --eager-constructors`", module.file_name, module.constructors.join(", "))));
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
            .flat_map(|m| [Some(m.file_name.as_str()), m.soname.as_deref()])
            .flatten()
            .chain(system_libs::GLIBC_SONAMES.iter().copied())
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
            format!("{} calls dlopen itself; {detail}", module.file_name),
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
            format!("{} calls libc functions that read NSS data at run time; static glibc needs /etc/nsswitch.conf (files, dns), hosts, passwd, group: `dlstatic build` ships minimal ones", module.file_name)));
    }
}
