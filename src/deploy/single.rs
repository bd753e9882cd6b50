//! `--format single`: one executable holding the interpreter, every linked module and
//! the whole Python tree (stdlib, site-packages and the app, merged into one root).
//!
//! ```text
//! [static ELF][file data…][file index][start-up index][boot code (Python source)][trailer]
//! trailer (40 bytes) = start-up index offset, size, boot offset, size (u64 LE), "DLSTPY01"
//! ```
//! Both indexes are marshalled dicts. The start-up index holds what imports need
//! (modules with the offsets of their source and bytecode, extension modules) and where
//! the file index is; the file index (every file's offset and size: package data,
//! metadata) is loaded only when something reads files. Loading it at every start cost
//! ~5 ms of `-c pass` on the numpy payload.
//! The launcher linked into every interpreter (launcher.c) finds the trailer, runs the
//! boot code (python/boot.py) between CPython's two init phases, and that installs an
//! importer reading modules, package data and metadata from the index. Extension
//! modules are served by the dlopen registry by their `.so` basename, so the tree holds
//! no stubs; two modules with the same basename are refused.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::marshal::Value;
use super::tree::{Content, Tree};
use crate::python::payload::Manifest;

const BOOT: &str = include_str!("python/boot.py");
const TRAILER_MAGIC: &[u8; 8] = b"DLSTPY01";

/// The single executable: `interpreter` with `tree` and its index appended.
pub fn build(interpreter: &Path, tree: &Tree, manifest: &Manifest, tag: &str) -> Result<Vec<u8>> {
    let mut out = std::fs::read(interpreter)
        .with_context(|| format!("{}: cannot read", interpreter.display()))?;
    let mut files = BTreeMap::new();
    for (path, entry) in &tree.entries {
        if let Content::File(_) | Content::Bytes(_) = entry.content {
            let data = entry.data()?;
            files.insert(path.clone(), (out.len(), data.len()));
            out.extend_from_slice(&data);
        }
    }
    let files_offset = out.len();
    let file_index = files
        .iter()
        .map(|(path, &(offset, size))| Ok((path.clone(), Value::ints(&[offset, size])?)))
        .collect::<Result<_>>()?;
    Value::Dict(file_index).write(&mut out);
    let index = Value::Dict(BTreeMap::from([
        ("modules".to_string(), modules(&files, tag)?),
        ("extensions".to_string(), extensions(manifest)?),
        (
            "files".to_string(),
            Value::ints(&[files_offset, out.len() - files_offset])?,
        ),
    ]));
    let index_offset = out.len();
    index.write(&mut out);
    let boot_offset = out.len();
    out.extend_from_slice(BOOT.as_bytes());
    for field in [
        index_offset,
        boot_offset - index_offset,
        boot_offset,
        BOOT.len(),
    ] {
        out.extend_from_slice(&(field as u64).to_le_bytes());
    }
    out.extend_from_slice(TRAILER_MAGIC);
    Ok(out)
}

/// Module name -> (is package, source offset, size, bytecode offset, size) for every
/// `.py` whose dotted name is importable (bytecode size 0: none). The boot code derives
/// the source's path from the name.
fn modules(files: &BTreeMap<String, (usize, usize)>, tag: &str) -> Result<Value> {
    let mut modules = BTreeMap::new();
    for (path, &(offset, size)) in files {
        let Some(stem_path) = path.strip_suffix(".py") else {
            continue;
        };
        let (dir, stem) = stem_path.rsplit_once('/').unwrap_or(("", stem_path));
        let (name, is_package) = match stem {
            "__init__" if !dir.is_empty() => (dir.replace('/', "."), true),
            _ => (stem_path.replace('/', "."), false),
        };
        if !name.split('.').all(is_identifier) {
            continue;
        }
        let bytecode = super::tree::join(dir, &format!("__pycache__/{stem}.{tag}.pyc"));
        let (bytecode_offset, bytecode_size) = files.get(&bytecode).copied().unwrap_or((0, 0));
        let entry = Value::ints(&[
            is_package.into(),
            offset,
            size,
            bytecode_offset,
            bytecode_size,
        ])?;
        modules.insert(name, entry);
    }
    Ok(Value::Dict(modules))
}

fn is_identifier(part: &str) -> bool {
    let mut chars = part.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Extension module name -> its path in the tree (EXE/<path> is its `__file__`).
fn extensions(manifest: &Manifest) -> Result<Value> {
    let mut by_basename: BTreeMap<&str, &str> = BTreeMap::new();
    let mut extensions = BTreeMap::new();
    for module in &manifest.modules {
        let basename = module.stub.rsplit('/').next().unwrap_or_default();
        if let Some(other) = by_basename.insert(basename, &module.name) {
            bail!(
                "{}: modules {other} and {} are both {basename}; the single file finds modules by basename and cannot tell them apart",
                module.stub,
                module.name
            );
        }
        extensions.insert(module.name.clone(), Value::Str(tree_path(&module.stub)));
    }
    Ok(Value::Dict(extensions))
}

/// A payload path (`/lib/python3.11/site-packages/a/b.py`) as a path of the merged tree
/// (`a/b.py`): the stdlib, site-packages and the app share one root.
pub fn tree_path(payload_path: &str) -> String {
    let rest = payload_path.trim_start_matches('/');
    let rest = rest.strip_prefix("lib/").unwrap_or(rest);
    let rest = rest.split_once('/').map_or(rest, |(_, r)| r);
    rest.strip_prefix("site-packages/")
        .unwrap_or(rest)
        .to_string()
}
