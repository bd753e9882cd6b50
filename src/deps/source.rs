//! A library's Debian source package: which one ships it, what the archive offers
//! (`apt-get source --print-uris`, no download), and its unpacked, patched tree
//! (`apt-get source --download-only` into the cache's `src/`, as for CPython, then
//! `dpkg-source -x`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::process;

/// One version of a source package, as the archive describes it.
#[derive(Debug, Clone)]
pub struct SourcePackage {
    pub name: String,
    /// The Debian version (`15.18-0+deb12u1`).
    pub version: String,
    /// Its files (`.dsc`, orig and debian tarballs): name and the archive's checksum.
    pub files: Vec<(String, String)>,
}

/// The source package of the binary package that installed `shared` (a `.so`, looked
/// up by its canonical path: dpkg knows no `/usr/lib/gcc/…/../../../libx.so`).
pub fn owner_of(shared: &Path) -> Option<String> {
    let canonical = shared.canonicalize().ok()?;
    let owner = process::query(Command::new("dpkg").arg("-S").arg(&canonical))?;
    // `libxslt1.1:amd64: /usr/lib/x86_64-linux-gnu/libxslt.so.1.1.35`
    let binary = owner.split(": ").next()?.trim().to_string();
    let source = process::query(Command::new("dpkg-query").args([
        "-W",
        "-f",
        "${source:Package}",
        &binary,
    ]))?;
    Some(source.trim().to_string()).filter(|s| !s.is_empty())
}

impl SourcePackage {
    /// The newest version of `name` the configured deb-src archive offers.
    pub fn lookup(name: &str) -> Result<SourcePackage> {
        let out = process::run_captured(
            Command::new("apt-get").args(["source", "--print-uris", name]),
        )
        .with_context(|| format!("source package {name}: not found (is a deb-src line configured? `make python-src` adds one)"))?;
        let files: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| line.starts_with('\''))
            // 'URI' NAME SIZE SHA256:HEX
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                Some((fields.get(1)?.to_string(), fields.get(3)?.to_string()))
            })
            .collect();
        let dsc = files
            .iter()
            .find(|(file, _)| file.ends_with(".dsc"))
            .with_context(|| format!("source package {name}: apt-get lists no .dsc"))?;
        // NAME_VERSION.dsc (the epoch is not part of file names)
        let version = dsc
            .0
            .trim_end_matches(".dsc")
            .rsplit('_')
            .next()
            .unwrap_or("");
        Ok(SourcePackage {
            name: name.to_string(),
            version: version.to_string(),
            files,
        })
    }

    /// `name version`, as messages say it.
    pub fn describe(&self) -> String {
        format!("{} {}", self.name, self.version)
    }

    /// Download (once) into `downloads` and unpack with Debian's patches into `tree`.
    pub fn unpack(&self, downloads: &Path, tree: &Path, log: &Path) -> Result<()> {
        std::fs::create_dir_all(downloads)
            .with_context(|| format!("{}: cannot create", downloads.display()))?;
        let missing = self.files.iter().any(|(f, _)| !downloads.join(f).is_file());
        if missing {
            let spec = format!("{}={}", self.name, self.version);
            let mut fetch = Command::new("apt-get");
            fetch.args(["source", "--download-only", &spec]);
            process::run_logged(
                fetch.current_dir(downloads),
                &log.with_file_name("fetch.log"),
            )
            .with_context(|| format!("downloading source package {}", self.describe()))?;
        }
        let dsc = self.dsc_path(downloads);
        let mut unpack = Command::new("dpkg-source");
        unpack.arg("--no-check").arg("-x").arg(&dsc).arg(tree);
        process::run_logged(&mut unpack, log)
            .with_context(|| format!("{}: cannot unpack", dsc.display()))?;
        if !tree.is_dir() {
            bail!("{}: dpkg-source made no tree", dsc.display());
        }
        Ok(())
    }

    fn dsc_path(&self, downloads: &Path) -> PathBuf {
        let dsc = self.files.iter().find(|(f, _)| f.ends_with(".dsc"));
        downloads.join(dsc.map_or("", |(f, _)| f.as_str()))
    }
}
