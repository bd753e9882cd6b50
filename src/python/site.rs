//! The packages of a build once installed: which captured link each extension module
//! in the site directory came from (and so which records of which capture db the link
//! takes), and what the manifest says about each package (build backend, smoke test).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::capture::db::{CaptureDb, LinkRecord};
use crate::module_id::ModuleId;
use crate::plan::Source;
use crate::python::cpython::CpythonBuild;
use crate::python::modules_txt::normalized_name;
use crate::python::packages::{self, InstallOptions, InstalledPackages, PackageSet};
use crate::python::payload::{self, Manifest};
use crate::workdir::BuildWork;

/// The packages of modules.txt, installed; their linked modules matched to captures.
pub struct Packages {
    pub installed: InstalledPackages,
    /// Each installed extension module's id.
    pub modules: BTreeMap<PathBuf, ModuleId>,
    /// The capture dbs holding them, each with the ids to take from it.
    pub sources: Vec<Source>,
}

/// Install the packages of `set` and match their extension modules to captured links;
/// those of test packages only when `keep_tests` (payload::in_test_package).
pub fn install_packages(
    set: &PackageSet,
    python: &CpythonBuild,
    work: &BuildWork,
    options: &InstallOptions,
    keep_tests: bool,
) -> Result<Packages> {
    let installed = packages::install(set, python, &work.packages(), options)?;
    if installed.reused {
        eprintln!(
            "dlstatic: reused {} built packages from {}",
            installed.packages.len(),
            work.packages().display()
        );
    }
    let (modules, sources) = match_installed_modules(&installed.site, &installed.dbs, keep_tests)?;
    Ok(Packages {
        installed,
        modules,
        sources,
    })
}

/// Each module's build backend, and the smoke tests found next to modules.txt
/// (`smoke/<package>.py`) for the packages that were installed.
pub fn describe_packages(
    manifest: &mut Manifest,
    packages: Option<&InstalledPackages>,
    modules: Option<&Path>,
) -> Result<()> {
    for module in &mut manifest.modules {
        module.backend = match packages.and_then(|p| {
            p.packages
                .iter()
                .find(|p| normalized_name(&p.name) == normalized_name(&module.package))
        }) {
            Some(package) => package.backend.clone(),
            None => "CPython".to_string(),
        };
    }
    let (Some(packages), Some(modules)) = (packages, modules) else {
        return Ok(());
    };
    let smoke_dir = modules.parent().unwrap_or(Path::new(".")).join("smoke");
    for package in &packages.packages {
        let script = smoke_dir.join(format!("{}.py", normalized_name(&package.name)));
        if script.is_file() {
            let code = std::fs::read_to_string(&script)
                .with_context(|| format!("{}: cannot read", script.display()))?;
            manifest.smoke_tests.insert(package.name.clone(), code);
        }
    }
    Ok(())
}

/// The module id (md5 of the linked output) of every extension module installed below
/// `site`: by the installed file's md5, or, where the install step changed the file
/// (CMake rewrites RPATHs), by the one captured link with the same file name; and, for
/// each db that holds any of them, their ids (what link and audit take from it). The
/// modules of test packages are not taken unless `keep_tests`.
fn match_installed_modules(
    site: &Path,
    dbs: &[PathBuf],
    keep_tests: bool,
) -> Result<(BTreeMap<PathBuf, ModuleId>, Vec<Source>)> {
    let mut records: Vec<(usize, LinkRecord)> = Vec::new();
    for (index, db) in dbs.iter().enumerate() {
        records.extend(
            CaptureDb::open_existing(db)?
                .records()?
                .into_iter()
                .map(|record| (index, record)),
        );
    }
    let mut matched = BTreeMap::new();
    let mut ids_by_db = vec![BTreeSet::new(); dbs.len()];
    for so in payload::extension_files(site)? {
        if !keep_tests && payload::in_test_package(so.strip_prefix(site).unwrap()) {
            continue;
        }
        let id = ModuleId::of(
            &std::fs::read(&so).with_context(|| format!("{}: cannot read", so.display()))?,
        );
        let name = so
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let same_name = || {
            records
                .iter()
                .filter(|(_, r)| r.file_name() == name)
                .collect::<Vec<_>>()
        };
        let (index, record) = match records.iter().find(|(_, r)| r.id == id) {
            Some(found) => found,
            None => match same_name().as_slice() {
                [found] => *found,
                [] => bail!(
                    "{}: installed, but no captured link produced it (a prebuilt binary in the sdist?); it cannot be linked",
                    so.display()
                ),
                several => bail!(
                    "{}: changed after its link, and {} captured links have its name; cannot tell which one it is",
                    so.display(),
                    several.len()
                ),
            },
        };
        ids_by_db[*index].insert(record.id.clone());
        matched.insert(so, record.id.clone());
    }
    let sources = dbs
        .iter()
        .zip(ids_by_db)
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(db, ids)| Source {
            db: db.clone(),
            ids: Some(ids),
        })
        .collect();
    Ok((matched, sources))
}
