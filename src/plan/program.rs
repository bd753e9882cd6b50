//! The main-program side of the link: its objects, the archives searched after them
//! (main inputs, the modules' system libraries, then what `cc -static` adds itself),
//! and every name that side can define.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use super::Request;
use super::libc_exports::{self, LibcExports};
use super::system_libs::{self, SystemLib};
use crate::elf;
use crate::toolchain::{Driver, find_in_compiler_search_path};

/// Names the static linker (or the crt files it always adds) defines.
pub const LINKER_DEFINED: &[&str] = &[
    "_GLOBAL_OFFSET_TABLE_",
    "_DYNAMIC",
    "__dso_handle",
    "__ehdr_start",
    "__executable_start",
    "_end",
    "end",
    "_edata",
    "edata",
    "_etext",
    "etext",
    "__bss_start",
    "__init_array_start",
    "__init_array_end",
    "__fini_array_start",
    "__fini_array_end",
    "__preinit_array_start",
    "__preinit_array_end",
    "__rela_iplt_start",
    "__rela_iplt_end",
    "__TMC_END__",
    "_IO_stdin_used",
    "__data_start",
    "data_start",
    "_start",
    "_init",
    "_fini",
    // general-dynamic TLS calls (-fPIC code) that a static link relaxes to local-exec
    "__tls_get_addr",
];

/// A relocatable object that is always part of the link.
pub struct Object {
    /// Its path, or `archive(member)` for a member of a whole archive.
    pub origin: String,
    pub summary: elf::ObjectSummary,
}

/// What the main program brings to the link.
pub struct Program {
    /// Main objects and members of archives linked whole.
    pub objects: Vec<Object>,
    /// Archives searched for members, in link order (linker scripts such as Debian's
    /// libm.a replaced by the archives they name).
    pub archives: Vec<PathBuf>,
    /// Every name the objects define or an archive's index offers, and the linker's own.
    names: HashSet<String>,
    /// What the program's own relocatable inputs define (not its archives' members):
    /// dlsym(RTLD_NEXT) from the program skips them.
    pub own: HashSet<String>,
    /// glibc's public functions forced into the link (ProgramSettings::libc_exports).
    pub libc_exports: Option<LibcExports>,
}

impl Program {
    pub fn collect(request: &Request, libs: &[SystemLib], driver: Driver) -> Result<Program> {
        let mut program = Program {
            objects: Vec::new(),
            archives: Vec::new(),
            names: LINKER_DEFINED.iter().map(|s| s.to_string()).collect(),
            own: HashSet::new(),
            libc_exports: None,
        };
        let settings = &request.program;
        let arguments: Vec<&String> = settings
            .main_inputs
            .iter()
            .chain(&settings.linker_args)
            .collect();
        let lib_dirs: Vec<String> = arguments
            .iter()
            .filter_map(|a| a.strip_prefix("-L"))
            .map(String::from)
            .collect();
        let mut whole = false;
        for argument in arguments {
            match argument.as_str() {
                "-Wl,--whole-archive" => whole = true,
                "-Wl,--no-whole-archive" => whole = false,
                // `--wrap=SYM` sends references to SYM to `__wrap_SYM`, and the linker
                // makes `__real_SYM` the original
                wrap if wrap.starts_with("-Wl,--wrap=") => {
                    program
                        .names
                        .insert(format!("__real_{}", &wrap["-Wl,--wrap=".len()..]));
                }
                lib if lib.starts_with("-l") => {
                    if let Some(archive) = system_libs::static_archive_for(&lib[2..], &lib_dirs) {
                        program.add_archive(&archive, whole)?;
                    }
                }
                flag if flag.starts_with('-') => {}
                path => program.add_input(Path::new(path), whole)?,
            }
        }
        for lib in libs {
            program.add_archive(&lib.archive, false)?;
        }
        let mut runtime = vec!["libc.a", "libm.a", "libgcc.a", "libgcc_eh.a"];
        if driver == Driver::Cxx {
            runtime.insert(0, "libstdc++.a");
        }
        for archive in runtime.into_iter().filter_map(find_in_compiler_search_path) {
            program.add_archive(&archive, false)?;
        }
        if settings.libc_exports {
            program.force_libc_exports()?;
        }
        Ok(program)
    }

    /// glibc's public functions become undefined names of the link, as ld's `-u` makes
    /// them: the libc.a members defining them are pulled like any other.
    fn force_libc_exports(&mut self) -> Result<()> {
        let (Some(so), Some(archive)) = (
            find_in_compiler_search_path("libc.so.6"),
            find_in_compiler_search_path("libc.a"),
        ) else {
            bail!(
                "libc.so.6 or libc.a: not found by the compiler (install libc6-dev, or link with --no-libc-exports)"
            );
        };
        let cache = crate::python::cpython::cache_root().join("libc-exports");
        let exports = libc_exports::for_libc(&so, &archive, &cache)?;
        let globals = exports.names.iter().map(|name| elf::GlobalSymbol {
            name: name.clone(),
            defined: false,
            weak: false,
            kind: elf::SymbolKind::Func,
            size: 0,
        });
        self.objects.push(Object {
            origin: exports.script.display().to_string(),
            summary: elf::ObjectSummary {
                globals: globals.collect(),
                ..Default::default()
            },
        });
        self.libc_exports = Some(exports);
        Ok(())
    }

    pub fn provides(&self, name: &str) -> bool {
        self.names.contains(name) || name.starts_with("__start_") || name.starts_with("__stop_")
    }

    fn add_input(&mut self, path: &Path, whole: bool) -> Result<()> {
        let bytes = crate::fsutil::map(path)
            .with_context(|| format!("{}: cannot read main input", path.display()))?;
        match elf::file_kind(&bytes) {
            elf::FileKind::Relocatable => {
                let origin = path.display().to_string();
                let summary = elf::summarize_object(&bytes).with_context(|| origin.clone())?;
                let defined = summary.globals.iter().filter(|s| s.defined);
                self.own.extend(defined.map(|s| s.name.clone()));
                self.add_object(Object { origin, summary });
                Ok(())
            }
            _ => self.add_archive(path, whole),
        }
    }

    fn add_object(&mut self, object: Object) {
        let defined = object.summary.globals.iter().filter(|s| s.defined);
        self.names.extend(defined.map(|s| s.name.clone()));
        self.objects.push(object);
    }

    /// An archive (or a linker script naming archives): its members all go in when
    /// linked whole; otherwise its index joins the names the program can provide.
    fn add_archive(&mut self, path: &Path, whole: bool) -> Result<()> {
        let archives = real_archives(path, 0)?;
        if archives.is_empty() {
            bail!(
                "{}: neither an object, an archive nor a linker script naming archives; it cannot be part of a static link",
                path.display()
            );
        }
        for archive in archives {
            if self.archives.contains(&archive) {
                continue;
            }
            let bytes = crate::fsutil::map(&archive)?;
            let parsed = object::read::archive::ArchiveFile::parse(&*bytes)
                .map_err(|e| anyhow!("{}: {e}", archive.display()))?;
            if whole {
                for member in super::members::relocatable_members(&archive, &parsed, &bytes)? {
                    self.add_object(member);
                }
            } else {
                for symbol in parsed
                    .symbols()
                    .map_err(|e| anyhow!("{}: {e}", archive.display()))?
                    .into_iter()
                    .flatten()
                {
                    let symbol = symbol.map_err(|e| anyhow!("{}: {e}", archive.display()))?;
                    self.names
                        .insert(String::from_utf8_lossy(symbol.name()).into_owned());
                }
            }
            self.archives.push(archive);
        }
        Ok(())
    }
}

/// The archives behind `path`: itself, or for a text "archive" (Debian's libm.a is
/// `GROUP ( libm-2.36.a libmvec.a )`) the archives that linker script names.
fn real_archives(path: &Path, depth: usize) -> Result<Vec<PathBuf>> {
    let bytes = crate::fsutil::map(path)?;
    if matches!(
        elf::file_kind(&bytes),
        elf::FileKind::Archive | elf::FileKind::ThinArchive
    ) {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found = Vec::new();
    if depth > 2 {
        return Ok(found);
    }
    static MEMBER: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"[^\s()]+\.a\b").unwrap());
    for name in MEMBER.find_iter(&String::from_utf8_lossy(&bytes)) {
        let named = Path::new(name.as_str());
        let resolved = match named.is_absolute() {
            true => named.to_path_buf(),
            false => path.with_file_name(named),
        };
        if resolved.is_file() {
            found.extend(real_archives(&resolved, depth + 1)?);
        }
    }
    Ok(found)
}
