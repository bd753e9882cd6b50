//! The C that `codegen::render` writes for a Module JSON compiles with `cc -c` against
//! runtime/dlstatic.h, and the object refers to every table symbol by exactly its
//! target name (the asm labels survive escaping). One compiler run per input, so this
//! target replays a sample of the `codegen` corpus.

use std::process::Command;

pub fn check(data: &[u8]) {
    let Some((table, c)) = crate::codegen::render_module(data) else {
        return;
    };
    // names come from ELF string tables, which cannot hold a NUL
    if table.symbols.iter().any(|s| s.name.contains('\0')) {
        return;
    }
    let dir = tempfile::tempdir_in(crate::scratch_dir()).expect("scratch directory");
    let (source, object) = (dir.path().join("symbols.c"), dir.path().join("symbols.o"));
    std::fs::write(&source, &c).expect("write C");
    let runtime = concat!(env!("CARGO_MANIFEST_DIR"), "/../runtime");
    let out = Command::new("cc")
        .args(["-c", "-I", runtime])
        .arg(&source)
        .arg("-o")
        .arg(&object)
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "generated C does not compile:\n{}\n{c}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&object).expect("read object");
    let summary = dlstatic::elf::summarize_object(&bytes).expect("cc's object reads");
    // (symbol_name: a target that is not UTF-8 reads back as the same String)
    let referenced: std::collections::HashSet<&str> = summary
        .globals
        .iter()
        .filter(|g| !g.defined)
        .map(|g| g.name.as_str())
        .collect();
    for symbol in &table.symbols {
        assert!(
            referenced.contains(symbol.target.as_str()),
            "no reference to {:?}",
            symbol.target
        );
    }
}
