//! One package of pip's resolution, built and installed on its own under capture, or
//! found built in the package cache (see packages.rs for the layout).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result, anyhow};
use serde::Deserialize;

use crate::capture::db::CaptureDb;
use crate::progress::Step;
use crate::python::modules_txt::normalized_name;
use crate::python::packages::{Package, command, content_digest, text};

const SDIST_BACKEND: &str = include_str!("sdist_backend.py");

/// Bumped when a cached package build changes layout or meaning (2: LTO compiles are
/// fat even where the build asked for slim objects).
const PACKAGE_CACHE_FORMAT: u32 = 2;

/// `pip install --report`: what pip resolved modules.txt to.
#[derive(Deserialize)]
pub(super) struct Report {
    pub install: Vec<ReportItem>,
}

/// One entry of `pip install --report`.
#[derive(Deserialize)]
pub(super) struct ReportItem {
    pub metadata: ReportMetadata,
    download_info: DownloadInfo,
    #[serde(default)]
    is_direct: bool,
}

#[derive(Deserialize)]
pub(super) struct ReportMetadata {
    pub name: String,
    pub version: String,
}

#[derive(Deserialize)]
struct DownloadInfo {
    url: String,
}

impl ReportItem {
    /// A pure-Python wheel: installed as it is, nothing compiled.
    fn is_pure_wheel(&self) -> bool {
        self.download_info.url.ends_with("-none-any.whl")
    }
}

/// What every package build shares.
pub(super) struct Builder {
    pub pip: PathBuf,
    pub venv_python: PathBuf,
    /// `--index-url …` and friends from modules.txt
    pub index_options: Vec<String>,
    pub build_deps: Vec<String>,
    /// modules.txt's config settings, by PEP 503 project name: for that package's build.
    pub config_settings: HashMap<String, Vec<String>>,
    pub python_tree: PathBuf,
    /// this dlstatic, which pip's builds run under `capture`
    pub exe: PathBuf,
    pub cache: PathBuf,
    /// copies of the local trees → the digest of the original's contents
    pub tree_digests: HashMap<PathBuf, String>,
    pub dir: PathBuf,
    /// Packages built at once, and the jobs they share.
    pub workers: usize,
    pub jobs: usize,
    /// `--cc-launcher` for the packages' compiles
    pub cc_launcher: Option<String>,
}

/// A package built (or reused): the package and the directory holding its `site/`,
/// `db/` and `build.log`.
pub(super) type Built = (Package, PathBuf);

impl Builder {
    /// Build every package of `items`, `workers` at a time, each logging to
    /// `logs/<name>.log`. The results are in `items`' order whatever finishes first.
    /// Unless `keep_going`, the first failure (in that order) is the error, and no
    /// package starts after a failure.
    pub fn build_all(
        &self,
        items: &[ReportItem],
        logs: &Path,
        keep_going: bool,
    ) -> Result<Vec<Result<Built>>> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results: Mutex<Vec<Result<Built>>> = Mutex::new(
            (0..items.len())
                .map(|_| Err(anyhow!("not built: a package before it failed")))
                .collect(),
        );
        std::thread::scope(|scope| {
            for _ in 0..self.workers.min(items.len()) {
                scope.spawn(|| {
                    while keep_going || !failed.load(Ordering::SeqCst) {
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        let Some(item) = items.get(index) else { break };
                        let jobs = jobs_for(self.jobs, self.workers, &items[index..]);
                        let result = self.build(item, &log_of(logs, item), jobs);
                        failed.fetch_or(result.is_err(), Ordering::SeqCst);
                        results.lock().unwrap()[index] = result;
                    }
                });
            }
        });
        let results = results.into_inner().unwrap();
        match keep_going {
            true => Ok(results),
            false => results
                .into_iter()
                .collect::<Result<Vec<_>>>()
                .map(|built| built.into_iter().map(Ok).collect()),
        }
    }

    /// Build and install one package on its own with `jobs` jobs, logging to `log`, or
    /// find it built in the cache (its log is copied to `log`). Returns the package and
    /// the directory holding its `site/`, `db/` and `build.log`.
    fn build(&self, item: &ReportItem, log: &Path, jobs: usize) -> Result<Built> {
        let ReportMetadata { name, version } = &item.metadata;
        let url = &item.download_info.url;
        let local = url
            .strip_prefix("file://")
            .map(Path::new)
            .filter(|p| p.is_dir());
        let key = self.cache_key(name, version, url, local, item.is_direct)?;
        let cached = key.as_ref().map(|key| self.cache.join(key));
        if let Some(cached) = cached.as_ref().filter(|c| c.join("package.json").is_file()) {
            return reuse(cached, log);
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
        let package = self.build_into(item, local, staging.path(), log, jobs)?;
        let place = cached.unwrap_or_else(|| self.dir.join("builds").join(name));
        move_into_place(staging.keep(), &place)?;
        Ok((package, place))
    }

    /// `pip install --target staging/site` under capture into `staging/db`; `local`: the
    /// tree pip resolved the package to, if any.
    fn build_into(
        &self,
        item: &ReportItem,
        local: Option<&Path>,
        staging: &Path,
        log: &Path,
        jobs: usize,
    ) -> Result<Package> {
        let ReportMetadata { name, version } = &item.metadata;
        let url = &item.download_info.url;
        let (site, db) = (staging.join("site"), staging.join("db"));
        let spec = match local {
            Some(tree) => text(tree),
            None if item.is_direct => url.clone(),
            None => format!("{name}=={version}"),
        };
        let backend = match local {
            _ if item.is_pure_wheel() => "wheel".to_string(),
            Some(tree) => declared_backend(
                &std::fs::read_to_string(tree.join("pyproject.toml")).unwrap_or_default(),
            ),
            None => sdist_backend(&self.venv_python, name, version),
        };
        let cmd = self.pip_install(name, &spec, &site, &db, &backend, jobs);
        Step::new(&format!("build {name} {version} ({backend})"), log)
            .lines_only(self.workers > 1)
            .run(&cmd, &self.dir)
            .with_context(|| {
                format!("package {name} {version} (backend {backend}) failed to build")
            })?;
        // console scripts point at the build venv; the payload has no use for them
        let _ = std::fs::remove_dir_all(site.join("bin"));
        CaptureDb::open(&db)?; // a pure package links nothing, but has its (empty) db
        std::fs::copy(log, staging.join("build.log"))?;
        let package = Package {
            name: name.clone(),
            version: version.clone(),
            backend,
            log: log.to_path_buf(),
        };
        // written last: its presence marks the entry complete
        std::fs::write(
            staging.join("package.json"),
            serde_json::to_vec_pretty(&package)?,
        )?;
        Ok(package)
    }

    /// `pip install` of `spec` alone into `site`, under capture into `db`, with the
    /// package's share of the jobs.
    fn pip_install(
        &self,
        name: &str,
        spec: &str,
        site: &Path,
        db: &Path,
        backend: &str,
        jobs: usize,
    ) -> Vec<String> {
        // make, CMake and cargo read their parallelism from the environment
        let mut cmd = vec!["env".to_string()];
        cmd.extend(
            [
                "MAKEFLAGS=-j",
                "CMAKE_BUILD_PARALLEL_LEVEL=",
                "CARGO_BUILD_JOBS=",
            ]
            .map(|var| format!("{var}{jobs}")),
        );
        cmd.extend(command(&self.exe, &["capture", "--db", &text(db)]));
        if let Some(launcher) = &self.cc_launcher {
            cmd.extend(["--cc-launcher".to_string(), launcher.clone()]);
        }
        cmd.push("--".into());
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
                &text(site),
            ],
        ));
        match backend {
            "wheel" => {}
            // meson-python runs ninja, which takes no jobs from the environment
            "mesonpy" => cmd.extend([
                "--no-binary".into(),
                name.to_string(),
                format!("--config-settings=compile-args=-j{jobs}"),
            ]),
            _ => cmd.extend(["--no-binary".into(), name.to_string()]),
        }
        let settings = self.config_settings_of(name).iter();
        cmd.extend(settings.map(|setting| format!("--config-settings={setting}")));
        cmd.extend(self.index_options.iter().cloned());
        cmd.push(spec.to_string());
        cmd
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
        let mut key_text = format!(
            "{PACKAGE_CACHE_FORMAT}\0{}\0{name}\0{version}\0{source}\0{}\0{}\0{}",
            crate::capture::db::RECORD_VERSION,
            self.index_options.join(" "),
            self.build_deps.join(" "),
            self.python_tree.display()
        );
        // only where there are some: the keys of builds without settings stay as they were
        let settings = self.config_settings_of(name);
        if !settings.is_empty() {
            key_text.push_str(&format!("\0{}", settings.join("\0")));
        }
        Ok(Some(format!(
            "{name}-{version}-{:x}",
            md5::compute(key_text)
        )))
    }

    /// The config settings modules.txt gives the project `name`.
    fn config_settings_of(&self, name: &str) -> &[String] {
        self.config_settings
            .get(&normalized_name(name))
            .map_or(&[], Vec::as_slice)
    }
}

/// The jobs for the first of `waiting` (the packages not started yet): its share of
/// `jobs` among those that compile (a pure wheel needs none), at most `workers` of
/// them at once; the last to compile gets them all.
fn jobs_for(jobs: usize, workers: usize, waiting: &[ReportItem]) -> usize {
    let compiling = waiting.iter().filter(|i| !i.is_pure_wheel()).count();
    (jobs / compiling.clamp(1, workers)).max(1)
}

/// A complete cache entry: its package, with its build log copied to `log`.
fn reuse(cached: &Path, log: &Path) -> Result<Built> {
    let package: Package = serde_json::from_slice(&std::fs::read(cached.join("package.json"))?)
        .with_context(|| format!("{}: corrupt package cache entry", cached.display()))?;
    std::fs::copy(cached.join("build.log"), log)
        .with_context(|| format!("{}: cannot copy the build log", cached.display()))?;
    eprintln!(
        "dlstatic: build {} {} ({}): reused from {}",
        package.name,
        package.version,
        package.backend,
        cached.display()
    );
    let package = Package {
        log: log.to_path_buf(),
        ..package
    };
    Ok((package, cached.to_path_buf()))
}

fn move_into_place(staged: PathBuf, place: &Path) -> Result<()> {
    if let Err(error) = std::fs::rename(&staged, place) {
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
    Ok(())
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

/// Where the build of `item` logs, in `logs`.
pub(super) fn log_of(logs: &Path, item: &ReportItem) -> PathBuf {
    logs.join(format!("{}.log", item.metadata.name))
}

/// The line of a failed package build's log that says why: the first compiler error
/// (`file.c:1:1: error: …`), else pip's own `ERROR:` line, else the log's last line.
pub(super) fn failure_cause(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let lines = || text.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .find(|l| l.contains(": error:") || l.contains(": fatal error:"))
        .or_else(|| lines().find(|l| l.starts_with("ERROR:")))
        .or_else(|| lines().next_back())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(url: &str) -> ReportItem {
        let json = format!(
            r#"{{"metadata": {{"name": "x", "version": "1"}}, "download_info": {{"url": "{url}"}}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    fn builder(config_settings: &[(&str, &[&str])]) -> Builder {
        let settings = config_settings.iter().map(|(project, settings)| {
            (
                project.to_string(),
                settings.iter().map(|s| s.to_string()).collect(),
            )
        });
        Builder {
            pip: "/venv/bin/pip".into(),
            venv_python: "/venv/bin/python".into(),
            index_options: Vec::new(),
            build_deps: Vec::new(),
            config_settings: settings.collect(),
            python_tree: "/python".into(),
            exe: "/dlstatic".into(),
            cache: "/cache".into(),
            tree_digests: HashMap::new(),
            dir: "/out".into(),
            workers: 1,
            jobs: 2,
            cc_launcher: None,
        }
    }

    #[test]
    fn config_settings_reach_their_own_package_build_and_its_cache_key() {
        let qhull = [
            "setup-args=-Dsystem-qhull=true",
            "setup-args=-Dsystem-freetype=true",
        ];
        let (plain, with_settings) = (builder(&[]), builder(&[("matplotlib", &qhull)]));
        let url = "https://files.example/x-1.tar.gz";
        let key = |builder: &Builder, name| builder.cache_key(name, "1", url, None, false).unwrap();
        assert_eq!(key(&plain, "numpy"), key(&with_settings, "numpy"));
        assert_ne!(key(&plain, "Matplotlib"), key(&with_settings, "Matplotlib"));
        let settings_of = |name| {
            let (site, db) = (Path::new("/site"), Path::new("/db"));
            let cmd = with_settings.pip_install(name, "spec", site, db, "mesonpy", 2);
            let settings = cmd
                .into_iter()
                .filter_map(|arg| arg.strip_prefix("--config-settings=").map(String::from));
            settings.collect::<Vec<_>>()
        };
        assert_eq!(
            settings_of("Matplotlib"),
            ["compile-args=-j2", qhull[0], qhull[1]]
        );
        assert_eq!(settings_of("numpy"), ["compile-args=-j2"]);
    }

    #[test]
    fn jobs_are_shared_among_the_packages_left_to_compile() {
        let sdist = || item("https://files.example/x-1.tar.gz");
        let wheel = || item("https://files.example/x-1-py3-none-any.whl");
        let four = [sdist(), sdist(), wheel(), sdist()];
        assert_eq!(jobs_for(8, 4, &four), 8 / 3);
        assert_eq!(jobs_for(2, 2, &four), 1);
        // the last to compile, or the only one among pure wheels, gets them all
        assert_eq!(jobs_for(8, 4, &four[2..]), 8);
        assert_eq!(jobs_for(8, 4, &[wheel(), sdist(), wheel()]), 8);
        assert_eq!(jobs_for(1, 1, &four), 1);
    }
}
