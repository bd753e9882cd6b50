//! Static C dependencies built from the distro's source packages.
//!
//! When a Plan has a missing library that blocks the link (no `libfoo.a`, or an
//! archive that needs archives that do not exist), dlstatic builds it: the Debian
//! source package that ships it (`decide`), unpacked with Debian's patches (`source`),
//! built static-only and PIC with its own build system (`build_system`) or as a recipe
//! says (`recipe`), into a cache prefix keyed by source and options (`cache`). The
//! prefix goes first on the link's search path and the plan is made again, until no
//! buildable library is missing. docs/deps.md has the details.

pub mod build_system;
pub mod cache;
pub mod decide;
pub mod recipe;
pub mod source;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::plan::Plan;
use cache::Entry;
use decide::Wanted;
use source::SourcePackage;

/// A built library's own missing libraries are built in the next round; a chain deeper
/// than this is a cycle or a runaway.
const MAX_ROUNDS: usize = 8;

/// What to do about missing libraries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Build them (with `jobs` parallel compiles).
    Build { jobs: usize },
    /// Use what the cache holds; name the source package of the rest (audit, plan).
    Describe,
    /// `--no-build-deps`: a missing library stays an error.
    Off,
}

/// A dependency prefix the link uses.
#[derive(Debug, Clone)]
pub struct Built {
    /// `postgresql-15 15.18-0+deb12u1`
    pub source: String,
    /// The libraries its `lib/` holds (`-l` names).
    pub libraries: Vec<String>,
    pub prefix: PathBuf,
    /// It was in the cache already.
    pub reused: bool,
}

impl Built {
    /// The summary line of a build or link that used it.
    pub fn describe(&self) -> String {
        let libraries: Vec<String> = self.libraries.iter().map(|l| format!("lib{l}.a")).collect();
        format!(
            "static libraries built by dlstatic from {} ({}): {} in {}",
            self.source,
            if self.reused { "reused" } else { "built now" },
            libraries.join(", "),
            self.prefix.display()
        )
    }
}

/// The final plan and the dependency prefixes it searches first.
pub struct Outcome {
    pub plan: Plan,
    pub built: Vec<Built>,
}

/// Plan with `make_plan(prefixes)`, building what is missing as `mode` says.
pub fn plan(mode: Mode, make_plan: impl Fn(&[PathBuf]) -> Result<Plan>) -> Result<Outcome> {
    let mut built: Vec<Built> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let prefixes: Vec<PathBuf> = built.iter().map(|b| b.prefix.clone()).collect();
        let mut plan = make_plan(&prefixes)?;
        plan.unfit_archives = decide::unfit_archives(&plan);
        decide::add_remedies(&mut plan);
        let wanted = decide::wanted(&plan);
        if wanted.is_empty() || mode == Mode::Off {
            return Ok(Outcome { plan, built });
        }
        // only the most urgent builds this round; the next plan says whether the rest
        // are still needed (Describe: every one is named)
        let first = wanted.iter().map(|w| w.urgency).min().unwrap_or(0);
        let mut added = false;
        for want in wanted {
            if mode != Mode::Describe && want.urgency > first {
                continue;
            }
            match provide(&want, mode, &plan, &built)? {
                Some(prefix) => {
                    built.push(prefix);
                    added = true;
                }
                None => {
                    for &index in &want.missing {
                        plan.missing_libs[index].build_from = Some(want.source.clone());
                    }
                    for &index in &want.unfit {
                        plan.unfit_archives[index].build_from = Some(want.source.clone());
                    }
                }
            }
        }
        if !added {
            return Ok(Outcome { plan, built });
        }
    }
    bail!("libraries still missing after building dependencies {MAX_ROUNDS} times over (a cycle?)")
}

/// The cache entry for one wanted build: reused, built (Mode::Build), or None when
/// only described.
fn provide(want: &Wanted, mode: Mode, plan: &Plan, built: &[Built]) -> Result<Option<Built>> {
    let (missing, still) = match want.missing.first() {
        Some(&index) => (&plan.missing_libs[index].lib, "still missing"),
        None => (
            &plan.unfit_archives[want.unfit[0]].lib,
            "still the system's archive",
        ),
    };
    let source = match (SourcePackage::lookup(&want.source), mode) {
        (Ok(source), _) => source,
        (Err(_), Mode::Describe) => return Ok(None),
        (Err(error), _) => {
            return Err(error.context(format!(
                "building lib{} for lib{}",
                want.library,
                decide::library_name(missing)
            )));
        }
    };
    let entry = Entry::new(source, want.recipe);
    if built.iter().any(|b| b.prefix == entry.dir) {
        bail!(
            "lib{} is {still} after dlstatic built source package {} (logs: {})",
            decide::library_name(missing),
            entry.source.describe(),
            entry.dir.join("logs").display()
        );
    }
    let reused = entry.exists();
    match (reused, mode) {
        (true, _) => eprintln!(
            "dlstatic: reused lib{} built from {} ({})",
            want.library,
            entry.source.describe(),
            entry.dir.display()
        ),
        (false, Mode::Build { jobs }) => {
            eprintln!(
                "dlstatic: building lib{} from {} (log: {})",
                want.library,
                entry.source.describe(),
                entry.build_logs().display()
            );
            entry.build(jobs).with_context(|| {
                let missing = decide::library_name(missing);
                let needed_for = match missing == want.library {
                    true => String::new(),
                    false => format!(" (for lib{missing})"),
                };
                format!(
                    "building lib{}{needed_for} from source package {} failed (logs: {})",
                    want.library,
                    entry.source.describe(),
                    entry.build_logs().display()
                )
            })?;
        }
        (false, _) => return Ok(None),
    }
    Ok(Some(Built {
        source: entry.source.describe(),
        libraries: entry.libraries(),
        prefix: entry.dir.clone(),
        reused,
    }))
}
