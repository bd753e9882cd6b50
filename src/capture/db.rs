//! The capture db: what the compiler wrapper recorded, read by every later stage.
//!
//! ```text
//! DB/links/<md5>-<path>.json  one LinkRecord per shared-object link, named by the output's
//!                       md5 and the md5 of its path (two links of byte-identical outputs
//!                       at two paths are two records; a relink to the same path and bytes
//!                       replaces its record)
//! DB/objects/<md5>.o    content-addressed copies of every relocatable object that went
//!                       into a link (direct inputs and archive members alike)
//! ```
//! Every file is written to a temporary name and renamed into place, so concurrent
//! wrappers (make -j) never see half a file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;
use crate::module_id::{ModuleId, is_md5, md5_hex};
use crate::toolchain::Driver;

/// Bumped when LinkRecord changes shape.
pub const RECORD_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LinkRecord {
    pub version: u32,
    /// Output path as written by the build (absolute).
    pub output: String,
    /// md5 of the output after the real link: the module's id.
    #[serde(rename = "md5")]
    pub id: ModuleId,
    /// DT_SONAME of the output.
    pub soname: Option<String>,
    pub cwd: String,
    /// Which driver linked it (C++ modules need libstdc++ at the final link).
    pub driver: Driver,
    /// The full command line, response files expanded.
    pub argv: Vec<String>,
    pub inputs: Vec<LinkInput>,
    pub libs: Vec<String>,
    /// Absolute library search directories.
    pub lib_dirs: Vec<String>,
    pub linker_flags: Vec<String>,
    /// Names the link started out needing (`-u SYM`): archive members defining them
    /// were linked though nothing referred to them.
    #[serde(default)]
    pub undefined_roots: Vec<String>,
    /// Defined symbols of the output's dynamic symbol table: what dlsym can return.
    pub exports: Vec<String>,
}

impl LinkRecord {
    /// The output's file name (`_speedups.cpython-311-x86_64-linux-gnu.so`).
    pub fn file_name(&self) -> &str {
        self.output.rsplit('/').next().unwrap_or(&self.output)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LinkInput {
    /// A relocatable object (given directly, or compiled by the wrapper from a source).
    Object { path: String, md5: String },
    /// A static archive; every member is snapshotted, the link uses only those it needs.
    Archive {
        path: String,
        members: Vec<ArchiveMember>,
        /// Linked with `--whole-archive`: every member is part of the module.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        whole: bool,
    },
    /// A shared library given by path; it must be replaced by its static archive.
    Shared { path: String },
    /// Anything else the linker was handed (a linker script, say).
    Other { path: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArchiveMember {
    pub name: String,
    pub md5: String,
}

pub struct CaptureDb {
    pub root: PathBuf,
}

impl CaptureDb {
    pub fn open(root: &Path) -> Result<Self> {
        for sub in ["links", "objects"] {
            std::fs::create_dir_all(root.join(sub))
                .with_context(|| format!("{}: cannot create capture db", root.display()))?;
        }
        Ok(CaptureDb {
            root: root.to_path_buf(),
        })
    }

    /// Open an existing db for reading; a missing or foreign directory is an error.
    pub fn open_existing(root: &Path) -> Result<Self> {
        if !root.join("links").is_dir() {
            anyhow::bail!(
                "{}: not a capture db (no links/ directory; create one with `dlstatic capture --db {}`)",
                root.display(),
                root.display()
            );
        }
        Ok(CaptureDb {
            root: root.to_path_buf(),
        })
    }

    pub fn object_path(&self, md5: &str) -> PathBuf {
        self.root.join("objects").join(format!("{md5}.o"))
    }

    /// Store bytes content-addressed; returns their md5.
    pub fn store_object(&self, bytes: &[u8]) -> Result<String> {
        let md5 = md5_hex(bytes);
        let path = self.object_path(&md5);
        if !path.exists() {
            write_atomic(&path, bytes)?;
        }
        Ok(md5)
    }

    pub fn write_record(&self, record: &LinkRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(record)?;
        write_atomic(&self.record_path(record), &json)
    }

    /// Where a record lives: keyed by what it links (md5) and where (output path).
    pub fn record_path(&self, record: &LinkRecord) -> PathBuf {
        let path_md5 = md5_hex(record.output.as_bytes());
        let name = format!("{}-{}.json", record.id, &path_md5[..16]);
        self.root.join("links").join(name)
    }

    /// The file names of the records in the db (a capture counts what it added).
    pub fn record_names(&self) -> Result<std::collections::BTreeSet<std::ffi::OsString>> {
        let dir = self.root.join("links");
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("{}: cannot read", dir.display()))?;
        Ok(entries.flatten().map(|e| e.file_name()).collect())
    }

    /// All link records, sorted by output path then md5 so every later stage is deterministic.
    pub fn records(&self) -> Result<Vec<LinkRecord>> {
        let dir = self.root.join("links");
        let mut records = Vec::new();
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("{}: cannot read", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read(&path)
                    .with_context(|| format!("{}: cannot read", path.display()))?;
                let record: LinkRecord = serde_json::from_slice(&text)
                    .with_context(|| format!("{}: corrupt link record", path.display()))?;
                if record.version != RECORD_VERSION {
                    anyhow::bail!(
                        "{}: link record version {} (this dlstatic reads {RECORD_VERSION}); recapture the build",
                        path.display(),
                        record.version
                    );
                }
                records.push(record);
            }
        }
        records.sort_by(|a, b| (&a.output, &a.id).cmp(&(&b.output, &b.id)));
        Ok(records)
    }

    /// Read, not mapped (see fsutil::map): objects are small and read from many threads,
    /// where unmapping costs more than the copy.
    pub fn read_object(&self, md5: &str) -> Result<Vec<u8>> {
        // a record names objects by content address; anything else (`../../x`) would
        // read outside the db
        if !is_md5(md5) {
            anyhow::bail!(
                "{}: a link record names object `{md5}`, which is not an md5 (corrupt record)",
                self.root.display()
            );
        }
        let path = self.object_path(md5);
        std::fs::read(&path).with_context(|| format!("{}: missing from capture db", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(output: &str, bytes: &[u8]) -> LinkRecord {
        LinkRecord {
            version: RECORD_VERSION,
            output: output.into(),
            id: ModuleId::of(bytes),
            soname: None,
            cwd: "/build".into(),
            driver: Driver::C,
            argv: vec!["cc".into(), "-shared".into()],
            inputs: Vec::new(),
            libs: Vec::new(),
            lib_dirs: Vec::new(),
            linker_flags: Vec::new(),
            undefined_roots: Vec::new(),
            exports: vec!["f".into()],
        }
    }

    #[test]
    fn records_are_keyed_by_output_path_and_md5() {
        let dir = tempfile::tempdir().unwrap();
        let db = CaptureDb::open(dir.path()).unwrap();
        // byte-identical outputs at two paths: two records
        let (a, b) = (record("/b/a/libx.so", b"x"), record("/b/b/libx.so", b"x"));
        db.write_record(&a).unwrap();
        db.write_record(&b).unwrap();
        // the same path relinked to the same bytes replaces its record; other bytes add one
        db.write_record(&a).unwrap();
        let c = record("/b/a/libx.so", b"y");
        db.write_record(&c).unwrap();
        assert_eq!(db.record_names().unwrap().len(), 3);
        // sorted by output path, then md5 (md5 "y" = 4152…, md5 "x" = 9dd4…)
        assert_eq!(db.records().unwrap(), [c, a, b]);
    }
}
