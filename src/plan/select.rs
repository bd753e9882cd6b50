//! Which captured links take part: every record of the main db (narrowed by `--only`,
//! less the excluded), plus the named records of further dbs (a pip build captures
//! its build dependencies too; only what was installed is linked).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use globset::{Glob, GlobSet, GlobSetBuilder};

use super::Request;
use crate::capture::db::{CaptureDb, LinkRecord};
use crate::module_id::ModuleId;

/// A capture db and the ids of the records to take from it (None: all of them).
#[derive(Debug, Clone)]
pub struct Source {
    pub db: PathBuf,
    pub ids: Option<BTreeSet<ModuleId>>,
}

/// The opened dbs, and every selected record with the index of its db.
pub fn records(request: &Request) -> Result<(Vec<CaptureDb>, Vec<(usize, LinkRecord)>)> {
    let only = glob_set(&request.only, "--only")?;
    let exclude = glob_set(&request.exclude, "skip")?;
    let matches =
        |set: &GlobSet, r: &LinkRecord| set.is_match(&r.output) || set.is_match(r.file_name());
    let (mut dbs, mut selected) = (Vec::new(), Vec::new());
    for source in &request.sources {
        let db = CaptureDb::open_existing(&source.db)?;
        let records = db.records()?;
        if source.ids.is_none() && records.is_empty() {
            bail!(
                "{}: no shared-object links were captured (run the build under `dlstatic capture --db {}`)",
                source.db.display(),
                source.db.display()
            );
        }
        selected.extend(
            records
                .into_iter()
                .filter(|r| source.ids.as_ref().is_none_or(|ids| ids.contains(&r.id)))
                .filter(|r| request.only.is_empty() || matches(&only, r))
                .filter(|r| !matches(&exclude, r))
                .map(|r| (dbs.len(), r)),
        );
        dbs.push(db);
    }
    // byte-identical outputs linked at two paths are two records and one module: the
    // same bytes, so the same id, registered once and served for both paths (each
    // path's stub names that id); the first by output path stands for them
    let mut ids = BTreeSet::new();
    selected.retain(|(_, record)| ids.insert(record.id.clone()));
    if selected.is_empty() && !request.only.is_empty() {
        bail!(
            "{}: no captured shared object matches --only {}",
            request
                .sources
                .first()
                .map_or(Path::new(""), |s| &s.db)
                .display(),
            request.only.join(" --only ")
        );
    }
    Ok((dbs, selected))
}

fn glob_set(patterns: &[String], what: &str) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        set.add(Glob::new(pattern).with_context(|| format!("{what} {pattern}: not a valid glob"))?);
    }
    Ok(set.build()?)
}
