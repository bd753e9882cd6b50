//! What the package tests showed, kept for README's table of packages known to work:
//! one JSON file per package and test under `target/tmp/package-results/`, written only
//! after the test's assertions held. `make package-table` turns them into the table.

use std::path::Path;

/// Record that `package` `version` passed `check` (a short phrase: what was run) in the
/// test binary `test`.
pub fn record(test: &str, package: &str, version: &str, check: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package-results");
    std::fs::create_dir_all(&dir).unwrap();
    let entry = serde_json::json!({
        "package": package,
        "version": version,
        "check": check,
        "test": test,
    });
    let file = dir.join(format!("{}--{test}.json", package.to_lowercase()));
    std::fs::write(file, serde_json::to_string_pretty(&entry).unwrap()).unwrap();
}
