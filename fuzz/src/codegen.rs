//! Capture-db JSON to C: a `LinkRecord` (capture/db.rs) reads and writes back equal;
//! a `Module` (what analysis caches, `<base>.km.json`) becomes a `codegen::Table` that
//! `codegen::render` turns into C without error. Whether that C compiles is the
//! `codegen_cc` target's question (one compiler run per input).

use dlstatic::capture::db::LinkRecord;
use dlstatic::codegen::{self, Table};
use dlstatic::module_id;
use dlstatic::plan::analyze::Module;

/// The table and its C for a Module JSON, when the bytes are one.
pub fn render_module(data: &[u8]) -> Option<(Table, String)> {
    let module: Module = serde_json::from_slice(data).ok()?;
    for symbol in &module.defined {
        // the main table's filter asks this of every name (link/main_table.rs)
        module_id::is_renamed(&symbol.name);
    }
    let table = Table::for_module(&module);
    match codegen::render(&table) {
        Ok(c) => Some((table, c)),
        // the one refusal: a name no assembler label can spell
        Err(error) => {
            assert!(
                table.symbols.iter().any(|s| unspellable(&s.target)),
                "a module's table does not render: {error:#}"
            );
            None
        }
    }
}

/// A name gas cannot read even quoted (ELF names hold no NUL: one that does is refused too).
fn unspellable(name: &str) -> bool {
    dlstatic::elf::symbol_bytes(name)
        .iter()
        .any(|b| matches!(b, b'"' | b'\\' | b'\n' | 0))
}

pub fn check(data: &[u8]) {
    if let Ok(record) = serde_json::from_slice::<LinkRecord>(data) {
        let text = serde_json::to_vec(&record).expect("a record serializes");
        let back: LinkRecord = serde_json::from_slice(&text).expect("a written record reads");
        assert_eq!(back, record, "record round trip");
    }
    render_module(data);
}
