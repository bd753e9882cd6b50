//! Stage 3, mangle: give every symbol a module defines a name of its own, so two
//! modules may both define `helper` or `PyInit__speedups`.
//!
//! The rewrite is done in place rather than by rebuilding the object: take the file's
//! bytes (no copy is made), append a new string table at their end, point the `.strtab` section header at it and
//! patch `st_name` of the renamed symbols. Everything else (sections, relocations,
//! COMDAT groups, debug info) stays byte-for-byte, which is why this works on g++
//! COMDAT groups, `-g3` objects and clang objects alike. Group signatures are symbols,
//! so they follow the rename: each module keeps its own copy of inline functions.

use std::collections::HashMap;

use anyhow::{Result, anyhow, bail};
use object::elf;
use object::read::elf::{FileHeader, SectionHeader, Sym};

use crate::elf::{parse_header, symbol_bytes, symbol_name};

const SYM64_SIZE: usize = 24;
const ST_NAME_OFFSET: usize = 0;

/// Rename every non-local symbol (defined or undefined) whose name is a key of `renames`.
/// Returns the rewritten object and how many symbol entries changed.
pub fn rename_symbols(
    mut bytes: Vec<u8>,
    renames: &HashMap<String, String>,
) -> Result<(Vec<u8>, usize)> {
    let Some(edit) = plan_rename(&bytes, renames)? else {
        return Ok((bytes, 0));
    };
    let new_offset = bytes.len() as u64;
    bytes.extend_from_slice(&edit.strings);
    for &(at, name_offset) in &edit.patches {
        bytes[at..at + 4].copy_from_slice(&name_offset.to_le_bytes());
    }
    // Point the string table's section header (Elf64_Shdr: sh_offset at 24, sh_size at 32) at the new table.
    let shdr = edit.strtab_header;
    bytes[shdr + 24..shdr + 32].copy_from_slice(&new_offset.to_le_bytes());
    bytes[shdr + 32..shdr + 40].copy_from_slice(&(edit.strings.len() as u64).to_le_bytes());
    Ok((bytes, edit.renamed))
}

/// What renaming changes in an object: the new string table, the `st_name` fields to
/// patch (file offset, offset in the new table), and where the table's section header is.
struct RenameEdit {
    strings: Vec<u8>,
    patches: Vec<(usize, u32)>,
    /// How many of the patches are the renamed symbols (the rest, group signatures).
    renamed: usize,
    strtab_header: usize,
}

/// `None` when nothing in the object is renamed.
fn plan_rename(bytes: &[u8], renames: &HashMap<String, String>) -> Result<Option<RenameEdit>> {
    let (header, endian) = parse_header(bytes)?;
    if header.e_type(endian) != elf::ET_REL {
        bail!("not a relocatable object");
    }
    let sections = header
        .sections(endian, bytes)
        .map_err(|e| anyhow!("malformed sections: {e}"))?;
    let symbols = sections
        .symbols(endian, bytes, elf::SHT_SYMTAB)
        .map_err(|e| anyhow!("malformed symbol table: {e}"))?;
    if symbols.is_empty() {
        return Ok(None);
    }
    let symtab_offset = sections
        .section(symbols.section())
        .map_err(|e| anyhow!("{e}"))?
        .sh_offset(endian) as usize;
    let strtab_index = symbols.string_section();
    let strtab = sections.section(strtab_index).map_err(|e| anyhow!("{e}"))?;
    let (old_offset, old_size) = (
        strtab.sh_offset(endian) as usize,
        strtab.sh_size(endian) as usize,
    );
    let old_strings = bytes
        .get(old_offset..old_offset + old_size)
        .ok_or_else(|| anyhow!("string table lies outside the file"))?;

    let GlobalRenames {
        mut strings,
        mut patches,
        suffixes,
    } = rename_globals(&symbols, endian, renames, old_strings, symtab_offset)?;
    if patches.is_empty() {
        return Ok(None);
    }
    let renamed = patches.len();
    for (at, signature) in local_group_signatures(header, endian, bytes, &symbols, &suffixes)? {
        patches.push((
            symtab_offset + at * SYM64_SIZE + ST_NAME_OFFSET,
            strings.len() as u32,
        ));
        strings.extend_from_slice(&signature);
        strings.push(0);
    }
    let strtab_header =
        header.e_shoff(endian) as usize + strtab_index.0 * header.e_shentsize(endian) as usize;
    Ok(Some(RenameEdit {
        strings,
        patches,
        renamed,
        strtab_header,
    }))
}

/// The renamed global symbols of one object: its new string table, the symbol-table
/// patches that point names at it, and the suffix each renamed definition got.
struct GlobalRenames {
    strings: Vec<u8>,
    /// (file offset of a symbol's st_name, its new string-table offset)
    patches: Vec<(usize, u32)>,
    /// the suffix a renamed definition got, by the section holding it
    suffixes: HashMap<usize, Vec<u8>>,
}

fn rename_globals(
    symbols: &object::read::elf::SymbolTable<crate::elf::Header>,
    endian: object::Endianness,
    renames: &HashMap<String, String>,
    old_strings: &[u8],
    symtab_offset: usize,
) -> Result<GlobalRenames> {
    // The new table keeps the old one as its prefix, so every name not renamed (and,
    // in clang objects, section names sharing this table) keeps its offset.
    let mut new_strings = old_strings.to_vec();
    let mut appended: HashMap<&str, u32> = HashMap::new();
    let mut patches = Vec::new();
    let mut suffixes: HashMap<usize, Vec<u8>> = HashMap::new();
    for (index, sym) in symbols.enumerate() {
        if index.0 == 0 || sym.is_local() {
            continue;
        }
        let name = symbols
            .symbol_name(endian, sym)
            .map_err(|e| anyhow!("malformed symbol name: {e}"))?;
        let Some(new_name) = renames.get(&*symbol_name(name)) else {
            continue;
        };
        let new_bytes = symbol_bytes(new_name);
        if let Some(suffix) = new_bytes
            .strip_prefix(name)
            .filter(|_| !sym.is_undefined(endian))
        {
            suffixes.insert(sym.st_shndx(endian) as usize, suffix.to_vec());
        }
        let offset = *appended.entry(new_name.as_str()).or_insert_with(|| {
            let at = new_strings.len() as u32;
            new_strings.extend_from_slice(&symbol_bytes(new_name));
            new_strings.push(0);
            at
        });
        patches.push((
            symtab_offset + index.0 * SYM64_SIZE + ST_NAME_OFFSET,
            offset,
        ));
    }
    Ok(GlobalRenames {
        strings: new_strings,
        patches,
        suffixes,
    })
}

/// COMDAT groups whose signature is a local symbol (g++'s `C5`/`D5` groups of
/// constructor and destructor aliases) get that signature renamed too, with the suffix
/// of a renamed definition inside the group, as (symbol index, new name): otherwise the
/// linker keeps one module's group of that name and drops every other module's copy,
/// and their renamed definitions with it.
fn local_group_signatures(
    header: &crate::elf::Header,
    endian: object::Endianness,
    bytes: &[u8],
    symbols: &object::read::elf::SymbolTable<crate::elf::Header>,
    suffixes: &HashMap<usize, Vec<u8>>,
) -> Result<Vec<(usize, Vec<u8>)>> {
    let sections = header
        .sections(endian, bytes)
        .map_err(|e| anyhow!("malformed sections: {e}"))?;
    let mut out = Vec::new();
    for section in sections.iter() {
        if section.sh_type(endian) != elf::SHT_GROUP {
            continue;
        }
        let Ok(Some((flags, members))) = section.group(endian, bytes) else {
            continue;
        };
        let index = section.sh_info(endian) as usize;
        let Ok(signature) = symbols.symbol(object::SymbolIndex(index)) else {
            continue;
        };
        if flags & elf::GRP_COMDAT == 0 || !signature.is_local() {
            continue;
        }
        let suffix = members
            .iter()
            .find_map(|member| suffixes.get(&(member.get(endian) as usize)));
        if let (Some(suffix), Ok(name)) = (suffix, symbols.symbol_name(endian, signature)) {
            out.push((index, [name, suffix].concat()));
        }
    }
    Ok(out)
}

/// The `<base>.km.symmap` file: `old new` per line, sorted (objcopy --redefine-syms
/// format), names as the bytes they are in the objects.
pub fn symmap_text(renames: &HashMap<String, String>) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = renames
        .iter()
        .map(|(old, new)| [&*symbol_bytes(old), b" ", &symbol_bytes(new), b"\n"].concat())
        .collect();
    lines.sort();
    lines.concat()
}

/// Elf64_Shdr field offsets.
const SH_NAME: usize = 0;
const SH_TYPE: usize = 4;
const SH_OFFSET: usize = 24;
const SH_SIZE: usize = 32;

/// Give every section for which `rename` returns a name that name (and type
/// SHT_PROGBITS), in place: a new section-name table is appended and `sh_name`
/// patched; nothing moves, relocations stay bound to their section by index.
pub fn rename_sections(
    mut bytes: Vec<u8>,
    mut rename: impl FnMut(&str) -> Option<String>,
) -> Result<Vec<u8>> {
    let (header, endian) = parse_header(&bytes)?;
    let sections = header
        .sections(endian, &*bytes)
        .map_err(|e| anyhow!("malformed sections: {e}"))?;
    let shstrndx = header
        .shstrndx(endian, &*bytes)
        .map_err(|e| anyhow!("malformed section header: {e}"))? as usize;
    let (shoff, entsize) = (
        header.e_shoff(endian) as usize,
        header.e_shentsize(endian) as usize,
    );
    let names = sections.section(object::SectionIndex(shstrndx))?;
    let (old_offset, old_size) = (
        names.sh_offset(endian) as usize,
        names.sh_size(endian) as usize,
    );
    let mut strings = bytes
        .get(old_offset..old_offset + old_size)
        .ok_or_else(|| anyhow!("section names lie outside the file"))?
        .to_vec();
    let mut patches = Vec::new();
    for (index, section) in sections.iter().enumerate() {
        let name = sections.section_name(endian, section).unwrap_or_default();
        let Some(new_name) = rename(&String::from_utf8_lossy(name)) else {
            continue;
        };
        patches.push((shoff + index * entsize, strings.len() as u32));
        strings.extend_from_slice(new_name.as_bytes());
        strings.push(0);
    }
    if patches.is_empty() {
        return Ok(bytes);
    }
    let new_offset = bytes.len() as u64;
    bytes.extend_from_slice(&strings);
    for (at, name) in patches {
        bytes[at + SH_NAME..at + SH_NAME + 4].copy_from_slice(&name.to_le_bytes());
        bytes[at + SH_TYPE..at + SH_TYPE + 4].copy_from_slice(&elf::SHT_PROGBITS.to_le_bytes());
    }
    let at = shoff + shstrndx * entsize;
    bytes[at + SH_OFFSET..at + SH_OFFSET + 8].copy_from_slice(&new_offset.to_le_bytes());
    bytes[at + SH_SIZE..at + SH_SIZE + 8].copy_from_slice(&(strings.len() as u64).to_le_bytes());
    Ok(bytes)
}
