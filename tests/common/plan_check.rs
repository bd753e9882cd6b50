//! The plan test: a link does exactly what its plan and its audit said. For a finished
//! `dlstatic link -o OUT ARGS`, `dlstatic plan --json ARGS` and the plan inside
//! `dlstatic audit --json ARGS` equal the `OUT.km/plan.json` the link executed, and the
//! linker's own map (`OUT.km/link.map`) pulled exactly the planned archive members:
//! every object of every module, and of each system library the members the plan named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::DLSTATIC;

pub fn assert_link_matches_plan(dir: &Path, link_args: &[String], output: &str) {
    let json_of = |command: &str| -> serde_json::Value {
        let out = Command::new(DLSTATIC)
            .args([command, "--db", "db", "--json"])
            .args(link_args)
            .current_dir(dir)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{command} --json: {e}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    let executed: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("{output}.km/plan.json")))
            .expect("the link wrote plan.json"),
    )
    .unwrap();
    assert_eq!(
        json_of("plan"),
        executed,
        "`dlstatic plan` and the executed plan differ"
    );
    assert_eq!(
        json_of("audit")["plan"],
        executed,
        "the audit's plan and the executed plan differ"
    );

    // (lossy: the map names symbols, which are bytes)
    let map = std::fs::read(dir.join(format!("{output}.km/link.map"))).unwrap();
    let map = String::from_utf8_lossy(&map);
    let pulled = pulled_members(&map, dir);
    for module in executed["modules"].as_array().unwrap() {
        let archive = module_archive(dir, output, module);
        assert_eq!(
            pulled.get(&archive).map_or(0, BTreeSet::len),
            module["objects"].as_array().unwrap().len(),
            "objects of {archive:?} in the link map"
        );
    }
    for lib in executed["system_libraries"].as_array().unwrap() {
        let archive = canonical(dir, lib["archive"].as_str().unwrap());
        let planned: BTreeSet<String> = lib["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            pulled.get(&archive).cloned().unwrap_or_default(),
            planned,
            "members of {archive:?}"
        );
    }
}

fn module_archive(dir: &Path, output: &str, module: &serde_json::Value) -> PathBuf {
    let name = module["so_name"].as_str().unwrap();
    let stem = name.strip_suffix(".so").unwrap_or(name);
    let short = &module["id"].as_str().unwrap()[..8];
    canonical(dir, &format!("{output}.km/{stem}-{short}.km.a"))
}

/// `archive(member)` lines of the map's "Archive member included" section.
fn pulled_members(map: &str, dir: &Path) -> BTreeMap<PathBuf, BTreeSet<String>> {
    let section = map
        .split("Archive member included to satisfy reference by file (symbol)")
        .nth(1)
        .expect("the map lists pulled archive members");
    let mut pulled: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    // an entry starts in column 0 (its reference is indented); the next heading ends it
    for line in section
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
    {
        // (an archive's path may hold spaces: `with space.km.a(000-p.o)`)
        let Some((archive, rest)) = line.split_once(".a(") else {
            break;
        };
        let member = &rest[..rest.find(')').expect("archive(member)")];
        pulled
            .entry(canonical(dir, &format!("{archive}.a")))
            .or_default()
            .insert(member.to_string());
    }
    pulled
}

fn canonical(dir: &Path, path: &str) -> PathBuf {
    dir.join(path)
        .canonicalize()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}
