//! Reproducible archive writers over a [`Tree`]: tar (ustar/GNU), gzip, newc cpio and
//! zip. Entries go in path order with root owners and the tree's mtimes; compressed
//! streams carry no timestamp or file name, so a tree always gives the same bytes.

use std::io::Write;

use anyhow::Result;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::tree::{Content, Tree};

/// The tree as a tar stream.
pub fn tar(tree: &Tree) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, entry) in &tree.entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode);
        header.set_mtime(entry.mtime);
        header.set_uid(0);
        header.set_gid(0);
        let data = entry.data()?;
        let kind = match &entry.content {
            Content::File(_) | Content::Bytes(_) => tar::EntryType::Regular,
            Content::Dir => tar::EntryType::Directory,
            Content::Symlink(_) => tar::EntryType::Symlink,
            Content::CharDevice(major, minor) => {
                header.set_device_major(*major)?;
                header.set_device_minor(*minor)?;
                tar::EntryType::Char
            }
        };
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        match &entry.content {
            Content::Symlink(target) => builder.append_link(&mut header, path, target)?,
            Content::Dir => builder.append_data(&mut header, format!("{path}/"), &data[..])?,
            _ => builder.append_data(&mut header, path, &data[..])?,
        }
    }
    Ok(builder.into_inner()?)
}

/// gzip with no name and mtime 0 in its header.
pub fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

/// The tree as a "newc" cpio archive (what the Linux kernel unpacks as an initramfs).
pub fn cpio(tree: &Tree) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (inode, (path, entry)) in tree.entries.iter().enumerate() {
        let (kind, data, rdev) = match &entry.content {
            Content::File(_) | Content::Bytes(_) => (0o100000, entry.data()?, (0, 0)),
            Content::Dir => (0o040000, Vec::new(), (0, 0)),
            Content::Symlink(target) => (0o120000, target.clone().into_bytes(), (0, 0)),
            Content::CharDevice(major, minor) => (0o020000, Vec::new(), (*major, *minor)),
        };
        cpio_member(
            &mut out,
            inode as u32 + 1,
            kind | entry.mode,
            entry.mtime,
            path,
            &data,
            rdev,
        );
    }
    cpio_member(&mut out, 0, 0, 0, "TRAILER!!!", &[], (0, 0));
    Ok(out)
}

fn cpio_member(
    out: &mut Vec<u8>,
    inode: u32,
    mode: u32,
    mtime: u64,
    name: &str,
    data: &[u8],
    (rdev_major, rdev_minor): (u32, u32),
) {
    let fields = [
        inode,
        mode,
        0,
        0,
        1,
        mtime as u32,
        data.len() as u32,
        0,
        0,
        rdev_major,
        rdev_minor,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

/// A deflated zip of `(name, mode, bytes)` members with a fixed date.
pub fn zip(members: &[(&str, u32, &[u8])]) -> Result<Vec<u8>> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, mode, bytes) in members {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(*mode)
            .large_file(bytes.len() >= u32::MAX as usize);
        writer.start_file(*name, options)?;
        writer.write_all(bytes)?;
    }
    Ok(writer.finish()?.into_inner())
}
