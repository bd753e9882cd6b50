//! The runtime shim under ASan+UBSan and TSan (tests/sanitize/run.sh): 8 threads doing
//! dlopen/dlsym/dlclose/dladdr/dlinfo/dlerror, every answer checked, no sanitizer report.
//! A short run here; `make sanitize` runs 1e5 rounds per thread.

use std::process::Command;

#[test]
fn shim_is_clean_under_asan_ubsan_and_tsan() {
    let out = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/sanitize/run.sh"
    ))
    .arg("5000")
    .output()
    .expect("run.sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sanitized shim failed:\n{stdout}{stderr}"
    );
    assert_eq!(
        stdout
            .matches("8 threads x 5000 rounds: 0 failed checks")
            .count(),
        2,
        "{stdout}"
    );
}
