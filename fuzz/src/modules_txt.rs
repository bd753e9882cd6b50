//! `python::modules_txt::parse_str` on any text, as a modules.txt in a scratch directory
//! that also holds `other.txt`, so `-r other.txt` includes resolve. Checked: an error
//! or requirements whose origin names a file and line.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use dlstatic::python::modules_txt::parse_str;

/// `-r` with a path outside the scratch directory would read the machine (`/dev/zero`).
fn includes_stay_in_scratch(text: &str) -> bool {
    text.lines().map(str::trim).all(|line| {
        !(line.starts_with("-r") || line.starts_with("--requirement")) || !line.contains('/')
    })
}

/// The scratch directory's `modules.txt` path, with `other.txt` beside it (written once
/// per process: writing files per input made this target I/O-bound, ~900 runs/s).
fn modules_path() -> &'static Path {
    static PATH: LazyLock<PathBuf> = LazyLock::new(|| {
        let dir = crate::scratch_dir();
        std::fs::write(dir.join("other.txt"), "idna==3.7\nmarkupsafe 2.1.5\n").unwrap();
        dir.join("modules.txt")
    });
    &PATH
}

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if !includes_stay_in_scratch(text) {
        return;
    }
    // the text is read as modules.txt (parse_file reads the file, then does this)
    let Ok(requirements) = parse_str(text, modules_path()) else {
        return;
    };
    for requirement in requirements {
        let (file, line) = requirement
            .origin
            .rsplit_once(':')
            .expect("origin is file:line");
        assert!(file.ends_with(".txt"), "origin file {file}");
        assert!(
            line.parse::<usize>().is_ok_and(|n| n >= 1),
            "origin line {line}"
        );
    }
}
