//! Packages whose build takes many minutes, kept out of `make test`: `make
//! test-packages` runs this binary (`cargo test --release --features big-packages
//! --test big_packages`; the feature only lets cargo build it).
//!
//! rapidfuzz 3.14.6: C++ compiled by CMake with interprocedural optimisation (GCC LTO,
//! `-flto=auto -fno-fat-lto-objects`) through scikit-build-core. Under capture its
//! objects are made fat (capture::compiler_args::fat_lto_flag), so they link without
//! the `gcc -r -flto` conversion, which dies with an internal compiler error on them.
//! Cold, it builds in about 8 CPU minutes (26 wall-clock minutes on the shared 2 cores).

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{build, stderr};

/// What both interpreters print: the C++ implementation is forced
/// (`RAPIDFUZZ_IMPLEMENTATION=cpp` raises instead of falling back to pure Python).
const RAPIDFUZZ_CODE: &str = "\
from rapidfuzz import fuzz, process, distance
print(fuzz.ratio('this is a test', 'this is a test!'))
print(fuzz.partial_ratio('this is a test', 'this is a test!'))
print(fuzz.token_sort_ratio('fuzzy wuzzy was a bear', 'wuzzy fuzzy was a bear'))
print(process.extractOne('new york jets', ['Atlanta Falcons', 'New York Jets', 'Dallas Cowboys']))
print(distance.Levenshtein.distance('kitten', 'sitting'))
";

fn output_text(out: &Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn rapidfuzz_built_with_cmake_lto_answers_as_the_dynamic_build() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("big_packages");
    let _ = std::fs::remove_dir_all(&scratch);
    let out = scratch.join("dist");
    let result = build(&out, &["--modules", "tests/packages/rapidfuzz.txt"]);
    let report = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "{report}\n{}", stderr(&result));
    assert!(report.contains(" 0 failed"), "{report}");

    let manifest = dlstatic::python::verify::read_manifest(&out).unwrap();
    let linked: Vec<&str> = (manifest.modules.iter())
        .filter(|m| m.name.starts_with("rapidfuzz."))
        .map(|m| m.name.as_str())
        .collect();
    for module in ["rapidfuzz.fuzz_cpp", "rapidfuzz.distance.metrics_cpp"] {
        assert!(linked.contains(&module), "{module} not linked: {linked:?}");
    }

    // the static interpreter in an empty root holding only the payload
    let static_run = dlstatic::python::verify::chroot_command(&out)
        .env("RAPIDFUZZ_IMPLEMENTATION", "cpp")
        .args(["/bin/python3", "-c", RAPIDFUZZ_CODE])
        .output()
        .unwrap();
    // the dynamic interpreter of the same CPython build, with the installed packages
    let site = out.with_extension("km").join("packages/site");
    let dynamic_run = Command::new(&manifest.dynamic_python)
        .env("RAPIDFUZZ_IMPLEMENTATION", "cpp")
        .env("PYTHONPATH", site)
        .args(["-c", RAPIDFUZZ_CODE])
        .output()
        .unwrap();
    let (static_text, dynamic_text) = (output_text(&static_run), output_text(&dynamic_run));
    assert_eq!(
        static_text, dynamic_text,
        "static and dynamic rapidfuzz differ"
    );
    assert!(static_text.starts_with("96.55"), "{static_text}");
}
