//! `elf::rename::rename_symbols` on any bytes, renaming what the pipeline would (every
//! global the object names): an error or an object whose globals read back renamed,
//! in the same order, with nothing else about them changed.

use std::collections::HashMap;

use dlstatic::elf::{self, GlobalSymbol, rename};

/// The renames the pipeline would make for this object, or one arbitrary rename when
/// it cannot be summarized (rename_symbols must still refuse it cleanly).
pub fn renames_for(globals: Option<&[GlobalSymbol]>) -> HashMap<String, String> {
    let Some(globals) = globals else {
        return HashMap::from([("main".to_string(), "main_R".to_string())]);
    };
    globals
        .iter()
        // names that are not UTF-8 included: elf::symbol_name carries them losslessly
        .map(|s| {
            (
                s.name.clone(),
                format!("{}_0123456789abcdef0123456789abcdef_km", s.name),
            )
        })
        .collect()
}

pub fn check(data: &[u8]) {
    let before = elf::summarize_object(data).ok();
    let renames = renames_for(before.as_ref().map(|s| s.globals.as_slice()));
    let Ok((out, changed)) = rename::rename_symbols(data.to_vec(), &renames) else {
        return;
    };
    // an object analysis refuses never reaches the rename: no panic is all that counts
    let Some(before) = before else {
        return;
    };
    let after = elf::summarize_object(&out).expect("renamed object no longer reads");
    assert_eq!(before.globals.len(), after.globals.len(), "global count");
    let mut renamed = 0;
    for (old, new) in before.globals.iter().zip(&after.globals) {
        let expected = renames.get(&old.name).unwrap_or(&old.name);
        renamed += usize::from(expected != &old.name);
        assert_eq!(&new.name, expected, "name of {}", old.name);
        assert_eq!(
            (old.defined, old.weak, old.kind, old.size),
            (new.defined, new.weak, new.kind, new.size),
            "attributes of {}",
            old.name
        );
    }
    assert_eq!(changed, renamed, "reported rename count");
}
