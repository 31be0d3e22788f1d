//! Subvolumes, read-only snapshots and writable clones inside a mounted volume, through
//! libbtrfsutil (btrfs-progs' own library, linked statically from libbtrfsutil-dev).
//!
//! These are on-demand operations, not desired state: guests create and drop snapshots as
//! they run. Every subvolume lives directly under the volume's mount point, named by an
//! [`ObjectName`], so a name can never climb out of the volume.
//!
//! Sizes are `du`-like: the blocks allocated to each subvolume's files. Blocks a snapshot
//! shares with its origin are counted in both, so the sizes say how much each holds, not
//! how much deleting it would free. Exclusive sizes need qgroups, whose accounting costs
//! every write on the volume; not worth it for a listing.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::state::ObjectName;

/// `BTRFS_ROOT_SUBVOL_RDONLY` in the subvolume's root item flags.
const READ_ONLY_FLAG: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SubvolumeError {
    #[error("There is no subvolume {name} in volume {volume}")]
    NotFound { volume: String, name: String },
    #[error("Volume {volume} already has {name}")]
    Exists { volume: String, name: String },
    #[error("Cannot {what} {}", .path.display())]
    Btrfs {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: libbtrfsutil::Error,
    },
    #[error("Cannot read {}", .path.display())]
    Walk {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SubvolumeError {
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::NotFound { .. } | Self::Exists { .. } => true,
            Self::Btrfs { .. } | Self::Walk { .. } => false,
        }
    }
}

pub use cairn_api::storage::SubvolumeEntry;

/// A volume's mount point and name, for messages.
#[derive(Debug, Clone, Copy)]
pub struct Volume<'a> {
    pub name: &'a str,
    pub mount_point: &'a Path,
}

impl Volume<'_> {
    fn path_of(&self, name: &ObjectName) -> PathBuf {
        self.mount_point.join(name.as_str())
    }

    fn existing(&self, name: &ObjectName) -> Result<PathBuf, SubvolumeError> {
        let path = self.path_of(name);
        if libbtrfsutil::is_subvolume(&path).unwrap_or(false) {
            Ok(path)
        } else {
            Err(SubvolumeError::NotFound {
                volume: self.name.to_string(),
                name: name.to_string(),
            })
        }
    }

    fn free(&self, name: &ObjectName) -> Result<PathBuf, SubvolumeError> {
        let path = self.path_of(name);
        if path.symlink_metadata().is_ok() {
            return Err(SubvolumeError::Exists {
                volume: self.name.to_string(),
                name: name.to_string(),
            });
        }
        Ok(path)
    }

    pub fn create(&self, name: &ObjectName) -> Result<(), SubvolumeError> {
        let path = self.free(name)?;
        libbtrfsutil::create_subvolume(&path).map_err(|source| SubvolumeError::Btrfs {
            what: "create subvolume",
            path,
            source,
        })
    }

    /// A read-only snapshot, or with `writable` a clone that can diverge from its origin.
    pub fn snapshot(
        &self,
        source: &ObjectName,
        name: &ObjectName,
        writable: bool,
    ) -> Result<(), SubvolumeError> {
        let from = self.existing(source)?;
        let path = self.free(name)?;
        libbtrfsutil::CreateSnapshotOptions::new()
            .readonly(!writable)
            .create(&from, &path)
            .map_err(|source| SubvolumeError::Btrfs {
                what: "snapshot into",
                path,
                source,
            })
    }

    pub fn delete(&self, name: &ObjectName) -> Result<(), SubvolumeError> {
        let path = self.existing(name)?;
        // A read-only snapshot can be deleted as it is: the kernel checks the parent
        // directory's permissions, not the snapshot's flag.
        libbtrfsutil::delete_subvolume(&path).map_err(|source| SubvolumeError::Btrfs {
            what: "delete subvolume",
            path,
            source,
        })
    }

    /// Every subvolume directly under the mount point, by name.
    pub fn list(&self) -> Result<Vec<SubvolumeEntry>, SubvolumeError> {
        let btrfs = |source| SubvolumeError::Btrfs {
            what: "list the subvolumes of",
            path: self.mount_point.to_path_buf(),
            source,
        };
        let mut found = Vec::new();
        for item in libbtrfsutil::IterateSubvolume::new(self.mount_point)
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
            let full = self.mount_point.join(path);
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
