//! Stage 4, archive: a module's renamed objects as one GNU `ar` archive with a symbol
//! index (what `ar rcsD` writes: zero timestamps, uids and gids, so it is deterministic).

use std::io::{Seek, Write};

use anyhow::{Context, Result};
use ar_archive_writer::{
    ArchiveKind, DEFAULT_OBJECT_READER, NewArchiveMember, write_archive_to_stream,
};

/// Members are named by `member_name`, in the module's object order.
pub fn write_archive(objects: &[(String, Vec<u8>)], out: &mut (impl Write + Seek)) -> Result<()> {
    let members: Vec<NewArchiveMember> = objects
        .iter()
        .enumerate()
        .map(|(i, (origin, bytes))| {
            NewArchiveMember::new(
                bytes.as_slice(),
                &DEFAULT_OBJECT_READER,
                member_name(i, origin),
            )
        })
        .collect();
    write_archive_to_stream(out, &members, ArchiveKind::Gnu, false, None)
        .context("cannot write archive")
}

/// `NNN-basename` for the `index`th object, from `origin` (`dir/x.o`, `lib.a(m.o)`):
/// unique even when two inputs share a basename. The basename is for people reading a
/// link map, so anything but printable ASCII becomes `_`: ar_archive_writer pads the
/// name field by characters, not bytes, and a multi-byte name would shift the header.
pub fn member_name(index: usize, origin: &str) -> String {
    let base = origin
        .trim_end_matches(')')
        .rsplit(['/', '('])
        .next()
        .unwrap_or("object.o");
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{index:03}-{base}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fuzz/findings/archive-non-utf8-member-name: a member whose name is not UTF-8
    /// (capture keeps it lossy, `a.\u{fffd}`) must archive into a readable archive.
    #[test]
    fn member_names_that_are_not_ascii_still_read_back() {
        let object = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/elf/a.o"));
        let object = object.unwrap();
        let origins = ["lib.a(a.\u{fffd})", "dir/caf\u{e9}.o", "dir/plain.o"];
        let objects: Vec<_> = origins
            .iter()
            .map(|o| (o.to_string(), object.clone()))
            .collect();
        let mut out = std::io::Cursor::new(Vec::new());
        write_archive(&objects, &mut out).unwrap();
        let bytes = out.into_inner();
        let archive = object::read::archive::ArchiveFile::parse(&*bytes).unwrap();
        let names: Vec<String> = archive
            .members()
            .map(|m| String::from_utf8(m.unwrap().name().to_vec()).unwrap())
            .collect();
        assert_eq!(names, ["000-a._", "001-caf_.o", "002-plain.o"]);
    }
}
