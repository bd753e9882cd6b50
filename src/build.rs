//! `dlstatic build`: CPython source → static interpreter payload.
//!
//! 1. configure + make CPython under capture (cached, see cpython.rs)
//! 2. link python.o + libpython + every stdlib module not skipped (link.rs)
//! 3. assemble the payload (payload.rs) in a staging directory next to OUT
//! 4. verify it in an empty root (verify.rs), then swap it into place
//!
//! OUT is replaced only when every step worked; logs are in OUT.km/logs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::audit::{self, Severity};
use crate::db::{CaptureDb, LinkRecord};
use crate::link::{self, LinkOptions};
use crate::packages::InstalledPackages;
use crate::payload::{self, Manifest, PayloadOptions};
use crate::progress::Timings;
use crate::{cpython, deploy, packages, toolchain, verify};

/// extensions/skip_builtins.txt as shipped, the default skip list.
const DEFAULT_SKIP_LIST: &str = include_str!("../extensions/skip_builtins.txt");

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
    /// Print the time each stage took.
    pub timings: bool,
    /// Link static-pie.
    pub pie: bool,
}

pub fn build(options: &BuildOptions) -> Result<()> {
    let started = Instant::now();
    let mut timings = Timings::new(options.timings);
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
    let out = std::path::absolute(&options.out)?;
    let km = link::work_dir(&out);
    let logs = km.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("{}: cannot create", logs.display()))?;
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
    let package_set = options.modules.as_deref().map(packages::plan).transpose()?;
    let key = build_key(options, &source_key, package_set.as_ref(), &skip)?;
    let key_file = km.join("build-key");
    if out.join("bin").is_dir()
        && std::fs::read_to_string(&key_file).ok().as_deref() == Some(key.as_str())
    {
        eprintln!(
            "dlstatic: {} is up to date (same CPython source, modules, skip list, options and dlstatic); nothing to do",
            out.display()
        );
        timings.lap("check inputs");
        timings.print();
        return Ok(());
    }
    timings.lap("check inputs");

    let python = cpython::build(&source, &source_key, options.jobs, &logs)?;
    if python.reused {
        eprintln!(
            "dlstatic: reused the CPython {} build cached at {}",
            python.version,
            python.tree.parent().unwrap().display()
        );
    }
    timings.lap("CPython");

    let parent = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".dlstatic-staging")
        .tempdir_in(parent)?;
    let root = staging.path();
    std::fs::create_dir_all(root.join("bin"))?;
    let interpreter = root.join("bin").join(format!("python{}", python.version));
    let packages = match &package_set {
        Some(set) => {
            let installed = packages::install(set, &python, &km)?;
            if installed.reused {
                eprintln!(
                    "dlstatic: reused {} built packages from {}",
                    installed.packages.len(),
                    km.join("packages").display()
                );
            }
            Some(installed)
        }
        None => None,
    };
    // of the packages' captured links, those whose output was installed, by db
    let (installed_modules, extra_dbs) = match &packages {
        Some(installed) => match_installed_modules(&installed.site, &installed.dbs)?,
        None => (BTreeMap::new(), Vec::new()),
    };
    timings.lap("packages");

    let main_inputs = python.main_inputs()?;
    linker_args.extend(deploy::launcher::link_args(
        &python.installed,
        &python.version,
        &km.join("launcher"),
    )?);
    let exclude: Vec<String> = skip.iter().map(|name| format!("{name}.*")).collect();
    let link_work = km.join("link");
    std::fs::create_dir_all(&link_work)
        .with_context(|| format!("{}: cannot create", link_work.display()))?;
    let report = audit::audit(
        &python.db,
        &extra_dbs,
        &main_inputs,
        &exclude,
        Some(&link_work),
    )
    .context("auditing the modules")?;
    crate::fsutil::write_atomic(&km.join("audit.json"), &serde_json::to_vec_pretty(&report)?)?;
    eprintln!(
        "dlstatic: audit: {} errors, {} warnings, {} info ({})",
        report.count(Severity::Error),
        report.count(Severity::Warning),
        report.count(Severity::Info),
        km.join("audit.json").display()
    );
    timings.lap("audit");
    let link_options = LinkOptions {
        db: python.db.clone(),
        output: interpreter.clone(),
        work: link_work,
        only: Vec::new(),
        exclude,
        extra_dbs,
        main_inputs,
        linker_args,
        pie: options.pie,
    };
    let summary = link::link(&link_options).context("linking the static interpreter")?;
    if summary.reused == summary.modules.len() {
        eprintln!(
            "dlstatic: reused all {} converted modules from {}",
            summary.reused,
            link_options.work.display()
        );
    }
    timings.extend(&summary.timings);

    let payload_options = PayloadOptions {
        keep_so: options.keep_so,
        full_stdlib: options.full_stdlib,
    };
    let site = packages.as_ref().map(|p| p.site.as_path());
    let site = site.map(|site| (site, &installed_modules));
    let manifest = payload::assemble(
        root,
        &python.installed,
        site,
        &python.version,
        &summary.modules,
        &payload_options,
    )?;
    let mut manifest = manifest;
    describe_packages(&mut manifest, packages.as_ref(), options.modules.as_deref())?;
    crate::fsutil::write_atomic(
        &km.join("manifest.json"),
        &serde_json::to_vec_pretty(&manifest)?,
    )?;
    for name in &manifest.skipped {
        eprintln!("dlstatic: skipped {name} (listed in {skip_source})");
    }
    timings.lap("payload");

    if options.verify {
        verify::verify(root, &manifest)
            .context("verifying the new payload (OUT left as it was)")?;
        timings.lap("verify");
    }
    // removed first: a build interrupted after the swap is not taken for current
    let _ = std::fs::remove_file(&key_file);
    replace_dir(root, &out)?;
    let _ = staging.keep();
    crate::fsutil::write_atomic(&key_file, key.as_bytes())?;
    let stdlib = manifest
        .modules
        .iter()
        .filter(|m| m.package == "stdlib")
        .count();
    eprintln!(
        "dlstatic: built {} — static python{} with {stdlib} stdlib modules ({} skipped) and {} third-party modules linked in, in {:.1?}",
        out.display(),
        python.version,
        manifest.skipped.len(),
        manifest.modules.len() - stdlib,
        started.elapsed()
    );
    timings.print();
    Ok(())
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
        options.pie
    );
    context.consume(settings.as_bytes());
    Ok(format!("{:x}", context.finalize()))
}

/// pip's name normalization (PEP 503), to match dist-info names with requirements.
fn normalized(name: &str) -> String {
    name.to_lowercase().replace(['_', '.'], "-")
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
                .find(|p| normalized(&p.name) == normalized(&module.package))
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
        let script = smoke_dir.join(format!("{}.py", normalized(&package.name)));
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
) -> Result<(BTreeMap<PathBuf, String>, Vec<(PathBuf, BTreeSet<String>)>)> {
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
        let md5 = format!(
            "{:x}",
            md5::compute(
                std::fs::read(&so).with_context(|| format!("{}: cannot read", so.display()))?
            )
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
        let (index, record) = match records.iter().find(|(_, r)| r.md5 == md5) {
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
        ids_by_db[*index].insert(record.md5.clone());
        matched.insert(so, record.md5.clone());
    }
    let extra_dbs = dbs
        .iter()
        .cloned()
        .zip(ids_by_db)
        .filter(|(_, ids)| !ids.is_empty())
        .collect();
    Ok((matched, extra_dbs))
}

/// Put `new` where `out` is: the old OUT is moved aside first and removed after.
fn replace_dir(new: &Path, out: &Path) -> Result<()> {
    let old = out.with_file_name(format!(
        ".{}.old",
        out.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&old);
    if out.exists() {
        std::fs::rename(out, &old)
            .with_context(|| format!("{}: cannot move the previous OUT aside", out.display()))?;
    }
    std::fs::rename(new, out)
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
