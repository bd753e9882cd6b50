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
    let check = "empty root: its smoke test (extensions/smoke/requests.py), pure Python over the stdlib's ssl";
    common::results::record("packages", "requests", "2.32.3", check);
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

/// A local package whose C source does not compile, as (path, text) files of a tree `broken/`.
const BROKEN_PACKAGE: [(&str, &str); 3] = [
    (
        "broken/setup.py",
        "from setuptools import setup, Extension\nsetup(name='broken', version='0.1', ext_modules=[Extension('broken', ['broken.c'])])\n",
    ),
    (
        "broken/pyproject.toml",
        "[build-system]\nrequires = ['setuptools']\nbuild-backend = 'setuptools.build_meta'\n",
    ),
    ("broken/broken.c", "this is not C;\n"),
];

#[test]
fn a_package_that_fails_to_build_is_named_with_backend_and_log() {
    dist(); // the CPython cache exists
    // (markupsafe builds beside it, in parallel: the one error is still broken's)
    assert_fails_cleanly(
        "./broken\nmarkupsafe==3.0.2\n",
        &BROKEN_PACKAGE,
        &["package broken 0.1", "setuptools.build_meta", "broken.log"],
    );
}

#[test]
fn keep_going_links_the_packages_that_built_and_names_the_one_that_failed() {
    dist(); // the CPython cache exists
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in BROKEN_PACKAGE {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let modules = dir.path().join("modules.txt");
    std::fs::write(&modules, "./broken\nmarkupsafe==3.0.2\n").unwrap();
    let out = dir.path().join("dist");
    let args = ["--modules", modules.to_str().unwrap(), "--keep-going"];
    let result = build(&out, &[&args[..], &["--jobs", "2"]].concat());
    let log = stderr(&result);
    assert_eq!(
        result.status.code(),
        Some(3),
        "partial build exit code:\n{log}"
    );
    let summary: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.contains("failed to build and is left out"))
        .collect();
    assert!(summary.len() >= 2, "no failure summary:\n{log}");
    assert!(
        summary[1].contains("broken 0.1")
            && summary[1].contains("broken.c:1:")
            && summary[1].contains("error:")
            && summary[1].contains("logs/broken.log"),
        "the failure's line names package, cause and log: {}",
        summary[1]
    );
    // OUT holds the payload of what built, verified (build ran verify), and it works
    let manifest = dlstatic::python::verify::read_manifest(&out).unwrap();
    let third_party: Vec<&str> = (manifest.modules.iter())
        .filter(|m| m.package != "stdlib")
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(third_party, ["markupsafe._speedups"]);
    let run = dlstatic::python::verify::chroot_command(&out)
        .args(["/bin/python3", "-c", "import markupsafe; print(markupsafe.escape('<b>'), markupsafe._escape_inner.__module__)"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "&lt;b&gt; markupsafe._speedups\n",
        "{}",
        stderr(&run)
    );
    // a partial OUT is not up to date: the next build tries the failed package again
    let again = build(&out, &args);
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("dlstatic: build broken 0.1"),
        "{}",
        stderr(&again)
    );
}

/// `ccache --print-stats`'s counter `name` for the cache in `dir`.
fn ccache_counter(dir: &Path, name: &str) -> u64 {
    let stats = Command::new("ccache")
        .arg("--print-stats")
        .env("CCACHE_DIR", dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&stats.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in ccache's stats:\n{text}"))
}

#[test]
fn with_ccache_a_second_build_of_an_sdist_hits_and_its_link_is_still_captured() {
    let pip = dist().with_extension("km").join("packages/venv/bin/pip");
    let cache = tempfile::tempdir().unwrap();
    for round in 0..2 {
        // a clean tree each time: pip unpacks the sdist into a new temporary directory
        let work = tempfile::tempdir().unwrap();
        let result = Command::new(common::DLSTATIC)
            .args(["capture", "--db"])
            .arg(work.path().join("db"))
            .args(["--cc-launcher", "ccache", "--"])
            .arg(&pip)
            .args(["install", "--use-pep517", "--no-cache-dir", "--no-deps"])
            .args(["--no-binary", "markupsafe", "--target"])
            .arg(work.path().join("site"))
            .arg("markupsafe==3.0.2")
            .env("CCACHE_DIR", cache.path())
            .output()
            .unwrap();
        assert!(result.status.success(), "{}", stderr(&result));
        let links = std::fs::read_dir(work.path().join("db/links"))
            .unwrap()
            .count();
        assert_eq!(links, 1, "round {round}: the link of _speedups is captured");
        let hits = ccache_counter(cache.path(), "direct_cache_hit")
            + ccache_counter(cache.path(), "preprocessed_cache_hit");
        match round {
            0 => assert!(hits == 0 && ccache_counter(cache.path(), "cache_miss") > 0),
            _ => assert!(hits > 0, "the second build's compile came from the cache"),
        }
    }
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
    // one package at a time, where the default build ran two at once
    let result = build(
        &out,
        &["--modules", modules.to_str().unwrap(), "--jobs", "1"],
    );
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
    // whatever the order builds finished in, the same packages give the same files
    let site = |dir: &Path| {
        let site = dir.join("lib/python3.11/site-packages");
        let files = files_below(&site).into_iter().filter(|p| p.is_file());
        files
            .map(|p| {
                (
                    p.strip_prefix(&site).unwrap().to_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(
        site(&out) == site(dist),
        "site-packages differ between --jobs 1 and 2"
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
    let check =
        "Rust (PyO3, maturin): its smoke test (tests/packages/smoke/rpds-py.py) in an empty root";
    common::results::record("packages", "rpds-py", "0.20.0", check);
}
