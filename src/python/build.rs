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

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::audit::{self, Severity};
use crate::plan::analyze::Module;
use crate::plan::{Plan, ProgramSettings, Request, Source};
use crate::progress::Timings;
use crate::python::cpython::CpythonBuild;
use crate::python::payload::{self, Manifest, PayloadOptions};
use crate::python::site::{self, Packages};
use crate::python::{cpython, packages, verify};
use crate::toolchain;
use crate::workdir::{BuildWork, this_dlstatic};
use crate::{deploy, deps, link};

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
    /// Link static-pie.
    pub pie: bool,
    /// Force glibc's public functions into the link (ProgramSettings::libc_exports).
    pub libc_exports: bool,
    /// Keep packages' test packages and their extension modules.
    pub keep_tests: bool,
    /// Print the time each stage took.
    pub timings: bool,
    /// Build every package, leaving out those that fail (exit code PARTIAL_EXIT_CODE).
    pub keep_going: bool,
    /// `--cc-launcher` for the packages' compiles.
    pub cc_launcher: Option<String>,
    /// Build missing static libraries from their Debian source packages (src/deps/).
    pub build_deps: bool,
}

/// What `build` made of OUT.
#[derive(Debug, PartialEq, Eq)]
pub enum Built {
    /// Everything modules.txt asks for (or OUT was up to date).
    Complete,
    /// With `--keep-going`: the payload lacks packages that failed to build.
    Partial,
}

/// `dlstatic build`'s exit code for a `Built::Partial` payload.
pub const PARTIAL_EXIT_CODE: i32 = 3;

pub fn build(options: &BuildOptions) -> Result<Built> {
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
        return Ok(Built::Complete);
    }
    std::fs::create_dir_all(work.logs())
        .with_context(|| format!("{}: cannot create", work.logs().display()))?;
    timings.lap("check inputs");

    let (python, packages) = python_and_packages(options, &inputs, &work, &mut timings)?;
    let failed = packages.as_ref().map_or(&[][..], |p| &p.installed.failed);

    let parent = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let staging = tempfile::Builder::new()
        .prefix(&BuildWork::staging_prefix(&out))
        .tempdir_in(parent)?;
    let root = staging.path();
    let deps = match options.build_deps {
        true => deps::Mode::Build { jobs: options.jobs },
        false => deps::Mode::Off,
    };
    let (plan, built) = plan_and_audit(&inputs, &python, packages.as_ref(), &work, deps)?;
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
    report_built(&out, &python.version, &manifest, &built, started);
    timings.print();
    if !failed.is_empty() {
        // no stamp: the next build tries the failed packages again
        report_failed(failed);
        return Ok(Built::Partial);
    }
    stamp.write(&inputs.key)?;
    Ok(Built::Complete)
}

/// Steps 1 and 2: the CPython build (cached) and the packages of modules.txt.
fn python_and_packages(
    options: &BuildOptions,
    inputs: &Inputs,
    work: &BuildWork,
    timings: &mut Timings,
) -> Result<(CpythonBuild, Option<Packages>)> {
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
    let install_options = packages::InstallOptions {
        jobs: options.jobs,
        keep_going: options.keep_going,
        cc_launcher: inputs.cc_launcher.clone(),
    };
    let packages = (inputs.packages.as_ref())
        .map(|set| site::install_packages(set, &python, work, &install_options, options.keep_tests))
        .transpose()?;
    timings.lap("packages");
    Ok((python, packages))
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
    pie: bool,
    libc_exports: bool,
    /// `--cc-launcher`, found (its path).
    cc_launcher: Option<String>,
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
        let cc_launcher = (options.cc_launcher.as_deref())
            .map(crate::capture::launcher::find)
            .transpose()?
            .map(|path| path.to_string_lossy().into_owned());
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
            pie: options.pie,
            libc_exports: options.libc_exports,
            cc_launcher,
            key,
        })
    }
}

/// The interpreter's link: CPython's stdlib modules (less the skipped) and the
/// packages' modules, with the static libraries they lack built as `deps` says; its
/// audit is written beside the payload.
fn plan_and_audit(
    inputs: &Inputs,
    python: &CpythonBuild,
    packages: Option<&Packages>,
    work: &BuildWork,
    deps: deps::Mode,
) -> Result<(Plan, Vec<deps::Built>)> {
    let link_work = work.link();
    link_work.create()?;
    let mut sources = vec![Source {
        db: python.db.clone(),
        ids: None,
    }];
    sources.extend(packages.iter().flat_map(|p| p.sources.iter().cloned()));
    // the launcher wraps CPython's main: single-file start-up, multi-call, PID 1
    let mut linker_args = inputs.linker_args.clone();
    linker_args.extend(deploy::launcher::link_args(
        &python.installed,
        &python.version,
        &work.launcher(),
    )?);
    let program = ProgramSettings {
        main_inputs: python.main_inputs()?,
        linker_args,
        eager_constructors: inputs.eager_constructors,
        pie: inputs.pie,
        libc_exports: inputs.libc_exports,
    };
    let outcome = deps::plan(deps, |dep_prefixes| {
        Plan::build(&Request {
            sources: sources.clone(),
            only: Vec::new(),
            exclude: inputs.skip.iter().map(|name| format!("{name}.*")).collect(),
            program: program.clone(),
            dep_prefixes: dep_prefixes.to_vec(),
            work: &link_work,
        })
        .context("planning the link")
    })?;
    let plan = outcome.plan;
    let report = audit::report(&plan);
    crate::fsutil::write_atomic(&work.audit(), &serde_json::to_vec_pretty(&report)?)?;
    eprintln!(
        "dlstatic: audit: {} errors, {} warnings, {} info ({})",
        report.count(Severity::Error),
        report.count(Severity::Warning),
        report.count(Severity::Info),
        work.audit().display()
    );
    Ok((plan, outcome.built))
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
        keep_tests: options.keep_tests,
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
    site::describe_packages(
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

fn report_built(
    out: &Path,
    version: &str,
    manifest: &Manifest,
    built: &[deps::Built],
    started: Instant,
) {
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
    if manifest.test_files_left_out > 0 {
        eprintln!(
            "dlstatic: left out packages' test packages: {} files, {} of them extension modules (--keep-tests keeps them)",
            manifest.test_files_left_out,
            manifest.test_modules_left_out.len()
        );
    }
    for dep in built {
        eprintln!("dlstatic: {}", dep.describe());
    }
}

/// `--keep-going`'s summary: each package left out, why, and its log.
fn report_failed(failed: &[packages::FailedPackage]) {
    eprintln!(
        "dlstatic: {} package{} failed to build and {} left out (exit code {PARTIAL_EXIT_CODE}):",
        failed.len(),
        if failed.len() == 1 { "" } else { "s" },
        if failed.len() == 1 { "is" } else { "are" }
    );
    for package in failed {
        eprintln!(
            "  {} {}: {} (log: {})",
            package.name,
            package.version,
            package.cause,
            package.log.display()
        );
    }
}

/// Everything the payload is made from: when OUT was built with the same key, a build
/// has nothing to do. dlstatic's own executable is part of it, so an upgrade rebuilds.
fn build_key(
    options: &BuildOptions,
    source_key: &str,
    packages: Option<&packages::PackageSet>,
    skip: &[String],
) -> Result<String> {
    let mut context = md5::Context::new();
    context.consume(this_dlstatic()?);
    let settings = format!(
        "{source_key}\0{}\0{}\0{}\0{}\0{}\0{:?}\0{:?}\0{}\0{}\0{}\0{}\0{}",
        packages.map_or("", |p| p.key.as_str()),
        skip.join(" "),
        options.keep_so,
        options.full_stdlib,
        options.verify,
        options.linker,
        options.link_args,
        options.eager_constructors,
        options.pie,
        options.libc_exports,
        options.keep_tests,
        options.build_deps
    );
    context.consume(settings.as_bytes());
    Ok(format!("{:x}", context.finalize()))
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
