//! Stage 3, link: executes a Plan. Each module is renamed, archived and given its
//! registration table (modules.rs); the runtime shim is compiled; then two linker
//! passes: the first learns which globals the program holds, which become the main
//! program's own dlsym table (main_table.rs), added by the second.
//!
//! Work files go to a LinkWork (`OUT.km/`); a module whose work files are current is
//! reused. OUT itself is written under a temporary name and renamed into place.

mod main_table;
mod modules;

pub use modules::write_renamed_archive;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::fsutil::write_atomic;
use crate::plan::Plan;
use crate::toolchain;
use crate::workdir::{LinkWork, ModuleFile, this_dlstatic};

/// What a finished link reports.
pub struct LinkSummary {
    /// Modules whose work files were current and reused.
    pub reused: usize,
    pub main_symbols: usize,
    /// Wall time of each step, in order.
    pub timings: Vec<(String, Duration)>,
}

/// Link `plan` into the static executable `output`, with work files in `work`.
pub fn link(plan: &Plan, output: &Path, work: &LinkWork) -> Result<LinkSummary> {
    plan.check_linkable()?;
    let mut clock = Instant::now();
    let mut timings = Vec::new();
    let mut lap = |step: &str| {
        timings.push((format!("link: {step}"), clock.elapsed()));
        clock = Instant::now();
    };
    work.create()?;
    write_atomic(&work.plan(), &serde_json::to_vec_pretty(&plan.summary())?)?;
    let runtime = modules::compile_runtime(work)?;
    let reused = modules::prepare_all(plan, work)?;
    lap("rename, archive, tables");

    let line = LinkLine::of(plan, work, &runtime);
    eprintln!(
        "dlstatic: linking {} modules into {} (pass 1 of 2)",
        plan.modules.len(),
        output.display()
    );
    let pass1 = work.pass1_output();
    // its debug info is of no use, and not writing it makes this pass cheaper
    line.run(
        plan,
        &pass1,
        &["-Wl,--strip-debug".into()],
        &work.pass1_log(),
    )?;
    lap("pass 1");

    let table = main_table::build(&std::fs::read(&pass1)?, plan, output)
        .with_context(|| format!("{}: reading the first link's symbols", pass1.display()))?;
    let main_symbols = table.symbols.len();
    let main_object = modules::compile_table(&table, &work.main_table_source(), work)?;
    eprintln!(
        "dlstatic: linking {} (pass 2 of 2, {main_symbols} main-program symbols)",
        output.display()
    );
    let tmp_out = temp_output_path(output);
    let map = format!("-Wl,-Map={}", work.map().display());
    let linked = line.run(
        plan,
        &tmp_out,
        &[path_arg(&main_object), map],
        &work.final_log(),
    );
    if linked.is_err() {
        let _ = std::fs::remove_file(&tmp_out);
    }
    linked?;
    crate::fsutil::publish(&tmp_out, output)?;
    let _ = std::fs::remove_file(&pass1);
    work.tool_stamp().write(this_dlstatic()?)?;
    lap("pass 2");
    Ok(LinkSummary {
        reused,
        main_symbols,
        timings,
    })
}

/// The final link's command line, less its output: main inputs, the modules' tables and
/// archives (whole: a module's objects are all part of it), the runtime, then the
/// system libraries as one group and the modules' driver flags.
struct LinkLine {
    inputs: Vec<String>,
    tail: Vec<String>,
}

impl LinkLine {
    fn of(plan: &Plan, work: &LinkWork, runtime: &Path) -> LinkLine {
        let module_file = |m: &crate::plan::PlannedModule, file| {
            path_arg(&work.module_file(&m.module.base(), file))
        };
        let mut inputs = plan.settings.main_inputs.clone();
        inputs.extend(
            plan.modules
                .iter()
                .map(|m| module_file(m, ModuleFile::TableObject)),
        );
        inputs.push("-Wl,--whole-archive".into());
        inputs.extend(
            plan.modules
                .iter()
                .map(|m| module_file(m, ModuleFile::Archive)),
        );
        inputs.push("-Wl,--no-whole-archive".into());
        inputs.push(path_arg(runtime));
        // EXTERN(…) of glibc's public functions (plan/libc_exports.rs)
        inputs.extend(
            plan.program
                .libc_exports
                .iter()
                .map(|e| path_arg(&e.script)),
        );
        let mut tail = vec!["-Wl,--start-group".to_string()];
        tail.extend(plan.system_libs.iter().map(|l| path_arg(&l.archive)));
        tail.push("-Wl,--end-group".into());
        let mut driver_flags: Vec<String> = plan
            .modules
            .iter()
            .flat_map(|m| m.module.linker_flags.iter())
            .filter(|f| !f.starts_with("-Wl,"))
            .cloned()
            .collect();
        driver_flags.sort();
        driver_flags.dedup();
        tail.extend(driver_flags);
        tail.extend(plan.settings.linker_args.iter().cloned());
        LinkLine { inputs, tail }
    }

    /// One `-static` link into `output`, with `extra` after the inputs.
    fn run(&self, plan: &Plan, output: &Path, extra: &[String], log: &Path) -> Result<()> {
        // (-static-pie in place of -static: gcc given both still links non-PIE crt files)
        let kind = if plan.settings.pie {
            "-static-pie"
        } else {
            "-static"
        };
        let mut args = vec![kind.to_string(), "-o".into(), path_arg(output)];
        args.extend(self.inputs.iter().cloned());
        args.extend(extra.iter().cloned());
        args.extend(self.tail.iter().cloned());
        toolchain::link(plan.driver, &args, log)
    }
}

fn temp_output_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".dlstatic-tmp{}", std::process::id()));
    output.with_file_name(name)
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
