//! The guests' supervisor: one cloud-hypervisor per running guest, started with only an
//! API socket and then driven over it. It keeps the table of processes (the state
//! machine), the restart policy's timers and the shutdown; every request goes observe →
//! plan (`plan.rs`, pure, admission included) → execute (`execute.rs`, through the `Vmm`
//! seam).
//!
//! Supervision: hostd is each process's parent and a task awaits its exit, so a death is
//! seen the moment the kernel reports it (no polling). What an exit means is decided by
//! [`plan::on_exit`] from the state the guest was in: an exit hostd asked for is `stopped`;
//! a clean exit of a running guest is the guest powering itself off (`stopped`); anything
//! else is `crashed`, with the exit status and the last lines of cloud-hypervisor's log,
//! and the guest's restart policy decides whether it starts again (after a backoff that
//! doubles up to a minute, so a guest that cannot boot does not spin).
//!
//! When hostd stops (init's SIGTERM at poweroff or reboot) it presses every guest's power
//! button, waits, then kills what is left, and only then exits ([`Supervisor::stop_all`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use board_configs::GuestRules;
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::action::{Control, Restart};
use super::admission::Machine;
use super::console;
use super::core_services::{CoreServices, ServiceError};
use super::error::GuestError;
use super::host_cpu::Cgroups;
use super::layout::RunPaths;
use super::lifecycle::{GuestState, valid_transition};
use super::observe::{self, GuestProcess, Processes};
use super::plan::{self, Limits};
use super::vm_config;
use super::vmm::{Exit, Vmm};
use crate::error::chain;
use crate::state::GuestSpec;

/// Lines of cloud-hypervisor's log kept with a crash.
pub(super) const TAIL_LINES: usize = 10;

/// Where things are and the rules.
#[derive(Debug, Clone)]
pub struct Environment {
    pub firmware: PathBuf,
    pub run_dir: PathBuf,
    pub rules: GuestRules,
    pub machine: Machine,
    pub cgroups: Option<Cgroups>,
}

struct Inner {
    env: Environment,
    core: Arc<dyn CoreServices>,
    vmm: Arc<dyn Vmm>,
    table: Mutex<Processes>,
    /// Woken on every state change.
    changed: Notify,
    shutting_down: AtomicBool,
    /// Restarts for the restarter task.
    restart_tx: UnboundedSender<Restart>,
    restart_rx: Mutex<Option<UnboundedReceiver<Restart>>>,
}

/// The guests' supervisor; cheap to clone (one shared state).
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").finish_non_exhaustive()
    }
}

impl GuestProcess {
    /// Moves to `to`, which the caller checked with [`valid_transition`].
    fn enter(&mut self, to: GuestState) {
        debug_assert!(
            valid_transition(self.state, to),
            "{:?} → {to:?}",
            self.state
        );
        self.state = to;
        self.since = SystemTime::now();
    }
}

impl Supervisor {
    pub fn new(env: Environment, core: Arc<dyn CoreServices>, vmm: Arc<dyn Vmm>) -> Self {
        let (restart_tx, restart_rx) = unbounded_channel();
        Self {
            inner: Arc::new(Inner {
                env,
                core,
                vmm,
                table: Mutex::new(Processes::new()),
                changed: Notify::new(),
                shutting_down: AtomicBool::new(false),
                restart_tx,
                restart_rx: Mutex::new(Some(restart_rx)),
            }),
        }
    }

    pub(super) fn table(&self) -> MutexGuard<'_, Processes> {
        // A map of plain values; a panic while it is held cannot leave it half-changed in a
        // way worse than the panic itself.
        self.inner
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    pub fn environment(&self) -> &Environment {
        &self.inner.env
    }

    pub(super) fn vmm(&self) -> &dyn Vmm {
        self.inner.vmm.as_ref()
    }

    fn limits(&self) -> Limits<'_> {
        Limits {
            rules: &self.inner.env.rules,
            machine: self.inner.env.machine,
        }
    }

    /// The state of `name` (stopped when never started).
    pub fn state(&self, name: &str) -> GuestState {
        observe::state_of(&self.table(), name)
    }

    /// The guests whose process runs (starting, running, paused, stopping).
    pub fn active(&self) -> Vec<String> {
        observe::active(&self.table())
    }

    /// Runs `work` against the core on a blocking thread (the core's calls block).
    pub(super) async fn ask_core<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn CoreServices) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<Result<T, ServiceError>, tokio::task::JoinError> {
        let core = Arc::clone(&self.inner.core);
        tokio::task::spawn_blocking(move || work(core.as_ref())).await
    }

    /// The guests of the committed document.
    pub(super) async fn guests(&self) -> Result<Vec<GuestSpec>, GuestError> {
        Ok(self
            .ask_core(|core| core.guests())
            .await
            .map_err(GuestError::Unfinished)??)
    }

    pub(super) async fn spec(&self, name: &str) -> Result<GuestSpec, GuestError> {
        self.guests()
            .await?
            .into_iter()
            .find(|guest| guest.name.as_str() == name)
            .ok_or_else(|| GuestError::NotFound(name.to_string()))
    }

    /// Starts a guest: checks its files, plans the start (admission), then runs it:
    /// NICs, process, VM create and boot. Returns once the VM runs.
    pub async fn start(&self, name: &str) -> Result<GuestState, GuestError> {
        // Before the core is asked for anything (a subvolume would be created).
        if self.shutting_down() {
            return Err(GuestError::ShuttingDown);
        }
        let spec = self.spec(name).await?;
        if !self.vmm().installed() {
            return Err(GuestError::NoHypervisor(self.vmm().program().to_path_buf()));
        }
        // Files first (nothing changes when one is missing).
        let subvolume = match &spec.volume {
            Some(volume) => {
                let (volume, guest) = (volume.to_string(), name.to_string());
                Some(
                    self.ask_core(move |core| core.subvolume(&volume, &guest))
                        .await
                        .map_err(GuestError::Unfinished)??,
                )
            }
            None => None,
        };
        let files = vm_config::resolve(&spec, subvolume.as_deref(), &observe::file_kind).map_err(
            |problems| GuestError::Files {
                name: name.to_string(),
                problems,
            },
        )?;
        // The plan and the move to `starting` under one lock: two starts cannot both take
        // the last free memory.
        let (start, run) = {
            let mut table = self.table();
            let start = plan::start(&spec, files, &table, self.limits(), self.shutting_down())?;
            let process = table.entry(name.to_string()).or_default();
            process.enter(GuestState::Starting);
            process.demand = Some(start.demand.clone());
            process.policy = spec.restart;
            process.last_exit = None;
            process.log_tail.clear();
            process.start_failure = None;
            process.run += 1;
            (start, process.run)
        };
        self.inner.changed.notify_waiters();
        match self.launch(&start, run).await {
            Ok(()) => Ok(GuestState::Running),
            Err(error) => {
                let why = chain(&error);
                tracing::error!("guest {name}: {why}");
                self.end_start(name, &why).await;
                Err(GuestError::StartFailed {
                    name: name.to_string(),
                    source: error,
                })
            }
        }
    }

    /// The executor's report: `name`'s process of run `run` is `pid`.
    pub(super) fn record_pid(&self, name: &str, pid: u32) {
        if let Some(process) = self.table().get_mut(name) {
            process.pid = Some(pid);
        }
    }

    /// The executor's report: `vm.boot` of run `run` returned. Whether the guest is now
    /// running (false when a stop or the process's end came first).
    pub(super) fn booted(&self, name: &str, run: u64) -> bool {
        let entered = match self.table().get_mut(name) {
            Some(process) if process.run == run && process.state == GuestState::Starting => {
                process.enter(GuestState::Running);
                true
            }
            _ => false,
        };
        self.inner.changed.notify_waiters();
        entered
    }

    /// A start failed for `why`: the pid to kill (its exit report marks the guest
    /// crashed), or, with no process yet, the guest is marked crashed now.
    pub(super) fn start_failed(&self, name: &str, why: &str) -> Option<u32> {
        let pid = {
            let mut table = self.table();
            let process = table.get_mut(name)?;
            process.start_failure = Some(why.to_string());
            if process.pid.is_none() && valid_transition(process.state, GuestState::Crashed) {
                process.enter(GuestState::Crashed);
                process.last_exit = Some(why.to_string());
                process.demand = None;
            }
            process.pid
        };
        self.inner.changed.notify_waiters();
        pid
    }

    /// The exit report: the process of run `run` ended, `exit` says how.
    pub(super) async fn exited(&self, name: &str, run: u64, exit: Exit) {
        let paths = RunPaths::new(&self.inner.env.run_dir, name);
        let tail = console::tail(&paths.vmm_log(), TAIL_LINES);
        let shutting_down = self.shutting_down();
        let restart = {
            let mut table = self.table();
            let Some(process) = table.get_mut(name) else {
                return;
            };
            if process.run != run {
                return;
            }
            let was = process.state;
            let outcome = plan::on_exit(was, exit.clean(), process.policy, shutting_down);
            if outcome.state != was {
                process.enter(outcome.state);
            }
            process.pid = None;
            process.demand = None;
            let message = match (process.start_failure.take(), outcome.state) {
                (Some(why), _) => format!("cloud-hypervisor {exit}; the start failed: {why}"),
                (None, GuestState::Stopped) if was == GuestState::Stopping => {
                    format!("stopped: cloud-hypervisor {exit}")
                }
                (None, GuestState::Stopped) => {
                    format!("the guest powered itself off (cloud-hypervisor {exit})")
                }
                (None, _) => format!("cloud-hypervisor {exit}"),
            };
            if outcome.state == GuestState::Crashed {
                process.log_tail = tail.clone();
                tracing::error!(
                    "guest {name} crashed: {message}; last lines of its log:\n{}",
                    tail.join("\n")
                );
            } else {
                tracing::info!("guest {name}: {message}");
            }
            process.last_exit = Some(message);
            outcome.restart.then(|| {
                process.restarts += 1;
                plan::restart(name, run, process.restarts)
            })
        };
        if let Some(cgroups) = &self.inner.env.cgroups {
            cgroups.remove(name);
        }
        self.inner.changed.notify_waiters();
        if let Some(restart) = restart {
            tracing::warn!("guest {name}: {restart}");
            // Through the restarter task: a start that spawned its own restart would make
            // the start's future contain itself.
            let _ = self.inner.restart_tx.send(restart);
        }
    }

    /// Runs the restart policy's delayed starts; hostd spawns it once.
    pub fn spawn_restarter(&self) -> Option<tokio::task::JoinHandle<()>> {
        let mut receiver = self
            .inner
            .restart_rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()?;
        let supervisor = self.clone();
        Some(tokio::spawn(async move {
            while let Some(restart) = receiver.recv().await {
                let supervisor = supervisor.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(restart.after).await;
                    let name = restart.name.as_str();
                    // Only if nobody acted on it meanwhile (a start, a delete).
                    let still = supervisor
                        .table()
                        .get(name)
                        .is_some_and(|p| p.run == restart.run && !p.state.is_active());
                    if still && let Err(error) = supervisor.start(name).await {
                        tracing::error!("guest {name}: the restart failed: {}", chain(&error));
                    }
                });
            }
        }))
    }

    /// Waits until `name`'s state no longer satisfies `pending`, or `timeout`. Returns the
    /// state then.
    pub(super) async fn wait_while(
        &self,
        name: &str,
        pending: impl Fn(GuestState) -> bool,
        timeout: Duration,
    ) -> GuestState {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let state = self.state(name);
            if !pending(state) {
                return state;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.state(name);
            }
        }
    }

    /// Stops a guest: the ACPI power button, then (after `timeout`, or at once with
    /// `force`) SIGKILL. Returns the state it ended in.
    pub async fn stop(
        &self,
        name: &str,
        force: bool,
        timeout: Duration,
    ) -> Result<GuestState, GuestError> {
        let planned = {
            let mut table = self.table();
            let planned = plan::stop(name, force, timeout, &table);
            if planned.is_ok()
                && let Some(process) = table.get_mut(name)
                && process.state != GuestState::Stopping
            {
                process.enter(GuestState::Stopping);
            }
            planned
        };
        let stop = match planned {
            Ok(stop) => stop,
            Err(refused) => {
                // Unknown names are NotFound, not "stopped".
                self.spec(name).await?;
                return Err(refused.into());
            }
        };
        self.inner.changed.notify_waiters();
        Ok(self.run_stop(&stop).await)
    }

    /// Reboot, pause or resume over the API, with the state move they imply.
    pub async fn control(&self, name: &str, control: Control) -> Result<GuestState, GuestError> {
        let planned = plan::control(name, control, &self.table());
        let action = match planned {
            Ok(action) => action,
            Err(refused) => {
                self.spec(name).await?;
                return Err(refused.into());
            }
        };
        self.run_control(&action)
            .await
            .map_err(|source| GuestError::Api {
                name: name.to_string(),
                source,
            })?;
        let (from, to) = control.moves();
        if to != from {
            let mut table = self.table();
            if let Some(process) = table.get_mut(name)
                && process.state == from
                && valid_transition(from, to)
            {
                process.enter(to);
            }
        }
        self.inner.changed.notify_waiters();
        tracing::info!("guest {name}: {control:?} done");
        Ok(self.state(name))
    }

    /// Forgets a guest that is not running (after its deletion from the document).
    pub fn forget(&self, name: &str) -> Result<(), GuestError> {
        {
            let mut table = self.table();
            if let Some(process) = table.get(name)
                && process.state.is_active()
            {
                return Err(GuestError::WrongState {
                    name: name.to_string(),
                    state: process.state,
                    wanted: "stop it before deleting it",
                });
            }
            table.remove(name);
        }
        self.remove_run_dir(name);
        Ok(())
    }

    /// hostd is stopping: no more starts or restarts; every active guest gets its power
    /// button at once, and what has not stopped after `timeout` is killed.
    pub async fn stop_all(&self, timeout: Duration) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let active = self.active();
        if active.is_empty() {
            return;
        }
        tracing::info!(
            "stopping {} guest(s) before hostd exits: {}",
            active.len(),
            active.join(", ")
        );
        let stops = active.iter().map(|name| async move {
            match self.stop(name, false, timeout).await {
                Ok(state) => tracing::info!("guest {name} {state} (host shutdown)"),
                Err(error) => tracing::error!("guest {name}: {}", chain(&error)),
            }
        });
        futures::future::join_all(stops).await;
    }
}

#[cfg(test)]
mod tests;
