//! The system libraries modules were linked against (`-lz`, `/usr/lib/…/libfoo.so`),
//! resolved to the static archives that replace them, and the sonames the main
//! program answers for once they are linked in.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;

use super::analyze::Module;
use crate::elf;
use crate::process;
use crate::toolchain::{Memo, find_in_compiler_search_path};

/// A static archive that replaces a library the modules were linked against.
#[derive(Debug, Clone)]
pub struct SystemLib {
    /// The `-l` name, or the path of the shared library given to the link.
    pub name: String,
    pub archive: PathBuf,
    /// The soname the replaced shared library had: dlopen of it answers with the main program.
    pub soname: Option<String>,
    /// The module (index in the plan) whose link named it first.
    pub module: usize,
}

/// A library with no static archive.
#[derive(Debug, Clone)]
pub struct MissingLib {
    /// The `-l` name, or the path of the shared library given to the link.
    pub lib: String,
    pub module: usize,
    /// None: the module's own link names it. Some(parent): `-l<parent>` needs it.
    pub needed_by: Option<String>,
    /// Names the pulled archive members need that only this library would define.
    pub needed_symbols: Vec<String>,
    /// The source package dlstatic would build it from (`dlstatic audit`, `plan`).
    pub build_from: Option<String>,
    /// What dlstatic's recipes say instead of package advice (filled by `deps::plan`):
    /// the parent rebuild that removes the need, or why it is never built static.
    pub remedy: Option<String>,
}

/// A static archive that exists but cannot do in a static program what a module uses
/// it for (Debian's libcrypto.a loads OpenSSL's providers with dlopen). Found by
/// `deps::decide::unfit_archives` from a recipe's `replace_when_used`.
#[derive(Debug, Clone)]
pub struct UnfitArchive {
    /// The `-l` name (`crypto`).
    pub lib: String,
    pub archive: PathBuf,
    /// The first module (index in the plan) that uses what the archive cannot do.
    pub module: usize,
    /// The names it uses (`OSSL_PROVIDER_load`).
    pub used: Vec<String>,
    /// Why the archive cannot serve them.
    pub why: String,
    /// The source package dlstatic would build its replacement from (`audit`, `plan`).
    pub build_from: Option<String>,
}

impl MissingLib {
    /// A module's own library is needed; a dependency only when members use it.
    pub fn blocks_link(&self) -> bool {
        self.needed_by.is_none() || !self.needed_symbols.is_empty()
    }

    /// The first few needed names, and how many there are.
    pub fn needed_names(&self) -> String {
        let shown = self
            .needed_symbols
            .iter()
            .take(4)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        match self.needed_symbols.len() {
            n if n > 4 => format!("{shown} and {} more", n - 4),
            _ => shown,
        }
    }

    /// What to do about it: the recipes' remedy, else which Debian package has what.
    pub fn advice(&self, module: &Module) -> String {
        (self.remedy.clone()).unwrap_or_else(|| static_archive_advice(&self.lib, &module.lib_dirs))
    }

    /// How `link` reports it.
    pub fn link_error(&self, module: &Module) -> String {
        match (&self.needed_by, self.lib.starts_with('/')) {
            (None, true) => format!(
                "{}: linked with {}, for which no static archive exists",
                module.path, self.lib
            ),
            (None, false) => format!(
                "{}: linked with -l{}, but no static archive lib{}.a exists on the search path (install the package that ships it, or rebuild the module without it)",
                module.path,
                self.lib,
                self.lib.trim_start_matches(':')
            ),
            (Some(parent), _) => format!(
                "{}: -l{parent} needs {} from lib{}, which has no static archive ({})",
                module.path,
                self.needed_names(),
                self.lib,
                self.advice(module)
            ),
        }
    }
}

/// The static archives for every module's `-l` libraries (and their static needs, in
/// first-use order) and shared inputs; and the libraries that have none. The `lib/` of
/// each dependency prefix (built by dlstatic, src/deps/) is searched before all else.
pub fn resolve(modules: &[&Module], prefixes: &[PathBuf]) -> (Vec<SystemLib>, Vec<MissingLib>) {
    let mut out = Resolved::default();
    let module_paths: HashSet<&str> = modules.iter().map(|m| m.path.as_str()).collect();
    let prefix_dirs: Vec<String> = prefixes
        .iter()
        .map(|p| p.join("lib").to_string_lossy().into_owned())
        .collect();
    for (index, module) in modules.iter().enumerate() {
        let lib_dirs = [prefix_dirs.clone(), module.lib_dirs.clone()].concat();
        // (library, the library that needs it when linked statically, if not the module)
        let mut pending: VecDeque<(String, Option<String>)> =
            module.libs.iter().map(|lib| (lib.clone(), None)).collect();
        // another captured module given by path (scipy's libsf_error_state.so, built in
        // the same tree) is no system library: the link binds the names it provides to
        // that module's renamed copy, as for any cross-module use
        let system_inputs =
            (module.shared_inputs.iter()).filter(|s| !module_paths.contains(s.as_str()));
        for shared in system_inputs {
            // a shared library given by path is as good as -lNAME: its archive, and
            // what that archive needs (`libzmq.so` brings libstdc++)
            let lib = shared_stem(
                Path::new(shared)
                    .file_name()
                    .unwrap_or_default()
                    .to_str()
                    .unwrap_or(""),
            );
            let lib = lib
                .and_then(|stem| stem.strip_prefix("lib"))
                .map(String::from);
            let built = lib
                .as_deref()
                .and_then(|l| static_archive_in(l, &prefix_dirs));
            match built.or_else(|| static_archive_for_shared(shared)) {
                Some(archive) => {
                    let soname = crate::fsutil::map(Path::new(shared))
                        .ok()
                        .and_then(|b| elf::shared_object_interface(&b).ok())
                        .and_then(|i| i.soname);
                    out.add(shared.clone(), archive, soname, index);
                    let deps = lib
                        .iter()
                        .flat_map(|l| static_dependencies(l, &lib_dirs, &prefix_dirs));
                    pending.extend(deps.map(|dep| (dep, lib.clone())));
                }
                None => out
                    .missing
                    .push(MissingLib::new(shared.clone(), index, None)),
            }
        }
        let mut seen = HashSet::new();
        while let Some((lib, needed_by)) = pending.pop_front() {
            if provided_by_driver(&lib) || !seen.insert(lib.clone()) {
                continue;
            }
            let Some(archive) = static_archive_for(&lib, &lib_dirs) else {
                out.missing.push(MissingLib::new(lib, index, needed_by));
                continue;
            };
            let deps = static_dependencies(&lib, &lib_dirs, &prefix_dirs);
            pending.extend(deps.into_iter().map(|dep| (dep, Some(lib.clone()))));
            let soname = soname_for(&lib, &lib_dirs);
            out.add(lib, archive, soname, index);
        }
    }
    (out.found, out.missing)
}

/// The archives found so far (each once) and the libraries without one.
#[derive(Default)]
struct Resolved {
    found: Vec<SystemLib>,
    missing: Vec<MissingLib>,
}

impl Resolved {
    fn add(&mut self, name: String, archive: PathBuf, soname: Option<String>, module: usize) {
        if !self.found.iter().any(|l| l.archive == archive) {
            self.found.push(SystemLib {
                name,
                archive,
                soname,
                module,
            });
        }
    }
}

impl MissingLib {
    fn new(lib: String, module: usize, needed_by: Option<String>) -> MissingLib {
        MissingLib {
            lib,
            module,
            needed_by,
            needed_symbols: Vec::new(),
            build_from: None,
            remedy: None,
        }
    }
}

/// Give each missing dependency the unresolved names its shared library exports.
pub fn attribute_unresolved(
    missing: &mut [MissingLib],
    modules: &[&Module],
    unresolved: &BTreeMap<String, String>,
) {
    for lib in missing.iter_mut().filter(|m| m.needed_by.is_some()) {
        // without its -dev package only the runtime library (`libfoo.so.N`) is there
        let shared = system_shared_library(&lib.lib, &modules[lib.module].lib_dirs).or_else(|| {
            let bytes = crate::fsutil::map(&glob_runtime_library(&lib.lib)?).ok()?;
            elf::shared_object_interface(&bytes).ok()
        });
        let Some(shared) = shared else {
            continue;
        };
        let exports: HashSet<&str> = shared.exports.iter().map(String::as_str).collect();
        lib.needed_symbols = unresolved
            .keys()
            .filter(|name| exports.contains(name.as_str()))
            .cloned()
            .collect();
    }
}

/// glibc's libraries that static libc.a contains whole (glibc >= 2.34): always linked in.
pub const GLIBC_SONAMES: &[&str] = &[
    "libc.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
];

/// The static archive for `-l<lib>`: the module's own -L directories first, then the
/// compiler's search path. `-l:libfoo.so.1` asks for `libfoo.a`.
pub fn static_archive_for(lib: &str, lib_dirs: &[String]) -> Option<PathBuf> {
    let file = match lib.strip_prefix(':') {
        Some(exact) => format!(
            "{}.a",
            shared_stem(exact).unwrap_or(exact.trim_end_matches(".a"))
        ),
        None => format!("lib{lib}.a"),
    };
    lib_dirs
        .iter()
        .map(|dir| Path::new(dir).join(&file))
        .find(|p| p.is_file())
        .or_else(|| find_in_compiler_search_path(&file))
}

/// The static archive standing in for a shared library given by path: `libfoo.a` next
/// to it, else wherever `-lfoo` would find it.
pub fn static_archive_for_shared(path: &str) -> Option<PathBuf> {
    let path = Path::new(path);
    let stem = shared_stem(path.file_name()?.to_str()?)?;
    let beside = path.with_file_name(format!("{stem}.a"));
    if beside.is_file() {
        return Some(beside);
    }
    static_archive_for(stem.strip_prefix("lib")?, &[])
}

/// `libfoo.so.1.2` -> `libfoo`.
fn shared_stem(name: &str) -> Option<&str> {
    name.find(".so")
        .filter(|&i| name[i + 3..].is_empty() || name[i + 3..].starts_with('.'))
        .map(|i| &name[..i])
}

/// `lib<lib>.a` in one of `dirs` only (no compiler search path).
fn static_archive_in(lib: &str, dirs: &[String]) -> Option<PathBuf> {
    let file = format!("lib{lib}.a");
    dirs.iter()
        .map(|dir| Path::new(dir).join(&file))
        .find(|p| p.is_file())
}

/// The shared library behind `-l<lib>`: the development symlink, else the runtime
/// library (`libfoo.so.N`, when no -dev package is installed).
pub fn shared_library_file(lib: &str, lib_dirs: &[String]) -> Option<PathBuf> {
    shared_library_path(lib, lib_dirs).or_else(|| glob_runtime_library(lib))
}

/// The development symlink `lib<lib>.so` the linker would find for `-l<lib>`.
fn shared_library_path(lib: &str, lib_dirs: &[String]) -> Option<PathBuf> {
    if lib.starts_with(':') {
        return None;
    }
    let file = format!("lib{lib}.so");
    lib_dirs
        .iter()
        .map(|dir| Path::new(dir).join(&file))
        .find(|p| p.is_file())
        .or_else(|| find_in_compiler_search_path(&file))
}

/// The system's shared library for `-l<lib>` (an ELF file, or a linker script such as
/// Debian's libm.so naming the real one), read.
fn system_shared_library(lib: &str, lib_dirs: &[String]) -> Option<elf::SharedInterface> {
    let bytes = crate::fsutil::map(&shared_library_path(lib, lib_dirs)?).ok()?;
    if elf::file_kind(&bytes) == elf::FileKind::SharedObject {
        return elf::shared_object_interface(&bytes).ok();
    }
    // GROUP ( /lib/…/libm.so.6 AS_NEEDED (…) )
    let pattern = Regex::new(&format!(r"/[^ ]*lib{}\.so\.[0-9.]+", regex::escape(lib))).ok()?;
    let real = pattern
        .find(&String::from_utf8_lossy(&bytes))?
        .as_str()
        .to_string();
    elf::shared_object_interface(&crate::fsutil::map(Path::new(&real)).ok()?).ok()
}

/// What to tell a user who lacks `lib<lib>.a`, from dpkg's file database: which
/// installed package ships the shared library, and whether a static one is packaged.
pub fn static_archive_advice(lib: &str, lib_dirs: &[String]) -> String {
    // dpkg knows files by their canonical path (not `/usr/lib/gcc/…/../../../x.so`)
    let owner = |path: &Path| -> Option<String> {
        let path = path.canonicalize().ok()?;
        let text = process::query(std::process::Command::new("dpkg").arg("-S").arg(path))?;
        Some(text.split(':').next().unwrap_or("").trim().to_string()).filter(|p| !p.is_empty())
    };
    if let Some(dev) = shared_library_path(lib, lib_dirs) {
        return match owner(&dev) {
            Some(package) => format!(
                "Debian package {package} provides lib{lib}.so but no static archive is packaged"
            ),
            None => format!(
                "{} is not from a Debian package; build or install lib{lib}.a",
                dev.display()
            ),
        };
    }
    let runtime = glob_runtime_library(lib);
    match runtime.as_deref().and_then(owner) {
        Some(package) => format!(
            "only the runtime library is installed (Debian package {package}); install its -dev package, which may ship lib{lib}.a"
        ),
        None => format!("no lib{lib} is installed at all"),
    }
}

/// `lib<lib>.so.N` in the usual library directories.
fn glob_runtime_library(lib: &str) -> Option<PathBuf> {
    let prefix = format!("lib{lib}.so.");
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
        "/lib",
    ]
    .iter()
    .filter_map(|dir| std::fs::read_dir(dir).ok())
    .flat_map(|entries| entries.flatten().map(|e| e.path()))
    .find(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
    })
}

/// The soname a program linked with `-l<lib>` would have asked the loader for.
pub fn soname_for(lib: &str, lib_dirs: &[String]) -> Option<String> {
    system_shared_library(lib, lib_dirs)?.soname
}

/// What `cc -static` links by itself: libgcc and libgcc_eh stand in for libgcc_s.
pub fn provided_by_driver(lib: &str) -> bool {
    matches!(lib, "gcc_s" | "gcc" | "gcc_eh")
}

/// glibc's libraries: their code is in libc.a (or libm.a, which -lm brings) already.
const IN_LIBC: &[&str] = &["c", "m", "dl", "pthread", "rt", "util", "resolv", "mvec"];

/// The libraries `-l<lib>` needs when linked statically: its shared library's DT_NEEDED
/// entries (what the dynamic loader would have brought along) and what
/// `pkg-config --static --libs-only-l` adds, without glibc's own. An archive that
/// dlstatic built (in one of `prefix_dirs`) needs exactly what its own `.pc` says: the
/// system's shared library was built with other options.
pub fn static_dependencies(lib: &str, lib_dirs: &[String], prefix_dirs: &[String]) -> Vec<String> {
    let built_in =
        static_archive_in(lib, prefix_dirs).and_then(|a| Some(a.parent()?.to_path_buf()));
    let mut deps: Vec<String> = match &built_in {
        Some(dir) => prefix_static_libs(lib, dir),
        None => (system_shared_library(lib, lib_dirs).iter())
            .flat_map(|shared| shared.needed.iter())
            .filter_map(|soname| lib_name_of_soname(soname))
            .chain(pkg_config_static_libs(lib))
            .collect(),
    };
    let mut seen = std::collections::HashSet::new();
    deps.retain(|dep| {
        dep != lib
            && !IN_LIBC.contains(&dep.as_str())
            && !dep.starts_with("ld-linux")
            && seen.insert(dep.clone())
    });
    deps
}

/// `libgssapi_krb5.so.2` -> `gssapi_krb5`.
fn lib_name_of_soname(soname: &str) -> Option<String> {
    Some(shared_stem(soname)?.strip_prefix("lib")?.to_string())
}

fn pkg_config_static_libs(lib: &str) -> Vec<String> {
    // many modules name the same library, and audit and link both ask: the pkg-config
    // runs were most of the audit's time, so each library is looked up once per process
    static KNOWN: Memo<Vec<String>> = Memo::new();
    KNOWN.get_or_insert_with(lib, || run_pkg_config_static_libs(lib))
}

fn run_pkg_config_static_libs(lib: &str) -> Vec<String> {
    // -ltk8.6 is described by tk.pc, -lssl by libssl.pc, -lX11 by x11.pc
    let unversioned = lib.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    let candidates = [
        lib.to_string(),
        format!("lib{lib}"),
        unversioned.to_string(),
        lib.to_lowercase(),
    ];
    let Some(package) = candidates
        .iter()
        .find(|name| pkg_config_packages().contains(name.as_str()))
    else {
        return Vec::new();
    };
    let mut command = std::process::Command::new("pkg-config");
    process::query(command.args(["--static", "--libs-only-l", package]))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|flag| flag.strip_prefix("-l"))
        .map(String::from)
        .collect()
}

/// What a dlstatic-built `lib<lib>.a` in `dir` needs: its `.pc` (found through that
/// `pkgconfig/` first), else its libtool `.la`'s `dependency_libs`.
fn prefix_static_libs(lib: &str, dir: &Path) -> Vec<String> {
    let pc_dir = dir.join("pkgconfig");
    let la = std::fs::read_to_string(dir.join(format!("lib{lib}.la"))).unwrap_or_default();
    let flags = match [format!("lib{lib}"), lib.to_string()]
        .into_iter()
        .find(|name| pc_dir.join(format!("{name}.pc")).is_file())
    {
        Some(package) => {
            let mut command = std::process::Command::new("pkg-config");
            command.env("PKG_CONFIG_PATH", &pc_dir);
            process::query(command.args(["--static", "--libs-only-l", &package]))
                .unwrap_or_default()
        }
        None => la
            .lines()
            .find_map(|l| l.strip_prefix("dependency_libs="))
            .unwrap_or("")
            .trim_matches(|c| c == '\'' || c == ' ')
            .to_string(),
    };
    flags
        .split_whitespace()
        .filter_map(|flag| flag.strip_prefix("-l"))
        .map(String::from)
        .collect()
}

/// Every package pkg-config knows (`--list-all`), asked once: most `-l` names have none.
fn pkg_config_packages() -> &'static HashSet<String> {
    static PACKAGES: OnceLock<HashSet<String>> = OnceLock::new();
    PACKAGES.get_or_init(|| {
        let text = process::query(std::process::Command::new("pkg-config").arg("--list-all"))
            .unwrap_or_default();
        text.lines()
            .filter_map(|line| line.split_whitespace().next())
            .map(String::from)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_stems() {
        assert_eq!(shared_stem("libz.so"), Some("libz"));
        assert_eq!(shared_stem("libz.so.1.2.13"), Some("libz"));
        assert_eq!(shared_stem("libsomething.a"), None);
    }

    #[test]
    fn zlib_resolves_to_its_archive_and_soname() {
        let archive = static_archive_for("z", &[]).expect("libz.a (zlib1g-dev) is installed");
        assert!(archive.ends_with("libz.a"));
        assert_eq!(soname_for("z", &[]).as_deref(), Some("libz.so.1"));
        assert_eq!(soname_for("m", &[]).as_deref(), Some("libm.so.6"));
        assert!(static_archive_for("nosuchlib", &[]).is_none());
    }

    #[test]
    fn static_dependencies_follow_dt_needed_and_pkg_config() {
        // libtirpc.so.3 needs libgssapi_krb5.so.2 (DT_NEEDED); pkg-config does not say so
        assert!(static_dependencies("tirpc", &[], &[]).contains(&"gssapi_krb5".to_string()));
        // libssl needs libcrypto; glibc's own libraries never appear
        let ssl = static_dependencies("ssl", &[], &[]);
        assert!(ssl.contains(&"crypto".to_string()), "{ssl:?}");
        assert!(
            !ssl.iter().any(|d| IN_LIBC.contains(&d.as_str())),
            "{ssl:?}"
        );
        assert_eq!(
            lib_name_of_soname("libgssapi_krb5.so.2").as_deref(),
            Some("gssapi_krb5")
        );
    }
}
