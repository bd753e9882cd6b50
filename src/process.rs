//! Running other programs (configure, make, pip, the compiler, the linker, pkg-config):
//! one way to start a command, keep its output, and report a failure — the command,
//! its exit status, the lines that say why, and the log that holds the rest.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result};

/// A command that ran and failed.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` failed ({status}){}{}", excerpt(.lines), log_note(.log))]
pub struct Failed {
    pub command: String,
    pub status: String,
    /// The lines of its output that say why (by default its last ones).
    pub lines: Vec<String>,
    pub log: Option<PathBuf>,
}

fn excerpt(lines: &[String]) -> String {
    match lines.is_empty() {
        true => String::new(),
        false => format!(": {}", lines.join(" | ")),
    }
}

fn log_note(log: &Option<PathBuf>) -> String {
    log.as_ref()
        .map(|log| format!(" (full log: {})", log.display()))
        .unwrap_or_default()
}

/// Run `command` with its output going to `log` (which starts with the command line).
/// Suits long steps whose output nobody reads unless they fail.
pub fn run_logged(command: &mut Command, log: &Path) -> Result<()> {
    run_logged_picking(command, log, last_lines)
}

/// As run_logged; `pick` chooses the lines of the log that explain a failure.
pub fn run_logged_picking(
    command: &mut Command,
    log: &Path,
    pick: fn(&str) -> Vec<String>,
) -> Result<()> {
    let shown = describe(command);
    let mut file = std::fs::File::create(log)
        .with_context(|| format!("{}: cannot create log", log.display()))?;
    std::io::Write::write_all(&mut file, format!("$ {shown}\n").as_bytes())?;
    let status = command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read(log).unwrap_or_default();
    Err(Failed {
        command: shown,
        status: status.to_string(),
        lines: pick(&String::from_utf8_lossy(&text)),
        log: Some(log.to_path_buf()),
    }
    .into())
}

/// Run `command` and return its output; a failure says why from its stderr.
pub fn run_captured(command: &mut Command) -> Result<Output> {
    let shown = describe(command);
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if out.status.success() {
        return Ok(out);
    }
    Err(Failed {
        command: shown,
        status: out.status.to_string(),
        lines: last_lines(&String::from_utf8_lossy(&out.stderr)),
        log: None,
    }
    .into())
}

/// The stdout of a query (pkg-config, dpkg -S) that ran and succeeded; None otherwise,
/// since an absent tool or an unknown name both just mean "no answer".
pub fn query(command: &mut Command) -> Option<String> {
    let out = command.stdin(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last few non-empty lines: where most tools say what went wrong.
pub fn last_lines(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..]
        .iter()
        .map(|l| l.trim().to_string())
        .collect()
}

/// `program arg…` as a shell would show it (arguments quoted where they need it); a
/// long command line (a link of hundreds of objects) is cut short — its log has it all.
pub fn describe(command: &Command) -> String {
    const SHOWN_ARGS: usize = 6;
    let mut shown = command.get_program().to_string_lossy().into_owned();
    let count = command.get_args().count();
    for arg in command.get_args().take(SHOWN_ARGS) {
        let arg = arg.to_string_lossy();
        let plain = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
        match plain {
            true => write!(shown, " {arg}"),
            false => write!(shown, " '{}'", arg.replace('\'', r"'\''")),
        }
        .expect("writing to a String");
    }
    if count > SHOWN_ARGS {
        write!(shown, " … ({count} arguments)").expect("writing to a String");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_command_status_lines_and_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("step.log");
        let error = run_logged(
            Command::new("sh").args(["-c", "echo one; echo two >&2; exit 3"]),
            &log,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("`sh -c 'echo one; echo two >&2; exit 3'` failed (exit status: 3): "),
            "{error}"
        );
        assert!(error.contains("one | two"), "{error}");
        assert!(
            error.ends_with(&format!("(full log: {})", log.display())),
            "{error}"
        );
        assert!(
            std::fs::read_to_string(&log)
                .unwrap()
                .starts_with("$ sh -c")
        );
        let captured = run_captured(Command::new("sh").args(["-c", "echo bad >&2; false"]));
        assert!(
            captured
                .unwrap_err()
                .to_string()
                .ends_with("(exit status: 1): bad")
        );
        assert_eq!(
            query(Command::new("sh").args(["-c", "echo hi"])).as_deref(),
            Some("hi\n")
        );
        assert_eq!(query(&mut Command::new("/nonexistent/tool")), None);
    }
}
