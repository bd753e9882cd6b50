//! Reading the ELF files dlstatic handles: what kind a file is, the symbols of a
//! relocatable object, and the soname and exports of a linked shared object.
//! Only 64-bit little-endian objects for the machine dlstatic runs on are accepted.

pub mod archive;
pub mod initfini;
pub mod rename;

use std::sync::LazyLock;

use anyhow::{Result, anyhow, bail};
use object::Endianness;
use object::elf::{self, FileHeader64};
use object::read::elf::{Dyn, FileHeader, SectionHeader, Sym};

pub type Header = FileHeader64<Endianness>;

#[cfg(target_arch = "x86_64")]
pub const HOST_MACHINE: u16 = elf::EM_X86_64;
#[cfg(target_arch = "aarch64")]
pub const HOST_MACHINE: u16 = elf::EM_AARCH64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Relocatable,
    SharedObject,
    Archive,
    ThinArchive,
    Other,
}

pub fn file_kind(bytes: &[u8]) -> FileKind {
    if bytes.starts_with(b"!<arch>\n") {
        return FileKind::Archive;
    }
    if bytes.starts_with(b"!<thin>\n") {
        return FileKind::ThinArchive;
    }
    if bytes.starts_with(b"\x7fELF") && bytes.len() >= 18 {
        // e_type sits at offset 16 in both ELF classes; ELFDATA2LSB/MSB at 5
        let e_type = if bytes[5] == elf::ELFDATA2MSB {
            u16::from_be_bytes([bytes[16], bytes[17]])
        } else {
            u16::from_le_bytes([bytes[16], bytes[17]])
        };
        return match e_type {
            elf::ET_REL => FileKind::Relocatable,
            elf::ET_DYN => FileKind::SharedObject,
            _ => FileKind::Other,
        };
    }
    FileKind::Other
}

/// Parse the header, refusing what dlstatic cannot link into this machine's binary.
pub fn parse_header(bytes: &[u8]) -> Result<(&Header, Endianness)> {
    if !bytes.starts_with(b"\x7fELF") {
        bail!("not an ELF file");
    }
    if bytes.get(4) != Some(&elf::ELFCLASS64) {
        bail!("32-bit ELF object; only 64-bit objects can be linked into this binary");
    }
    let header = Header::parse(bytes).map_err(|e| anyhow!("malformed ELF header: {e}"))?;
    let endian = header
        .endian()
        .map_err(|e| anyhow!("malformed ELF header: {e}"))?;
    if endian != Endianness::Little {
        bail!("big-endian ELF object");
    }
    let machine = header.e_machine(endian);
    if machine != HOST_MACHINE {
        bail!(
            "ELF object for machine {machine}, this machine is {HOST_MACHINE} (wrong architecture)"
        );
    }
    Ok((header, endian))
}

/// Symbol names are bytes; dlstatic carries them as `String`s (JSON, maps, messages)
/// in a lossless encoding: a name that is UTF-8 is itself, and each byte that is not
/// part of a UTF-8 character becomes the private-use character U+10FF00 + byte (so do
/// the bytes of any such character already in the name, so decoding is exact).
/// `symbol_name` reads a name from an ELF file, `symbol_bytes` gives back the bytes
/// written into objects and generated C.
const NAME_BYTE_BASE: u32 = 0x10FF00;

pub fn symbol_name(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    // U+10FF00..U+10FFFF is F4 8F BC..BF xx in UTF-8: no 0xF4, nothing to escape
    if let Ok(text) = std::str::from_utf8(bytes)
        && !bytes.contains(&0xF4)
    {
        return text.into();
    }
    let mut name = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c as u32 >= NAME_BYTE_BASE {
                true => c
                    .encode_utf8(&mut [0; 4])
                    .bytes()
                    .for_each(|b| name.push(byte_char(b))),
                false => name.push(c),
            }
        }
        chunk
            .invalid()
            .iter()
            .for_each(|&b| name.push(byte_char(b)));
    }
    name.into()
}

fn byte_char(b: u8) -> char {
    char::from_u32(NAME_BYTE_BASE + b as u32).expect("U+10FF00..U+10FFFF are characters")
}

/// The bytes of a name `symbol_name` read.
pub fn symbol_bytes(name: &str) -> std::borrow::Cow<'_, [u8]> {
    if !name.as_bytes().contains(&0xF4) {
        return name.as_bytes().into();
    }
    let mut bytes = Vec::with_capacity(name.len());
    for c in name.chars() {
        match (c as u32).checked_sub(NAME_BYTE_BASE) {
            Some(byte) => bytes.push(byte as u8),
            None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    bytes.into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolKind {
    Func,
    Object,
    Tls,
    Other,
}

/// A symbol as the linker sees it across objects.
#[derive(Debug, Clone)]
pub struct GlobalSymbol {
    pub name: String,
    pub defined: bool,
    /// STB_WEAK: an undefined weak reference may stay unresolved.
    pub weak: bool,
    pub kind: SymbolKind,
    pub size: u64,
}

/// What analysis needs to know about one relocatable object.
#[derive(Debug, Default)]
pub struct ObjectSummary {
    /// Non-local symbols, defined and undefined, in symbol-table order.
    pub globals: Vec<GlobalSymbol>,
    /// Carries GCC LTO IR (`.gnu.lto_*` sections): names in it cannot be renamed.
    pub has_lto: bool,
    /// Has `.init_array`/`.ctors`/`.preinit_array` entries: code that runs at load time.
    pub has_constructors: bool,
    /// Shared-library names (`libfoo.so.1`) in read-only data: candidates for dlopen.
    pub library_names: Vec<String>,
}

pub fn summarize_object(bytes: &[u8]) -> Result<ObjectSummary> {
    let (header, endian) = parse_header(bytes)?;
    if header.e_type(endian) != elf::ET_REL {
        bail!(
            "not a relocatable object (ELF type {})",
            header.e_type(endian)
        );
    }
    let sections = header
        .sections(endian, bytes)
        .map_err(|e| anyhow!("malformed sections: {e}"))?;
    let mut summary = ObjectSummary::default();
    // compiled once: a module of hundreds of objects would otherwise compile it hundreds of times
    static LIBRARY_NAME: LazyLock<regex::bytes::Regex> =
        LazyLock::new(|| regex::bytes::Regex::new(r"lib[A-Za-z0-9_+.-]*\.so(\.[0-9]+)*").unwrap());
    for section in sections.iter() {
        let name = sections.section_name(endian, section).unwrap_or_default();
        summary.has_lto |= name.starts_with(b".gnu.lto_");
        summary.has_constructors |= [&b".init_array"[..], b".ctors", b".preinit_array"]
            .iter()
            .any(|prefix| name.starts_with(prefix) && section.sh_size(endian) > 0);
        if name.starts_with(b".rodata") {
            let data = section.data(endian, bytes).unwrap_or_default();
            for found in LIBRARY_NAME.find_iter(data) {
                summary
                    .library_names
                    .push(String::from_utf8_lossy(found.as_bytes()).into_owned());
            }
        }
    }
    let symbols = sections
        .symbols(endian, bytes, elf::SHT_SYMTAB)
        .map_err(|e| anyhow!("malformed symbol table: {e}"))?;
    for sym in symbols.iter().skip(1) {
        if sym.is_local() {
            continue;
        }
        let name = symbols
            .symbol_name(endian, sym)
            .map_err(|e| anyhow!("malformed symbol name: {e}"))?;
        summary.globals.push(GlobalSymbol {
            name: symbol_name(name).into_owned(),
            defined: !sym.is_undefined(endian),
            weak: sym.st_bind() == elf::STB_WEAK,
            kind: symbol_kind(sym.st_type()),
            size: sym.st_size(endian),
        });
    }
    Ok(summary)
}

pub fn symbol_kind(st_type: u8) -> SymbolKind {
    match st_type {
        elf::STT_FUNC | elf::STT_GNU_IFUNC => SymbolKind::Func,
        elf::STT_OBJECT | elf::STT_COMMON => SymbolKind::Object,
        elf::STT_TLS => SymbolKind::Tls,
        _ => SymbolKind::Other,
    }
}

/// What a linked shared object tells the dynamic loader about itself.
#[derive(Debug, Default)]
pub struct SharedInterface {
    /// DT_SONAME
    pub soname: Option<String>,
    /// DT_NEEDED, in order
    pub needed: Vec<String>,
    /// Defined, visible dynamic symbols, sorted: what dlsym can return.
    pub exports: Vec<String>,
}

pub fn shared_object_interface(bytes: &[u8]) -> Result<SharedInterface> {
    let (header, endian) = parse_header(bytes)?;
    let sections = header
        .sections(endian, bytes)
        .map_err(|e| anyhow!("malformed sections: {e}"))?;
    let mut interface = SharedInterface::default();
    if let Some((entries, strtab_index)) = sections
        .dynamic(endian, bytes)
        .map_err(|e| anyhow!("{e}"))?
    {
        let strtab = sections
            .strings(endian, bytes, strtab_index)
            .map_err(|e| anyhow!("{e}"))?;
        for entry in entries {
            let tag = entry.d_tag(endian);
            if tag != elf::DT_SONAME as u64 && tag != elf::DT_NEEDED as u64 {
                continue;
            }
            let name = strtab
                .get(entry.d_val(endian) as u32)
                .map_err(|()| anyhow!("bad dynamic string offset"))?;
            let name = String::from_utf8_lossy(name).into_owned();
            if tag == elf::DT_SONAME as u64 {
                interface.soname = Some(name);
            } else {
                interface.needed.push(name);
            }
        }
    }
    let dynsym = sections
        .symbols(endian, bytes, elf::SHT_DYNSYM)
        .map_err(|e| anyhow!("{e}"))?;
    for sym in dynsym.iter().skip(1) {
        if sym.is_undefined(endian) || sym.is_local() || sym.st_visibility() == elf::STV_HIDDEN {
            continue;
        }
        let name = dynsym
            .symbol_name(endian, sym)
            .map_err(|e| anyhow!("{e}"))?;
        interface.exports.push(symbol_name(name).into_owned());
    }
    interface.exports.sort();
    interface.exports.dedup();
    Ok(interface)
}

/// Global symbols defined in a linked executable, as (name, kind, size): the input
/// for the main program's dlsym table. Hidden ones count when their name has no
/// leading underscore: static glibc's own hidden references make public functions
/// such as `strlen` hidden in the executable, while its internals are `__name`s.
pub fn executable_globals(bytes: &[u8]) -> Result<Vec<(String, SymbolKind, u64)>> {
    let (header, endian) = parse_header(bytes)?;
    let sections = header.sections(endian, bytes).map_err(|e| anyhow!("{e}"))?;
    let symtab = sections
        .symbols(endian, bytes, elf::SHT_SYMTAB)
        .map_err(|e| anyhow!("{e}"))?;
    let mut out = Vec::new();
    for sym in symtab.iter().skip(1) {
        let global = matches!(
            sym.st_bind(),
            elf::STB_GLOBAL | elf::STB_WEAK | elf::STB_GNU_UNIQUE
        );
        if !global || sym.is_undefined(endian) {
            continue;
        }
        let name = symtab
            .symbol_name(endian, sym)
            .map_err(|e| anyhow!("{e}"))?;
        if sym.st_visibility() == elf::STV_HIDDEN && name.starts_with(b"_") {
            continue;
        }
        out.push((
            symbol_name(name).into_owned(),
            symbol_kind(sym.st_type()),
            sym.st_size(endian),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_names_round_trip_any_bytes() {
        let names: [&[u8]; 6] = [
            b"PyInit_x",
            "caf\u{e9}".as_bytes(),
            b"a.\xef",
            b"\xff\xfe_km",
            "\u{10FF41}\u{10FFFF}".as_bytes(),
            b"\xf4\x8f\xbc",
        ];
        for bytes in names {
            let name = symbol_name(bytes);
            assert_eq!(&*symbol_bytes(&name), bytes, "{name:?}");
        }
        assert!(matches!(
            symbol_name(b"PyInit_x"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(symbol_name(b"a.\xef"), "a.\u{10FFEF}");
    }
}
