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

/// The md5 of this dlstatic executable: work made by another dlstatic is not reused
/// (its analyses, archives and tables may differ), and a build by another is not current.
pub fn this_dlstatic() -> Result<&'static str> {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(key) = KEY.get() {
        return Ok(key);
    }
    let exe = std::env::current_exe().context("cannot locate the dlstatic executable")?;
    let bytes = std::fs::read(&exe).with_context(|| format!("{}: cannot read", exe.display()))?;
    Ok(KEY.get_or_init(|| crate::module_id::md5_hex(&bytes)))
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

    /// Lock this work directory for linking `output`, and clear what a killed link
    /// left behind.
    pub fn lock(&self, output: &Path) -> Result<WorkLock> {
        let held = lock(&self.dir, output)?;
        remove_leftovers(output);
        let _ = std::fs::remove_file(self.pass1_output());
        // objects a killed compile left half-written (`x.o.tmp`)
        for dir in [self.dir.clone(), self.runtime_dir()] {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if entry.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(held)
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

    /// Matches when this dlstatic made the work files here.
    pub fn tool_stamp(&self) -> Stamp {
        Stamp::at(self.dir.join("dlstatic-key"))
    }
}

/// Held while a run works in a directory; another run on the same OUT waits for it.
pub struct WorkLock {
    _file: std::fs::File,
}

/// Lock `dir/lock` for this process: one run per OUT at a time. A second run says
/// whose it is and waits.
fn lock(dir: &Path, what: &Path) -> Result<WorkLock> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let path = dir.join("lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    if file.try_lock().is_err() {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        eprintln!(
            "dlstatic: {} is in use by pid {}; waiting for it to finish",
            what.display(),
            holder.trim()
        );
        file.lock()
            .with_context(|| format!("{}: cannot lock", path.display()))?;
    }
    use std::io::{Seek, Write};
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(WorkLock { _file: file })
}

/// Remove what a killed run left beside `output`: its temporary outputs
/// (`OUT.dlstatic-tmp<pid>`, `.OUT.dlstatic-staging…`). Called with the lock held.
fn remove_leftovers(output: &Path) {
    let (Some(parent), Some(name)) = (output.parent(), output.file_name()) else {
        return;
    };
    let name = name.to_string_lossy();
    let prefixes = [
        format!("{name}.dlstatic-tmp"),
        format!(".{name}.dlstatic-staging"),
    ];
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        if prefixes.iter().any(|p| entry_name.starts_with(p.as_str())) {
            let path = entry.path();
            let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir_all(&path));
        }
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

    /// Lock OUT for this build, and clear what a killed build left beside it: a
    /// build killed between moving OUT aside and putting the new one in place gets
    /// the previous OUT back.
    pub fn lock(&self, out: &Path) -> Result<WorkLock> {
        let held = lock(&self.km, out)?;
        let previous = BuildWork::previous_out(out);
        if !out.exists() && previous.is_dir() {
            std::fs::rename(&previous, out)
                .with_context(|| format!("{}: cannot restore the previous OUT", out.display()))?;
        }
        let _ = std::fs::remove_dir_all(previous);
        remove_leftovers(out);
        Ok(held)
    }

    /// Where the previous OUT waits while the new one is moved into place.
    pub fn previous_out(out: &Path) -> PathBuf {
        out.with_file_name(format!(
            ".{}.old",
            out.file_name().unwrap_or_default().to_string_lossy()
        ))
    }

    /// Prefix of the staging directory a build assembles OUT in, beside OUT.
    pub fn staging_prefix(out: &Path) -> String {
        format!(
            ".{}.dlstatic-staging",
            out.file_name().unwrap_or_default().to_string_lossy()
        )
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

    /// Where the interpreter's launcher (deploy::launcher) is compiled.
    pub fn launcher(&self) -> PathBuf {
        self.km.join("launcher")
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
