//! Subvolumes, read-only snapshots and writable clones through libbtrfsutil (btrfs-progs'
//! own library, linked statically from libbtrfsutil-dev): the live half of
//! [`StorageTools`](crate::storage::tools::StorageTools)' subvolume methods. The checks
//! around them (a name that is free, a source that exists) are `storage/subvolumes.rs`'.
//!
//! Sizes are `du`-like: the blocks allocated to each subvolume's files. Blocks a snapshot
//! shares with its origin are counted in both, so the sizes say how much each holds, not
//! how much deleting it would free. Exclusive sizes need qgroups, whose accounting costs
//! every write on the volume; not worth it for a listing.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::storage::subvolumes::{SubvolumeEntry, SubvolumeError};

/// `BTRFS_ROOT_SUBVOL_RDONLY` in the subvolume's root item flags.
const READ_ONLY_FLAG: u64 = 1;

pub fn is_subvolume(path: &Path) -> bool {
    libbtrfsutil::is_subvolume(path).unwrap_or(false)
}

pub fn create(path: &Path) -> Result<(), SubvolumeError> {
    libbtrfsutil::create_subvolume(path).map_err(|source| SubvolumeError::Btrfs {
        what: "create subvolume",
        path: path.to_path_buf(),
        source,
    })
}

pub fn snapshot(from: &Path, to: &Path, writable: bool) -> Result<(), SubvolumeError> {
    libbtrfsutil::CreateSnapshotOptions::new()
        .readonly(!writable)
        .create(from, to)
        .map_err(|source| SubvolumeError::Btrfs {
            what: "snapshot into",
            path: to.to_path_buf(),
            source,
        })
}

pub fn delete(path: &Path) -> Result<(), SubvolumeError> {
    // A read-only snapshot can be deleted as it is: the kernel checks the parent
    // directory's permissions, not the snapshot's flag.
    libbtrfsutil::delete_subvolume(path).map_err(|source| SubvolumeError::Btrfs {
        what: "delete subvolume",
        path: path.to_path_buf(),
        source,
    })
}

/// Every subvolume directly under the mount point, by name.
pub fn list(mount_point: &Path) -> Result<Vec<SubvolumeEntry>, SubvolumeError> {
    let btrfs = |source| SubvolumeError::Btrfs {
        what: "list the subvolumes of",
        path: mount_point.to_path_buf(),
        source,
    };
    let mut found = Vec::new();
    for item in libbtrfsutil::IterateSubvolume::new(mount_point)
        .iter_with_info()
        .map_err(btrfs)?
    {
        let (path, info) = item.map_err(btrfs)?;
        found.push((path, info));
    }
    let mut entries = Vec::new();
    for (path, info) in &found {
        // Nested subvolumes are not Cairn's; only the top level is listed.
        if path.components().count() != 1 {
            continue;
        }
        let origin = info.parent_uuid().and_then(|parent| {
            found
                .iter()
                .find(|(_, other)| other.uuid() == parent)
                .map(|(other_path, _)| other_path.display().to_string())
        });
        let full = mount_point.join(path);
        entries.push(SubvolumeEntry {
            name: path.display().to_string(),
            id: info.id(),
            read_only: info.flags() & READ_ONLY_FLAG != 0,
            origin,
            created: u64::try_from(info.otime()).unwrap_or(0),
            bytes: allocated_bytes(&full)?,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Blocks allocated to the files under `dir`, staying inside its subvolume (`st_dev`
/// differs across subvolume boundaries).
fn allocated_bytes(dir: &Path) -> Result<u64, SubvolumeError> {
    fn walk(path: &Path) -> impl FnOnce(std::io::Error) -> SubvolumeError + '_ {
        move |source| SubvolumeError::Walk {
            path: path.to_path_buf(),
            source,
        }
    }
    let root = std::fs::symlink_metadata(dir).map_err(walk(dir))?;
    let mut total = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).map_err(walk(&current))? {
            let entry = entry.map_err(walk(&current))?;
            let meta = entry.metadata().map_err(walk(&entry.path()))?;
            if meta.dev() != root.dev() {
                continue;
            }
            // st_blocks counts 512-byte units whatever the filesystem's block size.
            total = total.saturating_add(meta.blocks().saturating_mul(512));
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(total)
}
