//! Stage 2, analyze: from a link record to the module's facts (`<base>.km.json`):
//! which objects make up the module, what it defines (and so what gets renamed),
//! what it exports, and which libraries it still needs.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use anyhow::Result;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::capture::db::{CaptureDb, LinkInput, LinkRecord};
use crate::elf::{self, ObjectSummary, SymbolKind, rename};
use crate::module_id::ModuleId;
use crate::toolchain::{self, Driver};
use crate::workdir::{LinkWork, ModuleFile, this_dlstatic};

/// Bumped when Module changes shape or meaning; cached `.km.json` of another version are redone.
pub const MODULE_FORMAT: u32 = 3;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Module {
    pub format: u32,
    /// Basename of the linked shared object (`impl.so`).
    #[serde(rename = "so_name")]
    pub file_name: String,
    /// Where the build wrote it.
    pub path: String,
    pub soname: Option<String>,
    /// md5 of the linked shared object.
    #[serde(rename = "md5")]
    pub id: ModuleId,
    pub driver: Driver,
    /// The objects that make up the module: every direct input, plus the archive members
    /// the shared link pulled in. `md5` names the object in the capture db.
    pub objects: Vec<ModuleObject>,
    /// `-l` libraries the module still needs from the system, in order.
    pub libs: Vec<String>,
    pub lib_dirs: Vec<String>,
    /// Shared libraries given to the link by path; their static archives replace them.
    pub shared_inputs: Vec<String>,
    /// Linker-relevant driver flags (`-pthread`, ...).
    pub linker_flags: Vec<String>,
    /// Exported names defined by the module's objects: what dlsym on it returns.
    pub exports: Vec<String>,
    /// Names the linked `.so` exports that none of those objects defines (the plan
    /// checks that something else in the link does, or refuses).
    #[serde(default)]
    pub unprovided_exports: Vec<String>,
    /// Every non-local symbol the module defines: each is renamed.
    pub defined: Vec<DefinedSymbol>,
    /// Number of names the module defines and renames.
    #[serde(rename = "mangled")]
    pub renamed_count: usize,
    /// Names the module uses but does not define (strong references), sorted.
    pub undefined: Vec<String>,
    /// Weak references it does not define: they may stay unresolved.
    pub weak_undefined: Vec<String>,
    /// Objects with `.init_array`/`.ctors` entries (they run at program start).
    pub constructors: Vec<String>,
    /// `libfoo.so.N` strings in its read-only data (what it may dlopen), sorted.
    pub library_names: Vec<String>,
    /// References to symbols that only another module defines, bound by the link to
    /// that module's renamed name (`name` -> `name_<id>_km`); set by link.rs.
    #[serde(default)]
    pub bindings: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModuleObject {
    /// `a.o`, or `libfoo.a(member.o)`; `lto:` marks objects rebuilt from GCC LTO IR.
    pub origin: String,
    pub md5: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DefinedSymbol {
    pub name: String,
    pub kind: SymbolKind,
    pub size: u64,
}

impl Module {
    /// Every global the module defines → its per-module name; every cross-module
    /// reference → the provider's renamed symbol.
    pub fn renames(&self) -> HashMap<String, String> {
        let mut renames: HashMap<String, String> = self
            .defined
            .iter()
            .map(|s| (s.name.clone(), self.renamed(&s.name)))
            .collect();
        renames.extend(self.bindings.iter().map(|(k, v)| (k.clone(), v.clone())));
        renames
    }

    /// File stem for the module's work files: basename without `.so`, plus a short id,
    /// since two modules may share a basename.
    pub fn base(&self) -> String {
        Self::base_for(&self.file_name, &self.id)
    }

    pub fn base_for(file_name: &str, id: &ModuleId) -> String {
        let stem = file_name.strip_suffix(".so").unwrap_or(file_name);
        format!("{stem}-{}", id.short())
    }

    /// The name a defined symbol gets inside the static binary.
    pub fn renamed(&self, name: &str) -> String {
        self.id.renamed(name)
    }
}

/// Why a module cannot be linked statically (an object no rewriter can rename, an
/// input that is not an object): a finding for the audit, where other errors (a
/// damaged capture db) stop the plan.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unlinkable(pub String);

impl Unlinkable {
    /// An analysis that failed because the module is unlinkable becomes `Ok(Err(why))`.
    pub fn triage<T>(analysis: Result<T>) -> Result<Result<T, String>> {
        match analysis {
            Ok(value) => Ok(Ok(value)),
            Err(e) if e.chain().any(|c| c.is::<Unlinkable>()) => Ok(Err(format!("{e:#}"))),
            Err(e) => Err(e),
        }
    }
}

/// The module's analysis: from its `.km.json` in `work` when that is current (the
/// flag is then true), else analyzed anew.
pub fn cached_or_new(
    db: &CaptureDb,
    record: &LinkRecord,
    work: &LinkWork,
) -> Result<(Module, bool)> {
    let base = Module::base_for(record.file_name(), &record.id);
    let same_tool = work.tool_stamp().matches(this_dlstatic()?);
    let cached = std::fs::read(work.module_file(&base, ModuleFile::Analysis))
        .ok()
        .and_then(|b| serde_json::from_slice::<Module>(&b).ok())
        .filter(|m| same_tool && m.format == MODULE_FORMAT && m.id == record.id);
    match cached {
        Some(module) => Ok((module, true)),
        None => Ok((analyze(db, record, work.dir())?, false)),
    }
}

/// One candidate object with its symbols, before archive-member selection.
struct Candidate {
    origin: String,
    md5: String,
    summary: ObjectSummary,
}

pub fn analyze(db: &CaptureDb, record: &LinkRecord, scratch: &std::path::Path) -> Result<Module> {
    let file_name = record.file_name().to_string();
    // Objects are read and summarized in parallel (a numpy module has hundreds); the
    // results keep the link's input order, and the first failing input in that order
    // is the one reported, so the outcome does not depend on thread timing.
    let loaded: Vec<Result<LoadedInput>> = record
        .inputs
        .par_iter()
        .map(|input| load_input(db, input, &file_name, scratch))
        .collect();
    let (mut direct, mut archives, mut shared_inputs) = (Vec::new(), Vec::new(), Vec::new());
    for input in loaded {
        match input? {
            LoadedInput::Object(candidate) => direct.push(candidate),
            // an archive linked whole is as good as its members given one by one
            LoadedInput::Archive(members, true) => direct.extend(members),
            LoadedInput::Archive(members, false) => archives.push(members),
            LoadedInput::Shared(path) => shared_inputs.push(path),
        }
    }
    let objects = select_archive_members(direct, archives, &record.undefined_roots);
    let defined = definitions(&objects);
    let (undefined, weak_undefined) = references(&objects, &defined);
    let library_names: BTreeSet<String> = objects
        .iter()
        .flat_map(|o| o.summary.library_names.iter().cloned())
        .collect();
    Ok(Module {
        format: MODULE_FORMAT,
        file_name,
        path: record.output.clone(),
        soname: record.soname.clone(),
        id: record.id.clone(),
        driver: record.driver,
        libs: (record.libs.iter().cloned())
            .chain(record.driver.implicit_libs().iter().map(|l| l.to_string()))
            .collect(),
        lib_dirs: record.lib_dirs.clone(),
        shared_inputs,
        linker_flags: record.linker_flags.clone(),
        exports: (record.exports.iter())
            .filter(|name| defined.contains_key(*name))
            .cloned()
            .collect(),
        unprovided_exports: (record.exports.iter())
            .filter(|name| !defined.contains_key(*name))
            .cloned()
            .collect(),
        renamed_count: defined.len(),
        defined: defined.into_values().collect(),
        undefined,
        weak_undefined,
        constructors: (objects.iter())
            .filter(|o| o.summary.has_constructors)
            .map(|o| o.origin.clone())
            .collect(),
        library_names: library_names.into_iter().collect(),
        objects: (objects.into_iter())
            .map(|c| ModuleObject {
                origin: c.origin,
                md5: c.md5,
            })
            .collect(),
        bindings: BTreeMap::new(),
    })
}

/// Every non-local definition (each is renamed); the first definition of a name
/// decides its kind and size.
fn definitions(objects: &[Candidate]) -> BTreeMap<String, DefinedSymbol> {
    let mut defined: BTreeMap<String, DefinedSymbol> = BTreeMap::new();
    for object in objects {
        for sym in object.summary.globals.iter().filter(|s| s.defined) {
            defined.entry(sym.name.clone()).or_insert(DefinedSymbol {
                name: sym.name.clone(),
                kind: sym.kind,
                size: sym.size,
            });
        }
    }
    defined
}

/// The names the module uses and does not define: (strong, weak-only), sorted. A name
/// referenced strongly anywhere in the module must be resolved.
fn references(
    objects: &[Candidate],
    defined: &BTreeMap<String, DefinedSymbol>,
) -> (Vec<String>, Vec<String>) {
    let (mut undefined, mut weak_undefined) = (BTreeSet::new(), BTreeSet::new());
    for sym in objects
        .iter()
        .flat_map(|o| o.summary.globals.iter())
        .filter(|s| !s.defined && !defined.contains_key(&s.name))
    {
        match sym.weak {
            true => &mut weak_undefined,
            false => &mut undefined,
        }
        .insert(sym.name.clone());
    }
    let weak_only = weak_undefined.difference(&undefined).cloned().collect();
    (undefined.into_iter().collect(), weak_only)
}

enum LoadedInput {
    Object(Candidate),
    /// The archive's linkable members, in archive order, and whether it was linked whole.
    Archive(Vec<Candidate>, bool),
    Shared(String),
}

fn load_input(
    db: &CaptureDb,
    input: &LinkInput,
    file_name: &str,
    scratch: &std::path::Path,
) -> Result<LoadedInput> {
    Ok(match input {
        LinkInput::Object { path, md5 } => LoadedInput::Object(load_candidate(
            db,
            path.clone(),
            md5,
            &db.read_object(md5)?,
            scratch,
        )?),
        LinkInput::Archive {
            path,
            members,
            whole,
        } => {
            let loaded: Vec<Result<Option<Candidate>>> = members
                .par_iter()
                .map(|member| {
                    let origin = format!("{path}({})", member.name);
                    // archive symbol tables and other non-object members are not linkable code
                    let bytes = db.read_object(&member.md5)?;
                    if elf::file_kind(&bytes) == elf::FileKind::Relocatable {
                        load_candidate(db, origin, &member.md5, &bytes, scratch).map(Some)
                    } else if !member.name.starts_with('/') && !member.name.ends_with(".rmeta") && !member.name.is_empty() {
                        // (a Rust rlib's lib.rmeta is crate metadata, not code)
                        Err(Unlinkable(format!("{origin}: archive member is not an ELF relocatable object (LLVM bitcode or foreign file?); it cannot be linked statically")).into())
                    } else {
                        Ok(None)
                    }
                })
                .collect();
            LoadedInput::Archive(
                loaded
                    .into_iter()
                    .filter_map(Result::transpose)
                    .collect::<Result<_>>()?,
                *whole,
            )
        }
        LinkInput::Shared { path } => LoadedInput::Shared(path.clone()),
        LinkInput::Other { path } => return Err(Unlinkable(format!(
            "{path}: input to the link of {file_name} is neither an object nor an archive (a linker script?); dlstatic cannot link it statically"
        )).into()),
    })
}

/// An object's symbols, from its bytes. An object holding GCC LTO IR beside ordinary
/// code (a fat object: the wrapper asks for those) loses the IR, or the linker plugin
/// would link the IR with its names unrenamed; one holding only IR (slim, prebuilt) is
/// compiled to ordinary code first.
fn load_candidate(
    db: &CaptureDb,
    origin: String,
    md5: &str,
    bytes: &[u8],
    scratch: &std::path::Path,
) -> Result<Candidate> {
    let summary =
        elf::summarize_object(bytes).map_err(|e| Unlinkable(format!("{origin}: {e:#}")))?;
    if !summary.has_lto {
        return Ok(Candidate {
            origin,
            md5: md5.to_string(),
            summary,
        });
    }
    if !summary.globals.iter().any(|s| s.name == "__gnu_lto_slim") {
        let regular = rename::rename_sections(bytes.to_vec(), |name| {
            name.starts_with(".gnu.lto_")
                .then(|| ".dlstatic.dropped_lto_ir".to_string())
        })
        .map_err(|e| Unlinkable(format!("{origin}: {e:#}")))?;
        let summary = elf::summarize_object(&regular)
            .map_err(|e| Unlinkable(format!("{origin} (without its LTO IR): {e:#}")))?;
        let md5 = db.store_object(&regular)?;
        return Ok(Candidate {
            origin,
            md5,
            summary,
        });
    }
    let converted = toolchain::lto_to_regular_object(bytes, scratch).map_err(|e| {
        Unlinkable(format!(
            "{origin}: GCC LTO object cannot be turned into regular code; rebuild it without -flto: {e:#}"
        ))
    })?;
    let summary = elf::summarize_object(&converted)
        .map_err(|e| Unlinkable(format!("{origin} (after LTO): {e:#}")))?;
    if summary.has_lto {
        return Err(Unlinkable(format!(
            "{origin}: still holds LTO IR after `-flinker-output=nolto-rel`; rebuild it without -flto"
        ))
        .into());
    }
    Ok(Candidate {
        origin: format!("lto:{origin}"),
        md5: db.store_object(&converted)?,
        summary,
    })
}

/// The shared link's archive semantics: all direct objects are in; an archive member is
/// in when it defines a symbol that is still undefined (the `-u` roots to begin with),
/// repeated until nothing changes.
fn select_archive_members(
    direct: Vec<Candidate>,
    archives: Vec<Vec<Candidate>>,
    roots: &[String],
) -> Vec<Candidate> {
    let mut defined: HashSet<String> = HashSet::new();
    let mut undefined: BTreeSet<String> = roots.iter().cloned().collect();
    let take =
        |object: &Candidate, defined: &mut HashSet<String>, undefined: &mut BTreeSet<String>| {
            for sym in object.summary.globals.iter().filter(|s| s.defined) {
                defined.insert(sym.name.clone());
                undefined.remove(&sym.name);
            }
            for sym in object.summary.globals.iter().filter(|s| !s.defined) {
                if !defined.contains(&sym.name) {
                    undefined.insert(sym.name.clone());
                }
            }
        };
    for object in &direct {
        take(object, &mut defined, &mut undefined);
    }
    let mut selected = direct;
    for members in archives {
        let mut pending: Vec<Option<Candidate>> = members.into_iter().map(Some).collect();
        loop {
            let mut changed = false;
            for slot in pending.iter_mut() {
                let wanted = slot.as_ref().is_some_and(|m| {
                    m.summary
                        .globals
                        .iter()
                        .any(|s| s.defined && undefined.contains(&s.name))
                });
                if wanted {
                    let member = slot.take().unwrap();
                    take(&member, &mut defined, &mut undefined);
                    selected.push(member);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }
    selected
}
