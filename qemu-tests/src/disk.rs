//! Disk files through `qemu-img`: per-test copy-on-write overlays over the built image,
//! and conversion back to raw so the host can read what the guest wrote.
//!
//! Overlays keep the image under `build/image/` untouched (tests run in parallel and
//! each gets its own writes) and cost nothing to create: only written clusters take space.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

const QEMU_IMG: &str = "qemu-img";

#[derive(Debug, Error)]
pub enum DiskError {
    #[error("Base image {path} not found")]
    BaseMissing {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot run {QEMU_IMG}; install Debian's qemu-utils package")]
    ToolMissing(#[source] std::io::Error),
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// Creates `overlay` as a qcow2 file backed by the raw image `base`.
pub fn create_overlay(base: &Path, overlay: &Path) -> Result<(), DiskError> {
    // qemu-img resolves a relative backing path against the overlay's directory, not
    // ours: hand it an absolute one.
    let base = base
        .canonicalize()
        .map_err(|source| DiskError::BaseMissing {
            path: base.to_owned(),
            source,
        })?;
    let mut command = Command::new(QEMU_IMG);
    command
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&base)
        .arg(overlay);
    run(command)
}

/// Creates `path` as an empty qcow2 file of `size_mib` MiB: a blank drive (only written
/// clusters take space on the host).
pub fn create_blank(path: &Path, size_mib: u64) -> Result<(), DiskError> {
    let mut command = Command::new(QEMU_IMG);
    command
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg(format!("{size_mib}M"));
    run(command)
}

/// Writes the guest-visible contents of the qcow2 file `source` to the raw file `target`.
/// QEMU must have exited (or `source` must not be in use): qemu-img takes the image lock.
pub fn convert_to_raw(source: &Path, target: &Path) -> Result<(), DiskError> {
    let mut command = Command::new(QEMU_IMG);
    command
        .args(["convert", "-q", "-f", "qcow2", "-O", "raw"])
        .arg(source)
        .arg(target);
    run(command)
}

fn run(mut command: Command) -> Result<(), DiskError> {
    let output = command.output().map_err(DiskError::ToolMissing)?;
    if output.status.success() {
        return Ok(());
    }
    Err(DiskError::Failed {
        command: format!("{command:?}"),
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn have_qemu_img() -> bool {
        let found = Command::new(QEMU_IMG).arg("--version").output().is_ok();
        if !found {
            eprintln!("skipped: qemu-img is not installed (Debian package qemu-utils)");
        }
        found
    }

    #[test]
    fn overlay_reads_through_and_converts_back_to_raw() {
        if !have_qemu_img() {
            return;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().join("base.img");
        let mut content = vec![0u8; 1 << 20];
        content[4096..4100].copy_from_slice(b"base");
        fs::write(&base, &content).expect("base");

        let overlay = dir.path().join("over.qcow2");
        create_overlay(&base, &overlay).expect("overlay");
        let raw = dir.path().join("back.raw");
        convert_to_raw(&overlay, &raw).expect("convert");
        assert_eq!(fs::read(&raw).expect("raw"), content);
    }

    #[test]
    fn a_missing_base_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = create_overlay(&dir.path().join("nope.img"), &dir.path().join("o.qcow2"))
            .expect_err("no base");
        assert!(matches!(err, DiskError::BaseMissing { .. }), "{err:?}");
    }
}
