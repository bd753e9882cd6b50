//! End to end with real CPython: `dlstatic build` turns Debian's CPython 3.11 source
//! (fetched by `make python-src`) into a static interpreter. The first test to run
//! builds it (a few minutes without a cache); the others reuse that build.
//!
//! Checked here: the binary is static and `verify` passes for every converted module;
//! the issue's import line and ctypes calls work inside an empty root; a second build
//! has nothing to do, and one with a changed option reuses every cache; bad inputs fail in one line with OUT untouched; CPython's own
//! tests give the same results as the dynamic build (tests/compare_tests.py).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{OnceLock, RwLock};

mod common;
use common::{build, stderr};

fn scratch() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cpython")
}

/// The default build at scratch()/dist, made once. Readers share it; the rebuild test
/// takes it exclusively.
fn dist() -> &'static RwLock<PathBuf> {
    static DIST: OnceLock<RwLock<PathBuf>> = OnceLock::new();
    DIST.get_or_init(|| {
        let out = scratch().join("dist");
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_dir_all(scratch().join("dist.km"));
        let result = build(&out, &[]);
        assert!(
            result.status.success(),
            "dlstatic build failed:\n{}",
            stderr(&result)
        );
        RwLock::new(out)
    })
}

/// Every `X.py` whose `__pycache__/X.cpython-311.pyc` records another source mtime than
/// the file has: CPython's own validity check for timestamp-based .pyc files.
fn stale_pyc_files(dir: &Path) -> Vec<PathBuf> {
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            stale.extend(stale_pyc_files(&path));
            continue;
        }
        let (Some(stem), Some("py")) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|e| e.to_str()),
        ) else {
            continue;
        };
        let Ok(pyc) = std::fs::read(
            dir.join("__pycache__")
                .join(format!("{stem}.cpython-311.pyc")),
        ) else {
            continue;
        };
        let mtime = std::fs::metadata(&path)
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        if pyc.len() < 12 || pyc[8..12] != mtime.to_le_bytes() {
            stale.push(path);
        }
    }
    stale
}

/// Files under `dir` that other users cannot read, although a file created here with
/// the current umask could be (so the check holds under any umask).
fn unreadable_by_others(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let probe_path = scratch().join("umask-probe");
    let _ = std::fs::remove_file(&probe_path);
    std::fs::File::create(&probe_path).unwrap();
    let umask_allows = std::fs::metadata(&probe_path).unwrap().permissions().mode() & 0o004 != 0;
    std::fs::remove_file(&probe_path).unwrap();
    if !umask_allows {
        return Vec::new();
    }
    let mut unreadable = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() && meta.permissions().mode() & 0o004 == 0 {
                unreadable.push(entry.path());
            }
        }
    }
    unreadable
}

fn in_empty_root(root: &Path, code: &str) -> Output {
    dlstatic::python::verify::chroot_command(root)
        .args(["/bin/python3", "-c", code])
        .output()
        .unwrap()
}

#[test]
fn static_interpreter_passes_verify_and_runs_in_an_empty_root() {
    let dist = dist().read().unwrap();
    let binary = dist.join("bin/python3.11");
    let bytes = std::fs::read(&binary).unwrap();
    let elf = object::read::elf::ElfFile64::<object::Endianness>::parse(&*bytes).unwrap();
    use object::read::elf::ProgramHeader;
    assert!(
        elf.elf_program_headers()
            .iter()
            .all(|p| p.p_type(elf.endian()) != object::elf::PT_INTERP),
        "static: no PT_INTERP"
    );
    for link in ["python3", "python"] {
        assert_eq!(
            std::fs::read_link(dist.join("bin").join(link)).unwrap(),
            Path::new("python3.11")
        );
    }

    // the audit ran before the link; on the stdlib it finds no error, and every finding
    // says what it means
    let audit: serde_json::Value =
        serde_json::from_slice(&std::fs::read(scratch().join("dist.km/audit.json")).unwrap())
            .unwrap();
    let findings = audit["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .all(|f| f["severity"] != "error" && !f["message"].as_str().unwrap().is_empty()),
        "{audit:#}"
    );
    assert!(findings.iter().any(
        |f| f["kind"] == "nss-call" && f["modules"][0].as_str().unwrap().starts_with("_socket")
    ));
    assert_eq!(audit["totals"]["modules"].as_u64(), Some(77));

    let manifest = dlstatic::python::verify::read_manifest(&dist).unwrap();
    let skipped: Vec<&str> = manifest
        .skipped
        .iter()
        .map(|s| s.split('.').next().unwrap())
        .collect();
    assert_eq!(
        skipped,
        ["nis"],
        "only what skip_builtins.txt lists is left out"
    );
    assert!(
        manifest.modules.len() >= 70,
        "{} modules",
        manifest.modules.len()
    );
    let results = dlstatic::python::verify::verify(&dist, &manifest).unwrap();
    assert!(results.iter().all(|r| r.ok));

    // stubs instead of .so files: lib-dynload stays small
    let stub = dist
        .join("lib/python3.11/lib-dynload")
        .join(manifest.modules[0].stub.rsplit('/').next().unwrap());
    assert_eq!(
        std::fs::read_to_string(stub).unwrap().trim(),
        manifest.modules[0].id
    );
    assert!(
        !dist.join("lib/python3.11/test").exists() && !dist.join("lib/python3.11/idlelib").exists()
    );
    assert!(
        dist.join("lib/python3.11/__pycache__").is_dir(),
        "compiled .pyc shipped"
    );
    assert!(
        dist.join("lib/python3.11/ctypes/__pycache__/util.cpython-311.pyc")
            .is_file(),
        "the edited ctypes.util compiled again"
    );
    let stale = stale_pyc_files(&dist.join("lib/python3.11"));
    assert!(
        stale.is_empty(),
        "{} .pyc files do not match their .py (Python would recompile them at every start): {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );

    let unreadable = unreadable_by_others(&dist);
    assert!(
        unreadable.is_empty(),
        "{} payload files only their owner can read: {:?}",
        unreadable.len(),
        &unreadable[..unreadable.len().min(5)]
    );
    if Command::new("id").arg("-u").output().unwrap().stdout == b"0\n" {
        // containers often run as an unprivileged user: name lookups need the payload's /etc
        let out = Command::new("chroot")
            .args(["--userspec=65534:65534"])
            .arg(&*dist)
            .args([
                "/bin/python3",
                "-c",
                "import socket, json, _ssl; print(socket.getaddrinfo('localhost', 80)[0][4][0])",
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "127.0.0.1\n",
            "as user 65534: {}",
            stderr(&out)
        );
    }

    let out = in_empty_root(
        &dist,
        "import ssl, sqlite3, ctypes, decimal, lzma, bz2, zlib, uuid, json, readline, curses, _codecs_jp; \
         print(ctypes.CDLL(None).getpid() > 0)",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "True\n",
        "{}",
        stderr(&out)
    );

    let out = in_empty_root(
        &dist,
        "import socket, ctypes, ctypes.util, pwd, sqlite3, ssl\n\
         print(sorted({a[4][0] for a in socket.getaddrinfo('localhost', 80)}))\n\
         print(ctypes.util.find_library('c'))\n\
         libc = ctypes.CDLL(ctypes.util.find_library('c'))\n\
         print(libc.strlen(b'four'), ctypes.CDLL('libc.so.6')._handle == ctypes.CDLL(None)._handle)\n\
         ctypes.pythonapi.Py_IncRef(ctypes.py_object(object()))\n\
         print(pwd.getpwuid(0).pw_name, sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0])\n\
         print(ssl.OPENSSL_VERSION.split()[0], __import__('decimal').Decimal('1.1') + 1)",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "['127.0.0.1']\nlibc.so.6\n4 True\nroot 42\nOpenSSL 2.1\n",
        "{}",
        stderr(&out)
    );
}

#[test]
fn second_build_reuses_every_cache() {
    let dist = dist().write().unwrap();
    let again = build(&dist, &[]);
    let text = stderr(&again);
    assert!(again.status.success(), "{text}");
    assert!(
        text.contains("is up to date"),
        "nothing changed, nothing to do: {text}"
    );
    assert!(!text.contains("linking"), "{text}");

    // a changed option rebuilds OUT, from the cached CPython and converted modules
    let changed = build(&dist, &["--no-verify", "--timings"]);
    let text = stderr(&changed);
    assert!(changed.status.success(), "{text}");
    assert!(text.contains("reused the CPython 3.11 build"), "{text}");
    assert!(text.contains("reused all"), "{text}");
    assert!(
        !text.contains("make CPython"),
        "no rebuild of CPython: {text}"
    );
    for stage in [
        "CPython",
        "plan and audit",
        "link: pass 2",
        "payload",
        "total",
    ] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(stage)),
            "--timings lists {stage}: {text}"
        );
    }
}

#[test]
fn bad_sources_fail_in_one_line_and_leave_out_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.tar.gz");
    common::assert_build_fails_cleanly(
        &["--python-src", missing.to_str().unwrap()],
        &["missing.tar.gz", "not found"],
    );

    let corrupt = dir.path().join("corrupt.tar.gz");
    std::fs::write(&corrupt, b"this is not a tarball").unwrap();
    common::assert_build_fails_cleanly(
        &["--python-src", corrupt.to_str().unwrap()],
        &["corrupt.tar.gz", "unpack.log"],
    );

    let broken = dir.path().join("broken-src");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("configure"),
        "#!/bin/sh\necho 'configure: error: no compiler today' >&2\nexit 1\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(broken.join("configure"))
        .status()
        .unwrap();
    common::assert_build_fails_cleanly(
        &["--python-src", broken.to_str().unwrap()],
        &["configure CPython failed", "configure.log"],
    );

    let skip = dir.path().join("bad-skip.txt");
    std::fs::write(&skip, "# fine\n_tkinter\nnot a name\n").unwrap();
    common::assert_build_fails_cleanly(
        &["--skip", skip.to_str().unwrap()],
        &["bad-skip.txt:3", "not a module name"],
    );
}

#[test]
fn a_module_whose_static_library_is_missing_is_named() {
    drop(dist().read().unwrap()); // the CPython cache exists
    let dir = tempfile::tempdir().unwrap();
    let nothing_skipped = dir.path().join("skip-nothing.txt");
    std::fs::write(&nothing_skipped, "# nothing\n").unwrap();
    // nis needs libtirpc, whose static link needs krb5's GSSAPI: no .a in Debian
    common::assert_build_fails_cleanly(
        &["--skip", nothing_skipped.to_str().unwrap()],
        &["nis", "gssapi_krb5"],
    );
}

#[test]
fn cpython_test_suite_matches_the_dynamic_build() {
    drop(dist().read().unwrap());
    let out = scratch().join("dist-full");
    let result = build(&out, &["--full-stdlib"]);
    assert!(result.status.success(), "{}", stderr(&result));
    let dynamic = dlstatic::python::verify::read_manifest(&out)
        .unwrap()
        .dynamic_python;
    let compare = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compare_tests.py"))
        .arg("cpython")
        .arg(out.join("bin/python3.11"))
        .arg(&dynamic)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&compare.stdout);
    println!("{report}");
    assert!(
        compare.status.success(),
        "static and dynamic test results differ:\n{report}{}",
        stderr(&compare)
    );
    assert!(report.contains("\n0 unexpected differences"), "{report}");
}

/// 200 rounds: two threads import extension modules afresh (each import is a dlopen and
/// dlsym in the shim) and call dlopen/dladdr/dlclose through ctypes, which releases the
/// GIL as C extensions do (an import holds it, so imports alone never overlap a fork),
/// while the main thread starts a `fork` child that imports a module too. A child that
/// inherited the loader lock held by another thread would hang; the timeout counts it.
const FORK_WHILE_IMPORTING: &str = r#"
import ctypes, importlib.util, multiprocessing as mp, threading
NAMES = ["_json", "_csv", "array", "_bisect", "_struct", "math", "_random", "_heapq", "select", "binascii"]
SPECS = [importlib.util.find_spec(n) for n in NAMES]
libc = ctypes.CDLL(None)
libc.dlopen.restype = ctypes.c_void_p
libc.dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.dlclose.argtypes = [ctypes.c_void_p]
libc.dladdr.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
info = (ctypes.c_void_p * 4)()
where = ctypes.cast(libc.dlopen, ctypes.c_void_p)
def load(i):
    spec = SPECS[i % len(SPECS)]
    spec.loader.create_module(spec)
stop = False
def importer(offset):
    i = offset
    while not stop:
        load(i)
        h = libc.dlopen(SPECS[i % len(SPECS)].origin.encode(), 2)
        for _ in range(16):
            libc.dladdr(where, info)
        libc.dlclose(h)
        i += 1
threads = [threading.Thread(target=importer, args=(k,)) for k in (0, 5)]
for t in threads: t.start()
ctx = mp.get_context("fork")
hung = failed = 0
for i in range(200):
    p = ctx.Process(target=load, args=(i,))
    p.start(); p.join(20)
    if p.exitcode is None:
        hung += 1; p.kill(); p.join()
    elif p.exitcode != 0:
        failed += 1
stop = True
for t in threads: t.join()
print(f"rounds: 200, hung: {hung}, failed: {failed}")
"#;

#[test]
fn multiprocessing_fork_while_threads_import_extensions_completes() {
    let dist = dist().read().unwrap();
    let out = in_empty_root(&dist, FORK_WHILE_IMPORTING);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "rounds: 200, hung: 0, failed: 0"
    );
}
