//! The audit's text form: findings grouped by severity, aligned, coloured on a terminal.

use std::io::IsTerminal;

use super::{Finding, Report, Severity};

/// Human form: grouped by severity, aligned, coloured on a terminal.
pub fn render_text(report: &Report, colour: bool) -> String {
    let paint = |code: &str, text: &str| {
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let kind_width = report
        .findings
        .iter()
        .map(|f| f.kind.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (severity, label, code) in [
        (Severity::Error, "error", "1;31"),
        (Severity::Warning, "warning", "1;33"),
        (Severity::Info, "info", "36"),
    ] {
        let group: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .collect();
        if group.is_empty() {
            continue;
        }
        out.push_str(&paint(
            code,
            &format!("{} ({})\n", label.to_uppercase(), group.len()),
        ));
        for f in group {
            let symbols = if f.symbols.is_empty() {
                String::new()
            } else {
                let shown: Vec<&str> = f.symbols.iter().take(8).map(String::as_str).collect();
                let more = if f.symbols.len() > 8 {
                    format!(" (+{} more)", f.symbols.len() - 8)
                } else {
                    String::new()
                };
                format!(" [{}{more}]", shown.join(", "))
            };
            out.push_str(&format!(
                "  {}  {:kind_width$}  {}{symbols}\n",
                paint(code, &format!("{label:7}")),
                f.kind,
                f.message
            ));
        }
    }
    let t = &report.totals;
    out.push_str(&format!(
        "totals: {} modules, {} objects, {} symbols renamed, {} exports registered, {} cross-module bindings; {} errors, {} warnings, {} info\n",
        t.modules, t.objects, t.symbols_renamed, t.exports_registered, t.cross_module_bindings,
        report.count(Severity::Error), report.count(Severity::Warning), report.count(Severity::Info)
    ));
    out
}

pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}
