//! The in-place rename (src/mangle.rs) against the reference, `objcopy --redefine-syms`,
//! on real compiler output: C with every kind of global (hidden, weak, common, TLS,
//! IFUNC), g++ COMDAT groups and GNU_UNIQUE symbols, `-g3` debug info. Both outputs are
//! compared symbol by symbol, relocation by relocation, group by group, and every
//! section's bytes except the symbol and string tables (whose offsets differ by design).
//! objcopy is used here only, as the reference; the pipeline never runs it.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use object::read::elf::{ElfFile64, FileHeader, SectionHeader, Sym};
use object::{Endianness, Object, ObjectSection, ObjectSymbol};

const C_SOURCE: &str = r#"
#include <stdio.h>
int global_data = 3;
int common_data;
static int local_data = 4;
__attribute__((visibility("hidden"))) int hidden_fn(int x) { return x + local_data; }
__attribute__((weak)) int weak_fn(void) { return 1; }
__thread int tls_data = 5;
extern int external_fn(int);
static int impl_a(void) { return 1; }
static int (*resolve(void))(void) { return impl_a; }
int ifunc_fn(void) __attribute__((ifunc("resolve")));
int uses_everything(void) {
    printf("%d\n", global_data);
    return hidden_fn(common_data) + weak_fn() + tls_data + external_fn(2) + ifunc_fn();
}
"#;

const CXX_SOURCE: &str = r#"
#include <string>
#include <vector>
inline int counter() { static int n = 0; return ++n; }
template <typename T> T twice(T v) { return v + v; }
struct Widget { virtual ~Widget() {} virtual int size() const { return 3; } };
extern "C" int entry(void) {
    std::vector<std::string> v{"a", "b"};
    Widget w;
    return counter() + twice(2) + twice(1.5) + (int)v.size() + w.size();
}
"#;

fn compile(dir: &Path, compiler: &str, source: &str, file: &str, flags: &[&str]) -> Vec<u8> {
    let src = dir.join(file);
    std::fs::write(&src, source).unwrap();
    let obj = dir.join(format!("{file}.o"));
    let out = Command::new(compiler)
        .args(flags)
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(obj).unwrap()
}

/// What the pipeline renames: every non-local defined symbol.
fn renames_for(bytes: &[u8]) -> HashMap<String, String> {
    let summary = dlstatic::elf::summarize_object(bytes).unwrap();
    summary
        .globals
        .iter()
        .filter(|s| s.defined)
        .map(|s| {
            (
                s.name.clone(),
                format!("{}_0123456789abcdef0123456789abcdef_km", s.name),
            )
        })
        .collect()
}

fn readelf(path: &Path) -> String {
    let out = Command::new("readelf")
        .args(["--syms", "--relocs", "--section-groups", "-W"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    // file offsets of sections are layout, not meaning: objcopy lays the file out anew
    let text = String::from_utf8(out.stdout).unwrap();
    regex::Regex::new(r"at offset 0x[0-9a-f]+")
        .unwrap()
        .replace_all(&text, "at offset _")
        .into_owned()
}

fn assert_same_object(ours: &[u8], reference: &[u8]) {
    let a = ElfFile64::<Endianness>::parse(ours).unwrap();
    let b = ElfFile64::<Endianness>::parse(reference).unwrap();

    let syms_a: Vec<_> = a.symbols().collect();
    let syms_b: Vec<_> = b.symbols().collect();
    assert_eq!(syms_a.len(), syms_b.len(), "symbol count");
    for (x, y) in syms_a.iter().zip(&syms_b) {
        assert_eq!(x.name().unwrap(), y.name().unwrap());
        let (ex, ey) = (x.elf_symbol(), y.elf_symbol());
        let e = Endianness::Little;
        assert_eq!(
            (
                ex.st_info(),
                ex.st_other(),
                ex.st_shndx(e),
                ex.st_value(e),
                ex.st_size(e)
            ),
            (
                ey.st_info(),
                ey.st_other(),
                ey.st_shndx(e),
                ey.st_value(e),
                ey.st_size(e)
            ),
            "symbol {}",
            x.name().unwrap()
        );
    }

    let secs_a: Vec<_> = a.sections().collect();
    let secs_b: Vec<_> = b.sections().collect();
    assert_eq!(secs_a.len(), secs_b.len(), "section count");
    for (x, y) in secs_a.iter().zip(&secs_b) {
        let name = x.name().unwrap();
        assert_eq!(name, y.name().unwrap());
        let (hx, hy) = (x.elf_section_header(), y.elf_section_header());
        let e = Endianness::Little;
        assert_eq!(
            (
                hx.sh_type(e),
                hx.sh_flags(e),
                hx.sh_link(e),
                hx.sh_info(e),
                hx.sh_addralign(e),
                hx.sh_entsize(e)
            ),
            (
                hy.sh_type(e),
                hy.sh_flags(e),
                hy.sh_link(e),
                hy.sh_info(e),
                hy.sh_addralign(e),
                hy.sh_entsize(e)
            ),
            "section header {name}"
        );
        // objcopy rebuilds the string tables (and .shstrtab, in another order); names are compared above
        if !matches!(name, ".strtab" | ".symtab" | ".shstrtab") {
            assert_eq!(x.data().unwrap(), y.data().unwrap(), "contents of {name}");
        }
        let relocs_a: Vec<_> = x
            .relocations()
            .map(|(off, r)| (off, r.flags(), r.addend(), reloc_target(&a, &r)))
            .collect();
        let relocs_b: Vec<_> = y
            .relocations()
            .map(|(off, r)| (off, r.flags(), r.addend(), reloc_target(&b, &r)))
            .collect();
        assert_eq!(relocs_a, relocs_b, "relocations of {name}");
    }
    assert_eq!(
        a.elf_header().e_shnum(Endianness::Little),
        b.elf_header().e_shnum(Endianness::Little)
    );
}

fn reloc_target(file: &ElfFile64<Endianness>, r: &object::Relocation) -> String {
    match r.target() {
        object::RelocationTarget::Symbol(i) => {
            file.symbol_by_index(i).unwrap().name().unwrap().to_string()
        }
        other => format!("{other:?}"),
    }
}

fn check_against_objcopy(bytes: &[u8], what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let renames = renames_for(bytes);
    assert!(!renames.is_empty(), "{what}: nothing to rename");
    let (ours, changed) = dlstatic::elf::rename::rename_symbols(bytes.to_vec(), &renames).unwrap();
    assert!(
        changed >= renames.len(),
        "{what}: every defined global renamed at least once"
    );

    let input = dir.path().join("in.o");
    let map = dir.path().join("map");
    let reference = dir.path().join("ref.o");
    let ours_path = dir.path().join("ours.o");
    std::fs::write(&input, bytes).unwrap();
    std::fs::write(&map, dlstatic::elf::rename::symmap_text(&renames)).unwrap();
    std::fs::write(&ours_path, &ours).unwrap();
    let out = Command::new("objcopy")
        .arg(format!("--redefine-syms={}", map.display()))
        .arg(&input)
        .arg(&reference)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "objcopy: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_same_object(&ours, &std::fs::read(&reference).unwrap());
    assert_eq!(
        readelf(&ours_path),
        readelf(&reference),
        "{what}: readelf differs"
    );
    // names the module leaves to others are untouched
    assert!(
        readelf(&ours_path).contains(" printf") || what.contains("C++"),
        "{what}: external reference kept"
    );
}

#[test]
fn c_object_with_every_kind_of_global() {
    let dir = tempfile::tempdir().unwrap();
    let obj = compile(
        dir.path(),
        "cc",
        C_SOURCE,
        "kinds.c",
        &["-O2", "-fPIC", "-fcommon"],
    );
    check_against_objcopy(&obj, "C");
}

#[test]
fn gxx_object_with_comdat_groups() {
    let dir = tempfile::tempdir().unwrap();
    let obj = compile(
        dir.path(),
        "c++",
        CXX_SOURCE,
        "comdat.cc",
        &["-O1", "-fPIC"],
    );
    let text = {
        std::fs::write(dir.path().join("x.o"), &obj).unwrap();
        readelf(&dir.path().join("x.o"))
    };
    assert!(
        text.contains("COMDAT group"),
        "the C++ object has COMDAT groups to test"
    );
    check_against_objcopy(&obj, "C++");
}

#[test]
fn g3_object_with_macro_debug_info() {
    let dir = tempfile::tempdir().unwrap();
    let obj = compile(
        dir.path(),
        "cc",
        C_SOURCE,
        "debug.c",
        &["-g3", "-O0", "-fPIC"],
    );
    check_against_objcopy(&obj, "C -g3");
}

#[test]
fn objects_without_symbols_to_rename_are_copied_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let obj = compile(dir.path(), "cc", "static int x;\n", "empty.c", &["-O2"]);
    let (out, changed) =
        dlstatic::elf::rename::rename_symbols(obj.clone(), &renames_for(&obj)).unwrap();
    assert_eq!((out, changed), (obj, 0));
}

#[test]
fn foreign_objects_are_refused_with_a_reason() {
    let err =
        dlstatic::elf::rename::rename_symbols(b"not an object at all".to_vec(), &HashMap::new())
            .unwrap_err();
    assert!(err.to_string().contains("not an ELF file"), "{err}");
    let mut elf32 = b"\x7fELF\x01\x01\x01".to_vec();
    elf32.resize(64, 0);
    let err = dlstatic::elf::rename::rename_symbols(elf32, &HashMap::new()).unwrap_err();
    assert!(err.to_string().contains("32-bit"), "{err}");
}
