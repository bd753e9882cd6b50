//! A module's identity: the md5 of the shared object its build linked. One home for
//! every form the id takes — the 32-digit text in db records, stubs and tables, the
//! 8-digit short form in file names, and the renamed-symbol form `NAME_<id>_km`.

use std::fmt;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// The md5 of a linked shared object, as 32 lowercase hex digits (validated on parse).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModuleId(String);

/// Suffix of every renamed symbol.
const RENAMED_SUFFIX: &str = "_km";

impl ModuleId {
    /// The id of a linked file's bytes.
    pub fn of(bytes: &[u8]) -> ModuleId {
        ModuleId(md5_hex(bytes))
    }

    pub fn parse(text: &str) -> Result<ModuleId> {
        if text.len() != 32 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            bail!("`{text}` is not a module id (32 lowercase hex digits)");
        }
        Ok(ModuleId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 8 digits: enough to tell modules apart in file names and messages.
    pub fn short(&self) -> &str {
        &self.0[..8]
    }

    /// The name a symbol `name` defined by this module gets in the static binary.
    pub fn renamed(&self, name: &str) -> String {
        format!("{name}_{}{RENAMED_SUFFIX}", self.0)
    }
}

/// Whether `name` has the form `NAME_<32 hex>_km` that ModuleId::renamed makes.
pub fn is_renamed(name: &str) -> bool {
    name.strip_suffix(RENAMED_SUFFIX)
        .and_then(|rest| rest.get(rest.len().checked_sub(33)?..))
        .is_some_and(|tail| tail.starts_with('_') && ModuleId::parse(&tail[1..]).is_ok())
}

/// md5 as lowercase hex: the content address of every file dlstatic stores.
pub fn md5_hex(bytes: &[u8]) -> String {
    format!("{:x}", md5::compute(bytes))
}

impl TryFrom<String> for ModuleId {
    type Error = anyhow::Error;
    fn try_from(text: String) -> Result<ModuleId> {
        ModuleId::parse(&text)
    }
}

impl From<ModuleId> for String {
    fn from(id: ModuleId) -> String {
        id.0
    }
}

impl fmt::Display for ModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found writing the fuzz target `codegen` (which asks this of every name): a name
    /// whose 33rd byte from the end falls inside a multi-byte character made the slice panic.
    #[test]
    fn is_renamed_takes_any_utf8_name() {
        assert!(!is_renamed("\u{e9}0123456789abcdef0123456789abcdef_km"));
        assert!(is_renamed("\u{e9}_0123456789abcdef0123456789abcdef_km"));
    }

    #[test]
    fn ids_are_validated_and_shown_in_every_form() {
        let id = ModuleId::parse("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(id.short(), "01234567");
        assert_eq!(
            id.renamed("helper"),
            "helper_0123456789abcdef0123456789abcdef_km"
        );
        assert!(is_renamed(&id.renamed("helper")));
        assert!(!is_renamed("helper_km"));
        assert!(!is_renamed("_km"));
        assert!(!is_renamed("x_0123456789ABCDEF0123456789abcdef_km"));
        for bad in [
            "",
            "0123",
            "0123456789ABCDEF0123456789abcdef",
            "../../etc/passwd",
        ] {
            assert!(ModuleId::parse(bad).is_err(), "{bad}");
        }
        let json: Result<ModuleId, _> = serde_json::from_str("\"abc\"");
        assert!(json.is_err());
        assert_eq!(
            ModuleId::of(b"").as_str(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }
}
