//! How the wrapper is reached: `dlstatic cc|c++|fc ARGS` (what `$CC`, `$CXX`, `$FC` hold
//! under capture), a link named `dlstatic-cc` (cargo wants one program path as its
//! linker), or — for
//! builds that call the compiler by name (`cc -shared …` in a script, a Makefile that
//! hard-codes `gcc`) — a directory of links named like the compilers, first on PATH, as
//! ccache's masquerade mode does. The real compiler is then the same name found on PATH
//! past that directory.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::process;
use crate::toolchain::Driver;

/// Names under which the dlstatic executable acts as the wrapper without a subcommand.
pub const LINK_NAME_C: &str = "dlstatic-cc";
pub const LINK_NAME_CXX: &str = "dlstatic-c++";
pub const LINK_NAME_FC: &str = "dlstatic-fc";

/// Set by `capture` for the build: the directory of compiler-named links.
const MASQUERADE_VAR: &str = "DLSTATIC_MASQUERADE";

/// Compiler names the masquerade directory holds (and `<triplet>-gcc`, `<triplet>-g++`,
/// `<triplet>-gfortran`).
const COMPILER_NAMES: &[&str] = &[
    "cc", "gcc", "clang", "c++", "g++", "clang++", "gfortran", "f77", "f95",
];

/// A compiler invocation the wrapper handles.
pub struct Wrapped<'a> {
    pub driver: Driver,
    /// The real compiler command; empty: the driver's default (`DLSTATIC_REAL_CC`…).
    pub real: Vec<String>,
    pub args: &'a [String],
}

impl Wrapped<'_> {
    pub fn real_command(&self) -> Vec<String> {
        match self.real.is_empty() {
            true => self.driver.real_command(),
            false => self.real.clone(),
        }
    }
}

/// How this process was started as a compiler, if it was.
pub fn invocation(args: &[String]) -> Option<Wrapped<'_>> {
    let invoked_as = Path::new(args.first()?)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    let wrapped = |driver, real: Vec<String>, args| Some(Wrapped { driver, real, args });
    match (invoked_as.as_str(), args.get(1).map(String::as_str)) {
        (LINK_NAME_C, _) => wrapped(Driver::C, Vec::new(), &args[1..]),
        (LINK_NAME_CXX, _) => wrapped(Driver::Cxx, Vec::new(), &args[1..]),
        (LINK_NAME_FC, _) => wrapped(Driver::Fortran, Vec::new(), &args[1..]),
        (name, _) if std::env::var_os(MASQUERADE_VAR).is_some() && is_compiler_name(name) => {
            wrapped(driver_named(name), vec![name.to_string()], &args[1..])
        }
        (_, Some("cc")) => wrapped(Driver::C, Vec::new(), &args[2..]),
        (_, Some("c++")) => wrapped(Driver::Cxx, Vec::new(), &args[2..]),
        (_, Some("fc")) => wrapped(Driver::Fortran, Vec::new(), &args[2..]),
        _ => None,
    }
}

/// The driver a compiler name stands for (`x86_64-linux-gnu-gfortran`: Fortran).
fn driver_named(name: &str) -> Driver {
    if name.ends_with("++") {
        Driver::Cxx
    } else if name.ends_with("fortran") || name.ends_with("f77") || name.ends_with("f95") {
        Driver::Fortran
    } else {
        Driver::C
    }
}

fn is_compiler_name(name: &str) -> bool {
    let bare = name
        .rsplit_once('-')
        .filter(|(triplet, _)| triplet.contains("linux"))
        .map_or(name, |(_, n)| n);
    COMPILER_NAMES.contains(&bare)
}

/// The masquerade directory in `dir`: links to `exe` under every compiler name.
pub fn make_directory(dir: &Path, exe: &Path) -> Result<Vec<(&'static str, OsString)>> {
    let triplet = process::query(
        std::process::Command::new(&Driver::C.real_command()[0]).arg("-dumpmachine"),
    )
    .map(|t| t.trim().to_string())
    .filter(|t| !t.is_empty());
    let mut names: Vec<String> = COMPILER_NAMES.iter().map(|n| n.to_string()).collect();
    if let Some(triplet) = triplet {
        names.extend(["gcc", "g++", "gfortran"].map(|n| format!("{triplet}-{n}")));
    }
    for name in names
        .iter()
        .map(String::as_str)
        .chain([LINK_NAME_C, LINK_NAME_CXX, LINK_NAME_FC])
    {
        std::os::unix::fs::symlink(exe, dir.join(name)).with_context(|| {
            format!("{}: cannot create the compiler link {name}", dir.display())
        })?;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut searched = vec![dir.to_path_buf()];
    searched.extend(std::env::split_paths(&path));
    Ok(vec![
        ("PATH", std::env::join_paths(searched)?),
        (MASQUERADE_VAR, dir.as_os_str().to_os_string()),
    ])
}

/// PATH without the masquerade directory: what the real compiler (and ccache, or
/// whatever it runs) must search, or it would find the wrapper again.
pub fn real_path() -> Option<OsString> {
    let dir = PathBuf::from(std::env::var_os(MASQUERADE_VAR)?);
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::env::split_paths(&path).filter(|p| *p != dir)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_names_map_to_their_driver() {
        for (name, driver) in [
            ("cc", Driver::C),
            ("x86_64-linux-gnu-gcc", Driver::C),
            ("clang++", Driver::Cxx),
            ("gfortran", Driver::Fortran),
            ("x86_64-linux-gnu-gfortran", Driver::Fortran),
            ("f77", Driver::Fortran),
        ] {
            assert!(is_compiler_name(name), "{name}");
            assert_eq!(driver_named(name), driver, "{name}");
        }
        assert!(!is_compiler_name("gfortran-wrapper"));
    }
}
