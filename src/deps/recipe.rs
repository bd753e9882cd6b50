//! Per-library overrides of the generic static build: `extensions/deps/<lib>.toml`,
//! compiled into dlstatic (so a build's key covers them and no repo checkout is needed at
//! run time). docs/deps.md describes the format.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The recipes shipped with dlstatic: (file name, text).
const SHIPPED: &[(&str, &str)] = &[
    (
        "extensions/deps/libpq.toml",
        include_str!("../../extensions/deps/libpq.toml"),
    ),
    (
        "extensions/deps/libcrypto.toml",
        include_str!("../../extensions/deps/libcrypto.toml"),
    ),
    (
        "extensions/deps/libgssapi_krb5.toml",
        include_str!("../../extensions/deps/libgssapi_krb5.toml"),
    ),
    (
        "extensions/deps/libqhull_r.toml",
        include_str!("../../extensions/deps/libqhull_r.toml"),
    ),
];

/// How to build one library (and what comes with it) from its source package.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The `-l` name this recipe is for (`pq` for libpq.toml), from the file name.
    #[serde(skip)]
    pub library: String,
    /// The recipe's text: part of the cache key.
    #[serde(skip)]
    pub text: &'static str,
    /// Why this library is never built static (it stays missing; a recipe for the
    /// library that needs it can rebuild that one without it).
    pub no_static_build: Option<String>,
    /// The Debian source package; default: the one that ships the library's `.so`.
    pub source: Option<String>,
    /// Libraries the parent's Debian archive needs that have no static archive (or that
    /// this build supplies itself): a need for one of them is met by rebuilding the
    /// parent with this recipe, not by building the library.
    #[serde(default)]
    pub instead_of: Vec<String>,
    /// The distro's archive exists but cannot serve a module that uses one of these
    /// names in a static program (OpenSSL's providers loaded with dlopen): this recipe's
    /// build replaces it in links whose modules use them.
    #[serde(default)]
    pub replace_when_used: Vec<String>,
    /// Why the distro's archive cannot serve them (the audit says it).
    pub replace_why: Option<String>,
    /// The configure step instead of the generic `./configure --prefix=… --disable-shared
    /// …` (a tree without autotools: OpenSSL's perl `Configure`); `@prefix@` is the prefix.
    #[serde(default)]
    pub configure_command: Vec<String>,
    /// Extra `./configure` arguments (after the generic static, PIC ones).
    #[serde(default)]
    pub configure: Vec<String>,
    /// Run make only in these directories of the tree (default: the top).
    #[serde(default)]
    pub make_dirs: Vec<String>,
    /// make targets (default: make's default goal).
    #[serde(default)]
    pub make_targets: Vec<String>,
    /// make targets that install (default: `install`).
    #[serde(default)]
    pub install_targets: Vec<String>,
    /// Instead of `make install`: prefix path → path in the build tree.
    #[serde(default)]
    pub install: BTreeMap<String, String>,
    /// pkg-config files to write: name (`libpq`) → text, with `@prefix@` for the prefix.
    #[serde(default)]
    pub pkgconfig: BTreeMap<String, String>,
}

impl Recipe {
    fn parse(file: &str, text: &'static str) -> Result<Recipe> {
        let mut recipe: Recipe =
            toml::from_str(text).with_context(|| format!("{file}: not a valid recipe"))?;
        let stem = file
            .rsplit('/')
            .next()
            .unwrap_or(file)
            .trim_end_matches(".toml");
        recipe.library = stem.strip_prefix("lib").unwrap_or(stem).to_string();
        recipe.text = text;
        if recipe.replace_when_used.is_empty() != recipe.replace_why.is_none() {
            bail!("{file}: replace_when_used and replace_why go together");
        }
        Ok(recipe)
    }
}

/// The recipe for `-l<lib>`, if dlstatic ships one.
pub fn for_library(lib: &str) -> Option<&'static Recipe> {
    shipped().iter().find(|r| r.library == lib)
}

fn shipped() -> &'static [Recipe] {
    static RECIPES: OnceLock<Vec<Recipe>> = OnceLock::new();
    RECIPES.get_or_init(|| {
        SHIPPED
            .iter()
            // a shipped recipe that does not parse is a bug caught by the unit test below
            .filter_map(|(file, text)| Recipe::parse(file, text).ok())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_recipe_parses() {
        for (file, text) in SHIPPED {
            Recipe::parse(file, text).unwrap();
        }
        let libpq = for_library("pq").unwrap();
        assert_eq!(libpq.source.as_deref(), Some("postgresql-15"));
        assert!(libpq.instead_of.contains(&"gssapi_krb5".to_string()));
        let libcrypto = for_library("crypto").unwrap();
        assert!(
            libcrypto
                .replace_when_used
                .contains(&"OSSL_PROVIDER_load".to_string())
        );
        assert!(
            for_library("gssapi_krb5")
                .unwrap()
                .no_static_build
                .is_some()
        );
    }

    #[test]
    fn unknown_fields_are_refused_with_the_file_name() {
        let error = Recipe::parse("extensions/deps/libx.toml", "confgure = []\n").unwrap_err();
        assert!(format!("{error:#}").starts_with("extensions/deps/libx.toml: "));
    }
}
