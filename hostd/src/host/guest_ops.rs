//! What the guest supervisor needs from the core: the committed guest definitions, a
//! change to the guests section committed as a new generation (creating and deleting
//! guests), the guest's subvolume, and its ports on the vSwitches.

use std::path::PathBuf;

use super::Core;
use crate::api::HostError;
use crate::guests::layout;
use crate::reconcile::System;
use crate::state::{DesiredState, GuestSpec, ObjectName};
use crate::storage::subvolumes::Volume as Subvolumes;
use crate::store::Filesystem;

impl<S: System, F: Filesystem> Core<S, F> {
    /// The guests of the committed document.
    pub fn committed_guests(&self) -> Result<Vec<GuestSpec>, HostError> {
        Ok(self
            .current()?
            .map(|(_, state)| state.guests)
            .unwrap_or_default())
    }

    /// Commits the committed document with its guests replaced by `guests` (after
    /// validating the whole), as a new generation. Guests act on nothing at commit time:
    /// the supervisor starts and stops them.
    pub fn commit_guests(&mut self, guests: Vec<GuestSpec>) -> Result<u64, HostError> {
        let mut desired: DesiredState = self.current()?.map(|(_, s)| s).unwrap_or_default();
        desired.guests = guests;
        desired.validate()?;
        let generation = self.store.commit(&desired)?;
        tracing::info!(%generation, "committed a new desired state (guests changed)");
        Ok(generation.get())
    }

    /// Where the guest's subvolume is (or will be) on `volume`, which must be mounted.
    pub fn guest_subvolume_path(&self, volume: &str, guest: &str) -> Result<PathBuf, HostError> {
        let (_, mount_point) = self.mounted_volume(volume)?;
        Ok(mount_point.join(layout::subvolume_name(guest)))
    }

    /// The guest's subvolume `vm-<guest>` on `volume`, created when missing.
    pub fn guest_subvolume(&self, volume: &str, guest: &str) -> Result<PathBuf, HostError> {
        let (_, mount_point) = self.mounted_volume(volume)?;
        let name = ObjectName::try_from(layout::subvolume_name(guest))
            .map_err(|error| HostError::Invalid(error.to_string()))?;
        let path = mount_point.join(name.as_str());
        if !path.exists() {
            Subvolumes {
                name: volume,
                mount_point: &mount_point,
            }
            .create(&name)
            .map_err(|error| HostError::ApplyFailed(crate::api::chain(&error)))?;
            tracing::info!("created subvolume {name} on volume {volume} for guest {guest}");
        }
        Ok(path)
    }

    /// Deletes the guest's subvolume and every file in it.
    pub fn delete_guest_subvolume(&self, volume: &str, guest: &str) -> Result<(), HostError> {
        let (_, mount_point) = self.mounted_volume(volume)?;
        let name = ObjectName::try_from(layout::subvolume_name(guest))
            .map_err(|error| HostError::Invalid(error.to_string()))?;
        if !mount_point.join(name.as_str()).exists() {
            return Ok(());
        }
        Subvolumes {
            name: volume,
            mount_point: &mount_point,
        }
        .delete(&name)
        .map_err(|error| HostError::ApplyFailed(crate::api::chain(&error)))
    }
}
