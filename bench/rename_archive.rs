//! Benchmark helper for `make bench`: the rename + archive stage of `dlstatic link` alone,
//! on every module of a capture db, and the same inputs laid out for the baselines.
//!
//!   rename_archive DB OUT           analyze each module, rename its objects, write
//!                                   OUT/<module>.km.a (what dlstatic does, in parallel)
//!   rename_archive --export DB DIR  DIR/<module>/<n>-<object>.o (the captured objects) and
//!                                   DIR/<module>.symmap (objcopy --redefine-syms format),
//!                                   the input of the objcopy + ar and cp baselines

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rayon::prelude::*;

use dlstatic::capture::db::CaptureDb;
use dlstatic::elf::rename as mangle;
use dlstatic::link;
use dlstatic::plan::analyze::{self, Module};

fn main() {
    if let Err(error) = run() {
        eprintln!("rename_archive: error: {error:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (export, db, out) = match args.as_slice() {
        [flag, db, out] if flag == "--export" => (true, db, out),
        [db, out] => (false, db, out),
        _ => bail!("usage: rename_archive [--export] DB OUT"),
    };
    let db = CaptureDb::open_existing(Path::new(db))?;
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;
    let scratch = tempfile::tempdir()?;
    db.records()?
        .par_iter()
        .try_for_each(|record| -> Result<()> {
            let module = analyze::analyze(&db, record, scratch.path())
                .with_context(|| record.output.clone())?;
            let renames = module.renames();
            if export {
                export_module(&db, &module, &mangle::symmap_text(&renames), &out)
            } else {
                link::write_renamed_archive(
                    &db,
                    &module,
                    &renames,
                    &out.join(format!("{}.km.a", module.base())),
                )
                .map(|_| ())
            }
        })
}

fn export_module(db: &CaptureDb, module: &Module, symmap: &[u8], out: &Path) -> Result<()> {
    let dir = out.join(module.base());
    std::fs::create_dir_all(&dir)?;
    for (n, object) in module.objects.iter().enumerate() {
        let name = object
            .origin
            .rsplit(['/', '('])
            .next()
            .unwrap_or("object.o")
            .trim_end_matches(')');
        std::fs::write(
            dir.join(format!("{n:03}-{name}")),
            db.read_object(&object.md5)?,
        )?;
    }
    std::fs::write(out.join(format!("{}.symmap", module.base())), symmap)?;
    Ok(())
}
