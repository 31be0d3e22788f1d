//! A per-VM scratch directory: sockets, console log, QEMU's stderr, disk overlays and
//! firmware variables. Removed when dropped, so repeated runs leave nothing behind;
//! `CAIRN_KEEP_TEST_DIR=1` keeps it for a post-mortem.

use std::path::{Path, PathBuf};

use tempfile::TempDir;
use thiserror::Error;

use crate::disk::{self, DiskError};

/// Set to keep each test's directory after the test.
pub const KEEP_ENV: &str = "CAIRN_KEEP_TEST_DIR";

#[derive(Debug, Error)]
pub enum WorkDirError {
    #[error("Cannot create a scratch directory under {0} (set TMPDIR elsewhere?)")]
    Create(PathBuf, #[source] std::io::Error),
    #[error("Cannot copy {from} into the scratch directory")]
    Copy {
        from: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot create a disk overlay")]
    Overlay(#[from] DiskError),
}

#[derive(Debug)]
pub struct WorkDir {
    /// `None` once kept: the directory then outlives the test.
    dir: Option<TempDir>,
    path: PathBuf,
}

impl WorkDir {
    /// Creates `$TMPDIR/cairn-<label>-XXXXXX`. Short on purpose: unix socket paths
    /// inside it must stay under the kernel's 108-byte limit.
    pub fn new(label: &str) -> Result<Self, WorkDirError> {
        let parent = std::env::temp_dir();
        let dir = tempfile::Builder::new()
            .prefix(&format!("cairn-{label}-"))
            .tempdir_in(&parent)
            .map_err(|e| WorkDirError::Create(parent, e))?;
        let path = dir.path().to_owned();
        let keep = std::env::var_os(KEEP_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        let dir = if keep {
            eprintln!("keeping test directory {}", path.display());
            // Detaches the directory from cleanup; the returned path is `path`.
            drop(dir.keep());
            None
        } else {
            Some(dir)
        };
        Ok(Self { dir, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn is_kept(&self) -> bool {
        self.dir.is_none()
    }

    /// A qcow2 overlay named `name` over the raw image `base`.
    pub fn overlay(&self, base: &Path, name: &str) -> Result<PathBuf, WorkDirError> {
        let overlay = self.join(name);
        disk::create_overlay(base, &overlay)?;
        Ok(overlay)
    }

    /// A blank qcow2 drive named `name` of `size_mib` MiB.
    pub fn blank_drive(&self, name: &str, size_mib: u64) -> Result<PathBuf, WorkDirError> {
        let path = self.join(name);
        disk::create_blank(&path, size_mib)?;
        Ok(path)
    }

    /// A private, writable copy of `from` (e.g. OVMF's variable store template).
    pub fn copy_in(&self, from: &Path, name: &str) -> Result<PathBuf, WorkDirError> {
        let to = self.join(name);
        std::fs::copy(from, &to).map_err(|source| WorkDirError::Copy {
            from: from.to_owned(),
            source,
        })?;
        Ok(to)
    }
}
