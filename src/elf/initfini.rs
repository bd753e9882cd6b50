//! Module constructors at first dlopen, not at program start: the rename stage moves each
//! module object's `.init_array`/`.ctors` and `.fini_array`/`.dtors` sections (priority
//! suffixes included) to sections of the module's own, `dlstatic_<kind>_<id>[_<priority>]`.
//! Those names are C identifiers, so the module's table reaches each run of pointers
//! through the linker's `__start_`/`__stop_` symbols, and the runtime calls them when the
//! module is first opened (destructors at exit).
//!
//! The edit is in place, like the symbol rename: a new section-name table is appended and
//! `sh_name` patched; nothing moves, relocations stay bound to their section by index.
//! `sh_type` becomes SHT_PROGBITS as well, so no linker can treat the moved sections as
//! the program's own init arrays by their type (GNU ld places them by name anyway).

use std::collections::BTreeSet;

use anyhow::{Result, anyhow};
use object::elf;
use object::read::elf::{FileHeader, SectionHeader};
use serde::Serialize;

use crate::elf::parse_header;

/// Elf64_Shdr field offsets.
const SH_NAME: usize = 0;
const SH_TYPE: usize = 4;
const SH_OFFSET: usize = 24;
const SH_SIZE: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    InitArray,
    Ctors,
    FiniArray,
    Dtors,
}

impl Kind {
    const ALL: [(Kind, &'static str); 4] = [
        (Kind::InitArray, "init_array"),
        (Kind::Ctors, "ctors"),
        (Kind::FiniArray, "fini_array"),
        (Kind::Dtors, "dtors"),
    ];

    fn is_init(self) -> bool {
        matches!(self, Kind::InitArray | Kind::Ctors)
    }

    /// ld reverses `.ctors`/`.dtors` contents when it builds an init or fini array.
    fn reversed(self) -> bool {
        matches!(self, Kind::Ctors | Kind::Dtors)
    }
}

/// One moved section name of a module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MovedSection {
    /// ld's SORT_BY_INIT_PRIORITY key: `.init_array.N` is N, `.ctors.N` is 65535-N;
    /// sections without a suffix sort after all of them (u32::MAX).
    pub priority: u32,
    pub kind: Kind,
    pub name: String,
}

/// A run of pointers in the module's table, as the template writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub section: String,
    pub reversed: bool,
}

/// What was `name` becomes which section of module `id`, or None if it is not an
/// init/fini section.
fn classify(name: &str, id: &str) -> Option<MovedSection> {
    for (kind, word) in Kind::ALL {
        let Some(rest) = name.strip_prefix('.').and_then(|n| n.strip_prefix(word)) else {
            continue;
        };
        let (priority, suffix) = match rest.strip_prefix('.') {
            None if rest.is_empty() => (u32::MAX, String::new()),
            Some(digits) => {
                let n: u32 = digits.parse().ok()?;
                let key = if matches!(kind, Kind::Ctors | Kind::Dtors) {
                    65535u32.checked_sub(n)?
                } else {
                    n
                };
                (key, format!("_{n:05}"))
            }
            None => return None,
        };
        let name = format!("dlstatic_{word}_{id}{suffix}");
        return Some(MovedSection {
            priority,
            kind,
            name,
        });
    }
    None
}

/// Move the init/fini sections of one object of module `id`; returns the object and the
/// sections it now has.
pub fn move_init_sections(mut bytes: Vec<u8>, id: &str) -> Result<(Vec<u8>, Vec<MovedSection>)> {
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
    let mut moved = Vec::new();
    let mut patches = Vec::new();
    for (index, section) in sections.iter().enumerate() {
        let name = sections.section_name(endian, section).unwrap_or_default();
        let Some(m) = classify(&String::from_utf8_lossy(name), id) else {
            continue;
        };
        patches.push((shoff + index * entsize, strings.len() as u32));
        strings.extend_from_slice(m.name.as_bytes());
        strings.push(0);
        moved.push(m);
    }
    if moved.is_empty() {
        return Ok((bytes, moved));
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
    Ok((bytes, moved))
}

/// The module's constructor runs and destructor runs in the order of the arrays ld
/// would have built for the shared object: by priority, then the unsuffixed sections
/// (the runtime runs the first forward, the second backward).
pub fn runs(moved: &BTreeSet<MovedSection>) -> (Vec<Run>, Vec<Run>) {
    let run = |m: &MovedSection| Run {
        section: m.name.clone(),
        reversed: m.kind.reversed(),
    };
    let inits = moved.iter().filter(|m| m.kind.is_init()).map(run).collect();
    let finis = moved
        .iter()
        .filter(|m| !m.kind.is_init())
        .map(run)
        .collect();
    (inits, finis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_names_map_to_identifiers_with_ld_priorities() {
        let c = |n: &str| classify(n, "ab").map(|m| (m.priority, m.name));
        assert_eq!(
            c(".init_array"),
            Some((u32::MAX, "dlstatic_init_array_ab".into()))
        );
        assert_eq!(
            c(".init_array.101"),
            Some((101, "dlstatic_init_array_ab_00101".into()))
        );
        assert_eq!(
            c(".ctors.65434"),
            Some((101, "dlstatic_ctors_ab_65434".into()))
        );
        assert_eq!(c(".init_arrayx"), None);
        assert_eq!(c(".rela.init_array"), None);
        assert_eq!(c(".text"), None);
    }

    #[test]
    fn runs_follow_priority_then_unsuffixed() {
        let moved: BTreeSet<MovedSection> = [
            ".init_array",
            ".init_array.200",
            ".ctors.65434",
            ".fini_array",
        ]
        .iter()
        .filter_map(|n| classify(n, "x"))
        .collect();
        let (inits, finis) = runs(&moved);
        let names: Vec<&str> = inits.iter().map(|r| r.section.as_str()).collect();
        assert_eq!(
            names,
            [
                "dlstatic_ctors_x_65434",
                "dlstatic_init_array_x_00200",
                "dlstatic_init_array_x"
            ]
        );
        assert!(inits[0].reversed && !inits[1].reversed);
        assert_eq!(finis.len(), 1);
    }
}
