//! glibc's public functions, force-linked into the main program: a dynamic process
//! sees all of libc through `dlopen(NULL)` and `dlopen("libc.so.6")` (ctypes'
//! `CDLL(None).abs`, cffi's `ffi.dlopen(None)`), a static link only what something
//! happened to call. The list is derived from the real files at link time:
//!
//! - every function `libc.so.6` exports at its default version (`name@@GLIBC_2.x`;
//!   not `GLIBC_PRIVATE`, not the hidden old versions of compat symbols),
//! - that `libc.a`'s index defines (a few, such as `__nss_disable_nscd`, live in the
//!   shared library only),
//! - less the dl* family, which the runtime shim is (and `dladdr1`, which it is not:
//!   libc.a's would answer for a process without our modules).
//!
//! Each name becomes an `EXTERN(name)` of a linker script given to the link (ld's
//! `-u name`), cached under `CACHE/libc-exports/<md5 of both files>.ld`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use object::elf;
use object::read::elf::{FileHeader, Sym};

use crate::fsutil::{self, write_atomic};

/// The runtime shim's own dl* functions, and dladdr1 (see the module comment).
const NOT_FORCED: &[&str] = &[
    "dlopen", "dlsym", "dlclose", "dlerror", "dladdr", "dladdr1", "dlinfo", "dlvsym", "dlmopen",
];

/// Bump when the selection above changes: cached scripts from before are stale.
const FORMAT: &str = "1";

/// The forced names and the linker script that forces them.
pub struct LibcExports {
    pub names: Vec<String>,
    pub script: PathBuf,
}

/// The exports for this `libc.so.6` and `libc.a`, from the cache or derived now.
pub fn for_libc(libc_so: &Path, libc_a: &Path, cache: &Path) -> Result<LibcExports> {
    let (so_bytes, a_bytes) = (read(libc_so)?, read(libc_a)?);
    let key = crate::module_id::md5_hex(
        format!(
            "{FORMAT}\0{:x}\0{:x}",
            md5::compute(&*so_bytes),
            md5::compute(&*a_bytes)
        )
        .as_bytes(),
    );
    let script = cache.join(format!("{key}.ld"));
    if let Ok(text) = std::fs::read_to_string(&script)
        && let Some(names) = parse_script(&text)
    {
        return Ok(LibcExports { names, script });
    }
    let offered = archive_index(&a_bytes).with_context(|| libc_a.display().to_string())?;
    let mut names: Vec<String> = default_version_functions(&so_bytes)
        .with_context(|| libc_so.display().to_string())?
        .into_iter()
        .filter(|name| offered.contains(name) && !NOT_FORCED.contains(&name.as_str()))
        .collect();
    names.sort();
    names.dedup();
    std::fs::create_dir_all(cache)
        .with_context(|| format!("{}: cannot create", cache.display()))?;
    let header = format!(
        "/* glibc's public functions, force-linked by dlstatic: {} functions of {} that {} defines */\n",
        names.len(),
        libc_so.display(),
        libc_a.display()
    );
    write_atomic(
        &script,
        format!("{header}EXTERN(\n{}\n)\n", names.join("\n")).as_bytes(),
    )?;
    Ok(LibcExports { names, script })
}

fn read(path: &Path) -> Result<memmap2::Mmap> {
    fsutil::map(path).with_context(|| format!("{}: cannot read", path.display()))
}

/// The names between `EXTERN(` and `)`; None when the text is not such a script.
fn parse_script(text: &str) -> Option<Vec<String>> {
    let (_, rest) = text.split_once("EXTERN(")?;
    let (body, _) = rest.split_once(')')?;
    let names: Vec<String> = body.split_whitespace().map(String::from).collect();
    (!names.is_empty()).then_some(names)
}

/// Defined functions (and ifuncs) a shared object's `.dynsym` exports at their default
/// version, other than `GLIBC_PRIVATE`.
fn default_version_functions(bytes: &[u8]) -> Result<Vec<String>> {
    let (header, endian) = crate::elf::parse_header(bytes)?;
    let sections = header.sections(endian, bytes).map_err(|e| anyhow!("{e}"))?;
    let dynsym = sections
        .symbols(endian, bytes, elf::SHT_DYNSYM)
        .map_err(|e| anyhow!("{e}"))?;
    let versions = sections
        .versions(endian, bytes)
        .map_err(|e| anyhow!("{e}"))?
        .ok_or_else(|| anyhow!("no symbol versions (not glibc's libc.so.6?)"))?;
    let mut names = Vec::new();
    for (index, sym) in dynsym.enumerate() {
        let function = matches!(sym.st_type(), elf::STT_FUNC | elf::STT_GNU_IFUNC);
        let global = matches!(sym.st_bind(), elf::STB_GLOBAL | elf::STB_WEAK);
        if !function || !global || sym.is_undefined(endian) {
            continue;
        }
        let version_index = versions.version_index(endian, index);
        let version = versions
            .version(version_index)
            .map_err(|e| anyhow!("{e}"))?;
        if version_index.is_hidden() || version.is_some_and(|v| v.name() == b"GLIBC_PRIVATE") {
            continue;
        }
        let name = dynsym
            .symbol_name(endian, sym)
            .map_err(|e| anyhow!("{e}"))?;
        names.push(String::from_utf8_lossy(name).into_owned());
    }
    Ok(names)
}

/// Every name an archive's symbol index offers.
fn archive_index(bytes: &[u8]) -> Result<HashSet<String>> {
    let archive = object::read::archive::ArchiveFile::parse(bytes).map_err(|e| anyhow!("{e}"))?;
    let mut names = HashSet::new();
    for symbol in archive
        .symbols()
        .map_err(|e| anyhow!("{e}"))?
        .into_iter()
        .flatten()
    {
        let symbol = symbol.map_err(|e| anyhow!("{e}"))?;
        names.insert(String::from_utf8_lossy(symbol.name()).into_owned());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolchain::find_in_compiler_search_path;

    /// The machine's glibc: public functions in, private and loader ones out.
    #[test]
    fn glibc_public_functions_are_forced_and_the_runtime_ones_are_not() {
        let so = find_in_compiler_search_path("libc.so.6").unwrap();
        let a = find_in_compiler_search_path("libc.a").unwrap();
        let cache = tempfile::tempdir().unwrap();
        let exports = for_libc(&so, &a, cache.path()).unwrap();
        for name in [
            "abs",
            "strverscmp",
            "qsort",
            "getaddrinfo",
            "__errno_location",
        ] {
            assert!(exports.names.iter().any(|n| n == name), "{name} missing");
        }
        for name in [
            "dlopen",
            "dladdr1",
            "__libc_dlopen_mode",
            "__nss_disable_nscd",
        ] {
            assert!(!exports.names.iter().any(|n| n == name), "{name} forced");
        }
        assert!(exports.names.len() > 2000, "{}", exports.names.len());
        // the second call reads the cached script back
        let again = for_libc(&so, &a, cache.path()).unwrap();
        assert_eq!(again.names, exports.names);
        assert_eq!(again.script, exports.script);
    }
}
