//! The bad-input corpus: each directory under tests/bad-inputs/ is one case — files to
//! lay out in a scratch directory, and a `case` file saying what to run and what the
//! error must say:
//!
//! ```text
//! # what the case is about
//! run: ARGS        `dlstatic ARGS` in the scratch directory (a host.o is there);
//!                  `\xNN` in an argument is that byte (arguments that are not UTF-8)
//! env: K=V         environment for that run
//! expect: S        the one error line contains S (several allowed)
//! ```
//! Every case must exit non-zero without a panic, print exactly one `error:` line,
//! and leave `out` (OUT) as it was: absent, or unchanged where the case ships one. A
//! `build` whose inputs are refused leaves no `out.km/` work directory either (a link
//! keeps its `out.km/lock`: removing a lock file others may wait on would break the lock).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};

mod common;
use common::DLSTATIC;

struct Case {
    run: Vec<OsString>,
    env: Vec<(String, String)>,
    expect: Vec<String>,
}

fn parse_case(text: &str) -> Result<Case, String> {
    let mut case = Case {
        run: Vec::new(),
        env: Vec::new(),
        expect: Vec::new(),
    };
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (key, value) = line
            .split_once(':')
            .ok_or(format!("`{line}`: not `key: value`"))?;
        let value = value.trim().to_string();
        match key {
            "run" => case.run = value.split_whitespace().map(argument).collect(),
            "env" => {
                let (k, v) = value
                    .split_once('=')
                    .ok_or(format!("env: {value}: not K=V"))?;
                case.env.push((k.into(), v.into()));
            }
            "expect" => case.expect.push(value),
            _ => return Err(format!("unknown directive `{key}`")),
        }
    }
    match case.run.is_empty() || case.expect.is_empty() {
        true => Err("a case needs run: and expect:".into()),
        false => Ok(case),
    }
}

/// An argument with each `\xNN` turned into that byte.
fn argument(text: &str) -> OsString {
    let mut bytes = Vec::new();
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        let hex = rest.strip_prefix(b"\\x").and_then(|r| r.get(..2));
        let byte = hex.and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        let (byte, used) = byte.map_or((rest[0], 1), |b| (b, 4));
        bytes.push(byte);
        rest = &rest[used..];
    }
    OsString::from_vec(bytes)
}

fn run_case(dir: &Path) -> Result<(), Failed> {
    let case = parse_case(&std::fs::read_to_string(dir.join("case")).map_err(|e| e.to_string())?)?;
    let scratch = tempfile::tempdir().unwrap();
    let d = scratch.path();
    common::copy_tree(dir, d);
    std::fs::write(d.join("host.c"), "int main(void) { return 0; }\n").unwrap();
    let host = Command::new("cc")
        .args(["-c", "host.c", "-o", "host.o"])
        .current_dir(d)
        .status();
    assert!(host.unwrap().success());
    let before = std::fs::read(d.join("out")).ok();
    let work_before = d.join("out.km").exists();
    let out = Command::new(DLSTATIC)
        .args(&case.run)
        .envs(case.env.iter().cloned())
        .current_dir(d)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || stderr.contains("panicked") || out.status.code() == Some(101) {
        return Err(format!("expected a clean failure, got {}:\n{stderr}", out.status).into());
    }
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error:")).collect();
    if errors.len() != 1 {
        return Err(format!("expected one error line:\n{stderr}").into());
    }
    if let Some(missing) = case.expect.iter().find(|s| !errors[0].contains(s.as_str())) {
        return Err(format!("the error lacks {missing:?}: {}", errors[0]).into());
    }
    if std::fs::read(d.join("out")).ok() != before {
        return Err("OUT changed".into());
    }
    if case.run[0] == "build" && !work_before && d.join("out.km").exists() {
        return Err("left an out.km/ work directory behind".into());
    }
    Ok(())
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-inputs");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    cases.sort();
    let trials = cases
        .into_iter()
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            Trial::test(name, move || run_case(&dir))
        })
        .collect();
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}
