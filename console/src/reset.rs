//! Resetting a forgotten admin password: boot once with `cairn.console=reset-password` on
//! the kernel command line. The console then removes the stored hash and asks for a new
//! password as on a first boot.
//!
//! Whoever can change the kernel command line holds the box (a direct-kernel boot, or the
//! `options` line of the boot entry on the ESP, a FAT file system any computer can edit), so
//! this gives nothing away that removing the file from the disk would not. It happens once
//! per boot (a marker under the `/run` tmpfs), so a console restarted by init after the new
//! password is set does not throw it away again.

use std::io;
use std::path::Path;

pub const KEY: &str = "cairn.console";
pub const VALUE: &str = "reset-password";
pub const DONE_MARKER: &str = "/run/cairn/console/reset-done";

/// Whether the kernel command line asks for a reset.
pub fn requested(cmdline: &str) -> bool {
    cmdline
        .split_whitespace()
        .filter_map(|word| word.split_once('='))
        .any(|(key, value)| key == KEY && value == VALUE)
}

/// What a reset did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// Not requested, or already done in this boot.
    NotNow,
    /// The hash was removed (or there was none).
    Done,
}

/// Removes `password` if the command line asks for it and this boot has not done it yet.
pub fn apply(cmdline: &str, password: &Path, marker: &Path) -> io::Result<Reset> {
    if !requested(cmdline) || marker.exists() {
        return Ok(Reset::NotNow);
    }
    match std::fs::remove_file(password) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(marker, b"")?;
    Ok(Reset::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_key_and_value() {
        assert!(requested(
            "console=ttyS0,115200 cairn.console=reset-password cairn.board=x"
        ));
        assert!(!requested("console=ttyS0,115200 cairn.board=x"));
        assert!(!requested("cairn.console=reset"));
        assert!(!requested("xcairn.console=reset-password"));
        assert!(!requested("cairn.console"));
    }

    #[test]
    fn removes_the_hash_once_per_boot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let password = dir.path().join("admin.passwd");
        let marker = dir.path().join("run/reset-done");
        let cmdline = "cairn.console=reset-password";
        std::fs::write(&password, "$6$x$y\n").expect("write");
        assert_eq!(
            apply("quiet", &password, &marker).expect("apply"),
            Reset::NotNow
        );
        assert!(password.exists());
        assert_eq!(
            apply(cmdline, &password, &marker).expect("apply"),
            Reset::Done
        );
        assert!(!password.exists());
        std::fs::write(&password, "$6$new$hash\n").expect("write");
        assert_eq!(
            apply(cmdline, &password, &marker).expect("apply"),
            Reset::NotNow
        );
        assert!(
            password.exists(),
            "a second start in one boot must keep the new password"
        );
    }
}
