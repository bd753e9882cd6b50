//! Archive members as the linker will pull them: starting from what the main objects
//! and the modules leave undefined, a member comes in when it defines a name still
//! wanted, and brings its own undefined names, until nothing changes. Every archive is
//! searched as one group (the final link groups the system libraries, and `cc -static`
//! groups libc with libgcc), so order among them does not decide.
//!
//! What is still wanted at the end is what the link would report as undefined: the
//! audit can say so, and name the missing static library that would have defined it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use object::read::archive::ArchiveFile;

use super::PlannedModule;
use super::program::{Object, Program};
use super::resolve::Resolution;
use crate::elf;

/// The outcome of member resolution.
#[derive(Debug, Default)]
pub struct Pulled {
    /// Archive → the members pulled from it.
    pub members: BTreeMap<PathBuf, BTreeSet<String>>,
    /// Names that pulled members or main objects need and nothing defines, each with
    /// the first object that needed it.
    pub unresolved: BTreeMap<String, String>,
}

impl Pulled {
    pub fn members_of(&self, archive: &Path) -> Vec<String> {
        self.members
            .get(archive)
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Every name some archive's index offers, with the archive and member offset.
type Index = HashMap<String, (usize, u64)>;

pub fn pull(
    program: &Program,
    modules: &[PlannedModule],
    resolution: &Resolution,
) -> Result<Pulled> {
    let mut state = State::default();
    for object in &program.objects {
        state.take(object);
    }
    seed_module_references(&mut state, modules, resolution);
    let maps: Vec<memmap2::Mmap> = program
        .archives
        .iter()
        .map(|a| crate::fsutil::map(a))
        .collect::<Result<_>>()?;
    let index = build_index(&program.archives, &maps)?;
    let mut pulled_offsets: HashSet<(usize, u64)> = HashSet::new();
    loop {
        let wanted: BTreeSet<(usize, u64)> = (state.wanted.keys())
            .filter_map(|name| index.get(name).copied())
            .filter(|at| !pulled_offsets.contains(at))
            .collect();
        if wanted.is_empty() {
            break;
        }
        for (archive, offset) in wanted {
            pulled_offsets.insert((archive, offset));
            let path = &program.archives[archive];
            let (member, object) = member_at(path, &maps[archive], offset)?;
            state.take(&object);
            let members = state.pulled.members.entry(path.clone()).or_default();
            members.insert(member);
        }
    }
    // every name an index offers was pulled above; what remains, nothing defines
    state.pulled.unresolved = (state.wanted.into_iter())
        .filter(|(name, _)| !program.provides(name))
        .collect();
    Ok(state.pulled)
}

/// The module references the main program side answers: not those bound to another
/// module, nor those the resolution found ambiguous or unresolved.
fn seed_module_references(state: &mut State, modules: &[PlannedModule], resolution: &Resolution) {
    let bound = resolution
        .bindings
        .iter()
        .map(|(from, name, _)| (*from, name.as_str()));
    let ambiguous = resolution
        .ambiguous
        .iter()
        .map(|(from, name, _)| (*from, name.as_str()));
    let unresolved = resolution
        .unresolved
        .iter()
        .map(|(from, name)| (*from, name.as_str()));
    let module_side: HashSet<(usize, &str)> = bound.chain(ambiguous).chain(unresolved).collect();
    for (index, planned) in modules.iter().enumerate() {
        for name in &planned.module.undefined {
            if !module_side.contains(&(index, name.as_str())) && !state.defined.contains(name) {
                let requester = || planned.module.file_name.clone();
                state.wanted.entry(name.clone()).or_insert_with(requester);
            }
        }
    }
}

#[derive(Default)]
struct State {
    defined: HashSet<String>,
    /// Undefined name → the first object that needed it.
    wanted: BTreeMap<String, String>,
    pulled: Pulled,
}

impl State {
    fn take(&mut self, object: &Object) {
        for symbol in object.summary.globals.iter().filter(|s| s.defined) {
            self.wanted.remove(&symbol.name);
            self.defined.insert(symbol.name.clone());
        }
        // a weak reference never pulls a member, and may stay undefined
        for symbol in object
            .summary
            .globals
            .iter()
            .filter(|s| !s.defined && !s.weak)
        {
            if !self.defined.contains(&symbol.name) {
                self.wanted
                    .entry(symbol.name.clone())
                    .or_insert_with(|| object.origin.clone());
            }
        }
    }
}

/// The first archive (in link order) whose index offers each name.
fn build_index(archives: &[PathBuf], maps: &[memmap2::Mmap]) -> Result<Index> {
    let mut index = Index::new();
    for (n, (path, bytes)) in archives.iter().zip(maps).enumerate() {
        let archive =
            ArchiveFile::parse(&**bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let symbols = archive
            .symbols()
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        for symbol in symbols.into_iter().flatten() {
            let symbol = symbol.map_err(|e| anyhow!("{}: {e}", path.display()))?;
            let name = String::from_utf8_lossy(symbol.name()).into_owned();
            index.entry(name).or_insert((n, symbol.offset().0));
        }
    }
    Ok(index)
}

/// The member at `offset` of an archive: its name, and it as an object.
fn member_at(path: &Path, bytes: &[u8], offset: u64) -> Result<(String, Object)> {
    let archive = ArchiveFile::parse(bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let member = archive
        .member(object::read::archive::ArchiveOffset(offset))
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let name = String::from_utf8_lossy(member.name()).into_owned();
    let data = member
        .data(bytes)
        .map_err(|e| anyhow!("{}({name}): {e}", path.display()))?;
    let origin = format!("{}({name})", path.display());
    let summary = summarize_member(data).with_context(|| origin.clone())?;
    Ok((name, Object { origin, summary }))
}

/// Every relocatable member of an archive linked whole.
pub fn relocatable_members(
    path: &Path,
    archive: &ArchiveFile,
    bytes: &[u8],
) -> Result<Vec<Object>> {
    let mut objects = Vec::new();
    for member in archive.members() {
        let member = member.map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let name = String::from_utf8_lossy(member.name()).into_owned();
        let data = member
            .data(bytes)
            .map_err(|e| anyhow!("{}({name}): {e}", path.display()))?;
        if elf::file_kind(data) == elf::FileKind::Relocatable {
            let summary =
                summarize_member(data).with_context(|| format!("{}({name})", path.display()))?;
            objects.push(Object {
                origin: format!("{}({name})", path.display()),
                summary,
            });
        }
    }
    Ok(objects)
}

/// Members sit at 2-byte-aligned offsets in an archive, and the ELF reader wants its
/// headers aligned: each is summarized from a copy (a few KiB; heap memory is aligned).
#[allow(clippy::unnecessary_to_owned)] // the copy is the point: it is aligned
fn summarize_member(data: &[u8]) -> Result<elf::ObjectSummary> {
    elf::summarize_object(&data.to_vec())
}
