//! [`StorageTools`] on the real box: btrfs-progs, bcache through sysfs, libbtrfsutil and
//! statvfs(2).

use std::path::Path;
use std::process::{Command, Output};

use super::{cache, subvolumes, watched};
use crate::storage::subvolumes::{SubvolumeEntry, SubvolumeError};
use crate::storage::tool::StorageError;
use crate::storage::tools::StorageTools;

/// The live tools: what hostd's `LiveSystem` hands the core.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveStorageTools;

impl StorageTools for LiveStorageTools {
    fn btrfs_output(&self, args: &[&str]) -> Result<Output, StorageError> {
        Command::new("btrfs")
            .args(args)
            .output()
            .map_err(|source| StorageError::Spawn {
                program: "btrfs",
                source,
            })
    }

    fn btrfs_watched(&self, args: &[&str], poll: &mut dyn FnMut()) -> Result<String, StorageError> {
        watched::run_btrfs_watched(args, poll)
    }

    fn make_bcache_member(
        &self,
        device: &str,
        cache: Option<&(String, String)>,
        progress: &dyn Fn(u32, &str),
    ) -> Result<String, StorageError> {
        cache::make_member(device, cache, progress)
    }

    fn release_bcache_member(
        &self,
        volume: &str,
        drive: &str,
        report: &dyn Fn(&str),
    ) -> Result<(), StorageError> {
        cache::release_member(volume, drive, report)
    }

    fn zero_head(&self, device: &Path) -> Result<(), StorageError> {
        cache::zero_head(device)
    }

    fn is_subvolume(&self, path: &Path) -> bool {
        subvolumes::is_subvolume(path)
    }

    fn occupied(&self, path: &Path) -> bool {
        path.symlink_metadata().is_ok()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn create_subvolume(&self, path: &Path) -> Result<(), SubvolumeError> {
        subvolumes::create(path)
    }

    fn snapshot_subvolume(
        &self,
        from: &Path,
        to: &Path,
        writable: bool,
    ) -> Result<(), SubvolumeError> {
        subvolumes::snapshot(from, to, writable)
    }

    fn delete_subvolume(&self, path: &Path) -> Result<(), SubvolumeError> {
        subvolumes::delete(path)
    }

    fn list_subvolumes(&self, mount_point: &Path) -> Result<Vec<SubvolumeEntry>, SubvolumeError> {
        subvolumes::list(mount_point)
    }

    fn space(&self, path: &str) -> Option<(u64, u64)> {
        let stats = nix::sys::statvfs::statvfs(path).ok()?;
        let fragment = stats.fragment_size();
        let size = stats.blocks().saturating_mul(fragment);
        let free = stats.blocks_free().saturating_mul(fragment);
        Some((size, size.saturating_sub(free)))
    }
}
