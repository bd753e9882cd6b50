//! The command-line contract: the wrapper's pass-through, concurrent captures, error
//! paths (one line, non-zero, nothing half-written), caching and determinism.

use std::path::Path;
use std::process::{Command, Output};

const DLSTATIC: &str = env!("CARGO_BIN_EXE_dlstatic");

fn dlstatic(dir: &Path, args: &[&str]) -> Output {
    Command::new(DLSTATIC)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A failure in dlstatic's contract: non-zero, exactly one error line (progress lines
/// may precede it), no panic or backtrace.
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let text = stderr(out);
    assert!(!out.status.success(), "expected failure, stderr: {text}");
    assert_eq!(
        text.lines().filter(|l| l.contains("error:")).count(),
        1,
        "one error line expected:\n{text}"
    );
    assert!(
        !text.contains("panicked") && !text.contains("backtrace"),
        "{text}"
    );
    for needle in needles {
        assert!(text.contains(needle), "stderr lacks {needle:?}: {text}");
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// Captures two small plugins and a host object into `dir/db`.
fn captured_project(dir: &Path) {
    write(dir, "p.c", "int value(void) { return 1; }\n");
    write(dir, "q.c", "int value(void) { return 2; }\n");
    write(
        dir,
        "host.c",
        "#include <dlfcn.h>\nint main(void) { return dlopen(\"p.so\", 0) == 0; }\n",
    );
    let out = dlstatic(
        dir,
        &[
            "capture",
            "--db",
            "db",
            "--",
            "sh",
            "-c",
            "$CC -fPIC -shared p.c -o p.so && $CC -fPIC -shared q.c -o q.so",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        Command::new("cc")
            .args(["-c", "host.c", "-o", "host.o"])
            .current_dir(dir)
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn wrapper_passes_arguments_and_exit_codes_through() {
    let dir = tempfile::tempdir().unwrap();
    let version = dlstatic(dir.path(), &["cc", "--version"]);
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).contains("Free Software Foundation"));

    let missing = dlstatic(dir.path(), &["cc", "-c", "no-such-file.c"]);
    let direct = Command::new("cc")
        .args(["-c", "no-such-file.c"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), direct.status.code());
    assert_ne!(missing.status.code(), Some(0));
}

#[test]
fn wrapper_runs_a_multi_word_real_compiler() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.c", "int f(void) { return 3; }\n");
    let out = Command::new(DLSTATIC)
        .args(["cc", "-fPIC", "-shared", "p.c", "-o", "p.so"])
        .env("DLSTATIC_REAL_CC", "env LC_ALL=C cc")
        .env("DLSTATIC_DB", dir.path().join("db"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_dir(dir.path().join("db/links"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn unknown_real_compiler_is_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(DLSTATIC)
        .args(["cc", "-c", "x.c"])
        .env("DLSTATIC_REAL_CC", "no-such-compiler-xyz")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_one_line_error(&out, &["no-such-compiler-xyz", "DLSTATIC_REAL_CC"]);
}

#[test]
fn concurrent_wrappers_do_not_corrupt_the_db() {
    let dir = tempfile::tempdir().unwrap();
    let mut script = String::new();
    for i in 0..12 {
        write(
            dir.path(),
            &format!("m{i}.c"),
            &format!("int shared_helper(void) {{ return {i}; }}\n"),
        );
        script.push_str(&format!("$CC -fPIC -shared m{i}.c -o m{i}.so & "));
    }
    script.push_str("wait");
    let out = dlstatic(
        dir.path(),
        &["capture", "--db", "db", "--", "sh", "-c", &script],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let db = dlstatic::capture::db::CaptureDb::open_existing(&dir.path().join("db")).unwrap();
    let records = db.records().unwrap();
    assert_eq!(records.len(), 12);
    for record in records {
        let dlstatic::capture::db::LinkInput::Object { md5, .. } = &record.inputs[0] else {
            panic!("object input expected")
        };
        let bytes = db.read_object(md5).unwrap();
        assert_eq!(
            format!("{:x}", md5::compute(&bytes)),
            *md5,
            "content-addressed copy intact"
        );
    }
}

#[test]
fn link_errors_name_the_problem_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_one_line_error(
        &dlstatic(d, &["link", "--db", "nodb", "-o", "out", "host.o"]),
        &["nodb", "not a capture db"],
    );

    captured_project(d);
    assert_one_line_error(
        &dlstatic(
            d,
            &[
                "link", "--db", "db", "-o", "out", "--only", "zzz*", "host.o",
            ],
        ),
        &["--only zzz*"],
    );
    assert_one_line_error(
        &dlstatic(
            d,
            &["link", "--db", "db", "-o", "out", "--only", "[", "host.o"],
        ),
        &["not a valid glob"],
    );
    assert_one_line_error(
        &dlstatic(d, &["link", "--db", "db", "-o", "out", "missing.o"]),
        &["missing.o", "cannot read main input"],
    );
    write(
        d,
        "bad.c",
        "void no_such_function(void);\nint main(void) { no_such_function(); return 0; }\n",
    );
    assert!(
        Command::new("cc")
            .args(["-c", "bad.c", "-o", "bad.o"])
            .current_dir(d)
            .status()
            .unwrap()
            .success()
    );
    assert_one_line_error(
        &dlstatic(d, &["link", "--db", "db", "-o", "out", "bad.o"]),
        &[
            "link failed",
            "undefined reference to `no_such_function'",
            "out.km/link-pass1.log",
        ],
    );
    assert!(!d.join("out").exists(), "no OUT after a failed link");

    write(d, "db/links/broken.json", "{ not json");
    assert_one_line_error(
        &dlstatic(d, &["link", "--db", "db", "-o", "out", "host.o"]),
        &["broken.json", "corrupt link record"],
    );
}

#[test]
fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        dlstatic(dir.path(), &["link", "--db", "db"]).status.code(),
        Some(2)
    );
    assert_eq!(
        dlstatic(dir.path(), &["capture", "--db", "db"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(dlstatic(dir.path(), &["frobnicate"]).status.code(), Some(2));
    let no_jobs = dlstatic(dir.path(), &["build", "--jobs", "0"]);
    assert_eq!(no_jobs.status.code(), Some(2));
    assert!(stderr(&no_jobs).contains("--jobs"), "{}", stderr(&no_jobs));
}

#[test]
fn relink_reuses_modules_and_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    captured_project(d);
    let first = dlstatic(d, &["link", "--db", "db", "-o", "out", "host.o"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("2 modules (0 reused"),
        "{}",
        stderr(&first)
    );
    let read = |name: &str| std::fs::read(d.join(name)).unwrap();
    let module_files = |ext: &str| -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(d.join("out.km"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(ext))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let (binary, archives, tables) = (
        read("out"),
        module_files(".km.a"),
        module_files(".km.symbols.c"),
    );
    assert_eq!(archives.len(), 2);

    let second = dlstatic(d, &["link", "--db", "db", "-o", "out", "host.o"]);
    assert!(second.status.success());
    assert!(
        stderr(&second).contains("2 modules (2 reused"),
        "{}",
        stderr(&second)
    );
    assert_eq!(
        read("out"),
        binary,
        "relink with cached modules is byte-identical"
    );

    std::fs::remove_dir_all(d.join("out.km")).unwrap();
    std::fs::remove_file(d.join("out")).unwrap();
    let third = dlstatic(d, &["link", "--db", "db", "-o", "out", "host.o"]);
    assert!(third.status.success());
    assert_eq!(read("out"), binary, "fresh link is byte-identical");
    assert_eq!(module_files(".km.a"), archives);
    assert_eq!(module_files(".km.symbols.c"), tables);
}

/// Builds that call the compiler by name (a script's `cc`, a Makefile's `gcc`), not
/// through $CC, are captured too; capture says how many links it recorded and warns
/// when there were none.
#[test]
fn compilers_called_by_name_are_captured() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "x.c", "int x(void) { return 1; }\n");
    write(d, "y.c", "int y(void) { return 2; }\n");
    write(
        d,
        "Makefile",
        "liby.so: y.c\n\tgcc -fPIC -c y.c -o y.o\n\tgcc -shared -o liby.so y.o\n",
    );
    let script = "cc -fPIC -c x.c -o x.o && cc -shared -o libx.so x.o && make -s";
    let out = dlstatic(d, &["capture", "--db", "db", "--", "sh", "-c", script]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("capture: 2 shared-object links recorded"),
        "{}",
        stderr(&out)
    );
    let db = dlstatic::capture::db::CaptureDb::open_existing(&d.join("db")).unwrap();
    let outputs: Vec<String> = db
        .records()
        .unwrap()
        .iter()
        .map(|r| r.file_name().to_string())
        .collect();
    assert_eq!(outputs, ["libx.so", "liby.so"]);

    let nothing = dlstatic(d, &["capture", "--db", "db2", "--", "true"]);
    assert!(nothing.status.success());
    assert!(
        stderr(&nothing).contains("capture: 0 shared-object links recorded")
            && stderr(&nothing).contains("warning: the build linked no shared object"),
        "{}",
        stderr(&nothing)
    );
}

/// Arguments that are not UTF-8 never panic: the wrapper still runs the real compiler
/// with them, and a shared link it cannot read is an error naming the argument, not a
/// link left out; the other commands take non-UTF-8 paths or refuse in one line.
#[test]
fn non_utf8_arguments_are_errors_not_panics() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.c");
    std::fs::write(d.join(name), "int f(void) { return 1; }\n").unwrap();
    let wrapper = |args: &[&std::ffi::OsStr]| {
        Command::new(DLSTATIC)
            .arg("cc")
            .args(args)
            .env("DLSTATIC_DB", d.join("db"))
            .current_dir(d)
            .output()
            .unwrap()
    };
    let compile = wrapper(&[
        name,
        "-fPIC".as_ref(),
        "-c".as_ref(),
        "-o".as_ref(),
        "f.o".as_ref(),
    ]);
    assert!(compile.status.success(), "{}", stderr(&compile));
    let link = wrapper(&[
        name,
        "-fPIC".as_ref(),
        "-shared".as_ref(),
        "-o".as_ref(),
        "f.so".as_ref(),
    ]);
    assert_eq!(link.status.code(), Some(1), "{}", stderr(&link));
    let text = stderr(&link);
    assert!(
        text.contains("is not UTF-8") && text.contains("cannot be captured"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    let audit = Command::new(DLSTATIC)
        .args(["audit", "--db"])
        .arg(std::ffi::OsStr::from_bytes(b"d\xffb"))
        .arg("host.o")
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(audit.status.code(), Some(2), "{}", stderr(&audit));
    assert!(!stderr(&audit).contains("panicked"), "{}", stderr(&audit));
}

/// Two links to one OUT at once, and links killed with SIGKILL at random points: OUT
/// is always absent-or-old or the new complete output (byte-identical to a clean
/// link), the next run succeeds, and no temporary file is left behind.
#[test]
fn concurrent_and_killed_links_leave_out_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    captured_project(d);
    let link = || {
        Command::new(DLSTATIC)
            .args(["link", "--db", "db", "-o", "out", "host.o"])
            .current_dir(d)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    assert!(link().wait().unwrap().success());
    let reference = std::fs::read(d.join("out")).unwrap();
    let (mut first, mut second) = (link(), link());
    assert!(first.wait().unwrap().success() && second.wait().unwrap().success());
    assert!(
        std::fs::read(d.join("out")).unwrap() == reference,
        "concurrent links"
    );

    // a small LCG: random kill points without a dependency, different every run
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    for attempt in 0..20 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = std::time::Duration::from_millis((seed >> 33) % 1500);
        let mut child = link();
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
        if let Ok(bytes) = std::fs::read(d.join("out")) {
            assert!(
                bytes == reference,
                "try {attempt} (killed after {delay:?}): OUT is torn"
            );
        }
    }
    assert!(link().wait().unwrap().success());
    assert!(std::fs::read(d.join("out")).unwrap() == reference);
    let leftovers: Vec<String> = [d.to_path_buf(), d.join("out.km"), d.join("out.km/runtime")]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).unwrap().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("dlstatic-tmp") || n.ends_with(".tmp") || n == "pass1.out")
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
