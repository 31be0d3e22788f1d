//! What the guest supervisor needs from the core: the committed guest definitions, a
//! change to the guests section committed as a new generation (creating and deleting
//! guests), the guest's subvolume, and its ports on the vSwitches.

use std::path::PathBuf;

use super::{Core, CoreError, SharedCore};
use crate::error::chain;
use crate::guests::core_services::{CoreServices, ServiceError};
use crate::guests::layout;
use crate::guests::vm_config::{self, FileKind};
use crate::network::taps::TapError;
use crate::state::{DesiredState, GuestSpec, ObjectName};
use crate::storage::subvolumes::Volume as Subvolumes;
use crate::store::Filesystem;
use crate::system::System;

impl<S: System, F: Filesystem> Core<S, F> {
    /// The guests of the committed document.
    pub fn committed_guests(&self) -> Result<Vec<GuestSpec>, CoreError> {
        Ok(self
            .current()?
            .map(|(_, state)| state.into_inner().guests)
            .unwrap_or_default())
    }

    /// Commits the committed document with its guests replaced by `guests` (after
    /// validating the whole), as a new generation. Guests act on nothing at commit time:
    /// the supervisor starts and stops them.
    fn commit_guests(&mut self, guests: Vec<GuestSpec>) -> Result<u64, CoreError> {
        let mut desired: DesiredState = self
            .current()?
            .map(|(_, s)| s.into_inner())
            .unwrap_or_default();
        desired.guests = guests;
        let desired = desired.validated()?;
        let generation = self.store.commit(&desired)?;
        tracing::info!(%generation, "committed a new desired state (guests changed)");
        Ok(generation.get())
    }

    /// Adds a guest (`guest`: the keys of one `[[guests]]` table) to the committed document,
    /// as a new generation; returns it. The guest is parsed on its own and pushed onto the
    /// committed document as a value, which is then validated as a whole: refused, with
    /// every wrong field, when it would not validate, or when a file it names is not there
    /// (`file_kind` says what kind of file is at a path; its subvolume's files are looked
    /// for on `volume`, which must be mounted).
    pub fn add_guest(
        &mut self,
        guest: &str,
        file_kind: &dyn Fn(&std::path::Path) -> FileKind,
    ) -> Result<u64, CoreError> {
        let mut desired: DesiredState = self
            .current()?
            .map(|(_, s)| s.into_inner())
            .unwrap_or_default();
        let spec = GuestSpec::from_toml(guest, desired.guests.len())?;
        desired.guests.push(spec);
        let desired = desired.validated()?;
        let spec = desired.guests.last().expect("just pushed");
        let subvolume = match &spec.volume {
            Some(volume) => Some(self.guest_subvolume_path(volume.as_str(), spec.name.as_str())?),
            None => None,
        };
        vm_config::resolve(spec, subvolume.as_deref(), file_kind)
            .map_err(|problems| CoreError::GuestFiles { problems })?;
        let generation = self.store.commit(&desired)?;
        tracing::info!(%generation, "committed a new desired state (guest {} added)", spec.name);
        Ok(generation.get())
    }

    /// Removes a guest from the committed document as a new generation (returned), then
    /// deletes its ports on the vSwitches (one that cannot be deleted is logged: the guest
    /// is gone from the document either way) and, with `remove_disks`, its subvolume and
    /// every file in it. The guest must be stopped: that is the supervisor's to check.
    pub fn delete_guest(&mut self, name: &str, remove_disks: bool) -> Result<u64, CoreError> {
        let mut guests = self.committed_guests()?;
        let Some(index) = guests.iter().position(|g| g.name.as_str() == name) else {
            return Err(CoreError::NoSuchGuest {
                name: name.to_string(),
            });
        };
        let gone = guests.remove(index);
        let generation = self.commit_guests(guests)?;
        for i in 0..gone.nics.len() {
            let tap = layout::tap_name(name, i);
            match self.detach_tap(&tap) {
                Ok(_) | Err(CoreError::Tap(TapError::NoSuchTap(_))) => {}
                Err(error) => {
                    tracing::warn!(
                        "guest {name}: cannot delete its port {tap}: {}",
                        chain(&error)
                    );
                }
            }
        }
        if remove_disks && let Some(volume) = &gone.volume {
            self.delete_guest_subvolume(volume.as_str(), name)?;
            tracing::info!("guest {name}: its subvolume and disks are deleted");
        }
        Ok(generation)
    }

    /// Where the guest's subvolume is (or will be) on `volume`, which must be mounted.
    pub fn guest_subvolume_path(&self, volume: &str, guest: &str) -> Result<PathBuf, CoreError> {
        let (_, mount_point) = self.mounted_volume(volume)?;
        Ok(mount_point.join(layout::subvolume_name(guest)))
    }

    /// The guest's subvolume `vm-<guest>` on `volume`, created when missing.
    pub fn guest_subvolume(&self, volume: &str, guest: &str) -> Result<PathBuf, CoreError> {
        let (_, mount_point) = self.mounted_volume(volume)?;
        let name = ObjectName::try_from(layout::subvolume_name(guest)).map_err(|error| {
            CoreError::BadValue {
                field: "guest",
                error,
            }
        })?;
        let path = mount_point.join(name.as_str());
        let tools = self.storage_tools();
        if !tools.exists(&path) {
            Subvolumes {
                name: volume,
                mount_point: &mount_point,
                tools: &*tools,
            }
            .create(&name)?;
            tracing::info!("created subvolume {name} on volume {volume} for guest {guest}");
        }
        Ok(path)
    }

    /// Deletes the guest's subvolume and every file in it.
    pub fn delete_guest_subvolume(&self, volume: &str, guest: &str) -> Result<(), CoreError> {
        let (_, mount_point) = self.mounted_volume(volume)?;
        let name = ObjectName::try_from(layout::subvolume_name(guest)).map_err(|error| {
            CoreError::BadValue {
                field: "guest",
                error,
            }
        })?;
        let tools = self.storage_tools();
        if !tools.exists(&mount_point.join(name.as_str())) {
            return Ok(());
        }
        Subvolumes {
            name: volume,
            mount_point: &mount_point,
            tools: &*tools,
        }
        .delete(&name)
        .map_err(CoreError::from)
    }
}

/// Refuses a document that drops a guest whose process runs (`active`): stopping guests is
/// the supervisor's, an apply does not.
pub fn keeps_running_guests(desired: &DesiredState, active: Vec<String>) -> Result<(), CoreError> {
    let dropped: Vec<String> = active
        .into_iter()
        .filter(|name| !desired.guests.iter().any(|g| g.name.as_str() == name))
        .collect();
    if dropped.is_empty() {
        Ok(())
    } else {
        Err(CoreError::DropsRunningGuests { guests: dropped })
    }
}

/// The core's services to the guests: the live core behind its lock. A core error reaches
/// the guests whole, so the wire gives it its own kind.
pub struct CoreOps(pub SharedCore);

impl CoreServices for CoreOps {
    fn guests(&self) -> Result<Vec<GuestSpec>, ServiceError> {
        self.0
            .blocking_lock()
            .committed_guests()
            .map_err(ServiceError::new)
    }

    fn subvolume(&self, volume: &str, guest: &str) -> Result<PathBuf, ServiceError> {
        self.0
            .blocking_lock()
            .guest_subvolume(volume, guest)
            .map_err(ServiceError::new)
    }

    fn attach_tap(&self, tap: &str, vswitch: &str, vlan: Option<u16>) -> Result<(), ServiceError> {
        self.0
            .blocking_lock()
            .attach_tap(tap, vswitch, vlan)
            .map(drop)
            .map_err(ServiceError::new)
    }
}
