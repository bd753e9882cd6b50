//! The payload: a directory that is a complete root for the static interpreter.
//!
//! ```text
//! OUT/bin/python3.X                 the static interpreter (python3, python: symlinks)
//! OUT/lib/python3.X/…               the stdlib, with its compiled .pyc files
//! OUT/lib/python3.X/lib-dynload/    one id stub per linked module instead of the .so
//! OUT/etc/{hosts,passwd,group,nsswitch.conf}   what static glibc's NSS reads
//! ```
//! `OUT.km/manifest.json` lists the modules (stub, id, exports) for `dlstatic verify`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::fsutil::{self, write_atomic};
use crate::module_id::ModuleId;
use crate::plan::analyze::Module;

/// Left out unless `--full-stdlib`: the test suite, IDLE, Tk, pip's bootstrap, and the
/// static libpython (useful only for embedding).
const OPTIONAL_STDLIB: &[&str] = &["test", "idlelib", "tkinter", "turtledemo", "ensurepip"];

/// A directory of this name anywhere below site-packages is a package's own test
/// package (`greenlet/tests`, `numpy/_core/tests`, `simplejson/tests`): left out of the
/// payload with its extension modules unless `--keep-tests`, as the stdlib's `test/` is.
/// `test` and `testing` are not matched: they are often public API (`django.test`,
/// `numpy.testing`, `sqlalchemy.testing`).
const TEST_PACKAGE_DIR: &str = "tests";

/// nsswitch.conf names only what static glibc has built in: with `systemd` listed it
/// would try to dlopen libnss_systemd.so.
const ETC_FILES: &[(&str, &str)] = &[
    (
        "hosts",
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    ),
    (
        "passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    ),
    ("group", "root:x:0:\nnogroup:x:65534:\n"),
    (
        "nsswitch.conf",
        "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n",
    ),
];

/// Appended to ctypes/util.py: find_library asks the interpreter's own loader first,
/// since an empty root has no ldconfig cache, compiler or objdump to search with.
const CTYPES_FIND_LIBRARY: &str = r#"

# --- added by dlstatic: libraries are linked into this interpreter -----------------
_dlstatic_find_library = find_library

def find_library(name):
    try:
        from ctypes import CDLL, c_char_p
        soname_for = CDLL(None).dlstatic_soname_for
        soname_for.restype = c_char_p
        found = soname_for(name.encode())
        if found:
            return found.decode()
    except (AttributeError, OSError):
        pass
    return _dlstatic_find_library(name)
"#;

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The interpreter inside the root (`/bin/python3.11`).
    pub python: String,
    /// The dynamic interpreter of the same CPython build (in the cache), for comparisons.
    pub dynamic_python: String,
    pub modules: Vec<ManifestModule>,
    /// lib-dynload files with no linked module (skipped); left out of the payload.
    pub skipped: Vec<String>,
    /// Packages' test packages left out (TEST_PACKAGE_DIR): how many files, and the
    /// extension modules among them (paths relative to site-packages).
    #[serde(default)]
    pub test_files_left_out: usize,
    #[serde(default)]
    pub test_modules_left_out: Vec<String>,
    /// Package -> Python code that `verify` runs after the imports (the packages' own
    /// smoke tests, from `smoke/<package>.py` next to modules.txt).
    #[serde(default)]
    pub smoke_tests: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestModule {
    /// Import name (`_ssl`, `markupsafe._speedups`).
    pub name: String,
    /// `stdlib`, or the distribution that installed it (`MarkupSafe`).
    pub package: String,
    /// How it was built (`CPython`, `setuptools.build_meta`, `mesonpy`, …).
    #[serde(default)]
    pub backend: String,
    pub objects: usize,
    /// Symbols renamed in it.
    pub renamed: usize,
    /// Path of the stub inside the root (`/lib/python3.11/lib-dynload/_ssl.cpython-311-….so`).
    pub stub: String,
    pub id: String,
    pub exports: Vec<String>,
}

pub struct PayloadOptions {
    pub keep_so: bool,
    pub full_stdlib: bool,
    /// Keep packages' test packages (TEST_PACKAGE_DIR).
    pub keep_tests: bool,
}

/// Whether `rel`, a path below site-packages, is a package's test package or lies in one.
pub fn in_test_package(rel: &Path) -> bool {
    rel.components().any(|c| c.as_os_str() == TEST_PACKAGE_DIR)
}

/// Fill `root` (which already holds bin/python3.X) from the installed stdlib and, when
/// given, a site directory of third-party packages with the module id of each of its
/// extension modules.
pub fn assemble(
    root: &Path,
    installed: &Path,
    site: Option<(&Path, &BTreeMap<PathBuf, ModuleId>)>,
    version: &str,
    modules: &[&Module],
    options: &PayloadOptions,
) -> Result<Manifest> {
    let python = format!("python{version}");
    link_interpreter_names(&root.join("bin"), &python)?;
    let stdlib_from = installed.join("lib").join(&python);
    let stdlib_to = root.join("lib").join(&python);
    copy_stdlib(&stdlib_from, &stdlib_to, options.full_stdlib)?;
    let mut manifest = Manifest {
        python: format!("/bin/{python}"),
        dynamic_python: text(&installed.join("bin").join(&python)),
        modules: Vec::new(),
        skipped: Vec::new(),
        test_files_left_out: 0,
        test_modules_left_out: Vec::new(),
        smoke_tests: Default::default(),
    };
    let mut place = Placer {
        by_id: modules.iter().map(|m| (&m.id, *m)).collect(),
        keep_so: options.keep_so,
        keep_tests: options.keep_tests,
        manifest: &mut manifest,
    };
    place.stdlib_modules(&stdlib_from, &stdlib_to, &python)?;
    if let Some((site, ids)) = site {
        place.site_modules(site, ids, &stdlib_to, &python)?;
    }
    add_to_ctypes_find_library(&stdlib_to, &manifest.dynamic_python)?;
    write_etc(&root.join("etc"))?;
    Ok(manifest)
}

/// `python3` and `python` beside `python3.X` in `bin`.
fn link_interpreter_names(bin: &Path, python: &str) -> Result<()> {
    for link in ["python3", "python"] {
        std::os::unix::fs::symlink(python, bin.join(link))
            .with_context(|| format!("{}: cannot create symlink", bin.join(link).display()))?;
    }
    Ok(())
}

/// The stdlib but its build configuration, its extension modules (they become stubs)
/// and, unless `full`, OPTIONAL_STDLIB.
fn copy_stdlib(from: &Path, to: &Path, full: bool) -> Result<()> {
    let skip_top = |rel: &Path| {
        let first = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        first.starts_with("config-")
            || (!full && OPTIONAL_STDLIB.contains(&first.as_str()))
            || first == "lib-dynload"
    };
    fsutil::copy_tree(from, to, &skip_top)
}

/// ctypes.util.find_library, extended by CTYPES_FIND_LIBRARY and compiled again.
fn add_to_ctypes_find_library(stdlib: &Path, dynamic_python: &str) -> Result<()> {
    let util = stdlib.join("ctypes/util.py");
    let mut code = std::fs::read_to_string(&util)
        .with_context(|| format!("{}: cannot read", util.display()))?;
    code.push_str(CTYPES_FIND_LIBRARY);
    write_atomic(&util, code.as_bytes())?;
    recompile(dynamic_python, &util)
}

fn write_etc(etc: &Path) -> Result<()> {
    std::fs::create_dir_all(etc)?;
    for (name, contents) in ETC_FILES {
        write_atomic(&etc.join(name), contents.as_bytes())?;
    }
    Ok(())
}

fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Compile an edited stdlib module again, at the optimization levels the stdlib ships, with
/// the dynamic build of the same CPython (same bytecode magic): its old .pyc would be
/// stale, and Python would otherwise compile it again at every start.
fn recompile(dynamic_python: &str, source: &Path) -> Result<()> {
    const SCRIPT: &str = "import py_compile, sys\nfor level in 0, 1, 2: py_compile.compile(sys.argv[1], doraise=True, optimize=level)";
    let out = std::process::Command::new(dynamic_python)
        .args(["-I", "-c", SCRIPT])
        .arg(source)
        .output()
        .with_context(|| format!("{dynamic_python}: cannot run"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::bail!(
            "{}: cannot compile: {}",
            source.display(),
            stderr.lines().last().unwrap_or("no message")
        );
    }
    Ok(())
}

/// Puts extension modules into the payload: a stub (or, with --keep-so, the file) for
/// each linked module, recorded in the manifest.
struct Placer<'a> {
    by_id: HashMap<&'a ModuleId, &'a Module>,
    keep_so: bool,
    keep_tests: bool,
    manifest: &'a mut Manifest,
}

impl Placer<'_> {
    /// lib-dynload's modules; those that no linked module matches are left out, and
    /// listed as skipped.
    fn stdlib_modules(&mut self, stdlib_from: &Path, stdlib_to: &Path, python: &str) -> Result<()> {
        let dynload_to = stdlib_to.join("lib-dynload");
        std::fs::create_dir_all(&dynload_to)?;
        for so in extension_files(&stdlib_from.join("lib-dynload"))? {
            let file_name = so.file_name().unwrap().to_string_lossy().into_owned();
            let name = file_name.split('.').next().unwrap_or_default().to_string();
            let stub = format!("/lib/{python}/lib-dynload/{file_name}");
            let dest = dynload_to.join(&file_name);
            if !self.module(&so, &dest, name, stub, "stdlib", None)? {
                self.manifest.skipped.push(file_name);
            }
        }
        Ok(())
    }

    /// The site directory as site-packages: everything but the extension modules as it
    /// is, those as stubs; each must have been linked. Test packages are left out
    /// unless kept, and counted.
    fn site_modules(
        &mut self,
        site: &Path,
        ids: &BTreeMap<PathBuf, ModuleId>,
        stdlib_to: &Path,
        python: &str,
    ) -> Result<()> {
        let site_to = stdlib_to.join("site-packages");
        let keep_tests = self.keep_tests;
        let left_out = |rel: &Path| !keep_tests && in_test_package(rel);
        fsutil::copy_tree(site, &site_to, &|rel| {
            rel.extension().is_some_and(|e| e == "so") || left_out(rel)
        })?;
        self.count_left_out_tests(site, &left_out)?;
        let owners = distribution_owners(site)?;
        for so in extension_files(site)? {
            let rel = so.strip_prefix(site).unwrap();
            if left_out(rel) {
                continue;
            }
            let rel_text = text(rel);
            let mut parts: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            let file = parts.pop().unwrap_or_default();
            parts.push(file.split('.').next().unwrap_or_default().to_string());
            let owner = owners.get(&rel_text).map_or("?", String::as_str);
            let stub = format!("/lib/{python}/site-packages/{rel_text}");
            let (dest, id) = (site_to.join(rel), ids.get(&so).cloned());
            if !self.module(&so, &dest, parts.join("."), stub, owner, id)? {
                anyhow::bail!(
                    "{}: installed by {owner}, but its module was not linked",
                    so.display()
                );
            }
        }
        Ok(())
    }

    /// The files below `site` that `left_out` leaves out, and the extension modules
    /// among them, into the manifest.
    fn count_left_out_tests(
        &mut self,
        site: &Path,
        left_out: &dyn Fn(&Path) -> bool,
    ) -> Result<()> {
        for entry in walkdir::WalkDir::new(site).sort_by_file_name() {
            let entry = entry.with_context(|| format!("{}: cannot read", site.display()))?;
            let rel = entry.path().strip_prefix(site).unwrap();
            if entry.file_type().is_dir() || !left_out(rel) {
                continue;
            }
            self.manifest.test_files_left_out += 1;
            if rel.extension().is_some_and(|e| e == "so") {
                self.manifest.test_modules_left_out.push(text(rel));
            }
        }
        Ok(())
    }

    /// `id`: the module id when known otherwise than by the file's md5. False when no
    /// linked module has this id. A file whose md5 is not its id (changed after the
    /// link) always becomes a stub: dlopen of the file itself could not find it.
    fn module(
        &mut self,
        so: &Path,
        dest: &Path,
        name: String,
        stub: String,
        package: &str,
        id: Option<ModuleId>,
    ) -> Result<bool> {
        let bytes = std::fs::read(so).with_context(|| format!("{}: cannot read", so.display()))?;
        let md5 = ModuleId::of(&bytes);
        let id = id.unwrap_or_else(|| md5.clone());
        let Some(module) = self.by_id.get(&id) else {
            return Ok(false);
        };
        std::fs::create_dir_all(dest.parent().unwrap())?;
        let keep = self.keep_so && md5 == id;
        write_atomic(
            dest,
            if keep {
                bytes
            } else {
                format!("{id}\n").into_bytes()
            }
            .as_slice(),
        )?;
        self.manifest.modules.push(ManifestModule {
            name,
            stub,
            id: id.to_string(),
            package: package.to_string(),
            backend: String::new(),
            objects: module.objects.len(),
            renamed: module.renamed_count,
            exports: module.exports.clone(),
        });
        Ok(true)
    }
}

/// Every `*.so` below `dir`, sorted.
pub fn extension_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.with_context(|| format!("{}: cannot read", dir.display()))?;
        if !entry.file_type().is_dir() && entry.path().extension().is_some_and(|e| e == "so") {
            found.push(entry.into_path());
        }
    }
    // by whole path (`a.so` before `a/b.so`), which a walk sorted by name is not
    found.sort();
    Ok(found)
}

/// Installed file (relative to site-packages) -> distribution name, from each
/// `*.dist-info/RECORD`.
fn distribution_owners(site: &Path) -> Result<HashMap<String, String>> {
    let mut owners = HashMap::new();
    for entry in std::fs::read_dir(site)?.flatten() {
        let dir_name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = dir_name.strip_suffix(".dist-info") else {
            continue;
        };
        let distribution = stem
            .rsplit_once('-')
            .map_or(stem, |(name, _)| name)
            .to_string();
        for line in std::fs::read_to_string(entry.path().join("RECORD"))
            .unwrap_or_default()
            .lines()
        {
            if let Some(path) = line.split(',').next() {
                owners.insert(path.to_string(), distribution.clone());
            }
        }
    }
    Ok(owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_packages_are_directories_named_tests() {
        for rel in [
            "greenlet/tests/_test_extension.cpython-311-x86_64-linux-gnu.so",
            "numpy/_core/tests/test_api.py",
            "simplejson/tests/__init__.py",
            "tests/conftest.py",
            "greenlet/tests",
        ] {
            assert!(in_test_package(Path::new(rel)), "{rel}");
        }
        for rel in [
            "numpy/testing/__init__.py",
            "django/test/client.py",
            "sqlalchemy/testing/fixtures.py",
            "mypkg/tests.py",
            "pytest_tests/x.py",
        ] {
            assert!(!in_test_package(Path::new(rel)), "{rel}");
        }
    }
}
