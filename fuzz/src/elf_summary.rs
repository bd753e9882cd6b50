//! `elf::file_kind`, `elf::summarize_object` and `elf::shared_object_interface` on any
//! bytes: errors are fine, panics are not, and what they accept is consistent.

use dlstatic::elf::{self, FileKind};

pub fn check(data: &[u8]) {
    let kind = elf::file_kind(data);
    if elf::summarize_object(data).is_ok() {
        assert_eq!(kind, FileKind::Relocatable, "summarized a non-relocatable");
    }
    if let Ok(interface) = elf::shared_object_interface(data) {
        let mut sorted = interface.exports.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(interface.exports, sorted, "exports not sorted and unique");
    }
}
