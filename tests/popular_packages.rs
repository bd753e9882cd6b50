//! Popular PyPI packages from their sdists (issue 15), each with its smoke test in
//! tests/packages/smoke/ run by verify in an empty root, and compared with the dynamic
//! interpreter of the same build where a script prints something:
//! - `tests/packages/popular.txt`: SQLAlchemy (Cython) with greenlet (C++), cffi (libffi):
//!   ~2 minutes of package builds on 2 cores, part of `make test`;
//! - `tests/packages/pydantic.txt`: pydantic-core (Rust, maturin): long to compile, so
//!   `#[ignore]`d and run by `make test-packages`.
//!
//! Also the two defaults these packages need: packages' test packages (greenlet/tests)
//! are left out of the payload (`--keep-tests` keeps them), and all of glibc's public
//! functions are reachable through `dlopen(NULL)` (`--no-libc-exports` turns it off).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod common;
use common::{build_ok, static_and_dynamic, stderr};
use dlstatic::python::payload::Manifest;
use dlstatic::python::verify::{chroot_command, read_manifest};

fn scratch() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("popular")
}

/// tests/packages/popular.txt with the defaults, built once: (OUT, verify's table, build log).
fn popular() -> &'static (PathBuf, String, String) {
    static DIST: OnceLock<(PathBuf, String, String)> = OnceLock::new();
    DIST.get_or_init(|| {
        let _ = std::fs::remove_dir_all(scratch());
        let out = scratch().join("dist");
        let (table, log) = build_ok(&out, "tests/packages/popular.txt", &[]);
        (out, table, log)
    })
}

fn third_party(manifest: &Manifest) -> Vec<&str> {
    let modules = manifest.modules.iter().filter(|m| m.package != "stdlib");
    modules.map(|m| m.name.as_str()).collect()
}

#[test]
fn sqlalchemy_with_greenlet_and_cffi_work_in_an_empty_root_without_their_tests() {
    let (out, table, log) = popular();
    let manifest = read_manifest(out).unwrap();
    let modules = third_party(&manifest);
    for expected in [
        "greenlet._greenlet",
        "_cffi_backend",
        "sqlalchemy.cyextension.resultproxy",
    ] {
        assert!(modules.contains(&expected), "{expected}: {modules:?}");
    }
    let smoke: Vec<&String> = manifest.smoke_tests.keys().collect();
    assert_eq!(smoke, ["SQLAlchemy", "cffi"]);
    // verify ran the ORM round trip, greenlet_spawn and ffi.dlopen(None).abs(-5)
    assert!(table.contains(" 0 with warnings, 0 failed"), "{table}");

    // greenlet's tests (whose modules import psutil) are neither linked, imported nor shipped
    assert!(
        modules.iter().all(|m| !m.contains(".tests.")),
        "{modules:?}"
    );
    assert_eq!(
        manifest.test_modules_left_out,
        [
            "greenlet/tests/_test_extension.cpython-311-x86_64-linux-gnu.so",
            "greenlet/tests/_test_extension_cpp.cpython-311-x86_64-linux-gnu.so"
        ]
    );
    let site = out.join("lib/python3.11/site-packages");
    assert!(site.join("greenlet/__init__.py").is_file());
    assert!(!site.join("greenlet/tests").exists());
    let plan = std::fs::read_to_string(out.with_extension("km").join("link/plan.json")).unwrap();
    assert!(
        !plan.contains("_test_extension"),
        "a test module was linked"
    );
    let summary = format!(
        "left out packages' test packages: {} files, 2 of them extension modules",
        manifest.test_files_left_out
    );
    assert!(log.contains(&summary), "{log}");

    let orm = "from sqlalchemy import create_engine, text\n\
        from sqlalchemy.orm import Session\n\
        engine = create_engine('sqlite://')\n\
        with Session(engine) as s:\n    \
            s.execute(text('create table t (n integer, word text)'))\n    \
            s.execute(text('insert into t values (1, \"one\"), (2, \"two\")'))\n    \
            print(s.execute(text('select sum(n), group_concat(word) from t')).all())\n\
        import greenlet, _cffi_backend\n\
        print(greenlet.greenlet(lambda x: x * 2).switch(21), _cffi_backend.__version__)";
    let (static_out, dynamic_out) = static_and_dynamic(out, orm, &[]);
    assert_eq!(static_out, "[(3, 'one,two')]\n42 1.17.1\n");
    assert_eq!(static_out, dynamic_out);
    let record = |package, version, check| {
        common::results::record("popular_packages", package, version, check)
    };
    record(
        "SQLAlchemy",
        "2.0.36",
        "empty root: ORM session on sqlite as in the dynamic build; async bridge over greenlet",
    );
    record(
        "greenlet",
        "3.1.1",
        "switching as in the dynamic build; its test modules left out of the payload",
    );
    record(
        "cffi",
        "1.17.1",
        "ABI mode: ffi.dlopen(None).abs and libc.so.6 functions",
    );
}

#[test]
fn ctypes_sees_all_of_glibc_as_a_dynamic_process_does() {
    let (out, _, _) = popular();
    // functions nothing in the interpreter calls: present only because all are linked
    let code = "import ctypes\n\
        print(ctypes.CDLL(None).abs(-3))\n\
        libc = ctypes.CDLL('libc.so.6')\n\
        print(libc.strverscmp(b'a2', b'a10') < 0, libc.ffs(8), libc.labs(-7))\n\
        print(ctypes.CDLL(None).strverscmp is not None)";
    let (static_out, dynamic_out) = static_and_dynamic(out, code, &[]);
    assert_eq!(static_out, "3\nTrue 4 7\nTrue\n");
    assert_eq!(static_out, dynamic_out);
}

#[test]
fn keep_tests_keeps_test_packages_and_no_libc_exports_leaves_glibc_out() {
    let (dist, _, _) = popular();
    let out = scratch().join("dist-keep-tests");
    // (no verify: the cffi smoke test needs the libc exports this build leaves out)
    let (_, log) = build_ok(
        &out,
        "tests/packages/popular.txt",
        &["--keep-tests", "--no-libc-exports", "--no-verify"],
    );
    assert!(!log.contains("left out packages' test packages"), "{log}");
    let manifest = read_manifest(&out).unwrap();
    assert!(manifest.test_modules_left_out.is_empty());
    assert!(
        third_party(&manifest).contains(&"greenlet.tests._test_extension_cpp"),
        "{:?}",
        third_party(&manifest)
    );
    let site = out.join("lib/python3.11/site-packages");
    assert!(site.join("greenlet/tests/__init__.py").is_file());

    let run = chroot_command(&out)
        .args(["/bin/python3", "-c", "import ctypes\ntry:\n    ctypes.CDLL(None).strverscmp\nexcept AttributeError as e:\n    print(e)"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "/bin/python3: undefined symbol: strverscmp\n",
        "{}",
        stderr(&run)
    );
    // the main program's dlsym table: glibc's public functions only in the default build
    let table = |root: &Path| {
        std::fs::read_to_string(root.with_extension("km").join("link/main.symbols.c")).unwrap()
    };
    assert!(table(dist).contains("{\"strverscmp\","));
    assert!(!table(&out).contains("{\"strverscmp\","));
}

#[test]
#[ignore = "pydantic-core's Rust build took 407 s on 2 shared cores: make test-packages"]
fn pydantic_validates_with_its_rust_core_in_an_empty_root() {
    let out = scratch().join("dist-pydantic");
    let (table, _) = build_ok(&out, "tests/packages/pydantic.txt", &[]);
    let manifest = read_manifest(&out).unwrap();
    let core = manifest
        .modules
        .iter()
        .find(|m| m.name == "pydantic_core._pydantic_core")
        .unwrap_or_else(|| panic!("{:?}", third_party(&manifest)));
    assert_eq!(core.backend, "maturin");
    assert!(manifest.smoke_tests.contains_key("pydantic"));
    // verify ran smoke/pydantic.py: validation, coercion, a ValidationError's details
    assert!(table.contains(" 0 failed"), "{table}");
    let code = "from pydantic import BaseModel, ValidationError\n\
        class M(BaseModel):\n    n: int\n    s: str = 'x'\n\
        print(M(n='5').model_dump_json())\n\
        try:\n    M(n='five')\nexcept ValidationError as e:\n    print(e.error_count(), e.errors()[0]['type'])";
    let (static_out, dynamic_out) = static_and_dynamic(&out, code, &[]);
    assert_eq!(static_out, "{\"n\":5,\"s\":\"x\"}\n1 int_parsing\n");
    assert_eq!(static_out, dynamic_out);
    let check =
        "pydantic-core (Rust): model validation and a ValidationError as in the dynamic build";
    common::results::record("popular_packages", "pydantic", "2.10.3", check);
}
