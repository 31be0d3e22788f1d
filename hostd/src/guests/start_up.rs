//! What the guests do when hostd starts (after READY, so a guest's boot never holds up
//! the appliance's): first take over the cloud-hypervisors that outlived a hostd restart
//! (they run in their own process group, so a restart of hostd alone leaves them running),
//! then start the autostart guests in their order — not one that was taken over.

use std::time::SystemTime;

use super::action::Takeover;
use super::observe;
use super::plan;
use super::supervisor::Supervisor;
use crate::error::chain;

impl Supervisor {
    /// At hostd's start: guests whose cloud-hypervisor still runs (hostd itself was
    /// restarted; the processes are in their own group and outlive it) are taken over:
    /// their state from `vm.info`, their console relayed again, and their end noticed.
    pub async fn adopt(&self) {
        let guests = match self.guests().await {
            Ok(guests) => guests,
            Err(error) => {
                tracing::error!("cannot read the guests to take over: {error}");
                return;
            }
        };
        let survivors = observe::survivors(self.vmm(), &self.environment().run_dir, &guests).await;
        for takeover in plan::adopt(&guests, &survivors) {
            let adopt = match takeover {
                Takeover::Adopt(adopt) => adopt,
                Takeover::Kill(kill) => {
                    self.end_survivor(&kill);
                    continue;
                }
            };
            let run = {
                let mut table = self.table();
                let process = table.entry(adopt.name.clone()).or_default();
                process.state = adopt.state;
                process.since = SystemTime::now();
                process.pid = Some(adopt.pid);
                process.policy = adopt.policy;
                process.demand = Some(adopt.demand.clone());
                process.run += 1;
                process.run
            };
            tracing::warn!(
                "guest {}: took over its running cloud-hypervisor (pid {})",
                adopt.name,
                adopt.pid
            );
            self.take_over(&adopt, run);
        }
    }

    /// Starts the autostart guests in their order, with their delays. Runs in the
    /// background after hostd is up; stops early when hostd is stopping.
    pub async fn autostart(&self) {
        let guests = match self.guests().await {
            Ok(guests) => guests,
            Err(error) => {
                tracing::error!("autostart: cannot read the guests: {error}");
                return;
            }
        };
        for (name, delay) in plan::autostart(&guests) {
            if self.shutting_down() {
                return;
            }
            if self.state(&name).is_active() {
                continue; // taken over from before a hostd restart
            }
            match self.start(&name).await {
                Ok(_) => tracing::info!("autostart: guest {name} started"),
                Err(error) => {
                    tracing::error!("autostart: guest {name}: {}", chain(&error));
                }
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
    }
}
