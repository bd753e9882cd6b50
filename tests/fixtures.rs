//! Fixture scenarios: each directory under tests/fixtures/ holds a small C/C++ source
//! set whose host file (`host.c` or `host.cc`) says in its header comment what to build
//! and what must happen. Everything runs with the real compiler and linker:
//!
//! ```text
//! // host: CMD               shell command run first, without capture
//!                            (default: cc -c host.c -o host.o && cc host.o -o host_dyn)
//! // build: CMD              shell command run under `dlstatic capture` ($CC, $CXX are the wrapper)
//! // link: ARGS              `dlstatic link --db db -o host_static ARGS`
//! // audit: KIND SEVERITY SYM `dlstatic audit` (run before the link, with the link's
//!                            arguments) reports exactly these findings, in JSON and in text;
//!                            SYM is the first symbol named, `-` for none
//! // expect-link-error: S    the link must fail with one stderr line containing S
//! // env: K=V                environment for the static host
//! // run: ARGS               run the static host (and the dynamic one) with ARGS
//! // expect: LINE            the static host's stdout, line by line, for the run above
//! // same-as-dynamic         for the run above, the dynamic host's stdout must be the same
//! // stderr-contains: S      the static host's stderr must contain S
//! // empty-root: PATH…       rerun the runs inside an empty root holding only the static
//! //                         host and, at each PATH, the stub of the module built there
//! ```
//! The header's first lines are prose; a `key:` that is one word and not listed above is
//! an error. After every successful link, the plan check (tests/common/plan_check.rs)
//! holds: plan, audit and the executed link agree, down to the linker's map.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use libtest_mimic::{Arguments, Trial};

mod common;
use common::DLSTATIC;

#[derive(Default)]
struct Fixture {
    hosts: Vec<String>,
    builds: Vec<String>,
    link_args: Vec<String>,
    audit: Vec<String>,
    link_errors: Vec<String>,
    env: Vec<(String, String)>,
    runs: Vec<Run>,
    stderr_contains: Vec<String>,
    empty_root: Vec<String>,
}

#[derive(Default)]
struct Run {
    args: Vec<String>,
    expect: Vec<String>,
    same_as_dynamic: bool,
}

fn parse_directives(source: &str) -> Fixture {
    let mut f = Fixture::default();
    for line in source.lines().take_while(|l| l.starts_with("//")) {
        let line = line.trim_start_matches('/').trim();
        let (key, value) = line
            .split_once(':')
            .map(|(k, v)| (k.trim(), v.trim()))
            .unwrap_or((line, ""));
        match key {
            "host" => f.hosts.push(value.into()),
            "build" => f.builds.push(value.into()),
            "link" => f.link_args = value.split_whitespace().map(String::from).collect(),
            "audit" => f
                .audit
                .push(value.split_whitespace().collect::<Vec<_>>().join(" ")),
            "expect-link-error" => f.link_errors.push(value.into()),
            "env" => {
                let (k, v) = value.split_once('=').expect("env: K=V");
                f.env.push((k.into(), v.into()));
            }
            "run" => f.runs.push(Run {
                args: value.split_whitespace().map(String::from).collect(),
                ..Run::default()
            }),
            "expect" => f
                .runs
                .last_mut()
                .expect("expect: after run:")
                .expect
                .push(value.into()),
            "same-as-dynamic" => {
                f.runs
                    .last_mut()
                    .expect("same-as-dynamic after run:")
                    .same_as_dynamic = true
            }
            "stderr-contains" => f.stderr_contains.push(value.into()),
            "empty-root" => f.empty_root = value.split_whitespace().map(String::from).collect(),
            // prose: the description, whose "key" is more than one word
            _ if key.contains(' ') => {}
            _ => panic!("unknown directive `{key}` in the fixture header"),
        }
    }
    f
}

fn sh(dir: &Path, script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("sh runs")
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds, links and runs one fixture; returns its scratch directory for further checks.
fn run_fixture(name: &str) -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    common::copy_tree(&src, dir);
    let host_file = ["host.c", "host.cc"]
        .into_iter()
        .find(|h| dir.join(h).exists())
        .expect("host.c or host.cc");
    let f = parse_directives(&std::fs::read_to_string(dir.join(host_file)).unwrap());

    let hosts = if f.hosts.is_empty() {
        vec!["cc -c host.c -o host.o && cc host.o -o host_dyn".to_string()]
    } else {
        f.hosts.clone()
    };
    for host in &hosts {
        check(&sh(dir, host), &format!("host: {host}"));
    }
    for build in &f.builds {
        let out = Command::new(DLSTATIC)
            .args(["capture", "--db", "db", "--", "sh", "-c", build])
            .current_dir(dir)
            .output()
            .unwrap();
        check(&out, &format!("build: {build}"));
    }

    if !f.audit.is_empty() {
        check_audit(dir, &f);
    }

    let link = Command::new(DLSTATIC)
        .args(["link", "--db", "db", "-o", "host_static"])
        .args(&f.link_args)
        .current_dir(dir)
        .output()
        .unwrap();
    if !f.link_errors.is_empty() {
        let stderr = String::from_utf8_lossy(&link.stderr);
        assert!(
            !link.status.success(),
            "link should have failed, stderr:\n{stderr}"
        );
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("error:")).collect();
        assert_eq!(lines.len(), 1, "exactly one error line expected:\n{stderr}");
        for needle in &f.link_errors {
            assert!(
                lines[0].contains(needle.as_str()),
                "error line lacks {needle:?}: {}",
                lines[0]
            );
        }
        assert!(
            !dir.join("host_static").exists(),
            "a failed link must not leave OUT behind"
        );
        return scratch;
    }
    check(&link, "dlstatic link");
    assert_static(&dir.join("host_static"));
    common::plan_check::assert_link_matches_plan(dir, &f.link_args, "host_static");

    for run in &f.runs {
        let out = Command::new(dir.join("host_static"))
            .args(&run.args)
            .envs(f.env.iter().cloned())
            .current_dir(dir)
            .output()
            .unwrap();
        check(&out, "static host");
        assert_stdout(&out, &run.expect, "static host");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for needle in &f.stderr_contains {
            assert!(
                stderr.contains(needle.as_str()),
                "static host stderr lacks {needle:?}:\n{stderr}"
            );
        }
        if run.same_as_dynamic {
            let dynamic = Command::new(dir.join("host_dyn"))
                .args(&run.args)
                .current_dir(dir)
                .output()
                .unwrap();
            check(&dynamic, "dynamic host");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&dynamic.stdout),
                "static and dynamic hosts differ"
            );
        }
    }
    if !f.empty_root.is_empty() {
        run_in_empty_root(dir, &f);
    }
    scratch
}

/// The audit reports exactly the expected findings, as JSON and as text, and its exit
/// code follows their severities.
fn check_audit(dir: &Path, f: &Fixture) {
    // the audit takes what the link takes, LINKER_ARGS included
    let run = |extra: &[&str]| {
        Command::new(DLSTATIC)
            .args(["audit", "--db", "db"])
            .args(extra)
            .args(&f.link_args)
            .current_dir(dir)
            .output()
            .unwrap()
    };
    let json = run(&["--json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("audit --json prints JSON");
    let mut got: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {} {}",
                f["kind"].as_str().unwrap(),
                f["severity"].as_str().unwrap(),
                f["symbols"][0].as_str().unwrap_or("-")
            )
        })
        .collect();
    got.sort();
    let mut want = f.audit.clone();
    want.sort();
    assert_eq!(got, want, "audit findings");
    assert_eq!(report["schema"], 1);
    let modules = std::fs::read_dir(dir.join("db/links")).unwrap().count();
    assert_eq!(
        report["totals"]["modules"].as_u64().unwrap() as usize,
        modules
            - want
                .iter()
                .filter(|w| w.starts_with("unlinkable-object"))
                .count()
    );

    let has = |severity: &str| want.iter().any(|w| w.split(' ').nth(1) == Some(severity));
    assert_eq!(
        json.status.code(),
        Some(i32::from(has("error"))),
        "audit exit code"
    );
    assert_eq!(
        run(&["--strict"]).status.code(),
        Some(i32::from(has("error") || has("warning"))),
        "audit --strict exit code"
    );

    let text = String::from_utf8(run(&[]).stdout).unwrap();
    for expected in &want {
        let mut parts = expected.split(' ');
        let (kind, severity) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(severity) && l.contains(kind)),
            "text report lacks {expected}:\n{text}"
        );
    }
    assert!(text.contains("totals:"), "{text}");
}

fn assert_stdout(out: &Output, expect: &[String], what: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        got,
        expect.iter().map(String::as_str).collect::<Vec<_>>(),
        "{what} stdout"
    );
}

/// No interpreter, no dynamic section: nothing for ld.so to do.
fn assert_static(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let elf = object::read::elf::ElfFile64::<object::Endianness>::parse(&*bytes).unwrap();
    use object::read::elf::ProgramHeader;
    let kinds: Vec<u32> = elf
        .elf_program_headers()
        .iter()
        .map(|p| p.p_type(elf.endian()))
        .collect();
    assert!(
        !kinds.contains(&object::elf::PT_INTERP),
        "{} has PT_INTERP",
        path.display()
    );
    assert!(
        !kinds.contains(&object::elf::PT_DYNAMIC),
        "{} has PT_DYNAMIC",
        path.display()
    );
    let ldd = Command::new("ldd").arg(path).output().unwrap();
    let said =
        String::from_utf8_lossy(&ldd.stdout).to_string() + &String::from_utf8_lossy(&ldd.stderr);
    assert!(
        said.contains("not a dynamic executable"),
        "ldd says: {said}"
    );
}

/// The stub the link wrote for the module built at `plugin` (relative to `dir`): the
/// module with that file's md5 (byte-identical files at two paths are one module).
fn stub_for(dir: &Path, plugin: &str) -> PathBuf {
    let want = dlstatic::module_id::md5_hex(&std::fs::read(dir.join(plugin)).unwrap());
    let work = dir.join("host_static.km");
    for entry in std::fs::read_dir(&work).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".km.json") {
            let module: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            if module["md5"] == want {
                return PathBuf::from(path.to_string_lossy().replace(".km.json", ".km.id"));
            }
        }
    }
    panic!("no module for {plugin} in {}", work.display());
}

fn run_in_empty_root(dir: &Path, f: &Fixture) {
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(dir.join("host_static"), root.join("host_static")).unwrap();
    for plugin in &f.empty_root {
        let at = root.join(plugin);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::copy(stub_for(dir, plugin), &at).unwrap();
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    for run in f
        .runs
        .iter()
        .filter(|r| r.args.iter().all(|a| f.empty_root.contains(a)))
    {
        let mut cmd = if is_root {
            Command::new("chroot")
        } else {
            let mut c = Command::new("unshare");
            c.args(["-r", "chroot"]);
            c
        };
        let out = cmd
            .arg(&root)
            .arg("/host_static")
            .args(&run.args)
            .envs(f.env.iter().cloned())
            .output()
            .unwrap();
        check(&out, "static host in an empty root");
        assert_stdout(&out, &run.expect, "static host in an empty root");
    }
}

/// One test per directory under tests/fixtures/.
fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let trials = names
        .into_iter()
        .map(|name| {
            Trial::test(name.clone(), move || {
                run_fixture(&name);
                Ok(())
            })
        })
        .collect();
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}
