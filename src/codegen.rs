//! Stage 5, codegen: the C registration table of a module (`<base>.km.symbols.c`) or of
//! the main program, rendered from `templates/symbols.c.hbs`.
//!
//! Symbols are declared with asm labels (`extern char s0[] __asm__("name")`) so any
//! linker name works, whatever C thinks of it (builtins, C++ mangled names, `main`).
//! The hash table for dlsym is laid out here, at link time, so the runtime does no
//! work at start-up.

use std::sync::LazyLock;

use anyhow::{Context, Result};
use handlebars::Handlebars;
use serde::Serialize;

use crate::elf::{SymbolKind, initfini};
use crate::module_id;
use crate::plan::analyze::Module;

const TEMPLATE: &str = include_str!("../templates/symbols.c.hbs");

#[derive(Debug, Serialize)]
pub struct Table {
    pub so_name: String,
    pub path: String,
    pub soname: Option<String>,
    pub id: String,
    pub is_main: bool,
    /// Sorted by name.
    pub symbols: Vec<TableSymbol>,
    /// Main program only: sonames it answers for.
    pub aliases: Vec<String>,
    /// Ids of the modules this one links against (its DT_NEEDED among the modules).
    pub deps: Vec<String>,
    /// Constructor and destructor runs moved out of the module's init/fini arrays
    /// (`initfini::runs`), and every section they name.
    pub inits: Vec<initfini::Run>,
    pub finis: Vec<initfini::Run>,
    pub sections: Vec<String>,
    /// Main program only: run every module's constructors at start (`--eager-constructors`).
    pub eager: bool,
}

#[derive(Debug, Serialize)]
pub struct TableSymbol {
    /// The name callers of dlsym use.
    pub name: String,
    /// The name in the static binary (renamed for modules).
    pub target: String,
    pub tls: bool,
    pub size: u64,
    pub exported: bool,
    /// Main program only: defined by the program's own objects, not a system library.
    pub own: bool,
}

impl Table {
    /// A module's table: every symbol it defines (for dladdr), exported ones marked.
    pub fn for_module(module: &Module) -> Table {
        let exported: std::collections::HashSet<&str> =
            module.exports.iter().map(String::as_str).collect();
        let symbols = module
            .defined
            .iter()
            .filter(|s| s.kind != SymbolKind::Other || exported.contains(s.name.as_str()))
            .map(|s| TableSymbol {
                name: s.name.clone(),
                target: module.renamed(&s.name),
                tls: s.kind == SymbolKind::Tls,
                size: s.size,
                exported: exported.contains(s.name.as_str()),
                own: false,
            })
            .collect();
        let mut deps: Vec<String> = module
            .bindings
            .values()
            .filter_map(|target| module_id::renamed_module_id(target))
            .map(String::from)
            .collect();
        deps.sort();
        deps.dedup();
        Table {
            so_name: module.file_name.clone(),
            path: module.path.clone(),
            soname: module.soname.clone(),
            id: module.id.to_string(),
            is_main: false,
            symbols,
            aliases: Vec::new(),
            deps,
            inits: Vec::new(),
            finis: Vec::new(),
            sections: Vec::new(),
            eager: false,
        }
    }

    /// Let the runtime run these moved init/fini sections (`initfini::move_init_sections`).
    pub fn set_initfini(&mut self, moved: &std::collections::BTreeSet<initfini::MovedSection>) {
        (self.inits, self.finis) = initfini::runs(moved);
        self.sections = moved.iter().map(|m| m.name.clone()).collect();
    }
}

/// FNV-1a, 32 bit; `dlstatic_hash` in runtime/dlstatic.h must stay identical.
pub fn hash(name: &str) -> u32 {
    name.bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619))
}

/// Open addressing with linear probing; a slot holds symbol index + 1, 0 is empty.
/// Twice as many slots as exported symbols keeps probe chains short.
fn layout_buckets(symbols: &[TableSymbol]) -> Vec<u32> {
    let exported = symbols.iter().filter(|s| s.exported).count();
    if exported == 0 {
        return Vec::new();
    }
    let size = (exported * 2).next_power_of_two();
    let mask = size - 1;
    let mut buckets = vec![0u32; size];
    for (index, symbol) in symbols.iter().enumerate().filter(|(_, s)| s.exported) {
        let mut slot = hash(&symbol.name) as usize & mask;
        while buckets[slot] != 0 {
            slot = (slot + 1) & mask;
        }
        buckets[slot] = index as u32 + 1;
    }
    buckets
}

/// Escape for a C string literal (and asm label).
fn c_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    out
}

/// The template registry, built once per process: C, not HTML (no escaping), strict
/// (a missing field is an error), with `{{c …}}` for C string literals.
fn registry() -> Result<&'static Handlebars<'static>> {
    static REGISTRY: LazyLock<Result<Handlebars<'static>, String>> = LazyLock::new(|| {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        handlebars::handlebars_helper!(c: |s: str| c_escape(s));
        hb.register_helper("c", Box::new(c));
        hb.register_template_string("symbols", TEMPLATE)
            .map_err(|e| format!("templates/symbols.c.hbs: {e}"))?;
        Ok(hb)
    });
    REGISTRY.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

pub fn render(table: &Table) -> Result<String> {
    let hb = registry()?;

    let buckets = layout_buckets(&table.symbols);
    let mut data = serde_json::to_value(table)?;
    let rows: Vec<String> = buckets
        .chunks(16)
        .map(|row| {
            row.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    data["buckets"] = rows.join(",\n    ").into();
    data["nbuckets"] = buckets.len().into();
    // the table's C name, which dependent modules' tables refer to
    data["cname"] = if table.is_main {
        "main".into()
    } else {
        table.id.clone().into()
    };
    hb.render("symbols", &data)
        .context("rendering a registration table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_reference_fnv1a() {
        // reference values of 32-bit FNV-1a
        assert_eq!(hash(""), 0x811c9dc5);
        assert_eq!(hash("a"), 0xe40c292c);
        assert_eq!(hash("foobar"), 0xbf9cf968);
    }

    #[test]
    fn every_exported_symbol_is_reachable_by_probing() {
        let symbols: Vec<TableSymbol> = (0..100)
            .map(|i| TableSymbol {
                name: format!("sym{i}"),
                target: String::new(),
                tls: false,
                size: 0,
                exported: i % 3 != 0,
                own: false,
            })
            .collect();
        let buckets = layout_buckets(&symbols);
        assert!(buckets.len().is_power_of_two());
        for (index, s) in symbols.iter().enumerate() {
            let mut slot = hash(&s.name) as usize & (buckets.len() - 1);
            let found = loop {
                match buckets[slot] {
                    0 => break None,
                    n if symbols[n as usize - 1].name == s.name => break Some(n as usize - 1),
                    _ => slot = (slot + 1) & (buckets.len() - 1),
                }
            };
            assert_eq!(found, s.exported.then_some(index), "{}", s.name);
        }
    }

    #[test]
    fn c_escape_keeps_literals_valid() {
        assert_eq!(c_escape("a\"b\\c\n"), "a\\\"b\\\\c\\012");
    }
}
