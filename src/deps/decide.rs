//! What to build for a Plan: each missing library that blocks the link, mapped to the
//! library whose build supplies it (itself, or the parent archive that a recipe rebuilds
//! without it) and that library's source package; and each archive a recipe replaces
//! for what the modules use (`replace_when_used`).

use std::path::Path;

use super::recipe::{self, Recipe};
use super::source;
use crate::plan::Plan;
use crate::plan::system_libs::{self, MissingLib, UnfitArchive};
use crate::python::cpython::cache_root;

/// One build that supplies one or more missing libraries.
pub struct Wanted {
    /// The `-l` name of the library built (`pq` when libpq.a needs gssapi_krb5).
    pub library: String,
    /// Its Debian source package.
    pub source: String,
    pub recipe: Option<&'static Recipe>,
    /// The plan's missing libraries (indices) this build supplies.
    pub missing: Vec<usize>,
    /// The plan's unfit archives (indices) this build replaces.
    pub unfit: Vec<usize>,
    /// Which builds go first (lowest): see `urgency`.
    pub urgency: u8,
}

/// The builds the plan's blocking missing libraries and unfit archives call for, one per
/// source package, in the plan's order. A library no source package ships is left out:
/// it stays an error.
pub fn wanted(plan: &Plan) -> Vec<Wanted> {
    let mut out: Vec<Wanted> = Vec::new();
    for (index, missing) in plan.missing_libs.iter().enumerate() {
        if !missing.blocks_link() {
            continue;
        }
        let lib = library_name(&missing.lib);
        let parent_recipe = parent_recipe(missing);
        let (library, recipe) = match parent_recipe {
            Some(recipe) => (recipe.library.clone(), Some(recipe)),
            None => (lib.clone(), recipe::for_library(&lib)),
        };
        if recipe.is_some_and(|r| r.no_static_build.is_some()) {
            continue;
        }
        // the module named the library's `.so` itself by path: that file's owner
        let by_path =
            (missing.lib.starts_with('/') && library == lib).then(|| Path::new(&missing.lib));
        let lib_dirs = &plan.module(missing.module).lib_dirs;
        let Some(source) = source_package(recipe, &library, by_path, lib_dirs) else {
            continue;
        };
        let urgency = urgency(parent_recipe.is_some(), missing.needed_by.is_none());
        let want = Wanted {
            library,
            source,
            recipe,
            missing: vec![index],
            unfit: Vec::new(),
            urgency,
        };
        merge(&mut out, want);
    }
    for (index, unfit) in plan.unfit_archives.iter().enumerate() {
        let recipe = recipe::for_library(&unfit.lib);
        let lib_dirs = &plan.module(unfit.module).lib_dirs;
        if let Some(source) = source_package(recipe, &unfit.lib, None, lib_dirs) {
            let want = Wanted {
                library: unfit.lib.clone(),
                source,
                recipe,
                missing: Vec::new(),
                unfit: vec![index],
                urgency: urgency(false, true),
            };
            merge(&mut out, want);
        }
    }
    out
}

/// What the recipes say about missing libraries no package advice fits: a parent that
/// a recipe rebuilds without the library (when dlstatic does not build it now:
/// `--no-build-deps`), or why the library is never built static.
pub fn add_remedies(plan: &mut Plan) {
    for missing in &mut plan.missing_libs {
        let lib = library_name(&missing.lib);
        missing.remedy = match (parent_recipe(missing), recipe::for_library(&lib)) {
            (Some(parent), _) => Some(format!(
                "dlstatic rebuilds lib{} without it{} unless --no-build-deps",
                parent.library,
                (parent.source.as_deref())
                    .map_or(String::new(), |s| format!(" from source package {s}"))
            )),
            (None, Some(own)) => {
                (own.no_static_build.as_deref()).map(|why| format!("it has no static build: {why}"))
            }
            (None, None) => None,
        };
    }
}

/// The recipe of the archive that needs `missing` when it rebuilds that archive without
/// it (`instead_of`: libpq without GSSAPI).
fn parent_recipe(missing: &MissingLib) -> Option<&'static Recipe> {
    let lib = library_name(&missing.lib);
    (missing.needed_by.as_deref())
        .and_then(recipe::for_library)
        .filter(|r| r.instead_of.contains(&lib))
}

/// The source package to build `library` from: the recipe's, else the package that
/// ships its `.so` (`by_path`, when a module named that file, else the one `-l` finds).
fn source_package(
    recipe: Option<&Recipe>,
    library: &str,
    by_path: Option<&Path>,
    lib_dirs: &[String],
) -> Option<String> {
    recipe.and_then(|r| r.source.clone()).or_else(|| {
        let shared = match by_path {
            Some(path) => Some(path.to_path_buf()),
            None => system_libs::shared_library_file(library, lib_dirs),
        };
        source::owner_of(&shared?)
    })
}

/// One build per source package: a second want of the same package joins the first.
fn merge(out: &mut Vec<Wanted>, want: Wanted) {
    match out.iter_mut().find(|w| w.source == want.source) {
        Some(build) => {
            build.missing.extend(want.missing);
            build.unfit.extend(want.unfit);
            build.urgency = build.urgency.min(want.urgency);
        }
        None => out.push(want),
    }
}

/// The archives the plan takes that a recipe replaces for names a module uses
/// (`replace_when_used`: OpenSSL's providers, which Debian's libcrypto.a loads with
/// dlopen), unless the archive already comes from a dependency prefix.
pub fn unfit_archives(plan: &Plan) -> Vec<UnfitArchive> {
    let built_by_dlstatic = cache_root().join("deps");
    let mut out = Vec::new();
    for lib in &plan.system_libs {
        let name = library_name(&lib.name);
        let Some(recipe) = recipe::for_library(&name) else {
            continue;
        };
        if lib.archive.starts_with(&built_by_dlstatic) || recipe.replace_when_used.is_empty() {
            continue;
        }
        let mut users = plan.modules.iter().enumerate().map(|(index, planned)| {
            let undefined = &planned.module.undefined;
            let used: Vec<String> = (recipe.replace_when_used.iter())
                .filter(|name| undefined.binary_search(name).is_ok())
                .cloned()
                .collect();
            (index, used)
        });
        if let Some((module, used)) = users.find(|(_, used)| !used.is_empty()) {
            out.push(UnfitArchive {
                lib: name,
                archive: lib.archive.clone(),
                module,
                used,
                why: recipe.replace_why.clone().unwrap_or_default(),
                build_from: None,
            });
        }
    }
    out
}

/// A parent rebuilt by its recipe first, then libraries modules link themselves, then
/// dependencies of archives: an archive missing its own support libraries (libpq.a
/// without libpgport) leaves names unresolved that other libraries' `.so` happen to
/// export too (libbsd's strlcpy), and those needs vanish once the parent is rebuilt.
fn urgency(parent_rebuild: bool, own_library: bool) -> u8 {
    match (parent_rebuild, own_library) {
        (true, _) => 0,
        (false, true) => 1,
        (false, false) => 2,
    }
}

/// The `-l` name of a missing library: `xslt`, `:libxslt.so.1` → `xslt`,
/// `/usr/lib/…/libxslt.so` → `xslt`.
pub fn library_name(lib: &str) -> String {
    let file = lib
        .rsplit('/')
        .next()
        .unwrap_or(lib)
        .trim_start_matches(':');
    let stem = file.split(".so").next().unwrap_or(file);
    match lib.starts_with('/') || lib.starts_with(':') {
        true => stem.strip_prefix("lib").unwrap_or(stem).to_string(),
        false => lib.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names() {
        assert_eq!(library_name("xslt"), "xslt");
        assert_eq!(library_name(":libxslt.so.1"), "xslt");
        assert_eq!(library_name("/usr/lib/x86_64-linux-gnu/libxslt.so"), "xslt");
    }

    #[test]
    fn a_library_is_traced_to_its_source_package() {
        // libxslt1-dev is installed (Makefile APT_PACKAGES); through the gcc path form too
        let shared = system_libs::shared_library_file("xslt", &[]).unwrap();
        assert_eq!(source::owner_of(&shared).as_deref(), Some("libxslt"));
    }
}
