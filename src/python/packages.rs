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

use crate::capture::db::CaptureDb;
use crate::fsutil;
use crate::progress::Step;
use crate::python::cpython::CpythonBuild;
use crate::python::modules_txt;

const SDIST_BACKEND: &str = include_str!("sdist_backend.py");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// `wheel` for a pure-Python wheel, else the sdist's build backend
    /// (`setuptools.build_meta`, `mesonpy`, `maturin`, …).
    pub backend: String,
    pub log: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct InstalledPackages {
    pub site: PathBuf,
    /// One capture db per package, in install order.
    pub dbs: Vec<PathBuf>,
    pub packages: Vec<Package>,
    #[serde(skip)]
    pub reused: bool,
}

/// One entry of `pip install --report`.
#[derive(Deserialize)]
struct ReportItem {
    metadata: ReportMetadata,
    download_info: DownloadInfo,
    #[serde(default)]
    is_direct: bool,
}

#[derive(Deserialize)]
struct ReportMetadata {
    name: String,
    version: String,
}

#[derive(Deserialize)]
struct DownloadInfo {
    url: String,
}

#[derive(Deserialize)]
struct Report {
    install: Vec<ReportItem>,
}

/// What modules.txt asks for, and a key that changes whenever that does.
pub struct PackageSet {
    requirements: Vec<modules_txt::Requirement>,
    build_deps: Vec<String>,
    /// The local trees it names, each with the digest of its contents.
    local_trees: HashMap<String, String>,
    pub key: String,
}

pub fn plan(modules: &Path) -> Result<PackageSet> {
    let requirements = modules_txt::parse_file(modules)?;
    let requirements_text: String = requirements
        .iter()
        .map(|r| format!("{}\n", r.pip))
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
        requirements,
        build_deps,
        local_trees,
        key,
    })
}

/// Bumped when a cached package build changes layout or meaning.
const PACKAGE_CACHE_FORMAT: u32 = 1;

pub fn install(set: &PackageSet, python: &CpythonBuild, km: &Path) -> Result<InstalledPackages> {
    let PackageSet {
        requirements,
        build_deps,
        local_trees,
        ..
    } = set;
    let dir = km.join("packages");
    let key = format!(
        "{:x}",
        md5::compute(format!("{}\0{}", set.key, python.tree.display()))
    );
    let state = dir.join("packages.json");
    if std::fs::read_to_string(dir.join("key")).ok().as_deref() == Some(key.as_str()) {
        if let Some(mut cached) = std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<InstalledPackages>(&b).ok())
        {
            // the package cache may have been cleared since
            if cached.dbs.iter().all(|db| db.is_dir()) {
                cached.reused = true;
                return Ok(cached);
            }
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("{}: cannot clear", dir.display()))?;
    }
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    // pip writes into a local tree even to resolve it (its metadata) and to build it:
    // it gets copies, so the user's trees stay clean
    let mut tree_digests = HashMap::new();
    let mut requirements_text = String::new();
    for (n, requirement) in requirements.iter().enumerate() {
        let line = match local_trees.get(&requirement.pip) {
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
            None => requirement.pip.clone(),
        };
        requirements_text.push_str(&format!("{line}\n"));
    }
    std::fs::write(dir.join("requirements.txt"), requirements_text)?;

    let venv = dir.join("venv");
    let dynamic = python
        .installed
        .join("bin")
        .join(format!("python{}", python.version));
    Step::new("create the build venv", &logs.join("venv.log"))
        .run(&command(&dynamic, &["-m", "venv", &text(&venv)]), &dir)?;
    let pip = venv.join("bin/pip");
    if !build_deps.is_empty() {
        let mut cmd = command(&pip, &["install"]);
        cmd.extend(build_deps.iter().cloned());
        Step::new("install Kontain build deps", &logs.join("build-deps.log")).run(&cmd, &dir)?;
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
    Step::new("resolve packages with pip", &logs.join("resolve.log")).run(&resolve, &dir)?;
    let report: Report = serde_json::from_slice(&std::fs::read(&report_path)?)
        .with_context(|| format!("{}: unreadable pip report", report_path.display()))?;

    let index_options: Vec<String> = requirements
        .iter()
        .filter(|r| r.pip.starts_with('-'))
        .flat_map(|r| {
            r.pip
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    let builder = Builder {
        pip,
        venv_python: venv.join("bin/python"),
        index_options,
        build_deps: build_deps.clone(),
        python_tree: python.tree.clone(),
        exe: std::env::current_exe()?,
        cache: crate::python::cpython::cache_root().join("packages"),
        tree_digests,
        dir: dir.clone(),
    };
    let site = dir.join("site");
    std::fs::create_dir_all(&site)?;
    let (mut packages, mut dbs) = (Vec::new(), Vec::new());
    for item in &report.install {
        let log = logs.join(format!("{}.log", item.metadata.name));
        let (package, built) = builder.build(item, &log)?;
        fsutil::copy_tree(&built.join("site"), &site, &|_| false)?;
        dbs.push(built.join("db"));
        packages.push(package);
    }
    let installed = InstalledPackages {
        site,
        dbs,
        packages,
        reused: false,
    };
    std::fs::write(&state, serde_json::to_vec_pretty(&installed)?)?;
    std::fs::write(dir.join("key"), &key)?;
    Ok(installed)
}

/// What every package build shares.
struct Builder {
    pip: PathBuf,
    venv_python: PathBuf,
    /// `--index-url …` and friends from modules.txt
    index_options: Vec<String>,
    build_deps: Vec<String>,
    python_tree: PathBuf,
    /// this dlstatic, which pip's builds run under `capture`
    exe: PathBuf,
    cache: PathBuf,
    /// copies of the local trees → the digest of the original's contents
    tree_digests: HashMap<PathBuf, String>,
    dir: PathBuf,
}

impl Builder {
    /// Build and install one package on its own, logging to `log`, or find it built in
    /// the cache (its log is copied to `log`). Returns the package and the directory
    /// holding its `site/`, `db/` and `build.log`.
    fn build(&self, item: &ReportItem, log: &Path) -> Result<(Package, PathBuf)> {
        let ReportMetadata { name, version } = &item.metadata;
        let url = &item.download_info.url;
        let local = url
            .strip_prefix("file://")
            .map(Path::new)
            .filter(|p| p.is_dir());
        let key = self.cache_key(name, version, url, local, item.is_direct)?;
        let cached = key.as_ref().map(|key| self.cache.join(key));
        if let Some(cached) = cached.as_ref().filter(|c| c.join("package.json").is_file()) {
            let package: Package = serde_json::from_slice(&std::fs::read(
                cached.join("package.json"),
            )?)
            .with_context(|| format!("{}: corrupt package cache entry", cached.display()))?;
            std::fs::copy(cached.join("build.log"), log)
                .with_context(|| format!("{}: cannot copy the build log", cached.display()))?;
            eprintln!(
                "dlstatic: build {name} {version} ({}): reused from {}",
                package.backend,
                cached.display()
            );
            return Ok((
                Package {
                    log: log.to_path_buf(),
                    ..package
                },
                cached.clone(),
            ));
        }

        // built in a staging directory beside its final place, which it replaces whole
        let parent = if cached.is_some() {
            self.cache.clone()
        } else {
            self.dir.join("builds")
        };
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("{}: cannot create", parent.display()))?;
        let staging = tempfile::Builder::new()
            .prefix(".building-")
            .tempdir_in(&parent)?;
        let (site, db) = (staging.path().join("site"), staging.path().join("db"));
        let pure_wheel = url.ends_with("-none-any.whl");
        let spec = match local {
            Some(tree) => text(tree),
            None if item.is_direct => url.clone(),
            None => format!("{name}=={version}"),
        };
        let backend = match local {
            _ if pure_wheel => "wheel".to_string(),
            Some(tree) => declared_backend(
                &std::fs::read_to_string(tree.join("pyproject.toml")).unwrap_or_default(),
            ),
            None => sdist_backend(&self.venv_python, name, version),
        };
        let mut cmd = command(&self.exe, &["capture", "--db", &text(&db), "--"]);
        // no wheel cache: a cached wheel would install a .so that no capture saw being linked
        cmd.extend(command(
            &self.pip,
            &[
                "install",
                "--use-pep517",
                "--no-cache-dir",
                "--no-deps",
                "--ignore-installed",
                "--target",
                &text(&site),
            ],
        ));
        if !pure_wheel {
            cmd.extend(["--no-binary".into(), name.clone()]);
        }
        cmd.extend(self.index_options.iter().cloned());
        cmd.push(spec);
        Step::new(&format!("build {name} {version} ({backend})"), log)
            .run(&cmd, &self.dir)
            .with_context(|| {
                format!("package {name} {version} (backend {backend}) failed to build")
            })?;
        // console scripts point at the build venv; the payload has no use for them
        let _ = std::fs::remove_dir_all(site.join("bin"));
        CaptureDb::open(&db)?; // a pure package links nothing, but has its (empty) db
        std::fs::copy(log, staging.path().join("build.log"))?;
        let package = Package {
            name: name.clone(),
            version: version.clone(),
            backend,
            log: log.to_path_buf(),
        };
        // written last: its presence marks the entry complete
        std::fs::write(
            staging.path().join("package.json"),
            serde_json::to_vec_pretty(&package)?,
        )?;

        let place = cached.unwrap_or_else(|| self.dir.join("builds").join(name));
        let staged = staging.keep();
        if let Err(error) = std::fs::rename(&staged, &place) {
            // another build put the same package in the cache meanwhile: use that one
            let _ = std::fs::remove_dir_all(&staged);
            if !place.join("package.json").is_file() {
                return Err(error).with_context(|| {
                    format!(
                        "{}: cannot move the package build into place",
                        place.display()
                    )
                });
            }
        }
        Ok((package, place))
    }

    /// What identifies a package build; None for a remote URL, whose content the URL
    /// does not pin.
    fn cache_key(
        &self,
        name: &str,
        version: &str,
        url: &str,
        local: Option<&Path>,
        is_direct: bool,
    ) -> Result<Option<String>> {
        let source = match local {
            Some(tree) => match tree
                .canonicalize()
                .ok()
                .and_then(|tree| self.tree_digests.get(&tree))
            {
                Some(digest) => digest.clone(),
                None => content_digest(tree)?,
            },
            None if is_direct => return Ok(None),
            None => url.to_string(),
        };
        let key_text = format!(
            "{PACKAGE_CACHE_FORMAT}\0{}\0{name}\0{version}\0{source}\0{}\0{}\0{}",
            crate::capture::db::RECORD_VERSION,
            self.index_options.join(" "),
            self.build_deps.join(" "),
            self.python_tree.display()
        );
        Ok(Some(format!(
            "{name}-{version}-{:x}",
            md5::compute(key_text)
        )))
    }
}

/// A command line from a program path and arguments.
fn command(program: &Path, arguments: &[&str]) -> Vec<String> {
    std::iter::once(text(program))
        .chain(arguments.iter().map(|a| a.to_string()))
        .collect()
}

fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The build backend the package's sdist on PyPI declares, read without building
/// (`pip download` of an sdist would build it just to learn its metadata).
fn sdist_backend(venv_python: &Path, name: &str, version: &str) -> String {
    std::process::Command::new(venv_python)
        .args(["-c", SDIST_BACKEND, name, version])
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|backend| !backend.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// `build-system.build-backend` of a pyproject.toml; setuptools' legacy path without one.
fn declared_backend(pyproject: &str) -> String {
    let backend = regex::Regex::new(r#"build-backend\s*=\s*["']([^"']+)["']"#).unwrap();
    backend
        .captures(pyproject)
        .map_or("setuptools (legacy)".to_string(), |c| c[1].to_string())
}

/// md5 over the relative paths and contents of every file under `path` (or of the file),
/// following symlinks.
fn content_digest(path: &Path) -> Result<String> {
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
