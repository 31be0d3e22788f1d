//! The core's on-demand storage operations: what they need resolved from the committed
//! document and the drives before a job runs them (the jobs themselves run without the
//! core's lock, see `storage_jobs.rs`).

use std::path::PathBuf;
use std::sync::Arc;

use super::{Core, CoreError};
use crate::state::{DrivePath, ObjectName, Volume};
use crate::storage::maintenance::Replacement;
use crate::storage::observe::{Drive, Filesystem as ObservedFilesystem, StorageObserved};
use crate::storage::plan::{describe, mount_point};
use crate::storage::signature::Contents;
use crate::storage::tools::StorageTools;
use crate::store::Filesystem;
use crate::system::System;

/// How `cairnctl storage replace` names the member that is gone.
pub const MISSING: &str = "missing";

impl<S: System, F: Filesystem> Core<S, F> {
    /// What the storage jobs act through (the system's; a double in tests).
    pub(super) fn storage_tools(&self) -> Arc<dyn StorageTools> {
        self.system.storage_tools()
    }

    /// Whether the committed document has volumes (a store that cannot be read: no).
    pub fn has_volumes(&self) -> bool {
        self.current()
            .ok()
            .flatten()
            .is_some_and(|(_, state)| !state.storage.volumes.is_empty())
    }

    /// The committed volumes that have a scrub schedule and are mounted, with their interval.
    pub fn scheduled_scrubs(&self) -> Result<Vec<(String, u16)>, CoreError> {
        let desired = self.current()?.map(|(_, state)| state).unwrap_or_default();
        Ok(desired
            .storage
            .volumes
            .iter()
            .filter_map(|v| Some((v.name.to_string(), v.scrub_every_days?)))
            .filter(|(name, _)| self.mounted_volume(name).is_ok())
            .collect())
    }

    /// The document's volume `name` and its mount point; an error unless it is mounted.
    pub fn mounted_volume(&self, name: &str) -> Result<(Volume, PathBuf), CoreError> {
        let desired = self.current()?.map(|(_, state)| state).unwrap_or_default();
        let Some((index, volume)) = desired
            .storage
            .volumes
            .iter()
            .enumerate()
            .find(|(_, v)| v.name.as_str() == name)
        else {
            let names: Vec<&str> = desired
                .storage
                .volumes
                .iter()
                .map(|v| v.name.as_str())
                .collect();
            return Err(CoreError::NoSuchVolume {
                name: name.to_string(),
                known: names.into_iter().map(String::from).collect(),
            });
        };
        let path = mount_point(index);
        let observed = self.system.observe()?;
        if observed
            .storage
            .mount_at(&path)
            .is_none_or(|entry| entry.fs_type != "btrfs")
        {
            return Err(CoreError::NotMounted {
                volume: name.to_string(),
                path,
            });
        }
        Ok((volume.clone(), PathBuf::from(path)))
    }

    /// Checks a replace request: `old` is a member's drive path or `missing`, `new` a blank
    /// drive that is not the boot device.
    pub fn replacement(
        &self,
        volume: &str,
        old: &str,
        new: &str,
    ) -> Result<Replacement, CoreError> {
        let (spec, path) = self.mounted_volume(volume)?;
        let observed = self.system.observe()?.storage;
        let fs = observed.volume(volume).ok_or_else(|| CoreError::NoDrives {
            volume: volume.to_string(),
        })?;
        let devid = if old == MISSING {
            (1..=fs.num_devices)
                .find(|devid| !fs.members.contains_key(devid))
                .ok_or_else(|| CoreError::NoMissingDrive {
                    volume: volume.to_string(),
                })?
        } else {
            fs.members
                .iter()
                .find(|(_, drive)| drive.sys.is_named(old))
                .map(|(devid, _)| *devid)
                .ok_or_else(|| CoreError::NotAMember {
                    volume: volume.to_string(),
                    drive: old.to_string(),
                    or_missing: true,
                })?
        };
        let drive = new_drive(&observed, new)?;
        let (bcache, cache) = member_layer(&observed, &fs);
        Ok(Replacement {
            bcache,
            cache,
            volume: volume.to_string(),
            mount_point: path.display().to_string(),
            devid,
            new_device: drive.device().display().to_string(),
            data: spec.data_profile,
            metadata: spec.metadata_profile,
        })
    }
}

impl<S: System, F: Filesystem> Core<S, F> {
    /// After a replace: commits the document again with the new drive in place of the old
    /// one (for `missing`, the first listed drive that is not on the box), so that the
    /// desired state names the drives the volume has. Returns the new generation.
    pub fn record_replacement(
        &mut self,
        volume: &str,
        old: &str,
        new: &str,
    ) -> Result<u64, CoreError> {
        let observed = self.system.observe()?.storage;
        let new_path = DrivePath::try_from(new).map_err(|error| CoreError::BadValue {
            field: "new",
            error,
        })?;
        self.recommit_drives(volume, &format!("{old} replaced by {new}"), |drives| {
            let slot = drives.iter().position(|drive| {
                if old == MISSING {
                    observed.drive_named(drive.as_str()).is_none()
                } else {
                    drive.as_str() == old
                }
            });
            match slot {
                Some(index) => drives[index] = new_path,
                // The old drive was not listed by this name: the new one is added, so that
                // the document still names every member.
                None => drives.push(new_path),
            }
        })
    }
}

/// What a drive joining volume `fs` goes under: bcache when the members are on it, and the
/// cache set and bcache mode they are attached to, if any.
pub(super) fn member_layer(
    observed: &StorageObserved,
    fs: &ObservedFilesystem<'_>,
) -> (bool, Option<(String, String)>) {
    let bcache = fs
        .members
        .values()
        .any(|d| d.btrfs().is_some_and(|m| m.bcache));
    (
        bcache,
        observed.volume_cache(fs).map(|c| (c.set_uuid, c.mode)),
    )
}

/// The blank drive `new` that is to join a volume: on the box, not the boot device, blank.
pub(super) fn new_drive<'a>(
    observed: &'a StorageObserved,
    new: &str,
) -> Result<&'a Drive, CoreError> {
    let drive = observed
        .drive_named(new)
        .ok_or_else(|| CoreError::NoSuchDrive {
            drive: new.to_string(),
        })?;
    if drive.sys.is_boot_device() {
        return Err(CoreError::BootDrive {
            drive: new.to_string(),
        });
    }
    if drive.contents != Contents::Blank {
        return Err(CoreError::NotBlank {
            drive: new.to_string(),
            holds: describe(&drive.contents),
        });
    }
    Ok(drive)
}

/// A subvolume name from the wire, checked like every name in the document.
pub fn subvolume_name(field: &'static str, text: &str) -> Result<ObjectName, CoreError> {
    ObjectName::try_from(text).map_err(|error| CoreError::BadValue { field, error })
}
