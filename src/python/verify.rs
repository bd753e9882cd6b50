//! `dlstatic verify OUT`: run the static interpreter inside an empty root that holds
//! only OUT (chroot as root, `unshare -r` otherwise), import every registered module,
//! look up every registered export through dlopen/dlsym, and print a table.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::process;
use crate::python::payload::Manifest;

const SCRIPT: &str = include_str!("verify_modules.py");

#[derive(Debug, serde::Deserialize)]
pub struct ModuleResult {
    pub name: String,
    pub ok: bool,
    /// It works, but an optional dependency nobody asked for is missing.
    #[serde(default)]
    pub warning: bool,
    pub reason: String,
}

/// The command prefix that runs a program with `root` as `/`.
pub fn chroot_command(root: &Path) -> Command {
    let is_root = process::query(Command::new("id").arg("-u")).as_deref() == Some("0\n");
    let mut command = if is_root {
        Command::new("chroot")
    } else {
        let mut c = Command::new("unshare");
        c.args(["-r", "chroot"]);
        c
    };
    command.arg(root);
    command
}

/// Verify the payload at `root` against `manifest`; prints the table, returns the
/// results, and fails when any module failed.
pub fn verify(root: &Path, manifest: &Manifest) -> Result<Vec<ModuleResult>> {
    let before = paths_under(root);
    let results = run_checks(root, manifest);
    remove_new_paths(root, &before)?;
    let results = results?;
    print_table(&results, manifest);
    let failed = results.iter().filter(|r| !r.ok).count();
    let warned = results.iter().filter(|r| r.ok && r.warning).count();
    println!(
        "{} checks in an empty root ({} modules, {} smoke tests): {} ok, {warned} with warnings, {} failed",
        results.len(),
        manifest.modules.len(),
        manifest.smoke_tests.len(),
        results.len() - failed,
        failed
    );
    if failed > 0 {
        bail!(
            "{}: {failed} of {} checks failed verification (table above)",
            root.display(),
            results.len()
        );
    }
    Ok(results)
}

/// Every path under `root`.
fn paths_under(root: &Path) -> HashSet<PathBuf> {
    (walkdir::WalkDir::new(root).into_iter().flatten())
        .map(|entry| entry.into_path())
        .collect()
}

/// What the checks wrote into the payload, removed: the empty root is the payload itself,
/// and an import may write there (matplotlib makes `~/.config/matplotlib` with a font
/// cache), which would make the payload depend on verify having run.
fn remove_new_paths(root: &Path, before: &HashSet<PathBuf>) -> Result<()> {
    let mut new: Vec<PathBuf> = (paths_under(root).into_iter())
        .filter(|path| !before.contains(path))
        .collect();
    // shortest first: removing a new directory removes what is new inside it
    new.sort_by_key(|path| path.components().count());
    for path in new {
        // (gone with a new directory removed before it)
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        let removed = match meta.is_dir() {
            true => std::fs::remove_dir_all(&path),
            false => std::fs::remove_file(&path),
        };
        removed.with_context(|| format!("{}: written by verify, cannot remove", path.display()))?;
    }
    Ok(())
}

/// verify_modules.py inside the empty root, fed the manifest: one JSON line per check.
fn run_checks(root: &Path, manifest: &Manifest) -> Result<Vec<ModuleResult>> {
    let mut child = chroot_command(root)
        .args([manifest.python.as_str(), "-I", "-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "{}: cannot run the interpreter in an empty root (chroot/unshare)",
                root.display()
            )
        })?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(manifest)?)?;
    let out = child.wait_with_output()?;
    let results: Vec<ModuleResult> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let expected = manifest.modules.len() + manifest.smoke_tests.len();
    if results.len() != expected {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("no output");
        bail!(
            "{}: the interpreter stopped after {} of {expected} checks ({}): {last}",
            root.display(),
            results.len(),
            out.status
        );
    }
    Ok(results)
}

/// One row per check: module, package, backend, objects, renamed, result, reason.
fn print_table(results: &[ModuleResult], manifest: &Manifest) {
    let widest = |texts: Vec<usize>, least: usize| texts.into_iter().max().unwrap_or(0).max(least);
    let width = widest(results.iter().map(|r| r.name.len()).collect(), 6);
    let package_width = widest(
        manifest.modules.iter().map(|m| m.package.len()).collect(),
        7,
    );
    let backend_width = widest(
        manifest.modules.iter().map(|m| m.backend.len()).collect(),
        7,
    );
    println!(
        "{:width$}  {:package_width$}  {:backend_width$}  objects  renamed  result  reason",
        "module", "package", "backend"
    );
    for (i, r) in results.iter().enumerate() {
        let (package, backend, objects, renamed) = match manifest.modules.get(i) {
            Some(m) => (
                m.package.as_str(),
                m.backend.as_str(),
                m.objects.to_string(),
                m.renamed.to_string(),
            ),
            None => ("", "", String::new(), String::new()),
        };
        println!(
            "{:width$}  {package:package_width$}  {backend:backend_width$}  {objects:>7}  {renamed:>7}  {:6}  {}",
            r.name,
            match (r.ok, r.warning) {
                (false, _) => "FAIL",
                (true, true) => "warn",
                (true, false) => "ok",
            },
            r.reason
        );
    }
}

pub fn read_manifest(out: &Path) -> Result<Manifest> {
    let path = crate::workdir::BuildWork::for_out(out).manifest();
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "{}: no manifest (was OUT made by `dlstatic build`?)",
            path.display()
        )
    })?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: corrupt manifest", path.display()))
}
