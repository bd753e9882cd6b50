//! Third-party packages: `modules.txt` → the full dependency set (pip's resolver) →
//! every package installed on its own, packages with compiled code built from their
//! sdists under capture → one site directory and a capture db per package.
//!
//! pip runs in a venv of the dynamic interpreter of the same CPython build: same ABI,
//! and it has the headers (`include/`) the static payload does not ship. Build
//! dependencies (Cython, meson, setuptools) come as wheels in pip's isolated build
//! environments; only `.so` files that end up in the site directory are linked.
//!
//! A package from an index or a local tree is built once per CPython build and reused by
//! every later build, whatever its modules file (adding `requests` does not rebuild
//! numpy); one given by a remote URL is built anew each time, since its URL may name
//! different code tomorrow.
//!
//! ```text
//! OUT.km/packages/
//!   key               md5 of the requirements and the CPython build: a match reuses all
//!   requirements.txt  modules.txt with Kontain lines turned into pip requirements and
//!                     local trees replaced by copies in src/, which pip may write into
//!   venv/ report.json  the build interpreter and pip's resolution
//!   site/ logs/        every package's files together, one log each
//!   builds/<name>/     packages built without caching (remote URLs), laid out as below
//! CACHE/packages/<package key>/
//!   site/ db/          what `pip install --target` put there for that package alone,
//!                      and the capture db of its links
//!   package.json build.log
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::progress::Step;
use crate::python::cpython::CpythonBuild;
use crate::python::modules_txt;
use crate::python::package_build::{Builder, Built, Report, ReportItem, failure_cause, log_of};

/// The pip a build venv gets when modules.txt has config settings. CPython 3.11's
/// bundled pip (22.3) keeps only the last value of a key given twice (meson-python's
/// `setup-args` often is) and reads no config settings in a requirements file; pip 23.1
/// and later do both, so each setting reaches its own package's backend, resolution
/// included.
const PIP_FOR_CONFIG_SETTINGS: &str = "pip==24.3.1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// `wheel` for a pure-Python wheel, else the sdist's build backend
    /// (`setuptools.build_meta`, `mesonpy`, `maturin`, …).
    pub backend: String,
    pub log: PathBuf,
}

/// A package that failed to build (with `--keep-going`): left out of the payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailedPackage {
    pub name: String,
    pub version: String,
    /// One line saying why (the first compiler error, or pip's complaint).
    pub cause: String,
    pub log: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct InstalledPackages {
    pub site: PathBuf,
    /// One capture db per package, in install order.
    pub dbs: Vec<PathBuf>,
    pub packages: Vec<Package>,
    /// In install order; empty unless `keep_going`.
    #[serde(default)]
    pub failed: Vec<FailedPackage>,
    #[serde(skip)]
    pub reused: bool,
}

/// How the packages are built.
pub struct InstallOptions {
    /// Jobs in all: packages built at once, and shared by their own builds.
    pub jobs: usize,
    /// A package that fails is left out and the others built (`build --keep-going`).
    pub keep_going: bool,
    /// `--cc-launcher` for the packages' compiles.
    pub cc_launcher: Option<String>,
}

/// What modules.txt asks for, and a key that changes whenever that does.
pub struct PackageSet {
    requirements: Vec<modules_txt::Requirement>,
    build_deps: Vec<String>,
    /// Each project's settings for its build backend (PEP 503 name → `KEY=VALUE`s).
    config_settings: HashMap<String, Vec<String>>,
    /// The local trees it names, each with the digest of its contents.
    local_trees: HashMap<String, String>,
    pub key: String,
}

pub fn plan(modules: &Path) -> Result<PackageSet> {
    let requirements = modules_txt::parse_file(modules)?;
    let requirements_text: String = requirements
        .iter()
        .map(|r| format!("{}\n", r.pip_line()))
        .collect();
    let build_deps: Vec<String> = requirements
        .iter()
        .flat_map(|r| r.build_deps.iter().cloned())
        .collect();
    let mut key_text = format!("{requirements_text}\0{}", build_deps.join(" "));
    // a local tree or archive is named by a path that stays the same when its files change
    let mut local_trees = HashMap::new();
    for local in requirements
        .iter()
        .map(|r| Path::new(&r.pip))
        .filter(|p| p.is_absolute() && p.exists())
    {
        let digest = content_digest(local)?;
        key_text.push_str(&digest);
        if local.is_dir() {
            local_trees.insert(text(local), digest);
        }
    }
    let key = format!("{:x}", md5::compute(key_text));
    Ok(PackageSet {
        config_settings: modules_txt::config_settings_by_project(&requirements)?,
        requirements,
        build_deps,
        local_trees,
        key,
    })
}

/// Install what `set` resolves to into `dir` (`OUT.km/packages`, laid out as above):
/// each package built under capture or taken from the package cache, several at once.
pub fn install(
    set: &PackageSet,
    python: &CpythonBuild,
    dir: &Path,
    options: &InstallOptions,
) -> Result<InstalledPackages> {
    let dir = dir.to_path_buf();
    let key = format!(
        "{:x}",
        md5::compute(format!("{}\0{}", set.key, python.tree.display()))
    );
    if let Some(reused) = reuse(&dir, &key) {
        return Ok(reused);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("{}: cannot clear", dir.display()))?;
    }
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let tree_digests = write_requirements(set, &dir)?;
    let venv = dir.join("venv");
    let report = resolve(python, set, &venv, &dir)?;
    let workers = options.jobs.min(report.install.len()).max(1);
    let builder = Builder {
        pip: venv.join("bin/pip"),
        venv_python: venv.join("bin/python"),
        index_options: index_options(&set.requirements),
        build_deps: set.build_deps.clone(),
        config_settings: set.config_settings.clone(),
        python_tree: python.tree.clone(),
        exe: std::env::current_exe()?,
        cache: crate::python::cpython::cache_root().join("packages"),
        tree_digests,
        dir: dir.clone(),
        workers,
        jobs: options.jobs,
        cc_launcher: options.cc_launcher.clone(),
    };
    let results = builder.build_all(&report.install, &logs, options.keep_going)?;
    let installed = gather(&report.install, results, &logs, &dir.join("site"))?;
    std::fs::write(
        dir.join("packages.json"),
        serde_json::to_vec_pretty(&installed)?,
    )?;
    // a partial set is not reused: the next build tries the failed packages again
    if installed.failed.is_empty() {
        std::fs::write(dir.join("key"), &key)?;
    }
    Ok(installed)
}

/// The packages built, in install order, with their files copied into one `site`; the
/// ones that failed (there are some only with `keep_going`) named with their cause.
fn gather(
    items: &[ReportItem],
    results: Vec<Result<Built>>,
    logs: &Path,
    site: &Path,
) -> Result<InstalledPackages> {
    std::fs::create_dir_all(site)?;
    let (mut packages, mut dbs, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for (item, result) in items.iter().zip(results) {
        match result {
            Ok((package, built)) => {
                fsutil::copy_tree(&built.join("site"), site, &|_| false)?;
                dbs.push(built.join("db"));
                packages.push(package);
            }
            Err(error) => {
                let log = log_of(logs, item);
                failed.push(FailedPackage {
                    name: item.metadata.name.clone(),
                    version: item.metadata.version.clone(),
                    cause: failure_cause(&log)
                        .unwrap_or_else(|| format!("{:#}", error.root_cause())),
                    log,
                });
            }
        }
    }
    Ok(InstalledPackages {
        site: site.to_path_buf(),
        dbs,
        packages,
        failed,
        reused: false,
    })
}

/// The packages installed into `dir` by an earlier build with the same `key`, unless
/// the package cache they live in has been cleared since.
fn reuse(dir: &Path, key: &str) -> Option<InstalledPackages> {
    if std::fs::read_to_string(dir.join("key")).ok()? != key {
        return None;
    }
    let state = std::fs::read(dir.join("packages.json")).ok()?;
    let mut cached: InstalledPackages = serde_json::from_slice(&state).ok()?;
    cached.reused = true;
    cached.dbs.iter().all(|db| db.is_dir()).then_some(cached)
}

/// `dir/requirements.txt`, for pip. pip writes into a local tree even to resolve it
/// (its metadata) and to build it: it gets copies, so the user's trees stay clean.
/// Returns each copy with the digest of its original.
fn write_requirements(set: &PackageSet, dir: &Path) -> Result<HashMap<PathBuf, String>> {
    let mut tree_digests = HashMap::new();
    let mut requirements_text = String::new();
    for (n, requirement) in set.requirements.iter().enumerate() {
        let line = match set.local_trees.get(&requirement.pip) {
            Some(digest) => {
                let tree = Path::new(&requirement.pip);
                let copy = dir.join("src").join(format!(
                    "{n}-{}",
                    tree.file_name().unwrap_or_default().to_string_lossy()
                ));
                fsutil::copy_tree(tree, &copy, &|_| false)?;
                // canonical: pip reports the path normalized its own way
                tree_digests.insert(copy.canonicalize()?, digest.clone());
                text(&copy)
            }
            None => requirement.pip_line(),
        };
        requirements_text.push_str(&format!("{line}\n"));
    }
    std::fs::write(dir.join("requirements.txt"), requirements_text)?;
    Ok(tree_digests)
}

/// Make the build venv (with a newer pip for config settings, and Kontain's build deps)
/// and let pip resolve requirements.txt into the full set of packages to install.
fn resolve(python: &CpythonBuild, set: &PackageSet, venv: &Path, dir: &Path) -> Result<Report> {
    let logs = dir.join("logs");
    let dynamic = python
        .installed
        .join("bin")
        .join(format!("python{}", python.version));
    Step::new("create the build venv", &logs.join("venv.log"))
        .run(&command(&dynamic, &["-m", "venv", &text(venv)]), dir)?;
    let pip = venv.join("bin/pip");
    if !set.config_settings.is_empty() {
        let upgrade = command(&pip, &["install", PIP_FOR_CONFIG_SETTINGS]);
        Step::new("upgrade pip for config settings", &logs.join("pip.log")).run(&upgrade, dir)?;
    }
    if !set.build_deps.is_empty() {
        let mut cmd = command(&pip, &["install"]);
        cmd.extend(set.build_deps.iter().cloned());
        Step::new("install Kontain build deps", &logs.join("build-deps.log")).run(&cmd, dir)?;
    }
    let report_path = dir.join("report.json");
    let resolve = command(
        &pip,
        &[
            "install",
            "--dry-run",
            "--ignore-installed",
            "--report",
            &text(&report_path),
            "-r",
            "requirements.txt",
        ],
    );
    Step::new("resolve packages with pip", &logs.join("resolve.log")).run(&resolve, dir)?;
    serde_json::from_slice(&std::fs::read(&report_path)?)
        .with_context(|| format!("{}: unreadable pip report", report_path.display()))
}

/// `--index-url …` and the other pip options of modules.txt, word by word: every
/// package's build uses them too.
fn index_options(requirements: &[modules_txt::Requirement]) -> Vec<String> {
    requirements
        .iter()
        .filter(|r| r.pip.starts_with('-'))
        .flat_map(|r| r.pip.split_whitespace().map(String::from))
        .collect()
}

/// A command line from a program path and arguments.
pub(super) fn command(program: &Path, arguments: &[&str]) -> Vec<String> {
    std::iter::once(text(program))
        .chain(arguments.iter().map(|a| a.to_string()))
        .collect()
}

pub(super) fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// md5 over the relative paths and contents of every file under `path` (or of the file),
/// following symlinks.
pub(super) fn content_digest(path: &Path) -> Result<String> {
    let mut context = md5::Context::new();
    let walk = walkdir::WalkDir::new(path)
        .follow_links(true)
        .sort_by_file_name();
    for entry in walk {
        let entry = entry.with_context(|| format!("{}: cannot read", path.display()))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry.path().strip_prefix(path).unwrap();
        context.consume(rel.as_os_str().as_encoded_bytes());
        context.consume(
            std::fs::read(entry.path())
                .with_context(|| format!("{}: cannot read", entry.path().display()))?,
        );
    }
    Ok(format!("{:x}", context.finalize()))
}
