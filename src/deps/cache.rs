//! The dependency cache: one prefix per source package version and build, made once
//! and shared by every OUT.
//!
//! ```text
//! CACHE/deps/<srcpkg>-<version>-<key>/     lib/*.a, lib/pkgconfig/*.pc, include/, logs/
//! CACHE/deps/.staging-<same>/              a build under way (or the last failed one:
//!                                          src/, root/ = DESTDIR, logs/)
//! CACHE/deps/.lock-<same>                  held while it builds
//! CACHE/src/                               the downloaded source packages
//! ```
//! key = md5 of the source files' archive checksums, the recipe, the compiler's version
//! and BUILD_FORMAT. An entry is published by one rename when complete, so an entry that
//! exists is whole.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::build_system::Build;
use super::recipe::Recipe;
use super::source::SourcePackage;
use crate::process;
use crate::python::cpython::cache_root;

/// Changes whenever the way dlstatic builds dependencies changes: every entry is rebuilt.
pub const BUILD_FORMAT: u32 = 1;

/// A dependency's cache entry, found or to be made.
pub struct Entry {
    pub source: SourcePackage,
    pub recipe: Option<&'static Recipe>,
    /// CACHE/deps/<srcpkg>-<version>-<key>
    pub dir: PathBuf,
}

impl Entry {
    pub fn new(source: SourcePackage, recipe: Option<&'static Recipe>) -> Entry {
        let mut hasher = md5::Context::new();
        for (file, checksum) in &source.files {
            hasher.consume(format!("{file}\0{checksum}\n").as_bytes());
        }
        hasher.consume(recipe.map_or("", |r| r.text).as_bytes());
        let compiler = process::query(Command::new("cc").arg("--version")).unwrap_or_default();
        hasher.consume(compiler.lines().next().unwrap_or("").as_bytes());
        hasher.consume(BUILD_FORMAT.to_le_bytes());
        let key = format!("{:x}", hasher.finalize());
        let name = format!("{}-{}-{}", source.name, source.version, &key[..12]);
        Entry {
            dir: cache_root().join("deps").join(name),
            source,
            recipe,
        }
    }

    pub fn exists(&self) -> bool {
        self.dir.join("lib").is_dir()
    }

    fn staging(&self) -> PathBuf {
        let name = self.dir.file_name().unwrap().to_string_lossy();
        self.dir.with_file_name(format!(".staging-{name}"))
    }

    /// Where a build's logs are while it runs (and stay when it fails).
    pub fn build_logs(&self) -> PathBuf {
        self.staging().join("logs")
    }

    /// Fetch, unpack, build and install; then publish the prefix as this entry. One
    /// build of an entry at a time: another dlstatic building it is waited for.
    pub fn build(&self, jobs: usize) -> Result<()> {
        let name = self.dir.file_name().unwrap().to_string_lossy();
        let lock_path = self.dir.with_file_name(format!(".lock-{name}"));
        std::fs::create_dir_all(self.dir.parent().unwrap())?;
        let lock = std::fs::File::create(&lock_path)
            .with_context(|| format!("{}: cannot create", lock_path.display()))?;
        lock.lock()
            .with_context(|| format!("{}: cannot lock", lock_path.display()))?;
        if self.exists() {
            return Ok(());
        }
        let staging = self.staging();
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .with_context(|| format!("{}: cannot remove", staging.display()))?;
        }
        let logs = self.build_logs();
        std::fs::create_dir_all(&logs)
            .with_context(|| format!("{}: cannot create", logs.display()))?;
        let tree = staging.join("src");
        self.source
            .unpack(&cache_root().join("src"), &tree, &logs.join("unpack.log"))?;
        let build = Build {
            tree,
            prefix: self.dir.clone(),
            destdir: staging.join("root"),
            logs: logs.clone(),
            jobs,
            recipe: self.recipe,
            what: self.source.describe(),
        };
        build.run()?;
        let prefix = build.staged_prefix();
        if !prefix.join("lib").is_dir() {
            // what installed into the final path instead is no entry: it has no logs,
            // and it was never checked whole
            let _ = std::fs::remove_dir_all(&self.dir);
            bail!(
                "the install step put no lib/ under {} (does it honour DESTDIR?)",
                prefix.display()
            );
        }
        std::fs::rename(&logs, prefix.join("logs"))?;
        crate::fsutil::publish(&prefix, &self.dir)?;
        let _ = std::fs::remove_dir_all(&staging);
        Ok(())
    }

    /// The libraries (`-l` names) the entry's `lib/` holds.
    pub fn libraries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.join("lib"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                Some(name.strip_prefix("lib")?.strip_suffix(".a")?.to_string())
            })
            .collect();
        names.sort();
        names
    }
}
