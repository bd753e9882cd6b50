//! Every fuzz check over the committed seeds, on stable Rust and without cargo-fuzz
//! (`cd fuzz && cargo test`): the checks hold on real compiler output, and the slow
//! ones (objcopy, cc) run end to end.

use dlstatic_fuzz::{
    archive, codegen, codegen_cc, compiler_args, elf_summary, modules_txt, rename, rename_objcopy,
};

fn each_seed(dir: &str, checks: &[fn(&[u8])]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(dir);
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        checks.iter().for_each(|check| check(&bytes));
        seeds += 1;
    }
    assert!(seeds > 0, "no seeds in {}", dir.display());
}

#[test]
fn elf_seeds() {
    each_seed(
        "elf",
        &[elf_summary::check, rename::check, rename_objcopy::check],
    );
}

#[test]
fn archive_seeds() {
    each_seed("archive", &[archive::check]);
}

#[test]
fn compiler_args_seeds() {
    each_seed("compiler_args", &[compiler_args::check]);
}

#[test]
fn modules_txt_seeds() {
    each_seed("modules_txt", &[modules_txt::check]);
}

#[test]
fn codegen_seeds() {
    each_seed("codegen", &[codegen::check, codegen_cc::check]);
}

/// Inputs the fuzzers found defects with (fuzz/findings/`TARGET-what`), now fixed:
/// each passes its target's check.
#[test]
fn findings_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("findings");
    let mut findings = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let check: fn(&[u8]) = match name.split_once('-').map(|(target, _)| target) {
            Some("archive") => archive::check,
            Some("codegen_cc") => codegen_cc::check,
            Some("compiler_args") => compiler_args::check,
            Some("modules_txt") => modules_txt::check,
            _ => panic!("{name}: no target of that name"),
        };
        check(&std::fs::read(&path).unwrap());
        findings += 1;
    }
    assert!(findings > 0, "no findings in {}", dir.display());
}
