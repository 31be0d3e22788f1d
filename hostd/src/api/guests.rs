//! `org.cairn.Guests1`, served beside `org.cairn.Host1` on `/org/cairn/Host1`: guests'
//! definitions (create and delete change the committed document) and their lifecycle (the
//! supervisor). Errors are the same `org.cairn.Error.*` as the host interface's, with
//! `Refused` for an admission refusal and `WrongState` for a request the guest's state
//! does not allow.
//!
//! Starting waits until the VM boots (seconds); stopping waits for the guest to power off,
//! up to the timeout given, then forces it: clients call these with a method timeout above
//! that (cairnctl does).

use std::time::Duration;

use super::HostError;
use crate::core::guest_admin::GuestAdmin;
use crate::guests::action::Control;
use crate::guests::supervisor::Supervisor;

pub use cairn_api::{GUESTS_INTERFACE, Guests1Proxy};

/// The `org.cairn.Guests1` object: definitions through [`GuestAdmin`], lifecycle through the
/// supervisor.
#[derive(Debug)]
pub struct GuestsApi {
    admin: GuestAdmin,
    supervisor: Supervisor,
}

impl GuestsApi {
    pub fn new(admin: GuestAdmin, supervisor: Supervisor) -> Self {
        Self { admin, supervisor }
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("views are strings, numbers and lists")
}

#[zbus::interface(interface = "org.cairn.Guests1")]
impl GuestsApi {
    /// JSON: every guest of the document with its state.
    async fn list(&self) -> Result<String, HostError> {
        Ok(json(&self.supervisor.list().await?))
    }

    /// JSON: one guest, with its last exit, log lines and console's last lines.
    async fn show(&self, name: &str) -> Result<String, HostError> {
        Ok(json(&self.supervisor.show(name).await?))
    }

    /// Adds a guest (`guest`: the TOML of one `[[guests]]` table's keys) to the committed
    /// document, as a new generation. Refused as a whole, with every wrong field, when the
    /// document would not validate or a file it names does not exist. Returns the
    /// generation.
    async fn create(&self, guest: &str) -> Result<u64, HostError> {
        Ok(self.admin.create(guest).await?)
    }

    /// Removes a stopped guest from the document; with `remove_disks` its subvolume (and
    /// every file in it) too. Its ports on the vSwitches are deleted.
    async fn delete(&self, name: &str, remove_disks: bool) -> Result<u64, HostError> {
        Ok(self.admin.delete(name, remove_disks).await?)
    }

    /// Starts a guest; returns when it runs. Returns the state.
    async fn start(&self, name: &str) -> Result<String, HostError> {
        Ok(self.supervisor.start(name).await?.to_string())
    }

    /// The power button, then after `timeout_s` (or at once with `force`) a kill.
    async fn stop(&self, name: &str, force: bool, timeout_s: u32) -> Result<String, HostError> {
        let timeout = Duration::from_secs(u64::from(timeout_s.clamp(1, 600)));
        Ok(self
            .supervisor
            .stop(name, force, timeout)
            .await?
            .to_string())
    }

    async fn reboot(&self, name: &str) -> Result<String, HostError> {
        Ok(self
            .supervisor
            .control(name, Control::Reboot)
            .await?
            .to_string())
    }

    async fn pause(&self, name: &str) -> Result<String, HostError> {
        Ok(self
            .supervisor
            .control(name, Control::Pause)
            .await?
            .to_string())
    }

    async fn resume(&self, name: &str) -> Result<String, HostError> {
        Ok(self
            .supervisor
            .control(name, Control::Resume)
            .await?
            .to_string())
    }

    /// JSON: the headroom; with `vcpus` and `memory_mib` both non-zero, how many more
    /// guests of that size fit.
    async fn capacity(&self, vcpus: u32, memory_mib: u64) -> Result<String, HostError> {
        let size = (vcpus > 0 && memory_mib > 0).then_some((vcpus, memory_mib));
        Ok(json(&self.supervisor.capacity(size)))
    }
}
