//! Third-party packages with real PyPI sdists: `dlstatic build --modules
//! extensions/modules.txt` (the README's main job) links markupsafe, simplejson,
//! msgpack, pyyaml + libyaml, ujson and requests into the static interpreter. Reuses the
//! CPython build cached by tests/cpython.rs (or makes it).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod common;
use common::{build, stderr};
use std::process::Command;

fn scratch() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("packages")
}

/// The default build, made once.
fn dist() -> &'static PathBuf {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        let out = scratch().join("dist");
        let _ = std::fs::remove_dir_all(scratch());
        let result = build(&out, &["--modules", "extensions/modules.txt"]);
        assert!(
            result.status.success(),
            "dlstatic build --modules failed:\n{}\n{}",
            String::from_utf8_lossy(&result.stdout),
            stderr(&result)
        );
        out
    })
}

/// Every path below `dir`, in a walk sorted by name.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let walk = walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name();
    walk.into_iter()
        .map(|entry| entry.unwrap().into_path())
        .collect()
}

#[test]
fn default_modules_are_linked_in_and_their_speedups_are_used() {
    let dist = dist();
    let manifest = dlstatic::python::verify::read_manifest(dist).unwrap();
    let third_party: Vec<&str> = manifest
        .modules
        .iter()
        .filter(|m| m.package != "stdlib")
        .map(|m| m.name.as_str())
        .collect();
    for expected in [
        "markupsafe._speedups",
        "simplejson._speedups",
        "msgpack._cmsgpack",
        "yaml._yaml",
        "ujson",
    ] {
        assert!(
            third_party.contains(&expected),
            "{expected} not linked: {third_party:?}"
        );
    }
    assert_eq!(
        manifest.smoke_tests.len(),
        6,
        "{:?}",
        manifest.smoke_tests.keys()
    );
    // build ran verify (imports, dlsym of every export, smoke tests) in an empty root; again here
    dlstatic::python::verify::verify(dist, &manifest).unwrap();

    let site = dist.join("lib/python3.11/site-packages");
    let stub =
        std::fs::read_to_string(site.join("markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so"))
            .unwrap();
    assert_eq!(stub.trim().len(), 32, "the installed .so is a stub");

    let out = dlstatic::python::verify::chroot_command(dist)
        .args(["/bin/python3", "-c", "import markupsafe, simplejson, msgpack, yaml, ujson, requests\n\
            print(markupsafe._escape_inner.__module__, simplejson._speedups.__name__, yaml.CLoader.__module__, msgpack.Packer.__module__)"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "markupsafe._speedups simplejson._speedups yaml.cyaml msgpack._cmsgpack\n",
        "{}",
        stderr(&out)
    );
}

#[test]
fn audit_explains_the_two_speedups_modules() {
    let dist = dist();
    let audit: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dist.with_extension("km").join("audit.json")).unwrap(),
    )
    .unwrap();
    let findings = audit["findings"].as_array().unwrap();
    let basename = findings
        .iter()
        .find(|f| {
            f["kind"] == "duplicate-basename"
                && f["modules"][0] == "_speedups.cpython-311-x86_64-linux-gnu.so"
        })
        .unwrap_or_else(|| panic!("no duplicate-basename finding for _speedups: {audit:#}"));
    assert_eq!(basename["severity"], "info");
    let init = findings
        .iter()
        .find(|f| f["kind"] == "duplicate-definition" && f["symbols"][0] == "PyInit__speedups")
        .unwrap_or_else(|| {
            panic!("no duplicate-definition finding for PyInit__speedups: {audit:#}")
        });
    assert!(init["message"].as_str().unwrap().contains("renamed"));
    assert!(
        findings.iter().all(|f| f["severity"] != "error"),
        "{audit:#}"
    );
}

/// A modules file (and files next to it) that must make the build fail cleanly.
fn assert_fails_cleanly(modules_text: &str, extra_files: &[(&str, &str)], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules.txt");
    std::fs::write(&modules, modules_text).unwrap();
    for (name, text) in extra_files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    common::assert_build_fails_cleanly(&["--modules", modules.to_str().unwrap()], needles);
}

#[test]
fn unknown_modules_syntax_is_refused_with_file_and_line() {
    assert_fails_cleanly(
        "markupsafe==3.0.2\nthis line is not a requirement\n",
        &[],
        &["modules.txt:2", "this line is not a requirement"],
    );
}

#[test]
fn a_package_that_fails_to_build_is_named_with_backend_and_log() {
    dist(); // the CPython cache exists
    let setup = "from setuptools import setup, Extension\nsetup(name='broken', version='0.1', ext_modules=[Extension('broken', ['broken.c'])])\n";
    let pyproject =
        "[build-system]\nrequires = ['setuptools']\nbuild-backend = 'setuptools.build_meta'\n";
    assert_fails_cleanly(
        "./broken\n",
        &[
            ("broken/setup.py", setup),
            ("broken/pyproject.toml", pyproject),
            ("broken/broken.c", "this is not C;\n"),
        ],
        &["package broken 0.1", "setuptools.build_meta", "broken.log"],
    );
}

#[test]
fn pip_freeze_output_is_a_modules_file() {
    let dist = dist();
    // what `pip freeze` says of the packages the default build installed
    let km = dist.with_extension("km").join("packages");
    let freeze = Command::new(km.join("venv/bin/pip"))
        .args(["freeze", "--path"])
        .arg(km.join("site"))
        .output()
        .unwrap();
    assert!(freeze.status.success(), "{}", stderr(&freeze));
    let text = String::from_utf8(freeze.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.eq_ignore_ascii_case("markupsafe==3.0.2")),
        "{text}"
    );
    let modules = scratch().join("freeze.txt");
    std::fs::write(&modules, &text).unwrap();

    let out = scratch().join("dist-freeze");
    let result = build(&out, &["--modules", modules.to_str().unwrap()]);
    let log = stderr(&result);
    assert!(result.status.success(), "{log}");
    // the default build built each of these packages already: another modules file
    // naming them reuses those builds from the package cache
    let built_again: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("dlstatic: build ") && l.ends_with(" …"))
        .collect();
    assert!(
        built_again.is_empty(),
        "built again instead of reused: {built_again:?}"
    );
    assert!(
        log.lines().any(|l| l
            .to_lowercase()
            .starts_with("dlstatic: build markupsafe 3.0.2")
            && l.contains("reused from")),
        "{log}"
    );
    let names = |dir: &Path| -> Vec<String> {
        let manifest = dlstatic::python::verify::read_manifest(dir).unwrap();
        let mut names: Vec<String> = manifest
            .modules
            .into_iter()
            .filter(|m| m.package != "stdlib")
            .map(|m| m.name)
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&out),
        names(dist),
        "the same extension modules from the frozen set"
    );
}

#[test]
fn rust_maturin_cmake_and_ctypes_library_packages_link_and_work() {
    dist(); // the CPython cache exists
    let out = scratch().join("dist-backends");
    let trees = ["tests/packages/skb_demo", "tests/packages/ctypes_demo"]
        .map(|tree| Path::new(env!("CARGO_MANIFEST_DIR")).join(tree));
    let before = trees.each_ref().map(|tree| files_below(tree));
    let result = build(&out, &["--modules", "tests/packages/backends.txt"]);
    assert!(
        result.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&result.stdout),
        stderr(&result)
    );
    // pip resolved and built copies: nothing was written into the local trees
    assert_eq!(trees.each_ref().map(|tree| files_below(tree)), before);
    let manifest = dlstatic::python::verify::read_manifest(&out).unwrap();
    let backend_of = |name: &str| {
        manifest
            .modules
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.backend.clone())
    };
    assert_eq!(backend_of("rpds.rpds").as_deref(), Some("maturin"));
    // CMake rewrote the installed file: matched to its link by name, served by its stub
    assert_eq!(
        backend_of("skb_demo._core").as_deref(),
        Some("scikit_build_core.build")
    );
    // a bundled C library the package opens with ctypes.CDLL(path) is linked and served too
    assert_eq!(
        backend_of("ctypes_demo.libdemo").as_deref(),
        Some("setuptools.build_meta")
    );
    assert_eq!(manifest.smoke_tests.len(), 3);
    let verify = String::from_utf8_lossy(&result.stdout).into_owned();
    assert!(verify.contains("0 failed"), "{verify}");
    // a module whose import needs a package nobody installed is a warning, not a failure
    let optional = verify
        .lines()
        .find(|l| l.starts_with("ctypes_demo._optional"))
        .unwrap_or_else(|| panic!("{verify}"));
    assert!(
        optional.contains("warn") && optional.contains("imports ctypes_demo_missing_dependency"),
        "{optional}"
    );
    assert!(verify.contains("1 with warnings"), "{verify}");
}
