//! The differential check: where both `elf::rename::rename_symbols` and
//! `objcopy --redefine-syms` accept an input, the non-local symbols of their outputs
//! carry the same names in the same order. One objcopy process per input (a few
//! milliseconds), so this target replays the `rename` corpus rather than fuzzing fast.

use std::process::Command;

use dlstatic::elf::{self, rename};
use object::read::elf::{FileHeader, Sym};

/// Non-local symbol names in symbol-table order, or None when the bytes do not read.
fn global_names(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let (header, endian) = elf::parse_header(bytes).ok()?;
    let sections = header.sections(endian, bytes).ok()?;
    let symbols = sections
        .symbols(endian, bytes, object::elf::SHT_SYMTAB)
        .ok()?;
    symbols
        .iter()
        .skip(1)
        .filter(|sym| !sym.is_local())
        .map(|sym| symbols.symbol_name(endian, sym).ok().map(<[u8]>::to_vec))
        .collect()
}

/// objcopy's output for `data` with `symmap`, or None when objcopy refuses the input.
fn objcopy(data: &[u8], symmap: &[u8]) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir_in(crate::scratch_dir()).expect("scratch directory");
    let (input, map, output) = (
        dir.path().join("in.o"),
        dir.path().join("map"),
        dir.path().join("out.o"),
    );
    std::fs::write(&input, data).expect("write input");
    std::fs::write(&map, symmap).expect("write symmap");
    let status = Command::new("objcopy")
        .arg("--redefine-syms")
        .arg(&map)
        .arg(&input)
        .arg(&output)
        .output()
        .expect("run objcopy");
    status
        .status
        .success()
        .then(|| std::fs::read(&output).ok())?
}

pub fn check(data: &[u8]) {
    let Ok(summary) = elf::summarize_object(data) else {
        return;
    };
    let renames = crate::rename::renames_for(Some(&summary.globals));
    // the symmap format cannot say an empty name or one with whitespace or `#` (a comment)
    let unsayable =
        |n: &String| n.is_empty() || n.contains(|c: char| c.is_whitespace() || c == '#');
    if renames.keys().any(unsayable) {
        return;
    }
    let Ok((ours, _)) = rename::rename_symbols(data.to_vec(), &renames) else {
        return;
    };
    let Some(reference) = objcopy(data, &rename::symmap_text(&renames)) else {
        return;
    };
    let ours = global_names(&ours).expect("our output reads");
    // objcopy may rewrite a damaged input into another shape (symbols dropped or
    // reordered): then the tools did different things and there is nothing to compare
    let Some(theirs) = global_names(&reference).filter(|t| t.len() == ours.len()) else {
        return;
    };
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(
            String::from_utf8_lossy(a),
            String::from_utf8_lossy(b),
            "rename_symbols and objcopy disagree"
        );
    }
}
