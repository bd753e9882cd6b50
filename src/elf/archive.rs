//! Stage 4, archive: a module's renamed objects as one GNU `ar` archive with a symbol
//! index (what `ar rcsD` writes: zero timestamps, uids and gids, so it is deterministic).

use std::io::{Seek, Write};

use anyhow::{Context, Result};
use ar_archive_writer::{
    ArchiveKind, DEFAULT_OBJECT_READER, NewArchiveMember, write_archive_to_stream,
};

/// Members are named `NNN-basename` so names stay unique even when two inputs share a
/// basename, and the order is the module's object order.
pub fn write_archive(objects: &[(String, Vec<u8>)], out: &mut (impl Write + Seek)) -> Result<()> {
    let members: Vec<NewArchiveMember> = objects
        .iter()
        .enumerate()
        .map(|(i, (origin, bytes))| {
            let base = origin
                .trim_end_matches(')')
                .rsplit(['/', '('])
                .next()
                .unwrap_or("object.o");
            NewArchiveMember::new(
                bytes.as_slice(),
                &DEFAULT_OBJECT_READER,
                format!("{i:03}-{base}"),
            )
        })
        .collect();
    write_archive_to_stream(out, &members, ArchiveKind::Gnu, false, None)
        .context("cannot write archive")
}
