//! The guests' executor: the only guests code that acts, and it acts through the [`Vmm`]
//! seam (the process and its API) and the core's services (the guest's ports). It runs
//! what the planner decided and reports each step to the supervisor's table, which keeps
//! the state machine.
//!
//! A start, in order: the disk files to create (sparse), the NICs' taps on their vSwitches,
//! the process (only its API socket), `vmm.ping` until it answers, `vm.create` with the
//! definition's `VmConfig`, the serial relay (before the boot, so the log has the guest's
//! first line), `vm.boot`.
//!
//! [`Vmm`]: super::vmm::Vmm

use std::path::Path;
use std::time::Duration;

use super::action::{Adopt, Control, ControlAction, Kill, Start, Stop, StopHow};
use super::api_client::ApiError;
use super::chv_api::Endpoint;
use super::core_services::ServiceError;
use super::layout::{self, RunPaths};
use super::lifecycle::GuestState;
use super::supervisor::Supervisor;
use super::vm_config;
use super::vmm::Exit;
use crate::error::chain;

/// How long the API socket may take to answer after the process starts (nested under TCG
/// cloud-hypervisor is up in well under a second; this is the "it will never come" line).
const API_DEADLINE: Duration = Duration::from_secs(15);
/// How often the API socket is tried while the process comes up.
const API_RETRY: Duration = Duration::from_millis(50);
/// After SIGKILL only the kernel's teardown is left.
pub(super) const KILL_WAIT: Duration = Duration::from_secs(10);

/// A step of a start that failed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("Cannot start cloud-hypervisor for {name:?}")]
    Spawn {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Guest {name:?}: cloud-hypervisor refused the request")]
    Api {
        name: String,
        #[source]
        source: ApiError,
    },
    /// The core refused a port (an unknown vSwitch, …).
    #[error(transparent)]
    Core(#[from] ServiceError),
    #[error("The request stopped unfinished")]
    Unfinished(#[source] tokio::task::JoinError),
    #[error("cloud-hypervisor exited at once")]
    ExitedAtOnce,
    /// A stop (or the process's end) came before `vm.boot` returned.
    #[error("it was {state} before it finished booting")]
    Overtaken { state: GuestState },
}

impl Supervisor {
    /// Runs a planned start whose run is `run`. Returns once the VM runs.
    pub(super) async fn launch(&self, start: &Start, run: u64) -> Result<(), LaunchError> {
        let spec = &start.spec;
        let name = spec.name.as_str();
        let env = self.environment();
        let vmm = self.vmm();
        let paths = RunPaths::new(&env.run_dir, name);
        let spawn_error = |source| LaunchError::Spawn {
            name: name.to_string(),
            source,
        };
        for (path, size_mib) in &start.files.create {
            vmm.create_sparse(path, *size_mib).map_err(spawn_error)?;
            tracing::info!(
                "guest {name}: created {} ({size_mib} MiB, sparse)",
                path.display()
            );
        }
        for (i, nic) in spec.nics.iter().enumerate() {
            let tap = layout::tap_name(name, i);
            let vswitch = nic.vswitch.to_string();
            let vlan = nic.vlan.map(|v| v.get());
            self.ask_core(move |core| core.attach_tap(&tap, &vswitch, vlan))
                .await
                .map_err(LaunchError::Unfinished)??;
        }
        let process = vmm.spawn(&paths).map_err(spawn_error)?;
        let pid = process.pid;
        self.record_pid(name, pid);
        tracing::info!("guest {name}: cloud-hypervisor started (pid {pid})");
        // The watcher: the exit is noticed the moment the kernel reports it.
        let watcher = self.clone();
        let watched = name.to_string();
        tokio::spawn(async move {
            let exit = process.exit.await;
            watcher.exited(&watched, run, exit).await;
        });
        if let Some(cgroups) = &env.cgroups {
            let weight = spec.cpu_weight.map_or(100, |w| w.get());
            if let Err(error) = cgroups.place(name, pid, weight) {
                tracing::warn!("guest {name}: no CPU weight (cgroup): {error}");
            }
        }

        let socket = paths.api_socket();
        self.wait_for_api(name, &socket).await?;
        let config = vm_config::vm_config(spec, &start.files, &paths, &env.firmware);
        let api_error = |source| LaunchError::Api {
            name: name.to_string(),
            source,
        };
        vmm.create(&socket, &config).await.map_err(api_error)?;
        vmm.relay_console(&paths);
        vmm.put(&socket, Endpoint::VmBoot)
            .await
            .map_err(api_error)?;
        if self.booted(name, run) {
            tracing::info!("guest {name} is running");
            Ok(())
        } else {
            Err(LaunchError::Overtaken {
                state: self.state(name),
            })
        }
    }

    async fn wait_for_api(&self, name: &str, socket: &Path) -> Result<(), LaunchError> {
        let deadline = tokio::time::Instant::now() + API_DEADLINE;
        loop {
            match self.vmm().ping(socket).await {
                Ok(_) => return Ok(()),
                Err(error) => {
                    if self.state(name) != GuestState::Starting {
                        return Err(LaunchError::ExitedAtOnce);
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(LaunchError::Api {
                            name: name.to_string(),
                            source: error,
                        });
                    }
                }
            }
            tokio::time::sleep(API_RETRY).await;
        }
    }

    /// Ends a start that went wrong: kills the process if there is one (the exit report
    /// then marks the guest crashed with `why`), or marks it crashed directly.
    pub(super) async fn end_start(&self, name: &str, why: &str) {
        if let Some(pid) = self.start_failed(name, why) {
            self.vmm().kill(pid);
            self.wait_while(name, |state| state == GuestState::Starting, KILL_WAIT)
                .await;
        }
    }

    /// Runs a planned stop (the guest is `stopping` already). Returns the state it ended in.
    pub(super) async fn run_stop(&self, stop: &Stop) -> GuestState {
        let name = stop.name.as_str();
        let vmm = self.vmm();
        let socket = RunPaths::new(&self.environment().run_dir, name).api_socket();
        if let StopHow::PowerButton {
            resume_first,
            timeout,
        } = stop.how
        {
            if resume_first {
                // A paused guest cannot see the button.
                let _ = vmm.put(&socket, Endpoint::VmResume).await;
            }
            match vmm.put(&socket, Endpoint::VmPowerButton).await {
                Ok(()) => {
                    tracing::info!("guest {name}: power button pressed");
                    let state = self
                        .wait_while(name, |s| s == GuestState::Stopping, timeout)
                        .await;
                    if state != GuestState::Stopping {
                        return state;
                    }
                    tracing::warn!(
                        "guest {name} did not power off within {} s; forcing it off",
                        timeout.as_secs()
                    );
                }
                Err(error) => tracing::warn!(
                    "guest {name}: power button failed ({}); forcing it off",
                    chain(&error)
                ),
            }
        }
        if let Some(pid) = stop.pid {
            vmm.kill(pid);
        }
        self.wait_while(name, |s| s == GuestState::Stopping, KILL_WAIT)
            .await
    }

    /// Sends a planned reboot, pause or resume.
    pub(super) async fn run_control(&self, action: &ControlAction) -> Result<(), ApiError> {
        let socket = RunPaths::new(&self.environment().run_dir, &action.name).api_socket();
        let endpoint = match action.control {
            Control::Reboot => Endpoint::VmReboot,
            Control::Pause => Endpoint::VmPause,
            Control::Resume => Endpoint::VmResume,
        };
        self.vmm().put(&socket, endpoint).await
    }

    /// Takes over a surviving process (its row is in the table, of run `run`): its console
    /// relayed again, and its end noticed by polling its pid (it is init's child now, so it
    /// cannot be waited for).
    pub(super) fn take_over(&self, adopt: &Adopt, run: u64) {
        let name = adopt.name.as_str();
        let paths = RunPaths::new(&self.environment().run_dir, name);
        self.vmm().relay_console(&paths);
        let watcher = self.clone();
        let watched = name.to_string();
        let gone = self.vmm().gone(adopt.pid);
        tokio::spawn(async move {
            gone.await;
            watcher.exited(&watched, run, Exit::Unknown).await;
        });
    }

    /// Ends a survivor with no VM running.
    pub(super) fn end_survivor(&self, kill: &Kill) {
        self.vmm().kill(kill.pid);
    }

    /// Removes a forgotten guest's run directory (sockets and logs).
    pub(super) fn remove_run_dir(&self, name: &str) {
        let _ = std::fs::remove_dir_all(RunPaths::new(&self.environment().run_dir, name).dir);
    }
}
