//! The real compiler and linker, as dlstatic itself calls them: compiling generated C
//! and the runtime shim, turning LTO objects into regular ones, and the final link.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result, anyhow, bail};

use crate::process;

/// Which compiler driver linked a module: C, C++ or Fortran. What each adds to a link
/// by itself (libstdc++, libgfortran) the static link must add too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Driver {
    #[serde(rename = "cc")]
    C,
    #[serde(rename = "c++")]
    Cxx,
    #[serde(rename = "fc")]
    Fortran,
}

impl Driver {
    /// The wrapper's subcommand for this driver (`dlstatic cc|c++|fc`).
    pub fn name(self) -> &'static str {
        match self {
            Driver::C => "cc",
            Driver::Cxx => "c++",
            Driver::Fortran => "fc",
        }
    }

    /// The variable naming the real compiler behind the wrapper.
    pub fn real_variable(self) -> &'static str {
        match self {
            Driver::C => "DLSTATIC_REAL_CC",
            Driver::Cxx => "DLSTATIC_REAL_CXX",
            Driver::Fortran => "DLSTATIC_REAL_FC",
        }
    }

    /// The real compiler command, e.g. `["gcc", "-m64"]`.
    pub fn real_command(self) -> Vec<String> {
        let default = match self {
            Driver::C => "cc",
            Driver::Cxx => "c++",
            Driver::Fortran => "gfortran",
        };
        let value = std::env::var(self.real_variable())
            .ok()
            .filter(|v| !v.trim().is_empty());
        value
            .as_deref()
            .unwrap_or(default)
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// The libraries this driver links without being asked (`-lNAME` names), beyond the
    /// C runtime every driver links: gfortran adds its runtime, and its spec file
    /// (`libgfortran.spec`) libquadmath and libm. The static archives are gcc's own
    /// (`/usr/lib/gcc/<triplet>/<version>/libgfortran.a`). (libstdc++ comes with linking
    /// by the C++ driver: see `Plan::driver`.)
    pub fn implicit_libs(self) -> &'static [&'static str] {
        match self {
            Driver::C | Driver::Cxx => &[],
            Driver::Fortran => &["gfortran", "quadmath", "m"],
        }
    }
}

/// `cc` (the crate) locates the compiler and its target flags; the output name is ours.
pub fn compile_c(source: &Path, object: &Path, include_dir: &Path) -> Result<()> {
    let real = Driver::C.real_command();
    let target = env!("DLSTATIC_TARGET");
    let mut build = cc::Build::new();
    build
        .target(target)
        .host(target)
        .opt_level(2)
        .debug(false)
        .cargo_metadata(false)
        .cargo_warnings(false)
        .out_dir(object.parent().unwrap_or(Path::new(".")))
        .compiler(&real[0])
        .include(include_dir);
    for flag in &real[1..] {
        build.flag(flag);
    }
    let tool = build
        .try_get_compiler()
        .map_err(|e| anyhow!("cannot find a C compiler: {e}"))?;
    let mut command = tool.to_command();
    command.arg("-c").arg(source).arg("-o").arg(object);
    process::run_captured(&mut command)
        .with_context(|| format!("{}: compiling generated C failed", source.display()))?;
    Ok(())
}

/// The environment compile_c's output depends on (the `cc` crate reads CFLAGS and its
/// target-specific forms), as sorted `NAME=value` lines: part of the cache key of
/// every object dlstatic compiles.
pub fn compile_environment() -> String {
    let mut relevant: Vec<String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
        .filter(|(k, _)| {
            k.contains("CFLAGS")
                || k.contains("CPPFLAGS")
                || k.starts_with("CRATE_CC")
                || k == "CC"
                || k.starts_with("DLSTATIC_REAL_C")
        })
        .map(|(k, v)| format!("{k}={}", v.to_string_lossy()))
        .collect();
    relevant.sort();
    relevant.join("\n")
}

/// GCC LTO IR -> one ordinary relocatable object (`gcc -r -flto -flinker-output=nolto-rel`).
pub fn lto_to_regular_object(bytes: &[u8], scratch: &Path) -> Result<Vec<u8>> {
    let dir = tempfile::tempdir_in(scratch)?;
    let input = dir.path().join("in.o");
    let output = dir.path().join("out.o");
    std::fs::write(&input, bytes)?;
    let real = Driver::C.real_command();
    let mut command = Command::new(&real[0]);
    command.args(&real[1..]).args([
        "-r",
        "-nostdlib",
        "-flto",
        "-flinker-output=nolto-rel",
        "-o",
    ]);
    command.arg(&output).arg(&input);
    process::run_captured(&mut command)?;
    Ok(std::fs::read(&output)?)
}

/// Run the final link, writing all of its output to `log`. On failure the error names
/// the linker's own complaint and the log.
pub fn link(driver: Driver, args: &[String], log: &Path) -> Result<()> {
    let real = driver.real_command();
    let mut command = Command::new(&real[0]);
    command.args(&real[1..]).args(args);
    process::run_logged_picking(&mut command, log, linker_complaint).context("link failed")
}

/// How a failed link reads: the linker's own complaint, not collect2's summary or the
/// "Using 'dlopen' in statically linked applications" warnings.
fn linker_complaint(log: &str) -> Vec<String> {
    const CAUSES: &[&str] = &[
        "undefined reference",
        "multiple definition",
        "cannot find",
        "error:",
    ];
    let output = || log.lines().skip(1); // after the command line
    let cause = output()
        .find(|l| CAUSES.iter().any(|k| l.contains(k)) && !l.contains("collect2"))
        .or_else(|| output().find(|l| !l.contains("warning")));
    match cause {
        Some(line) => vec![line.trim().to_string()],
        None => process::last_lines(log),
    }
}

/// Where the compiler driver would find `file` (`cc -print-file-name`), if anywhere.
pub fn find_in_compiler_search_path(file: &str) -> Option<PathBuf> {
    static FOUND: Memo<Option<PathBuf>> = Memo::new();
    FOUND.get_or_insert_with(file, || ask_compiler_for_file(file))
}

fn ask_compiler_for_file(file: &str) -> Option<PathBuf> {
    let real = Driver::C.real_command();
    let mut command = Command::new(&real[0]);
    command
        .args(&real[1..])
        .arg(format!("-print-file-name={file}"));
    let path = PathBuf::from(process::query(&mut command)?.trim());
    // an unknown file is echoed back bare
    (path.is_absolute() && path.is_file()).then_some(path)
}

/// `-fuse-ld=NAME` for `build --linker NAME`, once `ld.NAME` is known to be on PATH.
pub fn fuse_ld_flag(name: &str) -> Result<String> {
    let package = match name {
        "bfd" | "gold" => "binutils",
        "lld" => "lld",
        "mold" => "mold",
        _ => bail!("--linker {name}: unknown linker (choose bfd, gold, lld or mold)"),
    };
    let program = format!("ld.{name}");
    if which::which(&program).is_err() {
        bail!("--linker {name}: {program} is not on PATH (Debian package: {package})");
    }
    Ok(format!("-fuse-ld={name}"))
}

/// Answers about the system (the compiler's search path, pkg-config) that audit and link
/// ask again and again for the same name; each is found out once per process.
pub struct Memo<V>(OnceLock<Mutex<HashMap<String, V>>>);

impl<V: Clone> Default for Memo<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Clone> Memo<V> {
    pub const fn new() -> Self {
        Memo(OnceLock::new())
    }

    pub fn get_or_insert_with(&self, key: &str, find: impl FnOnce() -> V) -> V {
        let known = self.0.get_or_init(Mutex::default);
        if let Some(value) = known.lock().unwrap().get(key) {
            return value.clone();
        }
        let value = find();
        known.lock().unwrap().insert(key.to_string(), value.clone());
        value
    }
}
