//! Shared by the tests that check our bytes with tools we did not write.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of these helpers"
)]

use std::process::Command;

/// Whether `program --version`-style probe succeeds. Under `CI=true` a
/// missing tool fails the test (CI installs it); elsewhere the test is
/// skipped with a message.
pub fn require(program: &str, probe: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(probe)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} is required under CI=true"
        );
        eprintln!(
            "skipping: {program} is not installed (apt-get install the package; .ci/run does)"
        );
    }
    ok
}

/// A fresh directory under the target's tmp dir for one test.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
