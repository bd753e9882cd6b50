//! Progress on stderr: a counting bar for per-module work, and a spinner with the step
//! name and elapsed time for long external commands (configure, make) whose full
//! output goes to a log file that any error names.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::process;

pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{spinner}} [{{elapsed}}] {{pos}}/{{len}} {what} {{wide_bar}}"
    )) {
        bar.set_style(style);
    }
    bar
}

pub struct Step {
    name: String,
    log: PathBuf,
    /// Lines only, never a spinner: steps that run side by side (a terminal line holds
    /// one spinner).
    lines_only: bool,
}

impl Step {
    pub fn new(name: &str, log: &Path) -> Self {
        Step {
            name: name.to_string(),
            log: log.to_path_buf(),
            lines_only: false,
        }
    }

    pub fn lines_only(self, lines_only: bool) -> Self {
        Step { lines_only, ..self }
    }

    /// Run `argv` in `cwd` with stdout and stderr to the log. A spinner shows on a
    /// terminal; otherwise one line when the step starts and one when it ends.
    pub fn run(&self, argv: &[String], cwd: &Path) -> Result<()> {
        let spinner = ProgressBar::new_spinner();
        spinner.set_draw_target(match self.lines_only {
            true => ProgressDrawTarget::hidden(),
            false => ProgressDrawTarget::stderr(),
        });
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed}] {msg}") {
            spinner.set_style(style);
        }
        spinner.set_message(self.name.clone());
        spinner.enable_steady_tick(Duration::from_millis(200));
        if spinner.is_hidden() {
            eprintln!("dlstatic: {} …", self.name);
        }
        let started = Instant::now();
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]).current_dir(cwd);
        let result = process::run_logged(&mut command, &self.log);
        spinner.finish_and_clear();
        result.with_context(|| format!("{} failed", self.name))?;
        eprintln!("dlstatic: {} done in {:.0?}", self.name, started.elapsed());
        Ok(())
    }
}

/// Wall time per stage, for `build --timings`: each `lap` names the stage that just ended.
pub struct Timings {
    enabled: bool,
    last: Instant,
    stages: Vec<(String, Duration)>,
}

impl Timings {
    pub fn new(enabled: bool) -> Self {
        Timings {
            enabled,
            last: Instant::now(),
            stages: Vec::new(),
        }
    }

    pub fn lap(&mut self, stage: &str) {
        let now = Instant::now();
        self.stages.push((stage.to_string(), now - self.last));
        self.last = now;
    }

    /// Stages measured elsewhere (inside `link`); they end now.
    pub fn extend(&mut self, stages: &[(String, Duration)]) {
        self.stages.extend(stages.iter().cloned());
        self.last = Instant::now();
    }

    pub fn print(&self) {
        if !self.enabled {
            return;
        }
        let total: Duration = self.stages.iter().map(|(_, d)| *d).sum();
        eprintln!("dlstatic: timings");
        for (stage, took) in &self.stages {
            eprintln!("  {stage:<30} {:>8.3}s", took.as_secs_f64());
        }
        eprintln!("  {:<30} {:>8.3}s", "total", total.as_secs_f64());
    }
}
