//! `dlstatic build`: CPython source → static interpreter payload.
//!
//! 1. configure + make CPython under capture (cached, see cpython.rs)
//! 2. build the packages of modules.txt under capture (packages.rs)
//! 3. plan the link of python.o + libpython + every stdlib and package module not
//!    skipped, audit that plan, and execute it (plan/, audit/, link/)
//! 4. assemble the payload (payload.rs) in a staging directory next to OUT
//! 5. verify it in an empty root (verify.rs), then swap it into place
//!
//! OUT is replaced only when every step worked; logs are in OUT.km/logs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::audit::{self, Severity};
use crate::capture::db::{CaptureDb, LinkRecord};
use crate::link;
use crate::module_id::ModuleId;
use crate::plan::analyze::Module;
use crate::plan::{Plan, Request, Source};
use crate::progress::Timings;
use crate::python::cpython::CpythonBuild;
use crate::python::modules_txt::normalized_name;
use crate::python::packages::InstalledPackages;
use crate::python::payload::{self, Manifest, PayloadOptions};
use crate::python::{cpython, packages, verify};
use crate::toolchain;
use crate::workdir::BuildWork;

/// extensions/skip_builtins.txt as shipped, the default skip list.
const DEFAULT_SKIP_LIST: &str = include_str!("../../extensions/skip_builtins.txt");

pub struct BuildOptions {
    /// Third-party packages (modules.txt); None: the stdlib only.
    pub modules: Option<PathBuf>,
    pub python_src: Option<PathBuf>,
    /// None: DEFAULT_SKIP_LIST.
    pub skip: Option<PathBuf>,
    pub out: PathBuf,
    pub jobs: usize,
    pub keep_so: bool,
    pub full_stdlib: bool,
    pub verify: bool,
    /// `-fuse-ld=` for the final link: bfd, gold, lld or mold; None: the compiler's default.
    pub linker: Option<String>,
    /// Extra arguments for the final link.
    pub link_args: Vec<String>,
    /// Module constructors at start-up, not at first dlopen.
    pub eager_constructors: bool,
    /// Print the time each stage took.
    pub timings: bool,
}

pub fn build(options: &BuildOptions) -> Result<()> {
    let started = Instant::now();
    let mut timings = Timings::new(options.timings);
    let out = std::path::absolute(&options.out)?;
    let work = BuildWork::for_out(&out);
    let inputs = Inputs::read(options)?;
    let _lock = work.lock(&out)?;
    let stamp = work.build_stamp();
    if out.join("bin").is_dir() && stamp.matches(&inputs.key) {
        eprintln!(
            "dlstatic: {} is up to date (same CPython source, modules, skip list, options and dlstatic); nothing to do",
            out.display()
        );
        timings.lap("check inputs");
        timings.print();
        return Ok(());
    }
    std::fs::create_dir_all(work.logs())
        .with_context(|| format!("{}: cannot create", work.logs().display()))?;
    timings.lap("check inputs");

    let python = cpython::build(
        &inputs.source,
        &inputs.source_key,
        options.jobs,
        &work.logs(),
    )?;
    if python.reused {
        eprintln!(
            "dlstatic: reused the CPython {} build cached at {}",
            python.version,
            python.tree.parent().unwrap().display()
        );
    }
    timings.lap("CPython");
    let packages = install_packages(&inputs, &python, &work)?;
    timings.lap("packages");

    let parent = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let staging = tempfile::Builder::new()
        .prefix(&BuildWork::staging_prefix(&out))
        .tempdir_in(parent)?;
    let root = staging.path();
    let plan = plan_and_audit(&inputs, &python, packages.as_ref(), &work)?;
    timings.lap("plan and audit");
    let manifest = link_and_assemble(
        options,
        &inputs,
        &python,
        packages.as_ref(),
        &plan,
        root,
        &work,
        &mut timings,
    )?;
    if options.verify {
        verify::verify(root, &manifest)
            .context("verifying the new payload (OUT left as it was)")?;
        timings.lap("verify");
    }
    stamp.clear();
    replace_dir(root, &out)?;
    let _ = staging.keep();
    stamp.write(&inputs.key)?;
    report_built(&out, &python.version, &manifest, started);
    timings.print();
    Ok(())
}

/// What a build is made from, read and checked before anything runs.
struct Inputs {
    skip: Vec<String>,
    /// Where the skip list came from, for messages.
    skip_source: String,
    source: PathBuf,
    source_key: String,
    packages: Option<packages::PackageSet>,
    linker_args: Vec<String>,
    eager_constructors: bool,
    /// Changes whenever anything OUT is made from does.
    key: String,
}

impl Inputs {
    fn read(options: &BuildOptions) -> Result<Inputs> {
        let (skip, skip_source) = match &options.skip {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("{}: cannot read skip list", path.display()))?;
                (parse_skip_list(&text, path)?, path.display().to_string())
            }
            None => (
                parse_skip_list(DEFAULT_SKIP_LIST, Path::new("extensions/skip_builtins.txt"))?,
                "extensions/skip_builtins.txt".into(),
            ),
        };
        let source = match &options.python_src {
            Some(source) => source.clone(),
            None => cpython::default_source()?,
        };
        if !source.exists() {
            bail!("{}: CPython source not found", source.display());
        }
        let mut linker_args = match &options.linker {
            Some(name) => vec![toolchain::fuse_ld_flag(name)?],
            None => Vec::new(),
        };
        linker_args.extend(options.link_args.iter().cloned());
        let source_key = cpython::source_key(&source)?;
        let packages = options.modules.as_deref().map(packages::plan).transpose()?;
        let key = build_key(options, &source_key, packages.as_ref(), &skip)?;
        Ok(Inputs {
            skip,
            skip_source,
            source,
            source_key,
            packages,
            linker_args,
            eager_constructors: options.eager_constructors,
            key,
        })
    }
}

/// The packages of modules.txt, installed; their linked modules matched to captures.
struct Packages {
    installed: InstalledPackages,
    /// Each installed extension module's id.
    modules: BTreeMap<PathBuf, ModuleId>,
    /// The capture dbs holding them, each with the ids to take from it.
    sources: Vec<Source>,
}

fn install_packages(
    inputs: &Inputs,
    python: &CpythonBuild,
    work: &BuildWork,
) -> Result<Option<Packages>> {
    let Some(set) = &inputs.packages else {
        return Ok(None);
    };
    let installed = packages::install(set, python, &work.packages())?;
    if installed.reused {
        eprintln!(
            "dlstatic: reused {} built packages from {}",
            installed.packages.len(),
            work.packages().display()
        );
    }
    let (modules, sources) = match_installed_modules(&installed.site, &installed.dbs)?;
    Ok(Some(Packages {
        installed,
        modules,
        sources,
    }))
}

/// The interpreter's link: CPython's stdlib modules (less the skipped) and the
/// packages' modules; its audit is written beside the payload.
fn plan_and_audit(
    inputs: &Inputs,
    python: &CpythonBuild,
    packages: Option<&Packages>,
    work: &BuildWork,
) -> Result<Plan> {
    let link_work = work.link();
    link_work.create()?;
    let mut sources = vec![Source {
        db: python.db.clone(),
        ids: None,
    }];
    sources.extend(packages.iter().flat_map(|p| p.sources.iter().cloned()));
    let plan = Plan::build(&Request {
        sources,
        only: Vec::new(),
        exclude: inputs.skip.iter().map(|name| format!("{name}.*")).collect(),
        main_inputs: python.main_inputs()?,
        linker_args: inputs.linker_args.clone(),
        eager_constructors: inputs.eager_constructors,
        work: &link_work,
    })
    .context("planning the link")?;
    let report = audit::report(&plan);
    crate::fsutil::write_atomic(&work.audit(), &serde_json::to_vec_pretty(&report)?)?;
    eprintln!(
        "dlstatic: audit: {} errors, {} warnings, {} info ({})",
        report.count(Severity::Error),
        report.count(Severity::Warning),
        report.count(Severity::Info),
        work.audit().display()
    );
    Ok(plan)
}

/// Link the interpreter into `root`/bin and lay out the payload around it.
#[allow(clippy::too_many_arguments)]
fn link_and_assemble(
    options: &BuildOptions,
    inputs: &Inputs,
    python: &CpythonBuild,
    packages: Option<&Packages>,
    plan: &Plan,
    root: &Path,
    work: &BuildWork,
    timings: &mut Timings,
) -> Result<Manifest> {
    std::fs::create_dir_all(root.join("bin"))?;
    let interpreter = root.join("bin").join(format!("python{}", python.version));
    let summary =
        link::link(plan, &interpreter, &work.link()).context("linking the static interpreter")?;
    if summary.reused == plan.modules.len() {
        eprintln!(
            "dlstatic: reused all {} converted modules from {}",
            summary.reused,
            work.link().dir().display()
        );
    }
    timings.extend(&summary.timings);
    let payload_options = PayloadOptions {
        keep_so: options.keep_so,
        full_stdlib: options.full_stdlib,
    };
    let modules: Vec<&Module> = plan.modules.iter().map(|m| &m.module).collect();
    let site = packages.map(|p| (p.installed.site.as_path(), &p.modules));
    let mut manifest = payload::assemble(
        root,
        &python.installed,
        site,
        &python.version,
        &modules,
        &payload_options,
    )?;
    describe_packages(
        &mut manifest,
        packages.map(|p| &p.installed),
        options.modules.as_deref(),
    )?;
    crate::fsutil::write_atomic(&work.manifest(), &serde_json::to_vec_pretty(&manifest)?)?;
    for name in &manifest.skipped {
        eprintln!(
            "dlstatic: skipped {name} (listed in {})",
            inputs.skip_source
        );
    }
    timings.lap("payload");
    Ok(manifest)
}

fn report_built(out: &Path, version: &str, manifest: &Manifest, started: Instant) {
    let stdlib = manifest
        .modules
        .iter()
        .filter(|m| m.package == "stdlib")
        .count();
    eprintln!(
        "dlstatic: built {} — static python{version} with {stdlib} stdlib modules ({} skipped) and {} third-party modules linked in, in {:.1?}",
        out.display(),
        manifest.skipped.len(),
        manifest.modules.len() - stdlib,
        started.elapsed()
    );
}

/// Everything the payload is made from: when OUT was built with the same key, a build
/// has nothing to do. dlstatic's own executable is part of it, so an upgrade rebuilds.
fn build_key(
    options: &BuildOptions,
    source_key: &str,
    packages: Option<&packages::PackageSet>,
    skip: &[String],
) -> Result<String> {
    let exe = std::env::current_exe()?;
    let mut context = md5::Context::new();
    context
        .consume(std::fs::read(&exe).with_context(|| format!("{}: cannot read", exe.display()))?);
    let settings = format!(
        "{source_key}\0{}\0{}\0{}\0{}\0{}\0{:?}\0{:?}\0{}",
        packages.map_or("", |p| p.key.as_str()),
        skip.join(" "),
        options.keep_so,
        options.full_stdlib,
        options.verify,
        options.linker,
        options.link_args,
        options.eager_constructors
    );
    context.consume(settings.as_bytes());
    Ok(format!("{:x}", context.finalize()))
}

/// Each module's build backend, and the smoke tests found next to modules.txt
/// (`smoke/<package>.py`) for the packages that were installed.
fn describe_packages(
    manifest: &mut Manifest,
    packages: Option<&InstalledPackages>,
    modules: Option<&Path>,
) -> Result<()> {
    for module in &mut manifest.modules {
        module.backend = match packages.and_then(|p| {
            p.packages
                .iter()
                .find(|p| normalized_name(&p.name) == normalized_name(&module.package))
        }) {
            Some(package) => package.backend.clone(),
            None => "CPython".to_string(),
        };
    }
    let (Some(packages), Some(modules)) = (packages, modules) else {
        return Ok(());
    };
    let smoke_dir = modules.parent().unwrap_or(Path::new(".")).join("smoke");
    for package in &packages.packages {
        let script = smoke_dir.join(format!("{}.py", normalized_name(&package.name)));
        if script.is_file() {
            let code = std::fs::read_to_string(&script)
                .with_context(|| format!("{}: cannot read", script.display()))?;
            manifest.smoke_tests.insert(package.name.clone(), code);
        }
    }
    Ok(())
}

/// The module id (md5 of the linked output) of every extension module installed below
/// `site`: by the installed file's md5, or, where the install step changed the file
/// (CMake rewrites RPATHs), by the one captured link with the same file name; and, for
/// each db that holds any of them, their ids (what link and audit take from it).
fn match_installed_modules(
    site: &Path,
    dbs: &[PathBuf],
) -> Result<(BTreeMap<PathBuf, ModuleId>, Vec<Source>)> {
    let mut records: Vec<(usize, LinkRecord)> = Vec::new();
    for (index, db) in dbs.iter().enumerate() {
        records.extend(
            CaptureDb::open_existing(db)?
                .records()?
                .into_iter()
                .map(|record| (index, record)),
        );
    }
    let mut matched = BTreeMap::new();
    let mut ids_by_db = vec![BTreeSet::new(); dbs.len()];
    for so in payload::extension_files(site)? {
        let id = ModuleId::of(
            &std::fs::read(&so).with_context(|| format!("{}: cannot read", so.display()))?,
        );
        let name = so
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let same_name = || {
            records
                .iter()
                .filter(|(_, r)| r.file_name() == name)
                .collect::<Vec<_>>()
        };
        let (index, record) = match records.iter().find(|(_, r)| r.id == id) {
            Some(found) => found,
            None => match same_name().as_slice() {
                [found] => *found,
                [] => bail!(
                    "{}: installed, but no captured link produced it (a prebuilt binary in the sdist?); it cannot be linked",
                    so.display()
                ),
                several => bail!(
                    "{}: changed after its link, and {} captured links have its name; cannot tell which one it is",
                    so.display(),
                    several.len()
                ),
            },
        };
        ids_by_db[*index].insert(record.id.clone());
        matched.insert(so, record.id.clone());
    }
    let sources = dbs
        .iter()
        .zip(ids_by_db)
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(db, ids)| Source {
            db: db.clone(),
            ids: Some(ids),
        })
        .collect();
    Ok((matched, sources))
}

/// Put `new` where `out` is: the old OUT is moved aside first and removed after.
fn replace_dir(new: &Path, out: &Path) -> Result<()> {
    let old = BuildWork::previous_out(out);
    let _ = std::fs::remove_dir_all(&old);
    if out.exists() {
        std::fs::rename(out, &old)
            .with_context(|| format!("{}: cannot move the previous OUT aside", out.display()))?;
    }
    crate::fsutil::publish(new, out)
        .with_context(|| format!("{}: cannot move the new payload into place", out.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// `skip_builtins.txt`: one stdlib module name per line, `#` comments.
fn parse_skip_list(text: &str, path: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!(
                "{}:{}: `{name}` is not a module name (one name per line, # for comments)",
                path.display(),
                number + 1
            );
        }
        names.push(name.to_string());
    }
    Ok(names)
}
