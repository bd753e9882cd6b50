//! numpy 2.1.3 from its sdist (meson-python; C and C++; response-file links; thin
//! archives) linked into the static interpreter, and part of numpy's own test suite run
//! with the static interpreter and with the dynamic one of the same build, compared case
//! by case (tests/compare_tests.py). The longest test: numpy compiles for ~10 minutes.

use std::path::Path;
use std::process::Command;

mod common;
use common::{build, stderr};

/// numpy's test modules compared here: linear algebra, FFT, random generators, ufuncs.
/// (numpy.lib.tests.test_function_base is left out: under CPython 3.11.2 it deadlocks in
/// a threading.local deallocation, in the dynamic interpreter just as in the static one.)
const NUMPY_TESTS: &[&str] = &[
    "numpy.linalg",
    "numpy.fft",
    "numpy.random",
    "numpy._core.tests.test_umath",
];

#[test]
fn numpy_from_sdist_works_and_matches_the_dynamic_build() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("numpy");
    let _ = std::fs::remove_dir_all(&scratch);
    let out = scratch.join("dist");
    // --keep-tests: numpy's own test packages, run below, stay in the payload
    let result = build(
        &out,
        &["--modules", "tests/packages/numpy.txt", "--keep-tests"],
    );
    let report = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "{report}\n{}", stderr(&result));

    // verify imported every numpy module and ran smoke/numpy.py (inv, default_rng, fft)
    let manifest = dlstatic::python::verify::read_manifest(&out).unwrap();
    let numpy_modules: Vec<_> = manifest
        .modules
        .iter()
        .filter(|m| m.name.starts_with("numpy."))
        .collect();
    assert!(
        numpy_modules.len() >= 15,
        "{} numpy modules",
        numpy_modules.len()
    );
    assert!(numpy_modules.iter().all(|m| m.backend == "mesonpy"));
    assert!(manifest.smoke_tests.contains_key("numpy"));
    assert!(report.contains(" 0 failed"), "{report}");

    // module constructors run at a module's first import, not at start-up:
    // DLSTATIC_DEBUG=1 logs each module's constructors when they run
    let constructors_run = |code: &str| -> Vec<String> {
        let run = dlstatic::python::verify::chroot_command(&out)
            .env("DLSTATIC_DEBUG", "1")
            .args(["/bin/python3", "-c", code])
            .output()
            .unwrap();
        assert!(run.status.success(), "{code}: {}", stderr(&run));
        stderr(&run)
            .lines()
            .filter_map(|l| l.strip_prefix("dlstatic: running constructors of "))
            .map(String::from)
            .collect()
    };
    assert_eq!(constructors_run("pass"), Vec::<String>::new());
    let on_import = constructors_run("import numpy");
    assert!(
        on_import.iter().any(|m| m.starts_with("_umath_linalg")),
        "{on_import:?}"
    );

    // pytest and hypothesis (pure Python) for both interpreters
    let km = out.with_extension("km").join("packages");
    let testdeps = scratch.join("testdeps");
    let pip = Command::new(km.join("venv/bin/pip"))
        .args(["install", "--quiet", "--target"])
        .arg(&testdeps)
        .args(["pytest==8.3.3", "hypothesis==6.115.0"])
        .output()
        .unwrap();
    assert!(pip.status.success(), "{}", stderr(&pip));

    let compare = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compare_tests.py"))
        .arg("pytest")
        .arg(out.join("bin/python3.11"))
        .arg(&manifest.dynamic_python)
        .arg("--pyargs")
        .args(NUMPY_TESTS)
        .env("PYTHONPATH", &testdeps)
        .env("DYNAMIC_PYTHONPATH", km.join("site"))
        .output()
        .unwrap();
    let comparison = String::from_utf8_lossy(&compare.stdout);
    println!("{comparison}");
    assert!(
        compare.status.success(),
        "numpy test results differ:\n{comparison}{}",
        stderr(&compare)
    );
    assert!(
        comparison.contains("\n0 unexpected differences"),
        "{comparison}"
    );
    let check = "meson; its own linalg, fft, random and umath tests as in the dynamic build";
    common::results::record("numpy", "numpy", "2.1.3", check);
}
