//! A compiler launcher: ccache, sccache, distcc or any program run as `LAUNCHER
//! COMPILER ARGS…`. The wrapper puts it in front of the real compiler for compiles only:
//! a cache cannot serve a shared link, which must run (and be captured) every time.
//!
//! It is chosen by `--cc-launcher` (kept for the build in `DLSTATIC_CC_LAUNCHER`) or by
//! the ccache-as-CC convention, `CC="ccache gcc"`: a known launcher at the front of the
//! real compiler command.

use std::path::PathBuf;

use anyhow::{Result, bail};

/// Set by `capture --cc-launcher` for the build: the launcher's path.
pub const LAUNCHER_VAR: &str = "DLSTATIC_CC_LAUNCHER";

/// Launchers known by name, each with the Debian package that ships it.
const KNOWN: &[(&str, &str)] = &[
    ("ccache", "ccache"),
    ("sccache", "sccache"),
    ("distcc", "distcc"),
];

/// `--cc-launcher NAME|PATH`, checked: the launcher's absolute path.
pub fn find(name: &str) -> Result<PathBuf> {
    match which::which(name) {
        Ok(path) => Ok(path),
        Err(_) => match KNOWN.iter().find(|(known, _)| *known == name) {
            Some((_, package)) => {
                bail!("--cc-launcher {name}: not found on PATH (Debian package: {package})")
            }
            None => bail!(
                "--cc-launcher {name}: not found (give ccache, sccache, distcc, or a program's path)"
            ),
        },
    }
}

/// The environment a build under `capture --cc-launcher` gets: the launcher, and for
/// ccache, no hashing of the working directory unless the user chose otherwise: pip
/// builds every sdist in a new temporary directory, and with `-g` (CPython's flags)
/// ccache would count that directory in and never hit.
pub fn environment(launcher: &std::path::Path) -> Vec<(&'static str, std::ffi::OsString)> {
    let mut vars = vec![(LAUNCHER_VAR, launcher.as_os_str().to_os_string())];
    let is_ccache = launcher.file_name().is_some_and(|n| n == "ccache");
    let user_chose = ["CCACHE_HASHDIR", "CCACHE_NOHASHDIR"]
        .iter()
        .any(|var| std::env::var_os(var).is_some());
    if is_ccache && !user_chose {
        vars.push(("CCACHE_NOHASHDIR", "1".into()));
    }
    vars
}

/// The command that runs `real` (the real compiler command) for one invocation: with the
/// launcher in front when `compiles`, and never with one otherwise.
pub fn command(real: Vec<String>, compiles: bool) -> Vec<String> {
    let (from_cc, compiler) = split(real);
    let chosen = std::env::var(LAUNCHER_VAR)
        .ok()
        .filter(|l| !l.is_empty())
        .or(from_cc);
    match chosen.filter(|_| compiles) {
        Some(launcher) => std::iter::once(launcher).chain(compiler).collect(),
        None => compiler,
    }
}

/// `ccache gcc -m64` → (`ccache`, `gcc -m64`); a command with no known launcher in front
/// is all compiler.
fn split(mut real: Vec<String>) -> (Option<String>, Vec<String>) {
    let first_is_launcher = real.len() > 1
        && KNOWN.iter().any(|(name, _)| {
            std::path::Path::new(&real[0])
                .file_name()
                .is_some_and(|n| n == *name)
        });
    match first_is_launcher {
        true => (Some(real.remove(0)), real),
        false => (None, real),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_launcher_in_cc_serves_compiles_and_is_left_out_of_links() {
        // (the test process has no DLSTATIC_CC_LAUNCHER)
        let real = strings(&["/usr/bin/ccache", "gcc", "-m64"]);
        assert_eq!(command(real.clone(), true), real);
        assert_eq!(command(real, false), strings(&["gcc", "-m64"]));
        assert_eq!(command(strings(&["gcc"]), true), strings(&["gcc"]));
        assert_eq!(command(strings(&["ccache"]), true), strings(&["ccache"]));
    }

    #[test]
    fn an_unknown_launcher_is_refused_with_its_package() {
        let error = find("no-such-launcher-here").unwrap_err().to_string();
        assert!(
            error.contains("--cc-launcher no-such-launcher-here"),
            "{error}"
        );
    }
}
