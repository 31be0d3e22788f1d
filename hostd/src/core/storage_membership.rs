//! The core's side of adding a drive to a volume and removing one: the request checked
//! against the committed document and the drives before the job runs, and the document
//! committed again afterwards so that it names the drives the volume has.

use super::storage_ops::{member_layer, new_drive};
use super::{Core, CoreError};
use crate::error::ByText;
use crate::state::{DesiredState, DrivePath};
use crate::storage::membership::{
    Addition, Removal, parse_device_usage, parse_raw_used, removal_refusal, space_refusal,
};
use crate::store::Filesystem;
use crate::system::System;

impl<S: System, F: Filesystem> Core<S, F> {
    /// Checks an addition: the volume is mounted and `new` is a blank drive of this box.
    pub fn addition(&self, volume: &str, new: &str) -> Result<Addition, CoreError> {
        let (_, path) = self.mounted_volume(volume)?;
        let observed = self.system.observe()?.storage;
        let fs = observed.volume(volume).ok_or_else(|| CoreError::NoDrives {
            volume: volume.to_string(),
        })?;
        let drive = new_drive(&observed, new)?;
        let (bcache, cache) = member_layer(&observed, &fs);
        Ok(Addition {
            volume: volume.to_string(),
            mount_point: path.display().to_string(),
            new_device: drive.device().display().to_string(),
            bcache,
            cache,
        })
    }

    /// Checks a removal: `old` is a drive of the mounted, whole volume, the drives left still
    /// carry its profiles, and what is allocated fits on them. Touches nothing.
    pub fn removal(&self, volume: &str, old: &str) -> Result<Removal, CoreError> {
        let (spec, path) = self.mounted_volume(volume)?;
        let observed = self.system.observe()?.storage;
        let fs = observed.volume(volume).ok_or_else(|| CoreError::NoDrives {
            volume: volume.to_string(),
        })?;
        let (devid, drive) = fs
            .members
            .iter()
            .find(|(_, drive)| drive.sys.is_named(old))
            .map(|(devid, drive)| (*devid, *drive))
            .ok_or_else(|| CoreError::NotAMember {
                volume: volume.to_string(),
                drive: old.to_string(),
                or_missing: false,
            })?;
        let members = usize::try_from(fs.num_devices).unwrap_or(usize::MAX);
        if let Some(why) = removal_refusal(
            volume,
            spec.data_profile,
            spec.metadata_profile,
            members,
            fs.missing(),
        ) {
            return Err(CoreError::CannotRemove {
                drive: old.to_string(),
                why,
            });
        }
        let mount_point = path.display().to_string();
        let tools = self.storage_tools();
        let tool = |args: &[&str]| {
            tools
                .btrfs(args)
                .map_err(|error| CoreError::Measure(ByText(error)))
        };
        let show = tool(&["filesystem", "show", "--raw", &mount_point])?;
        let usage = tool(&["filesystem", "usage", "--raw", &mount_point])?;
        let raw_used = parse_raw_used(&usage).ok_or_else(|| CoreError::NoUsedLine {
            mount_point: mount_point.clone(),
        })?;
        if let Some(why) = space_refusal(&parse_device_usage(&show), raw_used, devid) {
            return Err(CoreError::CannotRemove {
                drive: old.to_string(),
                why,
            });
        }
        Ok(Removal {
            volume: volume.to_string(),
            mount_point,
            devid,
            drive: drive.sys.kernel_name.clone(),
            paths: [&drive.sys.by_id, &drive.sys.by_path]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            bcache: drive.btrfs().is_some_and(|m| m.bcache),
        })
    }

    /// Whether drive `path` is a member of volume `volume` now (a failed addition may have
    /// got as far as giving Btrfs the drive). A box that cannot be observed: no.
    pub fn is_member(&self, volume: &str, path: &str) -> bool {
        self.system.observe().is_ok_and(|observed| {
            observed
                .storage
                .volume(volume)
                .is_some_and(|fs| fs.members.values().any(|d| d.sys.is_named(path)))
        })
    }

    /// After an addition: commits the document again with `new` in the volume's drive list.
    /// Returns the new generation.
    pub fn record_addition(&mut self, volume: &str, new: &str) -> Result<u64, CoreError> {
        let new_path = DrivePath::try_from(new).map_err(|error| CoreError::BadValue {
            field: "new",
            error,
        })?;
        self.recommit_drives(volume, &format!("{new} added"), |drives| {
            if !drives.contains(&new_path) {
                drives.push(new_path);
            }
        })
    }

    /// After a removal: commits the document again without the removed drive, whichever of
    /// its stable `paths` the document names it by. Returns the new generation.
    pub fn record_removal(
        &mut self,
        volume: &str,
        old: &str,
        paths: &[String],
    ) -> Result<u64, CoreError> {
        self.recommit_drives(volume, &format!("{old} removed"), |drives| {
            drives.retain(|drive| {
                drive.as_str() != old && !paths.iter().any(|p| p == drive.as_str())
            });
        })
    }

    /// Commits the document again with the volume's drive list changed by `change`.
    pub(super) fn recommit_drives(
        &mut self,
        volume: &str,
        what: &str,
        change: impl FnOnce(&mut Vec<DrivePath>),
    ) -> Result<u64, CoreError> {
        let mut desired: DesiredState = self
            .current()?
            .map(|(_, state)| state.into_inner())
            .unwrap_or_default();
        let spec = desired
            .storage
            .volumes
            .iter_mut()
            .find(|v| v.name.as_str() == volume)
            .ok_or_else(|| CoreError::NoSuchVolume {
                name: volume.to_string(),
                known: Vec::new(),
            })?;
        change(&mut spec.drives);
        let desired = desired.validated()?;
        let generation = self.store.commit(&desired)?;
        tracing::info!(%generation, "volume {volume}: {what} in the document");
        Ok(generation.get())
    }
}
