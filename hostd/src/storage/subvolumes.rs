//! Subvolumes, read-only snapshots and writable clones inside a mounted volume: the checks
//! around each operation, over [`StorageTools`] (libbtrfsutil on the box, see
//! `execute/subvolumes.rs`; a double in the core's tests).
//!
//! These are on-demand operations, not desired state: guests create and drop snapshots as
//! they run. Every subvolume lives directly under the volume's mount point, named by an
//! [`ObjectName`], so a name can never climb out of the volume.

use std::path::{Path, PathBuf};

use super::tools::StorageTools;
use crate::state::ObjectName;

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

/// A volume's mount point and name (for messages), and the tools that reach it.
#[derive(Debug, Clone, Copy)]
pub struct Volume<'a> {
    pub name: &'a str,
    pub mount_point: &'a Path,
    pub tools: &'a dyn StorageTools,
}

impl Volume<'_> {
    fn path_of(&self, name: &ObjectName) -> PathBuf {
        self.mount_point.join(name.as_str())
    }

    fn existing(&self, name: &ObjectName) -> Result<PathBuf, SubvolumeError> {
        let path = self.path_of(name);
        if self.tools.is_subvolume(&path) {
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
        if self.tools.occupied(&path) {
            return Err(SubvolumeError::Exists {
                volume: self.name.to_string(),
                name: name.to_string(),
            });
        }
        Ok(path)
    }

    pub fn create(&self, name: &ObjectName) -> Result<(), SubvolumeError> {
        let path = self.free(name)?;
        self.tools.create_subvolume(&path)
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
        self.tools.snapshot_subvolume(&from, &path, writable)
    }

    pub fn delete(&self, name: &ObjectName) -> Result<(), SubvolumeError> {
        let path = self.existing(name)?;
        self.tools.delete_subvolume(&path)
    }

    /// Every subvolume directly under the mount point, by name.
    pub fn list(&self) -> Result<Vec<SubvolumeEntry>, SubvolumeError> {
        self.tools.list_subvolumes(self.mount_point)
    }
}
