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

use anyhow::Result;
use serde::Serialize;

use crate::elf::rename::rename_sections;

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
pub fn move_init_sections(bytes: Vec<u8>, id: &str) -> Result<(Vec<u8>, Vec<MovedSection>)> {
    let mut moved = Vec::new();
    let bytes = rename_sections(bytes, |name| {
        let m = classify(name, id)?;
        let new_name = m.name.clone();
        moved.push(m);
        Some(new_name)
    })?;
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
