//! Where dlstatic keeps its work: every path under `OUT.km/` is named here, and the
//! stamps that say "this output is current for that key".
//!
//! ```text
//! OUT.km/                          work of `dlstatic link -o OUT` (a LinkWork)
//!   plan.json                      the Plan the last link executed
//!   link-pass1.log link.log        the two linker passes' full output
//!   link.map                       the final link's map (which archive members it pulled)
//!   runtime/dlstatic.{c,h,o}       the runtime shim, compiled
//!   main.symbols.{c,o}             the main program's table (from pass 1)
//!   <base>.km.{json,symmap,symbols.c,symbols.o,a,id}   per module, <base> = <stem>-<short id>
//! OUT.km/                          work of `dlstatic build --out OUT` (a BuildWork)
//!   logs/ packages/ link/          build logs, the packages step, the interpreter's LinkWork
//!   audit.json manifest.json build-key
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::fsutil::write_atomic;

/// `OUT.km`, beside OUT.
fn beside(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".km");
    output.with_file_name(name)
}

/// The work directory of one link.
#[derive(Debug, Clone)]
pub struct LinkWork {
    dir: PathBuf,
}

/// One of a module's work files.
#[derive(Debug, Clone, Copy)]
pub enum ModuleFile {
    /// The analysis (plan::analyze::Module); written last, so it marks the rest complete.
    Analysis,
    Symmap,
    TableSource,
    TableObject,
    Archive,
    /// The stub the payload ships in place of the `.so`: the module id as text.
    Id,
}

impl LinkWork {
    /// `OUT.km` for `dlstatic link -o OUT`.
    pub fn beside(output: &Path) -> LinkWork {
        LinkWork::at(beside(output))
    }

    pub fn at(dir: PathBuf) -> LinkWork {
        LinkWork { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("{}: cannot create work dir", self.dir.display()))
    }

    pub fn module_file(&self, base: &str, file: ModuleFile) -> PathBuf {
        let suffix = match file {
            ModuleFile::Analysis => "km.json",
            ModuleFile::Symmap => "km.symmap",
            ModuleFile::TableSource => "km.symbols.c",
            ModuleFile::TableObject => "km.symbols.o",
            ModuleFile::Archive => "km.a",
            ModuleFile::Id => "km.id",
        };
        self.dir.join(format!("{base}.{suffix}"))
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.join("runtime")
    }

    pub fn main_table_source(&self) -> PathBuf {
        self.dir.join("main.symbols.c")
    }

    pub fn plan(&self) -> PathBuf {
        self.dir.join("plan.json")
    }

    /// Pass 1's executable: read for its symbols, then removed.
    pub fn pass1_output(&self) -> PathBuf {
        self.dir.join("pass1.out")
    }

    pub fn pass1_log(&self) -> PathBuf {
        self.dir.join("link-pass1.log")
    }

    pub fn final_log(&self) -> PathBuf {
        self.dir.join("link.log")
    }

    pub fn map(&self) -> PathBuf {
        self.dir.join("link.map")
    }
}

/// The work directory of `dlstatic build --out OUT`.
#[derive(Debug, Clone)]
pub struct BuildWork {
    km: PathBuf,
}

impl BuildWork {
    pub fn for_out(out: &Path) -> BuildWork {
        BuildWork { km: beside(out) }
    }

    pub fn logs(&self) -> PathBuf {
        self.km.join("logs")
    }

    pub fn packages(&self) -> PathBuf {
        self.km.join("packages")
    }

    pub fn link(&self) -> LinkWork {
        LinkWork::at(self.km.join("link"))
    }

    pub fn audit(&self) -> PathBuf {
        self.km.join("audit.json")
    }

    pub fn manifest(&self) -> PathBuf {
        self.km.join("manifest.json")
    }

    /// Matches when OUT was built from the same inputs.
    pub fn build_stamp(&self) -> Stamp {
        Stamp::at(self.km.join("build-key"))
    }
}

/// A file holding the key of the inputs an output was made from: the output is
/// current while the key matches.
#[derive(Debug, Clone)]
pub struct Stamp {
    path: PathBuf,
}

impl Stamp {
    pub fn at(path: PathBuf) -> Stamp {
        Stamp { path }
    }

    pub fn matches(&self, key: &str) -> bool {
        std::fs::read_to_string(&self.path).ok().as_deref() == Some(key)
    }

    /// Written once the output is complete.
    pub fn write(&self, key: &str) -> Result<()> {
        write_atomic(&self.path, key.as_bytes())
    }

    /// Removed before an output is replaced: an interrupted replacement is not current.
    pub fn clear(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_stamps() {
        let work = LinkWork::beside(Path::new("/x/out"));
        assert_eq!(work.dir(), Path::new("/x/out.km"));
        assert_eq!(
            work.module_file("impl-01234567", ModuleFile::Archive),
            Path::new("/x/out.km/impl-01234567.km.a")
        );
        let build = BuildWork::for_out(Path::new("/x/dist"));
        assert_eq!(build.link().dir(), Path::new("/x/dist.km/link"));
        let dir = tempfile::tempdir().unwrap();
        let stamp = Stamp::at(dir.path().join("key"));
        assert!(!stamp.matches("k"));
        stamp.write("k").unwrap();
        assert!(stamp.matches("k") && !stamp.matches("other"));
        stamp.clear();
        assert!(!stamp.matches("k"));
    }
}
