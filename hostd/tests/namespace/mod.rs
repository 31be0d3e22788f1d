//! The root-only tier's one trick, shared by its test files: a test re-runs itself, alone,
//! under `unshare` in a fresh namespace, and passes only if the child passed.

use std::process::Command;

/// Re-runs `test` of this test binary under `unshare <unshare_args>` with `inside` set in
/// its environment, and fails (with the child's output) unless the child passed. `what`
/// names the namespace in the failure.
pub fn rerun_inside(test: &str, unshare_args: &[&str], inside: &str, what: &str) {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let output = Command::new("unshare")
        .args(unshare_args)
        .arg("--")
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(inside, "1")
        .output()
        .expect("unshare runs (util-linux; set-up checks it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} in a fresh {what} namespace failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
