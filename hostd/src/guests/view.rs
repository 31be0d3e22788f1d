//! The guests as the API shows them: each guest of the document with its process's state,
//! last exit and console's last lines, and the machine's headroom.

use std::time::SystemTime;

use super::admission;
use super::console;
use super::error::GuestError;
use super::layout::{self, RunPaths};
use super::observe::{self, GuestProcess};
use super::supervisor::{Supervisor, TAIL_LINES};
use crate::state::GuestSpec;

pub use cairn_api::guests::{GuestView, NicView};

impl Supervisor {
    /// Every guest of the document with its runtime state.
    pub async fn list(&self) -> Result<Vec<GuestView>, GuestError> {
        let guests = self.guests().await?;
        let table = self.table();
        Ok(guests
            .iter()
            .map(|spec| self.view(spec, table.get(spec.name.as_str())))
            .collect())
    }

    pub async fn show(&self, name: &str) -> Result<GuestView, GuestError> {
        let spec = self.spec(name).await?;
        let table = self.table();
        Ok(self.view(&spec, table.get(name)))
    }

    fn view(&self, spec: &GuestSpec, process: Option<&GuestProcess>) -> GuestView {
        let name = spec.name.as_str();
        let paths = RunPaths::new(&self.environment().run_dir, name);
        let default = GuestProcess::default();
        let process = process.unwrap_or(&default);
        GuestView {
            name: name.to_string(),
            state: process.state,
            vcpus: spec.vcpus.get(),
            memory_mib: spec.memory_mib.get(),
            pid: process.pid,
            since: process
                .since
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            autostart: spec.autostart.is_some(),
            restart: spec.restart,
            restarts: process.restarts,
            last_exit: process.last_exit.clone(),
            log_tail: process.log_tail.clone(),
            nics: spec
                .nics
                .iter()
                .enumerate()
                .map(|(i, nic)| NicView {
                    tap: layout::tap_name(name, i),
                    vswitch: nic.vswitch.to_string(),
                    mac: layout::mac_address(spec, i),
                    vlan: nic.vlan.map(|v| v.get()),
                })
                .collect(),
            console_log: paths.console_log().display().to_string(),
            console_tail: console::tail(&paths.console_log(), TAIL_LINES),
        }
    }

    /// The headroom, and how many guests of `size` (vCPUs, MiB) fit.
    pub fn capacity(&self, size: Option<(u32, u64)>) -> admission::Capacity {
        let running = observe::demands(&self.table(), "");
        let env = self.environment();
        admission::capacity(&env.rules, env.machine, &running, size)
    }
}
