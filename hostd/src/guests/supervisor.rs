//! The guests' processes: one cloud-hypervisor per running guest, started with only an API
//! socket and then driven over it (`vm.create` with the definition's `VmConfig`,
//! `vm.boot`, `vm.power-button`, `vm.pause`, …).
//!
//! Supervision: hostd is each process's parent and a task awaits its exit, so a death is
//! seen the moment the kernel reports it (no polling). What an exit means is decided by
//! [`on_exit`] from the state the guest was in: an exit hostd asked for is `stopped`; a
//! clean exit of a running guest is the guest powering itself off (`stopped`); anything
//! else is `crashed`, with the exit status and the last lines of cloud-hypervisor's log,
//! and the guest's restart policy decides whether it starts again (after a backoff that
//! doubles up to a minute, so a guest that cannot boot does not spin).
//!
//! The processes run in their own process group: a Ctrl-C on the console or a signal to
//! hostd's group never reaches a guest. When hostd stops (init's SIGTERM at poweroff or
//! reboot) it presses every guest's power button, waits, then kills what is left, and only
//! then exits ([`Supervisor::stop_all`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use board_configs::GuestRules;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::Notify;

use super::admission::{self, Demand, Host, Refusal};
use super::api_client::{ApiClient, ApiError};
use super::chv_api::{Endpoint, VmInfo, VmState, VmmPingResponse};
use super::console;
use super::host_cpu::Cgroups;
use super::layout::{self, RunPaths};
use super::lifecycle::{GuestState, valid_transition};
use super::vm_config::{self, Found};
use crate::core::CoreError;
use crate::error::chain;
use crate::state::{GuestSpec, RestartPolicy};

/// How long the API socket may take to answer after the process starts (nested under TCG
/// cloud-hypervisor is up in well under a second; this is the "it will never come" line).
const API_DEADLINE: Duration = Duration::from_secs(15);
/// After SIGKILL only the kernel's teardown is left.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// Lines of cloud-hypervisor's log and the guest's console kept with a crash.
const TAIL_LINES: usize = 10;
/// A surviving cloud-hypervisor answers at once; a stale socket refuses at once.
const ADOPT_PING: Duration = Duration::from_secs(5);
/// How often an adopted process (not hostd's child) is looked at.
const ADOPTED_POLL: Duration = Duration::from_millis(200);
/// The restart backoff: 1 s, doubling to this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the supervisor needs from the rest of hostd (the core, in production). Blocking
/// calls: the supervisor runs them on blocking threads.
pub trait HostOps: Send + Sync + 'static {
    fn guests(&self) -> Result<Vec<GuestSpec>, CoreError>;
    /// The guest's subvolume on `volume` (created when missing).
    fn subvolume(&self, volume: &str, guest: &str) -> Result<PathBuf, CoreError>;
    fn attach_tap(&self, tap: &str, vswitch: &str, vlan: Option<u16>) -> Result<(), CoreError>;
}

/// Where things are and the rules.
#[derive(Debug, Clone)]
pub struct Environment {
    pub cloud_hypervisor: PathBuf,
    pub firmware: PathBuf,
    pub run_dir: PathBuf,
    pub rules: GuestRules,
    pub host: Host,
    pub cgroups: Option<Cgroups>,
}

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("There is no guest {0:?} in the committed document")]
    NotFound(String),
    #[error("Guest {name:?} is {state}; {wanted}")]
    WrongState {
        name: String,
        state: GuestState,
        wanted: &'static str,
    },
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("Guest {name:?} cannot start:\n  {}", problems.join("\n  "))]
    Files { name: String, problems: Vec<String> },
    #[error("This image has no cloud-hypervisor at {}; build it with CAIRN_CLOUD_HYPERVISOR", .0.display())]
    NoHypervisor(PathBuf),
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
    #[error("Guest {name:?} did not start: {why}")]
    StartFailed { name: String, why: String },
    /// What the core answered the supervisor (a volume that is not mounted, a refused
    /// port), with its own kind: it says all there is to say, so it is not wrapped.
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("The request stopped unfinished")]
    Unfinished(#[source] tokio::task::JoinError),
    #[error("hostd is shutting down; guests are being stopped")]
    ShuttingDown,
}

/// What an exit of the process means, from the state the guest was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitOutcome {
    pub state: GuestState,
    pub restart: bool,
}

/// The decision behind every process exit (pure, table-tested).
pub fn on_exit(
    was: GuestState,
    clean: bool,
    policy: RestartPolicy,
    shutting_down: bool,
) -> ExitOutcome {
    let (state, restart) = match was {
        // Asked for: a stop, forced or not.
        GuestState::Stopping => (GuestState::Stopped, false),
        // A start that failed: restarting it would fail the same way.
        GuestState::Starting => (GuestState::Crashed, false),
        GuestState::Running | GuestState::Paused if clean => (
            // The guest powered itself off.
            GuestState::Stopped,
            policy == RestartPolicy::Always,
        ),
        GuestState::Running | GuestState::Paused => (
            GuestState::Crashed,
            matches!(policy, RestartPolicy::OnCrash | RestartPolicy::Always),
        ),
        // No process was running: nothing changes (cannot happen; kept total).
        GuestState::Stopped | GuestState::Crashed => (was, false),
    };
    ExitOutcome {
        state,
        restart: restart && !shutting_down,
    }
}

pub use cairn_api::guests::{GuestView, NicView};

#[derive(Debug)]
struct Runtime {
    state: GuestState,
    since: SystemTime,
    pid: Option<u32>,
    /// What it was admitted with, while active.
    demand: Option<Demand>,
    policy: RestartPolicy,
    last_exit: Option<String>,
    log_tail: Vec<String>,
    /// Why hostd ended a start, read by the exit watcher.
    start_failure: Option<String>,
    restarts: u32,
    /// Raised on every start; a restart timer of an older life does nothing.
    life: u64,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            state: GuestState::Stopped,
            since: SystemTime::now(),
            pid: None,
            demand: None,
            policy: RestartPolicy::default(),
            last_exit: None,
            log_tail: Vec::new(),
            start_failure: None,
            restarts: 0,
            life: 0,
        }
    }
}

impl Runtime {
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

struct Inner {
    env: Environment,
    ops: Arc<dyn HostOps>,
    table: Mutex<BTreeMap<String, Runtime>>,
    /// Woken on every state change.
    changed: Notify,
    shutting_down: std::sync::atomic::AtomicBool,
    /// (guest, life, backoff) for the restarter task.
    restart_tx: tokio::sync::mpsc::UnboundedSender<(String, u64, Duration)>,
    restart_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<(String, u64, Duration)>>>,
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

impl Supervisor {
    pub fn new(env: Environment, ops: Arc<dyn HostOps>) -> Self {
        let (restart_tx, restart_rx) = tokio::sync::mpsc::unbounded_channel();
        Self {
            inner: Arc::new(Inner {
                env,
                ops,
                table: Mutex::new(BTreeMap::new()),
                changed: Notify::new(),
                shutting_down: std::sync::atomic::AtomicBool::new(false),
                restart_tx,
                restart_rx: Mutex::new(Some(restart_rx)),
            }),
        }
    }

    fn table(&self) -> MutexGuard<'_, BTreeMap<String, Runtime>> {
        // A map of plain values; a panic while it is held cannot leave it half-changed in a
        // way worse than the panic itself.
        self.inner
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn shutting_down(&self) -> bool {
        self.inner
            .shutting_down
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn environment(&self) -> &Environment {
        &self.inner.env
    }

    /// The state of `name` (stopped when never started).
    pub fn state(&self, name: &str) -> GuestState {
        self.table()
            .get(name)
            .map_or(GuestState::Stopped, |runtime| runtime.state)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn HostOps) -> Result<T, CoreError> + Send + 'static,
    ) -> Result<T, GuestError> {
        let ops = Arc::clone(&self.inner.ops);
        tokio::task::spawn_blocking(move || work(ops.as_ref()))
            .await
            .map_err(GuestError::Unfinished)?
            .map_err(GuestError::from)
    }

    async fn spec(&self, name: &str) -> Result<GuestSpec, GuestError> {
        let guests = self.blocking(|ops| ops.guests()).await?;
        guests
            .into_iter()
            .find(|guest| guest.name.as_str() == name)
            .ok_or_else(|| GuestError::NotFound(name.to_string()))
    }

    /// The guests whose process runs (starting, running, paused, stopping).
    pub fn active(&self) -> Vec<String> {
        self.table()
            .iter()
            .filter(|(_, runtime)| runtime.state.is_active())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Every guest of the document with its runtime state.
    pub async fn list(&self) -> Result<Vec<GuestView>, GuestError> {
        let guests = self.blocking(|ops| ops.guests()).await?;
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

    fn view(&self, spec: &GuestSpec, runtime: Option<&Runtime>) -> GuestView {
        let name = spec.name.as_str();
        let paths = RunPaths::new(&self.inner.env.run_dir, name);
        let default = Runtime::default();
        let runtime = runtime.unwrap_or(&default);
        GuestView {
            name: name.to_string(),
            state: runtime.state,
            vcpus: spec.vcpus.get(),
            memory_mib: spec.memory_mib.get(),
            pid: runtime.pid,
            since: runtime
                .since
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            autostart: spec.autostart.is_some(),
            restart: spec.restart,
            restarts: runtime.restarts,
            last_exit: runtime.last_exit.clone(),
            log_tail: runtime.log_tail.clone(),
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

    /// The guests holding resources now, as admission counts them.
    fn running_demands(table: &BTreeMap<String, Runtime>, except: &str) -> Vec<Demand> {
        table
            .iter()
            .filter(|(name, runtime)| runtime.state.is_active() && name.as_str() != except)
            .filter_map(|(_, runtime)| runtime.demand.clone())
            .collect()
    }

    /// The headroom, and how many guests of `size` (vCPUs, MiB) fit.
    pub fn capacity(&self, size: Option<(u32, u64)>) -> admission::Capacity {
        let table = self.table();
        let running = Self::running_demands(&table, "");
        admission::capacity(&self.inner.env.rules, self.inner.env.host, &running, size)
    }

    /// Starts a guest: checks its files, admits it, attaches its NICs, starts its process,
    /// creates and boots the VM. Returns once the VM runs.
    pub async fn start(&self, name: &str) -> Result<GuestState, GuestError> {
        if self.shutting_down() {
            return Err(GuestError::ShuttingDown);
        }
        let spec = self.spec(name).await?;
        let env = self.inner.env.clone();
        if !env.cloud_hypervisor.exists() {
            return Err(GuestError::NoHypervisor(env.cloud_hypervisor.clone()));
        }
        // Files first (nothing changes when one is missing).
        let subvolume = match &spec.volume {
            Some(volume) => {
                let (volume, guest) = (volume.to_string(), name.to_string());
                Some(
                    self.blocking(move |ops| ops.subvolume(&volume, &guest))
                        .await?,
                )
            }
            None => None,
        };
        let resolved =
            vm_config::resolve(&spec, subvolume.as_deref(), &look).map_err(|problems| {
                GuestError::Files {
                    name: name.to_string(),
                    problems,
                }
            })?;
        let demand = Demand {
            name: name.to_string(),
            vcpus: spec.vcpus.get(),
            memory_mib: spec.memory_mib.get(),
            reserved_threads: spec.reserved_threads.iter().map(|t| t.get()).collect(),
            disks: spec.disks.len(),
        };
        // Admission and the move to `starting` under one lock: two starts cannot both take
        // the last free memory.
        let life = {
            let mut table = self.table();
            let running = Self::running_demands(&table, name);
            let runtime = table.entry(name.to_string()).or_default();
            if !valid_transition(runtime.state, GuestState::Starting) {
                return Err(GuestError::WrongState {
                    name: name.to_string(),
                    state: runtime.state,
                    wanted: "a start needs it stopped or crashed",
                });
            }
            admission::admit(&env.rules, env.host, &running, &demand)?;
            runtime.enter(GuestState::Starting);
            runtime.demand = Some(demand);
            runtime.policy = spec.restart;
            runtime.last_exit = None;
            runtime.log_tail.clear();
            runtime.start_failure = None;
            runtime.life += 1;
            runtime.life
        };
        self.inner.changed.notify_waiters();
        match self.launch(&spec, &resolved, life).await {
            Ok(()) => Ok(GuestState::Running),
            Err(error) => {
                let why = chain(&error);
                tracing::error!("guest {name}: {why}");
                self.fail_start(name, &why).await;
                Err(GuestError::StartFailed {
                    name: name.to_string(),
                    why,
                })
            }
        }
    }

    /// Ends a start that went wrong: kills the process if there is one (its watcher then
    /// marks the guest crashed with `why`), or marks it crashed directly.
    async fn fail_start(&self, name: &str, why: &str) {
        let pid = {
            let mut table = self.table();
            let Some(runtime) = table.get_mut(name) else {
                return;
            };
            runtime.start_failure = Some(why.to_string());
            match runtime.pid {
                Some(pid) => Some(pid),
                None => {
                    if valid_transition(runtime.state, GuestState::Crashed) {
                        runtime.enter(GuestState::Crashed);
                        runtime.last_exit = Some(why.to_string());
                        runtime.demand = None;
                    }
                    None
                }
            }
        };
        self.inner.changed.notify_waiters();
        if let Some(pid) = pid {
            signal(pid, Signal::SIGKILL);
            self.wait_while(name, |state| state == GuestState::Starting, KILL_WAIT)
                .await;
        }
    }

    async fn launch(
        &self,
        spec: &GuestSpec,
        resolved: &vm_config::Resolved,
        life: u64,
    ) -> Result<(), GuestError> {
        let name = spec.name.as_str();
        let env = &self.inner.env;
        let paths = RunPaths::new(&env.run_dir, name);
        for (path, size_mib) in &resolved.create {
            create_sparse(path, *size_mib).map_err(|source| GuestError::Spawn {
                name: name.to_string(),
                source,
            })?;
            tracing::info!(
                "guest {name}: created {} ({size_mib} MiB, sparse)",
                path.display()
            );
        }
        for (i, nic) in spec.nics.iter().enumerate() {
            let tap = layout::tap_name(name, i);
            let vswitch = nic.vswitch.to_string();
            let vlan = nic.vlan.map(|v| v.get());
            self.blocking(move |ops| ops.attach_tap(&tap, &vswitch, vlan))
                .await?;
        }
        let spawn_error = |source| GuestError::Spawn {
            name: name.to_string(),
            source,
        };
        std::fs::create_dir_all(&paths.dir).map_err(spawn_error)?;
        for stale in [paths.api_socket(), paths.serial_socket()] {
            let _ = std::fs::remove_file(stale);
        }
        let log = std::fs::File::create(paths.vmm_log()).map_err(spawn_error)?;
        let log_err = log.try_clone().map_err(spawn_error)?;
        let mut child = tokio::process::Command::new(&env.cloud_hypervisor)
            .arg("--api-socket")
            .arg(format!("path={}", paths.api_socket().display()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own group: terminal and group signals aimed at hostd never reach it.
            .process_group(0)
            .kill_on_drop(false)
            .spawn()
            .map_err(spawn_error)?;
        let pid = child.id().unwrap_or(0);
        {
            let mut table = self.table();
            if let Some(runtime) = table.get_mut(name) {
                runtime.pid = Some(pid);
            }
        }
        tracing::info!("guest {name}: cloud-hypervisor started (pid {pid})");
        // The watcher: the exit is noticed the moment the kernel reports it.
        let watcher = self.clone();
        let watched = name.to_string();
        tokio::spawn(async move {
            let status = child.wait().await;
            let (clean, how) = match &status {
                Ok(status) => (status.success(), describe_exit(*status)),
                Err(error) => (false, format!("could not be waited for: {error}")),
            };
            watcher.exited(&watched, life, clean, how).await;
        });
        if let Some(cgroups) = &env.cgroups {
            let weight = spec.cpu_weight.map_or(100, |w| w.get());
            if let Err(error) = cgroups.place(name, pid, weight) {
                tracing::warn!("guest {name}: no CPU weight (cgroup): {error}");
            }
        }

        let api = ApiClient::new(paths.api_socket());
        self.wait_for_api(name, &api).await?;
        let config = vm_config::vm_config(spec, resolved, &paths, &env.firmware);
        let api_error = |source| GuestError::Api {
            name: name.to_string(),
            source,
        };
        api.put_json(Endpoint::VmCreate, &config)
            .await
            .map_err(api_error)?;
        // The serial socket exists once the VM is created: relay it before the boot, so the
        // log has the guest's first line. Each life starts a fresh log; the previous one
        // is kept beside it (what a crashed life printed last).
        let _ = std::fs::rename(paths.console_log(), paths.dir.join("console.log.previous"));
        tokio::spawn(console::relay(
            paths.serial_socket(),
            paths.console_log(),
            paths.console_socket(),
        ));
        api.put(Endpoint::VmBoot).await.map_err(api_error)?;
        let entered = {
            let mut table = self.table();
            match table.get_mut(name) {
                Some(runtime) if runtime.life == life && runtime.state == GuestState::Starting => {
                    runtime.enter(GuestState::Running);
                    true
                }
                _ => false,
            }
        };
        self.inner.changed.notify_waiters();
        if entered {
            tracing::info!("guest {name} is running");
            Ok(())
        } else {
            Err(GuestError::StartFailed {
                name: name.to_string(),
                why: format!("it was {} before it finished booting", self.state(name)),
            })
        }
    }

    async fn wait_for_api(&self, name: &str, api: &ApiClient) -> Result<(), GuestError> {
        let deadline = tokio::time::Instant::now() + API_DEADLINE;
        loop {
            match api.get::<VmmPingResponse>(Endpoint::VmmPing).await {
                Ok(_) => return Ok(()),
                Err(error) => {
                    if self.state(name) != GuestState::Starting {
                        return Err(GuestError::StartFailed {
                            name: name.to_string(),
                            why: "cloud-hypervisor exited at once".to_string(),
                        });
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(GuestError::Api {
                            name: name.to_string(),
                            source: error,
                        });
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The watcher's report: the process of life `life` ended with `status`.
    async fn exited(&self, name: &str, life: u64, clean: bool, how: String) {
        let paths = RunPaths::new(&self.inner.env.run_dir, name);
        let tail = console::tail(&paths.vmm_log(), TAIL_LINES);
        let shutting_down = self.shutting_down();
        let (outcome, restarts) = {
            let mut table = self.table();
            let Some(runtime) = table.get_mut(name) else {
                return;
            };
            if runtime.life != life {
                return;
            }
            let was = runtime.state;
            let outcome = on_exit(was, clean, runtime.policy, shutting_down);
            if outcome.state != was {
                runtime.enter(outcome.state);
            }
            runtime.pid = None;
            runtime.demand = None;
            let message = match (runtime.start_failure.take(), outcome.state) {
                (Some(why), _) => format!("cloud-hypervisor {how}; the start failed: {why}"),
                (None, GuestState::Stopped) if was == GuestState::Stopping => {
                    format!("stopped: cloud-hypervisor {how}")
                }
                (None, GuestState::Stopped) => {
                    format!("the guest powered itself off (cloud-hypervisor {how})")
                }
                (None, _) => format!("cloud-hypervisor {how}"),
            };
            if outcome.state == GuestState::Crashed {
                runtime.log_tail = tail.clone();
                tracing::error!(
                    "guest {name} crashed: {message}; last lines of its log:\n{}",
                    tail.join("\n")
                );
            } else {
                tracing::info!("guest {name}: {message}");
            }
            runtime.last_exit = Some(message);
            if outcome.restart {
                runtime.restarts += 1;
            }
            (outcome, runtime.restarts)
        };
        if let Some(cgroups) = &self.inner.env.cgroups {
            cgroups.remove(name);
        }
        self.inner.changed.notify_waiters();
        if outcome.restart {
            let backoff = backoff(restarts);
            tracing::warn!(
                "guest {name}: restart policy starts it again in {} s (restart {restarts})",
                backoff.as_secs()
            );
            // Through the restarter task: a start that spawned its own restart would make
            // the start's future contain itself.
            let _ = self
                .inner
                .restart_tx
                .send((name.to_string(), life, backoff));
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
            while let Some((name, life, backoff)) = receiver.recv().await {
                let supervisor = supervisor.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(backoff).await;
                    // Only if nobody acted on it meanwhile (a start, a delete).
                    let still = {
                        let table = supervisor.table();
                        table
                            .get(&name)
                            .is_some_and(|r| r.life == life && !r.state.is_active())
                    };
                    if still && let Err(error) = supervisor.start(&name).await {
                        tracing::error!("guest {name}: the restart failed: {}", chain(&error));
                    }
                });
            }
        }))
    }

    /// Waits until `name`'s state no longer satisfies `pending`, or `timeout`. Returns the
    /// state then.
    async fn wait_while(
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
        let claimed = {
            let mut table = self.table();
            table
                .get_mut(name)
                .filter(|r| r.state.is_active())
                .map(|runtime| {
                    let was = runtime.state;
                    if was != GuestState::Stopping {
                        runtime.enter(GuestState::Stopping);
                    }
                    (runtime.pid, was)
                })
        };
        let Some((pid, was)) = claimed else {
            // Unknown names are NotFound, not "stopped".
            self.spec(name).await?;
            return Err(GuestError::WrongState {
                name: name.to_string(),
                state: self.state(name),
                wanted: "there is nothing to stop",
            });
        };
        self.inner.changed.notify_waiters();
        let api = ApiClient::new(RunPaths::new(&self.inner.env.run_dir, name).api_socket());
        if !force && was != GuestState::Starting {
            if was == GuestState::Paused {
                // A paused guest cannot see the button.
                let _ = api.put(Endpoint::VmResume).await;
            }
            match api.put(Endpoint::VmPowerButton).await {
                Ok(()) => {
                    tracing::info!("guest {name}: power button pressed");
                    let state = self
                        .wait_while(name, |s| s == GuestState::Stopping, timeout)
                        .await;
                    if state != GuestState::Stopping {
                        return Ok(state);
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
        if let Some(pid) = pid {
            signal(pid, Signal::SIGKILL);
        }
        Ok(self
            .wait_while(name, |s| s == GuestState::Stopping, KILL_WAIT)
            .await)
    }

    /// Reboot, pause or resume over the API, with the state move they imply.
    pub async fn control(&self, name: &str, action: Control) -> Result<GuestState, GuestError> {
        let (from, to, endpoint) = match action {
            Control::Reboot => (GuestState::Running, GuestState::Running, Endpoint::VmReboot),
            Control::Pause => (GuestState::Running, GuestState::Paused, Endpoint::VmPause),
            Control::Resume => (GuestState::Paused, GuestState::Running, Endpoint::VmResume),
        };
        let state = self.state(name);
        if state != from {
            self.spec(name).await?;
            return Err(GuestError::WrongState {
                name: name.to_string(),
                state,
                wanted: action.needs(),
            });
        }
        let api = ApiClient::new(RunPaths::new(&self.inner.env.run_dir, name).api_socket());
        api.put(endpoint).await.map_err(|source| GuestError::Api {
            name: name.to_string(),
            source,
        })?;
        if to != from {
            let mut table = self.table();
            if let Some(runtime) = table.get_mut(name)
                && runtime.state == from
                && valid_transition(from, to)
            {
                runtime.enter(to);
            }
        }
        self.inner.changed.notify_waiters();
        tracing::info!("guest {name}: {action:?} done");
        Ok(self.state(name))
    }

    /// Forgets a guest that is not running (after its deletion from the document).
    pub fn forget(&self, name: &str) -> Result<(), GuestError> {
        let mut table = self.table();
        if let Some(runtime) = table.get(name)
            && runtime.state.is_active()
        {
            return Err(GuestError::WrongState {
                name: name.to_string(),
                state: runtime.state,
                wanted: "stop it before deleting it",
            });
        }
        table.remove(name);
        let _ = std::fs::remove_dir_all(RunPaths::new(&self.inner.env.run_dir, name).dir);
        Ok(())
    }

    /// At hostd's start: guests whose cloud-hypervisor still runs (hostd itself was
    /// restarted; the processes are in their own group and outlive it) are taken over:
    /// their state from `vm.info`, their console relayed again, and their end noticed by
    /// polling the pid (they are init's children now, so they cannot be waited for).
    pub async fn adopt(&self) {
        let guests = match self.blocking(|ops| ops.guests()).await {
            Ok(guests) => guests,
            Err(error) => {
                tracing::error!("cannot read the guests to take over: {error}");
                return;
            }
        };
        for spec in guests {
            let name = spec.name.as_str();
            let paths = RunPaths::new(&self.inner.env.run_dir, name);
            if !paths.api_socket().exists() {
                continue;
            }
            let api = ApiClient::new(paths.api_socket());
            let Ok(Ok(ping)) =
                tokio::time::timeout(ADOPT_PING, api.get::<VmmPingResponse>(Endpoint::VmmPing))
                    .await
            else {
                continue;
            };
            let Some(pid) = ping.pid.and_then(|p| u32::try_from(p).ok()) else {
                continue;
            };
            let state = match api.get::<VmInfo>(Endpoint::VmInfo).await.map(|i| i.state) {
                Ok(VmState::Running) => GuestState::Running,
                Ok(VmState::Paused) => GuestState::Paused,
                _ => {
                    // Created but not booted, or shut down: a start that hostd's death
                    // interrupted. End it; the admin starts it again.
                    signal(pid, Signal::SIGKILL);
                    continue;
                }
            };
            let life = {
                let mut table = self.table();
                let runtime = table.entry(name.to_string()).or_default();
                runtime.state = state;
                runtime.since = SystemTime::now();
                runtime.pid = Some(pid);
                runtime.policy = spec.restart;
                runtime.demand = Some(Demand {
                    name: name.to_string(),
                    vcpus: spec.vcpus.get(),
                    memory_mib: spec.memory_mib.get(),
                    reserved_threads: spec.reserved_threads.iter().map(|t| t.get()).collect(),
                    disks: spec.disks.len(),
                });
                runtime.life += 1;
                runtime.life
            };
            tracing::warn!("guest {name}: took over its running cloud-hypervisor (pid {pid})");
            tokio::spawn(console::relay(
                paths.serial_socket(),
                paths.console_log(),
                paths.console_socket(),
            ));
            let watcher = self.clone();
            let watched = name.to_string();
            tokio::spawn(async move {
                let raw = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
                // kill(pid, 0): ESRCH once init has reaped it.
                while kill(raw, None).is_ok() {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                watcher
                    .exited(
                        &watched,
                        life,
                        false,
                        "ended (taken over after a hostd restart, so its exit status is unknown)"
                            .to_string(),
                    )
                    .await;
            });
        }
    }

    /// Starts the autostart guests in their order, with their delays. Runs in the
    /// background after hostd is up; stops early when hostd is stopping.
    pub async fn autostart(&self) {
        let guests = match self.blocking(|ops| ops.guests()).await {
            Ok(guests) => guests,
            Err(error) => {
                tracing::error!("autostart: cannot read the guests: {error}");
                return;
            }
        };
        let mut queue: Vec<&GuestSpec> = guests.iter().filter(|g| g.autostart.is_some()).collect();
        queue.sort_by_key(|g| {
            (
                g.autostart.map(|a| a.order.get()),
                g.name.as_str().to_string(),
            )
        });
        for guest in queue {
            if self.shutting_down() {
                return;
            }
            let name = guest.name.as_str();
            if self.state(name).is_active() {
                continue; // taken over from before a hostd restart
            }
            match self.start(name).await {
                Ok(_) => tracing::info!("autostart: guest {name} started"),
                Err(error) => {
                    tracing::error!("autostart: guest {name}: {}", chain(&error));
                }
            }
            let delay = guest.autostart.map_or(0, |a| a.delay_s.get());
            if delay > 0 {
                tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
            }
        }
    }

    /// hostd is stopping: no more starts or restarts; every active guest gets its power
    /// button at once, and what has not stopped after `timeout` is killed.
    pub async fn stop_all(&self, timeout: Duration) {
        self.inner
            .shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let active: Vec<String> = self
            .table()
            .iter()
            .filter(|(_, runtime)| runtime.state.is_active())
            .map(|(name, _)| name.clone())
            .collect();
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

/// The API actions that keep the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Reboot,
    Pause,
    Resume,
}

impl Control {
    fn needs(self) -> &'static str {
        match self {
            Self::Reboot | Self::Pause => "it must be running",
            Self::Resume => "it must be paused",
        }
    }
}

pub fn look(path: &Path) -> Found {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Err(_) => Found::Missing,
        Ok(meta) if meta.is_file() => Found::File,
        Ok(meta) if meta.file_type().is_block_device() => Found::BlockDevice,
        Ok(_) => Found::Other,
    }
}

fn create_sparse(path: &Path, size_mib: u64) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.set_len(size_mib << 20)
}

fn signal(pid: u32, signal: Signal) {
    if let Ok(raw) = i32::try_from(pid)
        && raw > 0
    {
        // The pid is our unreaped child (its watcher has not waited yet), so it cannot have
        // been reused.
        let _ = kill(Pid::from_raw(raw), signal);
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => {
            let name =
                Signal::try_from(signal).map_or_else(|_| signal.to_string(), |s| s.to_string());
            format!("was killed by {name}")
        }
        (None, None) => "ended".to_string(),
    }
}

/// 1 s, 2 s, 4 s… up to [`MAX_BACKOFF`].
fn backoff(restarts: u32) -> Duration {
    let seconds = 1u64 << restarts.saturating_sub(1).min(6);
    Duration::from_secs(seconds).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use GuestState::*;

    #[test]
    fn what_an_exit_means() {
        use RestartPolicy::{Always, Never, OnCrash};
        let cases = [
            // (was, clean exit, policy, shutting down) → (state, restart)
            (Stopping, false, Always, false, Stopped, false),
            (Starting, false, Always, false, Crashed, false),
            (Running, true, OnCrash, false, Stopped, false),
            (Running, true, Always, false, Stopped, true),
            (Running, false, OnCrash, false, Crashed, true),
            (Paused, false, Always, false, Crashed, true),
            (Running, false, Never, false, Crashed, false),
            (Running, false, OnCrash, true, Crashed, false),
        ];
        for (was, clean, policy, down, state, restart) in cases {
            assert_eq!(
                on_exit(was, clean, policy, down),
                ExitOutcome { state, restart },
                "{was:?} clean={clean} {policy:?} shutting_down={down}"
            );
        }
    }

    #[test]
    fn backoff_doubles_to_a_minute() {
        let seconds: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(seconds, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
