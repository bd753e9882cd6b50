//! The CPython source, configured and built under capture (no `--enable-shared`), and
//! installed into a staging root. Everything lives in a cache directory keyed by the
//! source's md5 and the configure flags, so a second `dlstatic build` reuses it.
//!
//! ```text
//! CACHE/cpython/<key>/     CACHE: cache_root()
//!   src/       the unpacked tree, built in place (Programs/python.o, libpython3.X.a)
//!   db/        capture db of every shared link (the stdlib extension modules)
//!   install/   `make install DESTDIR=…`: the dynamic interpreter and its stdlib
//!   logs/      configure.log, make.log, install.log
//! ```
//! A `complete` file is written last, so an interrupted build is never mistaken for a
//! cached one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::fsutil;
use crate::progress::Step;

/// `--prefix=/`: the interpreter looks for its stdlib relative to its own location, but
/// CPython's search never tries `/` itself; in an empty root, where the payload is `/`,
/// it falls back to the compiled-in prefix, which must therefore be `/`.
const CONFIGURE_FLAGS: &[&str] = &["--prefix=/", "--without-ensurepip"];

pub struct CpythonBuild {
    /// The built source tree.
    pub tree: PathBuf,
    /// Capture db holding the stdlib modules' links.
    pub db: PathBuf,
    /// `install/`: bin/python3.X, lib/python3.X/…
    pub installed: PathBuf,
    /// `3.11`
    pub version: String,
    pub logs: PathBuf,
    /// true when the cache already held this build.
    pub reused: bool,
}

impl CpythonBuild {
    /// What the interpreter itself links: `Programs/python.o`, all of libpython (so its
    /// whole C API is there for dlopen(NULL) and ctypes.pythonapi) and its system libs.
    pub fn main_inputs(&self) -> Result<Vec<String>> {
        let makefile = self.tree.join("Makefile");
        let text = std::fs::read_to_string(&makefile)
            .with_context(|| format!("{}: cannot read", makefile.display()))?;
        let vars = MakeVars::parse(&text);
        let library = self.tree.join(vars.expand("LIBRARY"));
        let mut inputs = vec![
            self.tree
                .join("Programs/python.o")
                .to_string_lossy()
                .into_owned(),
            "-Wl,--whole-archive".into(),
            library.to_string_lossy().into_owned(),
            "-Wl,--no-whole-archive".into(),
        ];
        for var in ["MODLIBS", "LIBS", "SYSLIBS"] {
            inputs.extend(vars.expand(var).split_whitespace().map(String::from));
        }
        Ok(inputs)
    }
}

/// Just enough of make's variable syntax for CPython's generated Makefile:
/// `NAME= value` lines and `$(NAME)` references.
struct MakeVars(HashMap<String, String>);

impl MakeVars {
    fn parse(text: &str) -> Self {
        let assignment = regex::Regex::new(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$").unwrap();
        let vars = text
            .lines()
            .filter_map(|line| assignment.captures(line))
            .map(|c| (c[1].to_string(), c[2].trim().to_string()))
            .collect();
        MakeVars(vars)
    }

    fn expand(&self, name: &str) -> String {
        self.expand_depth(name, 0)
    }

    fn expand_depth(&self, name: &str, depth: usize) -> String {
        let reference = regex::Regex::new(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)").unwrap();
        let value = self.0.get(name).cloned().unwrap_or_default();
        if depth > 16 {
            return value;
        }
        reference
            .replace_all(&value, |c: &regex::Captures| {
                self.expand_depth(&c[1], depth + 1)
            })
            .into_owned()
    }
}

/// Where dlstatic keeps what outlives one build (CPython builds, packages, the CPython
/// source): `$DLSTATIC_CACHE`, else `dlstatic` in the user's cache directory by the XDG
/// rules (`$XDG_CACHE_HOME`, else `~/.cache`). The Makefile's CACHE says the same.
pub fn cache_root() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|value| !value.is_empty());
    cache_root_from(
        var("DLSTATIC_CACHE").map(PathBuf::from),
        var("XDG_CACHE_HOME").map(PathBuf::from),
        std::env::home_dir(),
    )
}

/// The XDG base directory spec makes a relative `$XDG_CACHE_HOME` invalid: it is ignored.
fn cache_root_from(
    dlstatic_cache: Option<PathBuf>,
    xdg_cache_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> PathBuf {
    let user_cache = || {
        xdg_cache_home
            .filter(|dir| dir.is_absolute())
            .unwrap_or_else(|| home.unwrap_or_else(|| "/root".into()).join(".cache"))
    };
    dlstatic_cache.unwrap_or_else(|| user_cache().join("dlstatic"))
}

/// The default `--python-src`: the newest Debian orig tarball that `make python-src`
/// fetched into the cache.
pub fn default_source() -> Result<PathBuf> {
    let dir = cache_root().join("src");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    found.retain(|p| {
        p.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            n.starts_with("python3.11_") && n.contains(".orig.tar.")
        })
    });
    found.sort();
    found.pop().with_context(|| {
        format!(
            "no CPython source in {} (run `make python-src`, or pass --python-src DIR|TARBALL)",
            dir.display()
        )
    })
}

/// Build (or reuse) CPython from `source`, whose `source_key` is `key`.
pub fn build(source: &Path, key: &str, jobs: usize, logs_out: &Path) -> Result<CpythonBuild> {
    let dir = cache_root().join("cpython").join(key);
    let complete = dir.join("complete");
    if complete.is_file() {
        return finish(&dir, true);
    }
    // Built in place, since the capture db records absolute paths; a directory without
    // the `complete` marker is an interrupted build and starts over.
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("{}: cannot remove an unfinished build", dir.display()))?;
    }
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)
        .with_context(|| format!("{}: cannot create cache", dir.display()))?;
    let result = build_into(source, &dir, jobs, &logs);
    // logs go where the user looks (OUT.km/logs) whether the build worked or not
    copy_logs(&logs, logs_out);
    if let Err(error) = result {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(error);
    }
    std::fs::write(&complete, format!("{}\n", source.display()))?;
    finish(&dir, false)
}

fn finish(dir: &Path, reused: bool) -> Result<CpythonBuild> {
    let tree = dir.join("src");
    let vars = MakeVars::parse(&std::fs::read_to_string(tree.join("Makefile"))?);
    let version = vars.expand("VERSION");
    if version.is_empty() {
        bail!("{}: no VERSION in Makefile", tree.display());
    }
    Ok(CpythonBuild {
        db: dir.join("db"),
        installed: dir.join("install"),
        logs: dir.join("logs"),
        tree,
        version,
        reused,
    })
}

fn copy_logs(from: &Path, to: &Path) {
    if std::fs::create_dir_all(to).is_ok() {
        for entry in std::fs::read_dir(from).into_iter().flatten().flatten() {
            let _ = std::fs::copy(entry.path(), to.join(entry.file_name()));
        }
    }
}

/// The cache key: md5 of the tarball, or of the tree's file list with sizes and mtimes;
/// plus the configure flags and dlstatic's capture format.
pub fn source_key(source: &Path) -> Result<String> {
    let mut hasher = md5::Context::new();
    if source.is_dir() {
        let mut files = list_files(source)?;
        files.sort();
        for line in files {
            hasher.consume(line.as_bytes());
        }
    } else {
        let mut file = std::fs::File::open(source)
            .with_context(|| format!("{}: cannot open CPython source", source.display()))?;
        std::io::copy(&mut file, &mut hasher)
            .with_context(|| format!("{}: cannot read", source.display()))?;
    }
    hasher.consume(CONFIGURE_FLAGS.join(" ").as_bytes());
    hasher.consume(crate::capture::db::RECORD_VERSION.to_le_bytes());
    Ok(format!("{:x}", hasher.finalize()))
}

/// `path\0size\0mtime` of every file below `root`, the symlinks' own, in no set order.
fn list_files(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.with_context(|| format!("{}: cannot read", root.display()))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let meta = entry.metadata()?;
        let rel = entry.path().strip_prefix(root).unwrap().to_string_lossy();
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        out.push(format!("{rel}\0{}\0{mtime}\n", meta.len()));
    }
    Ok(out)
}

fn build_into(source: &Path, dir: &Path, jobs: usize, logs: &Path) -> Result<()> {
    let tree = dir.join("src");
    unpack(source, &tree, logs)?;
    let db = dir.join("db");
    let install = dir.join("install");
    let captured = |args: &[&str]| -> Vec<String> {
        let exe = std::env::current_exe()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "dlstatic".into());
        let mut cmd = vec![
            exe,
            "capture".into(),
            "--db".into(),
            db.to_string_lossy().into_owned(),
            "--".into(),
        ];
        cmd.extend(args.iter().map(|s| s.to_string()));
        cmd
    };
    let mut configure = vec!["./configure"];
    configure.extend(CONFIGURE_FLAGS);
    Step::new("configure CPython", &logs.join("configure.log"))
        .run(&captured(&configure), &tree)?;
    let jobs_flag = format!("-j{jobs}");
    Step::new("make CPython", &logs.join("make.log"))
        .run(&captured(&["make", &jobs_flag]), &tree)?;
    let destdir = format!("DESTDIR={}", install.display());
    // With --prefix=/ the Makefile says DESTSHARED=//lib/…, which setup.py's --root
    // handling treats as outside DESTDIR: name it with a single slash.
    let version =
        MakeVars::parse(&std::fs::read_to_string(tree.join("Makefile"))?).expand("VERSION");
    let destshared = format!("DESTSHARED=/lib/python{version}/lib-dynload");
    Step::new("make install", &logs.join("install.log")).run(
        &captured(&["make", "install", &destdir, &destshared]),
        &tree,
    )?;
    // Upstream 3.11's `make install` leaves these test packages out; the test suite needs them.
    let version_lib = install.join("lib");
    if let Some(libdir) = std::fs::read_dir(&version_lib)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("os.py").exists())
    {
        for missing in ["test/test_sqlite3", "test/test_capi"] {
            if !libdir.join(missing).exists() {
                let (from, to) = (tree.join("Lib").join(missing), libdir.join(missing));
                fsutil::copy_tree(&from, &to, &|_| false)?;
            }
        }
    }
    Ok(())
}

fn unpack(source: &Path, tree: &Path, logs: &Path) -> Result<()> {
    if source.is_dir() {
        if !source.join("configure").is_file() {
            bail!(
                "{}: not a CPython source tree (no configure script)",
                source.display()
            );
        }
        return fsutil::copy_tree(source, tree, &|_| false);
    }
    std::fs::create_dir_all(tree)?;
    let cmd = vec![
        "tar".to_string(),
        "-xf".into(),
        std::path::absolute(source)?.to_string_lossy().into_owned(),
        "--strip-components=1".into(),
        "-C".into(),
        tree.to_string_lossy().into_owned(),
    ];
    Step::new("unpack CPython source", &logs.join("unpack.log"))
        .run(&cmd, tree)
        .with_context(|| {
            format!(
                "{}: cannot unpack (missing or corrupt tarball?)",
                source.display()
            )
        })?;
    if !tree.join("configure").is_file() {
        bail!(
            "{}: not a CPython source tarball (no configure script inside)",
            source.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_root_is_dlstatic_cache_then_xdg_cache_home_then_home() {
        let some = |dir: &str| Some(PathBuf::from(dir));
        assert_eq!(
            cache_root_from(some("/d"), some("/x"), some("/h")),
            Path::new("/d")
        );
        assert_eq!(
            cache_root_from(None, some("/x"), some("/h")),
            Path::new("/x/dlstatic")
        );
        assert_eq!(
            cache_root_from(None, None, some("/h")),
            Path::new("/h/.cache/dlstatic")
        );
        // relative: not a valid XDG_CACHE_HOME
        assert_eq!(
            cache_root_from(None, some("x"), some("/h")),
            Path::new("/h/.cache/dlstatic")
        );
    }
}
