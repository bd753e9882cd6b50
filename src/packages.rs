//! Third-party packages: `modules.txt` → the full dependency set (pip's resolver) →
//! every package installed into one site directory, packages with compiled code built
//! from their sdists under capture.
//!
//! pip runs in a venv of the dynamic interpreter of the same CPython build: same ABI,
//! and it has the headers (`include/`) the static payload does not ship. Build
//! dependencies (Cython, meson, setuptools) come as wheels in pip's isolated build
//! environments; only `.so` files that end up in the site directory are linked.
//!
//! ```text
//! OUT.km/packages/
//!   key               md5 of the requirements and the CPython build: a match reuses all
//!   requirements.txt  modules.txt with Kontain lines turned into pip requirements
//!   venv/ report.json  the build interpreter and pip's resolution
//!   site/ db/ logs/    installed packages, capture db of their links, one log each
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::cpython::CpythonBuild;
use crate::fsutil;
use crate::modules_txt;
use crate::progress::Step;

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
    pub db: PathBuf,
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
    requirements_text: String,
    build_deps: Vec<String>,
    pub key: String,
}

pub fn plan(modules: &Path) -> Result<PackageSet> {
    let requirements = modules_txt::parse_file(modules)?;
    let requirements_text: String = requirements.iter().map(|r| format!("{}\n", r.pip)).collect();
    let build_deps: Vec<String> = requirements.iter().flat_map(|r| r.build_deps.iter().cloned()).collect();
    let mut key_text = format!("{requirements_text}\0{}", build_deps.join(" "));
    // a local tree or archive is named by a path that stays the same when its files change
    for local in requirements.iter().map(|r| Path::new(&r.pip)).filter(|p| p.is_absolute() && p.exists()) {
        key_text.push_str(&content_digest(local)?);
    }
    let key = format!("{:x}", md5::compute(key_text));
    Ok(PackageSet { requirements, requirements_text, build_deps, key })
}

pub fn install(set: &PackageSet, python: &CpythonBuild, km: &Path) -> Result<InstalledPackages> {
    let PackageSet { requirements, requirements_text, build_deps, .. } = set;
    let dir = km.join("packages");
    let key = format!("{:x}", md5::compute(format!("{}\0{}", set.key, python.tree.display())));
    let state = dir.join("packages.json");
    if std::fs::read_to_string(dir.join("key")).ok().as_deref() == Some(key.as_str()) {
        if let Some(mut cached) = std::fs::read(&state).ok().and_then(|b| serde_json::from_slice::<InstalledPackages>(&b).ok()) {
            cached.reused = true;
            return Ok(cached);
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("{}: cannot clear", dir.display()))?;
    }
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    std::fs::write(dir.join("requirements.txt"), &requirements_text)?;

    let venv = dir.join("venv");
    let dynamic = python.installed.join("bin").join(format!("python{}", python.version));
    Step::new("create the build venv", &logs.join("venv.log")).run(&command(&dynamic, &["-m", "venv", &text(&venv)]), &dir)?;
    let pip = venv.join("bin/pip");
    if !build_deps.is_empty() {
        let mut cmd = command(&pip, &["install"]);
        cmd.extend(build_deps.iter().cloned());
        Step::new("install Kontain build deps", &logs.join("build-deps.log")).run(&cmd, &dir)?;
    }
    let report_path = dir.join("report.json");
    let resolve = command(&pip, &["install", "--dry-run", "--ignore-installed", "--report", &text(&report_path), "-r", "requirements.txt"]);
    Step::new("resolve packages with pip", &logs.join("resolve.log")).run(&resolve, &dir)?;
    let report: Report = serde_json::from_slice(&std::fs::read(&report_path)?).with_context(|| format!("{}: unreadable pip report", report_path.display()))?;

    let site = dir.join("site");
    let db = dir.join("db");
    let exe = std::env::current_exe()?;
    let index_options: Vec<String> = requirements.iter().filter(|r| r.pip.starts_with('-')).flat_map(|r| r.pip.split_whitespace().map(String::from).collect::<Vec<_>>()).collect();
    let mut packages = Vec::new();
    for item in &report.install {
        let ReportMetadata { name, version } = &item.metadata;
        let url = &item.download_info.url;
        let pure_wheel = url.ends_with("-none-any.whl");
        let log = logs.join(format!("{name}.log"));
        let local = url.strip_prefix("file://").map(Path::new).filter(|p| p.is_dir());
        // pip builds a local tree in place; build a copy so the user's tree stays clean
        let spec = match local {
            Some(tree) => {
                let copy = dir.join("src").join(name);
                fsutil::copy_tree(tree, &copy, Path::new(""), &|_| false)?;
                text(&copy)
            }
            None if item.is_direct => url.clone(),
            None => format!("{name}=={version}"),
        };
        let backend = match local {
            _ if pure_wheel => "wheel".to_string(),
            Some(tree) => declared_backend(&std::fs::read_to_string(tree.join("pyproject.toml")).unwrap_or_default()),
            None => sdist_backend(&venv.join("bin/python"), name, version),
        };
        let mut cmd = command(&exe, &["capture", "--db", &text(&db), "--"]);
        // no wheel cache: a cached wheel would install a .so that no capture saw being linked
        cmd.extend(command(&pip, &["install", "--use-pep517", "--no-cache-dir", "--no-deps", "--ignore-installed", "--target", &text(&site)]));
        if !pure_wheel {
            cmd.extend(["--no-binary".into(), name.clone()]);
        }
        cmd.extend(index_options.iter().cloned());
        cmd.push(spec);
        Step::new(&format!("build {name} {version} ({backend})"), &log)
            .run(&cmd, &dir)
            .with_context(|| format!("package {name} {version} (backend {backend}) failed to build"))?;
        packages.push(Package { name: name.clone(), version: version.clone(), backend, log });
    }
    // console scripts point at the build venv; the payload has no use for them
    let _ = std::fs::remove_dir_all(site.join("bin"));
    let installed = InstalledPackages { site, db, packages, reused: false };
    std::fs::write(&state, serde_json::to_vec_pretty(&installed)?)?;
    std::fs::write(dir.join("key"), &key)?;
    Ok(installed)
}

/// A command line from a program path and arguments.
fn command(program: &Path, arguments: &[&str]) -> Vec<String> {
    std::iter::once(text(program)).chain(arguments.iter().map(|a| a.to_string())).collect()
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
    backend.captures(pyproject).map_or("setuptools (legacy)".to_string(), |c| c[1].to_string())
}

/// md5 over the relative paths and contents of every file under `path` (or of the file).
fn content_digest(path: &Path) -> Result<String> {
    fn feed(context: &mut md5::Context, path: &Path, rel: &Path) -> Result<()> {
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path).with_context(|| format!("{}: cannot read", path.display()))?.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                feed(context, &entry.path(), &rel.join(entry.file_name()))?;
            }
        } else {
            context.consume(rel.as_os_str().as_encoded_bytes());
            context.consume(std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?);
        }
        Ok(())
    }
    let mut context = md5::Context::new();
    feed(&mut context, path, Path::new(""))?;
    Ok(format!("{:x}", context.finalize()))
}
