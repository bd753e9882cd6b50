//! Helpers shared by the tests.
// each test crate uses the helpers it needs, not all of them
#![allow(dead_code)]

pub mod deploy_support;
pub mod plan_check;
pub mod results;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const DLSTATIC: &str = env!("CARGO_BIN_EXE_dlstatic");

/// `dlstatic build --out OUT EXTRA…`, run from the repository root.
pub fn build(out: &Path, extra: &[&str]) -> Output {
    Command::new(DLSTATIC)
        .args(["build", "--out"])
        .arg(out)
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

/// Copy every file below `from` to the same place below `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(entry.file_name());
        match entry.file_type().unwrap().is_dir() {
            true => copy_tree(&entry.path(), &dest),
            false => {
                std::fs::create_dir_all(to).unwrap();
                std::fs::copy(entry.path(), dest).unwrap();
            }
        }
    }
}

/// `dlstatic build --out OUT --modules MODULES EXTRA…`, which must succeed: its stdout
/// (verify's table) and stderr (the build's log).
pub fn build_ok(out: &Path, modules: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["--modules", modules];
    args.extend(extra);
    let result = build(out, &args);
    let (stdout, log) = (String::from_utf8_lossy(&result.stdout), stderr(&result));
    assert!(result.status.success(), "build {args:?}:\n{stdout}\n{log}");
    (stdout.into_owned(), log)
}

/// `code` run by the static interpreter of OUT in an empty root holding only OUT, and by
/// the dynamic interpreter of the same CPython build over the same installed packages,
/// both with `env`: both outputs, each of which must have succeeded.
pub fn static_and_dynamic(out: &Path, code: &str, env: &[(&str, &str)]) -> (String, String) {
    let text = |what: &str, run: Output| {
        assert!(run.status.success(), "{what}: {}", stderr(&run));
        String::from_utf8_lossy(&run.stdout).into_owned()
    };
    let static_run = dlstatic::python::verify::chroot_command(out)
        .envs(env.iter().copied())
        .args(["/bin/python3", "-c", code])
        .output()
        .unwrap();
    let manifest = dlstatic::python::verify::read_manifest(out).unwrap();
    let dynamic_run = Command::new(&manifest.dynamic_python)
        .envs(env.iter().copied())
        .env("PYTHONPATH", out.with_extension("km").join("packages/site"))
        .args(["-c", code])
        .output()
        .unwrap();
    (text("static", static_run), text("dynamic", dynamic_run))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A build into an OUT that holds a previous result fails with one error line naming
/// every needle, exits non-zero, and leaves OUT as it was.
pub fn assert_build_fails_cleanly(args: &[&str], needles: &[&str]) {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("dist");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("marker"), "previous build").unwrap();
    let result = build(&out, args);
    let text = stderr(&result);
    assert!(!result.status.success(), "should fail: {text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{text}");
    for needle in needles {
        assert!(
            errors[0].contains(needle),
            "error lacks {needle:?}: {}",
            errors[0]
        );
    }
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["marker"], "OUT untouched");
}

/// The archives a plan summary (plan.json, the audit's `plan`) takes for `name`.
pub fn archives_in_summary(plan: &serde_json::Value, name: &str) -> Vec<String> {
    let libraries = plan["system_libraries"].as_array().unwrap();
    libraries
        .iter()
        .map(|lib| lib["archive"].as_str().unwrap().to_string())
        .filter(|archive| archive.ends_with(&format!("/{name}")))
        .collect()
}

/// The static archives the executed link plan of the build into `out` took for `name`
/// (`libpq.a`).
pub fn planned_archives(out: &Path, name: &str) -> Vec<PathBuf> {
    let plan: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.with_extension("km").join("link/plan.json")).unwrap(),
    )
    .unwrap();
    archives_in_summary(&plan, name)
        .into_iter()
        .map(PathBuf::from)
        .collect()
}
