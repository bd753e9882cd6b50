//! `python::modules_txt::parse_file` on any text, from a file in a scratch directory
//! that also holds `other.txt`, so `-r other.txt` includes resolve. Checked: an error
//! or requirements whose origin names a file and line.

use dlstatic::python::modules_txt::parse_file;

/// `-r` with a path outside the scratch directory would read the machine (`/dev/zero`).
fn includes_stay_in_scratch(text: &str) -> bool {
    text.lines().map(str::trim).all(|line| {
        !(line.starts_with("-r") || line.starts_with("--requirement")) || !line.contains('/')
    })
}

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if !includes_stay_in_scratch(text) {
        return;
    }
    let dir = tempfile::tempdir_in(crate::scratch_dir()).expect("scratch directory");
    let path = dir.path().join("modules.txt");
    std::fs::write(
        dir.path().join("other.txt"),
        "idna==3.7\nmarkupsafe 2.1.5\n",
    )
    .unwrap();
    std::fs::write(&path, text).expect("write modules.txt");
    let Ok(requirements) = parse_file(&path) else {
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
