//! The seam between the core's on-demand storage work and the machine: every effect a
//! storage job, a subvolume operation or a free-space look has, behind one trait.
//!
//! An apply acts through the executor (`execute.rs`, behind `system::System`); the jobs the
//! API starts outside an apply (replace, add, remove, scrub, subvolumes) and the views act
//! through [`StorageTools`]. The core gets them from its `System`, so a test of the core
//! hands it a recording double, and `tests/mount_namespace.rs` drives
//! [`LiveStorageTools`](super::execute::tools::LiveStorageTools) against the real kernel.
//!
//! The methods are primitives (one btrfs command, one libbtrfsutil call), not whole jobs:
//! the sequence a job runs (`maintenance.rs`, `membership.rs`) and the checks around a
//! subvolume (`subvolumes.rs`) stay above the seam, where a test sees every command.

use std::fmt;
use std::path::Path;
use std::process::Output;

use super::subvolumes::{SubvolumeEntry, SubvolumeError};
use super::tool::{StorageError, tool_output};

/// What the core's storage jobs do to the box; [`LiveStorageTools`](super::execute::tools::LiveStorageTools)
/// does it for real.
pub trait StorageTools: Send + Sync + fmt::Debug {
    /// Runs `btrfs args…` to its end; its output whatever its exit status (an error only
    /// when it cannot run).
    fn btrfs_output(&self, args: &[&str]) -> Result<Output, StorageError>;

    /// Runs a long `btrfs args…` (replace, balance, device remove), calling `poll` every
    /// half second meanwhile; its standard output, or its failure with its stderr.
    fn btrfs_watched(&self, args: &[&str], poll: &mut dyn FnMut()) -> Result<String, StorageError>;

    /// Makes the blank drive `device` (`/dev/sdX`) a bcache backing device attached to
    /// `cache` (set UUID, bcache mode) when there is one; returns its `/dev/bcacheN`.
    /// `progress(percent, step)`.
    fn make_bcache_member(
        &self,
        device: &str,
        cache: Option<&(String, String)>,
        progress: &dyn Fn(u32, &str),
    ) -> Result<String, StorageError>;

    /// Detaches and stops the bcache backing device on `drive` (kernel name) of `volume`,
    /// then blanks the drive.
    fn release_bcache_member(
        &self,
        volume: &str,
        drive: &str,
        report: &dyn Fn(&str),
    ) -> Result<(), StorageError>;

    /// Zeroes the first MiB of `device`, so that it reads as blank.
    fn zero_head(&self, device: &Path) -> Result<(), StorageError>;

    /// Whether `path` is a Btrfs subvolume (anything unreadable: no).
    fn is_subvolume(&self, path: &Path) -> bool;

    /// Whether anything is at `path`, a dangling symbolic link included.
    fn occupied(&self, path: &Path) -> bool;

    /// Whether `path` leads to something (symbolic links followed, as `Path::exists`).
    fn exists(&self, path: &Path) -> bool;

    fn create_subvolume(&self, path: &Path) -> Result<(), SubvolumeError>;

    /// A snapshot of `from` at `to`: read-only, or with `writable` a clone.
    fn snapshot_subvolume(
        &self,
        from: &Path,
        to: &Path,
        writable: bool,
    ) -> Result<(), SubvolumeError>;

    fn delete_subvolume(&self, path: &Path) -> Result<(), SubvolumeError>;

    /// Every subvolume directly under `mount_point`, by name, with its size.
    fn list_subvolumes(&self, mount_point: &Path) -> Result<Vec<SubvolumeEntry>, SubvolumeError>;

    /// (size, used) in bytes of the filesystem mounted at `path`; `None` when it cannot be
    /// read (the view then shows no figures).
    fn space(&self, path: &str) -> Option<(u64, u64)>;

    /// `btrfs args…`: its standard output, or its failure with what it said on stderr.
    fn btrfs(&self, args: &[&str]) -> Result<String, StorageError> {
        tool_output("btrfs", &self.btrfs_output(args)?)
    }

    /// What a status command printed, whatever its exit status: `btrfs balance status`
    /// exits 1 while a balance runs. `None` when it cannot run.
    fn btrfs_status(&self, args: &[&str]) -> Option<String> {
        let output = self.btrfs_output(args).ok()?;
        Some(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}
