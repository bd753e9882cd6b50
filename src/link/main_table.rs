//! The main program's own dlsym table, made from the first link's executable: what
//! `dlopen(NULL)`, `RTLD_DEFAULT` and `dlopen("libc.so.6")` answer from.

use std::path::Path;

use anyhow::Result;

use crate::codegen::{Table, TableSymbol};
use crate::elf::{self, SymbolKind};
use crate::module_id;
use crate::plan::Plan;
use crate::plan::system_libs::{self, GLIBC_SONAMES};

/// Names that never go into the main program's table: module symbols (reachable through
/// their modules), the runtime's internals, and what the linker and crt files define.
fn excluded(name: &str) -> bool {
    const LINKER_DEFINED: &[&str] = &[
        "_start",
        "_init",
        "_fini",
        "__bss_start",
        "_edata",
        "_end",
        "__ehdr_start",
        "__dso_handle",
        "_IO_stdin_used",
        "__data_start",
        "data_start",
        "__TMC_END__",
        "_DYNAMIC",
        "_GLOBAL_OFFSET_TABLE_",
    ];
    const LINKER_PREFIXES: &[&str] = &[
        "__init_array",
        "__fini_array",
        "__preinit_array",
        "__rela_iplt",
        "__start_",
        "__stop_",
        "dlstatic_module_",
    ];
    LINKER_DEFINED.contains(&name)
        || LINKER_PREFIXES.iter().any(|p| name.starts_with(p))
        || module_id::is_renamed(name)
}

/// Sonames dlopen answers with the main program: glibc's, the system libraries', and
/// those of `-l` flags among the main inputs.
fn aliases(plan: &Plan) -> Vec<String> {
    let mut aliases: Vec<String> = GLIBC_SONAMES.iter().map(|s| s.to_string()).collect();
    aliases.extend(plan.system_libs.iter().filter_map(|l| l.soname.clone()));
    aliases.extend(
        plan.settings
            .main_inputs
            .iter()
            .filter_map(|i| i.strip_prefix("-l"))
            .filter_map(|l| system_libs::soname_for(l, &[])),
    );
    aliases.sort();
    aliases.dedup();
    aliases
}

pub fn build(executable: &[u8], plan: &Plan, output: &Path) -> Result<Table> {
    let mut symbols: Vec<TableSymbol> = elf::executable_globals(executable)?
        .into_iter()
        .filter(|(name, kind, _)| *kind != SymbolKind::Other && !excluded(name))
        .map(|(name, kind, size)| TableSymbol {
            target: name.clone(),
            // dlsym(RTLD_NEXT) from the program skips what its own objects define
            own: plan.program.own.contains(&name),
            name,
            tls: kind == SymbolKind::Tls,
            size,
            exported: true,
        })
        .collect();
    symbols.sort_by(|a, b| a.name.cmp(&b.name));
    symbols.dedup_by(|a, b| a.name == b.name);
    Ok(Table {
        so_name: output
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        path: String::new(),
        soname: None,
        id: String::new(),
        is_main: true,
        symbols,
        aliases: aliases(plan),
        deps: Vec::new(),
        inits: Vec::new(),
        finis: Vec::new(),
        sections: Vec::new(),
        eager: plan.settings.eager_constructors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linker_and_module_names_stay_out() {
        assert!(excluded("__init_array_start"));
        assert!(excluded("helper_0123456789abcdef0123456789abcdef_km"));
        assert!(!excluded("printf"));
    }
}
