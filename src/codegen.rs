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

use crate::elf::{SymbolKind, initfini, symbol_bytes};
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

/// FNV-1a, 32 bit, over the name's bytes (what dlsym is handed);
/// `dlstatic_hash` in runtime/dlstatic.h must stay identical.
pub fn hash(name: &str) -> u32 {
    fnv1a(&symbol_bytes(name))
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(2166136261u32, |h, &b| (h ^ b as u32).wrapping_mul(16777619))
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

/// The body of a C string literal holding `text`'s bytes (symbol names decoded by
/// `elf::symbol_bytes`): printable ASCII as is, everything else octal. `?` is escaped
/// (no trigraph can form) and so is the `/` of `*/` (the generated file's first line is
/// a comment holding the module's name).
fn c_escape(text: &str) -> String {
    let bytes = symbol_bytes(text);
    let mut out = String::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' | b'\\' | b'?' => {
                out.push('\\');
                out.push(b as char);
            }
            b'/' if i > 0 && bytes[i - 1] == b'*' => out.push_str("\\057"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    out
}

/// The asm label that makes the assembler name symbol `name`: the name itself when it
/// is an ordinary assembler name, else the name in double quotes (gas reads any byte
/// there but `"`, `\` and newline, which no escape can spell: those names are an error).
fn asm_label(name: &str) -> Result<String> {
    let bytes = symbol_bytes(name);
    let plain = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$');
    if bytes.iter().all(plain) && !bytes.first().is_some_and(u8::is_ascii_digit) {
        return Ok(c_escape(name));
    }
    if let Some(bad) = bytes.iter().find(|b| matches!(b, b'"' | b'\\' | b'\n' | 0)) {
        anyhow::bail!(
            "symbol `{}` cannot be named in assembler (it holds byte {bad:#04x})",
            name.escape_debug()
        );
    }
    Ok(format!("\\\"{}\\\"", c_escape(name)))
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
    for (symbol, value) in table
        .symbols
        .iter()
        .zip(data["symbols"].as_array_mut().unwrap())
    {
        value["label"] = asm_label(&symbol.target)
            .with_context(|| format!("the table of {}", table.so_name))?
            .into();
    }
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
        assert_eq!(c_escape("??=*/"), "\\?\\?=*\\057");
        // a name that is not UTF-8 is written as its bytes
        let name = crate::elf::symbol_name(b"a.\xef");
        assert_eq!(c_escape(&name), "a.\\357");
        assert_eq!(hash(&name), fnv1a(b"a.\xef"));
    }

    #[test]
    fn asm_labels_quote_names_gas_would_misread() {
        assert_eq!(asm_label("PyInit_x").unwrap(), "PyInit_x");
        assert_eq!(
            asm_label("(caf?\u{e9}").unwrap(),
            "\\\"(caf\\?\\303\\251\\\""
        );
        let err = asm_label("a\\b").unwrap_err();
        assert!(format!("{err}").contains("byte 0x5c"), "{err}");
    }
}
