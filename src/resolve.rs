//! Symbol resolution across the whole link, before anything is renamed: what the main
//! program provides (its inputs, the system static libraries, the toolchain's runtime
//! libraries), and for every module reference the main program cannot satisfy, which
//! other module exports it.
//!
//! Dynamically such a reference worked only because the provider was loaded earlier with
//! RTLD_GLOBAL. Statically the provider's copy is renamed, so the link binds the
//! reference to the renamed name (a *binding*); link.rs applies them, audit.rs reports them.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

use crate::analyze::Module;
use crate::elf;
use crate::libs;
use crate::toolchain::find_in_compiler_search_path;

/// Names the static linker defines itself.
const LINKER_DEFINED: &[&str] = &[
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
    "__TMC_END__",
    "_IO_stdin_used",
    "__data_start",
    "data_start",
    // general-dynamic TLS calls (-fPIC code) that a static link relaxes to local-exec
    "__tls_get_addr",
];

/// Everything the main program side of the link defines.
pub struct ProgramSymbols {
    names: HashSet<String>,
    /// What the program's own relocatable objects define (not its archives or libraries).
    pub own: HashSet<String>,
}

impl ProgramSymbols {
    /// `main_inputs` as given to `dlstatic link` (objects, archives, `-l`, `-L`, `-Wl,…`),
    /// plus the system static archives the modules need; `cxx`: C++ runtime too.
    pub fn collect(main_inputs: &[String], system_archives: &[PathBuf], cxx: bool) -> Result<Self> {
        let mut names: HashSet<String> = LINKER_DEFINED.iter().map(|s| s.to_string()).collect();
        let mut own = HashSet::new();
        let lib_dirs: Vec<String> = main_inputs
            .iter()
            .filter_map(|a| a.strip_prefix("-L"))
            .map(String::from)
            .collect();
        let mut archives: Vec<PathBuf> = system_archives.to_vec();
        for input in main_inputs {
            if let Some(lib) = input.strip_prefix("-l") {
                archives.extend(libs::static_archive_for(lib, &lib_dirs));
            } else if !input.starts_with('-') {
                let path = Path::new(input);
                let bytes = crate::fsutil::map(path)
                    .with_context(|| format!("{input}: cannot read main input"))?;
                match elf::file_kind(&bytes) {
                    elf::FileKind::Relocatable => {
                        let summary =
                            elf::summarize_object(&bytes).with_context(|| input.clone())?;
                        own.extend(
                            summary
                                .globals
                                .into_iter()
                                .filter(|s| s.defined)
                                .map(|s| s.name),
                        );
                    }
                    _ => archives.push(path.to_path_buf()),
                }
            }
        }
        let mut runtime = vec!["libc.a", "libm.a", "libgcc.a", "libgcc_eh.a"];
        if cxx {
            runtime.push("libstdc++.a");
        }
        archives.extend(runtime.into_iter().filter_map(find_in_compiler_search_path));
        for archive in archives {
            add_archive_index(&archive, &mut names, 0)?;
        }
        names.extend(own.iter().cloned());
        Ok(ProgramSymbols { names, own })
    }

    pub fn provides(&self, name: &str) -> bool {
        self.names.contains(name) || name.starts_with("__start_") || name.starts_with("__stop_")
    }
}

/// The names an archive's symbol index lists. A text "archive" (Debian's libm.a is
/// `GROUP ( libm-2.36.a libmvec.a )`) is a linker script naming the real ones.
fn add_archive_index(path: &Path, names: &mut HashSet<String>, depth: usize) -> Result<()> {
    let bytes = crate::fsutil::map(path)?;
    if !matches!(
        elf::file_kind(&bytes),
        elf::FileKind::Archive | elf::FileKind::ThinArchive
    ) {
        if depth > 2 {
            return Ok(());
        }
        let script = String::from_utf8_lossy(&bytes);
        let member = regex::Regex::new(r"[^\s()]+\.a\b").unwrap();
        for name in member.find_iter(&script) {
            let named = Path::new(name.as_str());
            let resolved = if named.is_absolute() {
                named.to_path_buf()
            } else {
                path.with_file_name(named)
            };
            if resolved.is_file() {
                add_archive_index(&resolved, names, depth + 1)?;
            }
        }
        return Ok(());
    }
    let archive = object::read::archive::ArchiveFile::parse(&*bytes)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if let Some(symbols) = archive
        .symbols()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?
    {
        for symbol in symbols {
            let symbol = symbol.map_err(|e| anyhow!("{}: {e}", path.display()))?;
            names.insert(String::from_utf8_lossy(symbol.name()).into_owned());
        }
    }
    Ok(())
}

/// How each module's outside references resolve.
#[derive(Debug, Default)]
pub struct Resolution {
    /// (module index, symbol, provider module index)
    pub bindings: Vec<(usize, String, usize)>,
    /// (module index, symbol, provider module indices): more than one module exports it.
    pub ambiguous: Vec<(usize, String, Vec<usize>)>,
    /// (module index, symbol): nothing defines it.
    pub unresolved: Vec<(usize, String)>,
}

pub fn resolve(modules: &[Module], program: &ProgramSymbols) -> Resolution {
    let mut exporters: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, module) in modules.iter().enumerate() {
        for name in &module.exports {
            exporters.entry(name.as_str()).or_default().push(index);
        }
    }
    let mut resolution = Resolution::default();
    for (index, module) in modules.iter().enumerate() {
        for name in module.undefined.iter().chain(&module.weak_undefined) {
            if program.provides(name) {
                continue;
            }
            let providers: Vec<usize> = exporters
                .get(name.as_str())
                .into_iter()
                .flatten()
                .copied()
                .filter(|&p| p != index)
                .collect();
            match providers.as_slice() {
                [] if module.weak_undefined.contains(name) => {}
                [] => resolution.unresolved.push((index, name.clone())),
                [provider] => resolution.bindings.push((index, name.clone(), *provider)),
                _ => resolution.ambiguous.push((index, name.clone(), providers)),
            }
        }
    }
    resolution
}

/// The bindings of each module as `name -> provider's renamed name`.
pub fn bindings_by_module(
    modules: &[Module],
    resolution: &Resolution,
) -> Vec<BTreeMap<String, String>> {
    let mut out = vec![BTreeMap::new(); modules.len()];
    for (from, name, to) in &resolution.bindings {
        out[*from].insert(name.clone(), modules[*to].renamed(name));
    }
    out
}
