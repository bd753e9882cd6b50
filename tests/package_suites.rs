//! The packages' own test suites, taken from their PyPI sdists, run with pytest in the
//! static interpreter and in the dynamic build of the same sources (the build's own
//! venv interpreter over the unlinked site directory): every test must end the same
//! way in both. The per-suite counts are written to `CARGO_TARGET_TMPDIR/suites/results.md`
//! (docs/packages.md keeps the last run's).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{build, stderr};

/// A package of tests/packages/suites.txt and where its sdist keeps its tests.
struct Suite {
    name: &'static str,
    version: &'static str,
    tests: &'static str,
}

const SUITES: [Suite; 5] = [
    Suite {
        name: "markupsafe",
        version: "3.0.2",
        tests: "tests",
    },
    Suite {
        name: "msgpack",
        version: "1.1.0",
        tests: "test",
    },
    Suite {
        name: "pyyaml",
        version: "6.0.2",
        tests: "tests/legacy_tests",
    },
    Suite {
        name: "simplejson",
        version: "3.19.3",
        tests: "simplejson/tests",
    },
    Suite {
        name: "ujson",
        version: "5.10.0",
        tests: "tests",
    },
];

fn scratch() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("suites")
}

/// The suite's test directory, unpacked from the sdist into `dir/<name>_tests` (outside
/// any package, so the tests import the installed package, not the sdist's sources).
fn unpack_tests(suite: &Suite, pip: &Path, dir: &Path) -> PathBuf {
    let sdists = dir.join("sdists");
    let download = Command::new(pip)
        .args([
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            suite.name,
        ])
        .arg(format!("{}=={}", suite.name, suite.version))
        .arg("--dest")
        .arg(&sdists)
        .output()
        .unwrap();
    assert!(
        download.status.success(),
        "pip download {}: {}",
        suite.name,
        stderr(&download)
    );
    let sdist = sdists.join(format!("{}-{}.tar.gz", suite.name, suite.version));
    let unpacked = dir.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let tar = Command::new("tar")
        .arg("xzf")
        .arg(&sdist)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(tar.success(), "{}: tar failed", sdist.display());
    let tests = dir.join(format!("{}_tests", suite.name));
    let _ = std::fs::remove_dir_all(&tests);
    let from = unpacked
        .join(format!("{}-{}", suite.name, suite.version))
        .join(suite.tests);
    common::copy_tree(&from, &tests);
    tests
}

/// The counts `tests/compare_tests.py pytest` found for one suite, both interpreters.
#[derive(serde::Deserialize)]
struct Summary {
    #[serde(rename = "static")]
    static_: BTreeMap<String, usize>,
    dynamic: BTreeMap<String, usize>,
    unexpected: Vec<String>,
}

/// Run `suite`'s tests with the static interpreter `out` and its build's dynamic one.
fn compare(suite: &Suite, out: &Path) -> Summary {
    let packages = out.with_extension("km").join("packages");
    let (venv, site) = (packages.join("venv/bin"), packages.join("site"));
    let dir = scratch().join(suite.name);
    let tests = unpack_tests(suite, &venv.join("pip"), &dir);
    let summary = dir.join("summary.json");
    let compare = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compare_tests.py"))
        .arg("pytest")
        .arg(out.join("bin/python3"))
        .arg(venv.join("python"))
        .arg(&tests)
        .env("DYNAMIC_PYTHONPATH", &site)
        .env("COMPARE_SUMMARY", &summary)
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&compare.stdout));
    let text = std::fs::read(&summary)
        .unwrap_or_else(|_| panic!("{}: no summary: {}", suite.name, stderr(&compare)));
    serde_json::from_slice(&text).unwrap()
}

#[test]
fn own_test_suites_end_the_same_static_and_dynamic() {
    let out = scratch().join("dist");
    let result = build(&out, &["--modules", "tests/packages/suites.txt"]);
    assert!(
        result.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&result.stdout),
        stderr(&result)
    );
    // the suites would pass on pure-Python fallbacks too: the compiled modules must load
    let compiled =
        "import markupsafe._speedups, msgpack._cmsgpack, yaml._yaml, simplejson._speedups, ujson";
    let import = Command::new(out.join("bin/python3"))
        .args(["-c", compiled])
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", stderr(&import));
    let mut table = String::from(
        "| package | passed | failed | error | skipped | static = dynamic |\n|---|---|---|---|---|---|\n",
    );
    let summaries: Vec<Summary> = SUITES.iter().map(|suite| compare(suite, &out)).collect();
    for (suite, summary) in SUITES.iter().zip(&summaries) {
        let n = |k: &str| summary.static_.get(k).copied().unwrap_or(0);
        let same = if summary.static_ == summary.dynamic {
            "yes"
        } else {
            "no"
        };
        table.push_str(&format!(
            "| {} {} | {} | {} | {} | {} | {same} |\n",
            suite.name,
            suite.version,
            n("passed"),
            n("failure"),
            n("error"),
            n("skipped")
        ));
    }
    std::fs::write(scratch().join("results.md"), &table).unwrap();
    println!("{table}");
    for (suite, summary) in SUITES.iter().zip(&summaries) {
        assert!(
            summary.unexpected.is_empty(),
            "{}: outcomes differ:\n{}",
            suite.name,
            summary.unexpected.join("\n")
        );
        // a suite that did not run (an import error collects nothing) proves nothing
        let passed = summary.static_.get("passed").copied().unwrap_or(0);
        assert!(passed >= 10, "{}: only {passed} passed", suite.name);
        let total: usize = summary.static_.values().sum();
        let check = format!("own test suite: {passed} of {total} passed, as in the dynamic build");
        common::results::record("package_suites", suite.name, suite.version, &check);
    }
}
