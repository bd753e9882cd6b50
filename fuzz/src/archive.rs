//! Archives both ways: reading any bytes as src/capture/mod.rs `snapshot_archive_members`
//! does (`object::read::archive`, regular and thin), and `elf::archive::write_archive`
//! round trip: what it writes reads back with the same member data, in order, under
//! the `NNN-basename` names `member_name` promises.

use std::io::Cursor;

use dlstatic::elf::archive::member_name;
use object::read::archive::ArchiveFile;

/// The members capture would snapshot, as (name, data); thin members hold no data here
/// (capture reads them from the file system) and come back empty. None when capture
/// would refuse the archive.
fn read_as_capture_does(data: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let archive = ArchiveFile::parse(data).ok()?;
    let mut members = Vec::new();
    for member in archive.members() {
        let member = member.ok()?;
        let name = String::from_utf8_lossy(member.name()).into_owned();
        let bytes = if member.is_thin() {
            Vec::new()
        } else {
            member.data(data).ok()?.to_vec()
        };
        members.push((name, bytes));
    }
    Some(members)
}

fn round_trip(objects: &[(String, Vec<u8>)]) {
    let mut out = Cursor::new(Vec::new());
    if dlstatic::elf::archive::write_archive(objects, &mut out).is_err() {
        return;
    }
    let written = out.into_inner();
    let back = read_as_capture_does(&written).expect("written archive reads back");
    assert_eq!(back.len(), objects.len(), "member count");
    for (index, ((origin, bytes), (name, data))) in objects.iter().zip(&back).enumerate() {
        assert_eq!(name, &member_name(index, origin), "member name");
        assert_eq!(bytes, data, "data of member {name}");
    }
}

/// What the link archives is objects analysis summarized (and rename rewrote):
/// ar_archive_writer's symbol reader panics ("FIXME") on a global whose name does not
/// read, which summarize_object has already refused.
fn archivable(bytes: &[u8]) -> bool {
    dlstatic::elf::summarize_object(bytes).is_ok()
}

pub fn check(data: &[u8]) {
    let objects = match read_as_capture_does(data) {
        Some(members) => members,
        None => vec![("dir/fuzz.o".to_string(), data.to_vec())],
    };
    let objects: Vec<_> = objects.into_iter().filter(|(_, b)| archivable(b)).collect();
    round_trip(&objects);
}
