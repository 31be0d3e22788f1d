//! Test doubles behind the guests' seams: a [`FakeVmm`] whose processes follow a script
//! (boot, die at once, refuse the boot, ignore the power button, survive a hostd restart)
//! and record every call, and a [`FakeCore`] that serves guest definitions and records the
//! ports it was asked for.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;

use super::api_client::ApiError;
use super::chv_api::{Endpoint, VmConfig, VmInfo, VmState, VmmPingResponse};
use super::core_services::{CoreServices, ServiceError};
use super::layout::RunPaths;
use super::vmm::{Exit, Process, Vmm};
use crate::state::GuestSpec;

/// How a scripted cloud-hypervisor process behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Boots; powers off (exit 0) when its power button is pressed.
    Boots,
    /// Boots; its guest ignores the power button, so only a kill ends it.
    IgnoresPowerButton,
    /// Exits with this status the moment it starts, before its API answers.
    DiesAtOnce(i32),
    /// Its API answers `vm.boot` with a 500.
    RefusesBoot,
}

/// One call through the seam, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Sparse(PathBuf, u64),
    Spawn(String),
    Ping(String),
    Info(String),
    Create(String),
    Put(String, Endpoint),
    Relay(String),
    Kill(String),
}

struct FakeProcess {
    guest: String,
    behaviour: Behaviour,
    vm: VmState,
    ended: watch::Sender<Option<Exit>>,
}

impl FakeProcess {
    fn alive(&self) -> bool {
        self.ended.borrow().is_none()
    }
}

#[derive(Default)]
struct State {
    scripts: BTreeMap<String, VecDeque<Behaviour>>,
    processes: BTreeMap<u32, FakeProcess>,
    next_pid: u32,
    calls: Vec<(Instant, Call)>,
}

/// cloud-hypervisor as a script. A guest with no script left boots.
#[derive(Default)]
pub struct FakeVmm {
    state: Mutex<State>,
}

/// The guest whose API socket `socket` is (`<run dir>/<guest>/api.sock`).
fn guest_of(socket: &Path) -> String {
    socket
        .parent()
        .and_then(Path::file_name)
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn refused(socket: &Path) -> ApiError {
    ApiError::Connect {
        socket: socket.to_path_buf(),
        source: io::Error::from(io::ErrorKind::ConnectionRefused),
    }
}

impl FakeVmm {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("no test panics while holding it")
    }

    /// The next processes of `guest` behave as `behaviours`, one each, in order.
    pub fn script(&self, guest: &str, behaviours: impl IntoIterator<Item = Behaviour>) {
        self.state()
            .scripts
            .entry(guest.to_string())
            .or_default()
            .extend(behaviours);
    }

    /// A cloud-hypervisor of `guest` that hostd did not start (it outlived a hostd
    /// restart), whose VM is in `vm`.
    pub fn survivor(&self, guest: &str, pid: u32, vm: VmState) {
        let (ended, _) = watch::channel(None);
        self.state().processes.insert(
            pid,
            FakeProcess {
                guest: guest.to_string(),
                behaviour: Behaviour::Boots,
                vm,
                ended,
            },
        );
    }

    /// Ends `guest`'s live process as `exit` says (a crash, or the guest powering off).
    pub fn end(&self, guest: &str, exit: Exit) {
        let state = self.state();
        let process = state
            .processes
            .values()
            .find(|p| p.guest == guest && p.alive())
            .expect("the guest has a live process");
        process.ended.send_replace(Some(exit));
    }

    /// The pid of `guest`'s live process.
    pub fn pid(&self, guest: &str) -> Option<u32> {
        self.state()
            .processes
            .iter()
            .find(|(_, p)| p.guest == guest && p.alive())
            .map(|(pid, _)| *pid)
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.iter().map(|(_, c)| c.clone()).collect()
    }

    /// When each of `guest`'s processes was spawned.
    pub fn spawns(&self, guest: &str) -> Vec<Instant> {
        self.state()
            .calls
            .iter()
            .filter(|(_, call)| *call == Call::Spawn(guest.to_string()))
            .map(|(at, _)| *at)
            .collect()
    }

    /// When `call` was made (first time).
    pub fn when(&self, call: &Call) -> Option<Instant> {
        self.state()
            .calls
            .iter()
            .find(|(_, c)| c == call)
            .map(|(at, _)| *at)
    }

    fn record(&self, call: Call) {
        self.state().calls.push((Instant::now(), call));
    }

    /// Runs `what` on `guest`'s live process; a refused connection when there is none.
    fn with_live<T>(
        &self,
        socket: &Path,
        what: impl FnOnce(u32, &mut FakeProcess) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let guest = guest_of(socket);
        let mut state = self.state();
        let found = state
            .processes
            .iter_mut()
            .find(|(_, p)| p.guest == guest && p.alive());
        match found {
            Some((pid, process)) => what(*pid, process),
            None => Err(refused(socket)),
        }
    }
}

impl Vmm for FakeVmm {
    fn program(&self) -> &Path {
        Path::new("/fake/cloud-hypervisor")
    }

    fn installed(&self) -> bool {
        true
    }

    fn create_sparse(&self, path: &Path, size_mib: u64) -> io::Result<()> {
        self.record(Call::Sparse(path.to_path_buf(), size_mib));
        Ok(())
    }

    fn spawn(&self, paths: &RunPaths) -> io::Result<Process> {
        let guest = guest_of(&paths.api_socket());
        self.record(Call::Spawn(guest.clone()));
        let mut state = self.state();
        let behaviour = state
            .scripts
            .get_mut(&guest)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Behaviour::Boots);
        state.next_pid += 1;
        let pid = 1000 + state.next_pid;
        let (ended, mut watch) = watch::channel(None);
        if let Behaviour::DiesAtOnce(status) = behaviour {
            ended.send_replace(Some(Exit::Status(status)));
        }
        state.processes.insert(
            pid,
            FakeProcess {
                guest,
                behaviour,
                vm: VmState::Created,
                ended,
            },
        );
        let exit = async move {
            match watch.wait_for(Option::is_some).await {
                Ok(exit) => exit.clone().unwrap_or(Exit::Ended),
                Err(_) => Exit::Ended,
            }
        };
        Ok(Process {
            pid,
            exit: exit.boxed(),
        })
    }

    fn kill(&self, pid: u32) {
        let guest = self.state().processes.get(&pid).map(|p| p.guest.clone());
        if let Some(guest) = guest {
            self.record(Call::Kill(guest));
        }
        if let Some(process) = self.state().processes.get(&pid)
            && process.alive()
        {
            process
                .ended
                .send_replace(Some(Exit::Signal("SIGKILL".into())));
        }
    }

    fn gone(&self, pid: u32) -> BoxFuture<'static, ()> {
        let watch = self
            .state()
            .processes
            .get(&pid)
            .map(|p| p.ended.subscribe());
        async move {
            if let Some(mut watch) = watch {
                let _ = watch.wait_for(Option::is_some).await;
            }
        }
        .boxed()
    }

    fn relay_console(&self, paths: &RunPaths) {
        self.record(Call::Relay(guest_of(&paths.api_socket())));
    }

    fn ping<'a>(&'a self, socket: &'a Path) -> BoxFuture<'a, Result<VmmPingResponse, ApiError>> {
        self.record(Call::Ping(guest_of(socket)));
        let answer = self.with_live(socket, |pid, _| {
            Ok(VmmPingResponse {
                version: "fake".into(),
                build_version: None,
                pid: Some(i64::from(pid)),
            })
        });
        async move { answer }.boxed()
    }

    fn info<'a>(&'a self, socket: &'a Path) -> BoxFuture<'a, Result<VmInfo, ApiError>> {
        self.record(Call::Info(guest_of(socket)));
        let answer = self.with_live(socket, |_, process| {
            Ok(VmInfo {
                state: process.vm,
                config: serde_json::Value::Null,
                memory_actual_size: None,
            })
        });
        async move { answer }.boxed()
    }

    fn create<'a>(
        &'a self,
        socket: &'a Path,
        _config: &'a VmConfig,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        self.record(Call::Create(guest_of(socket)));
        let answer = self.with_live(socket, |_, _| Ok(()));
        async move { answer }.boxed()
    }

    fn put<'a>(
        &'a self,
        socket: &'a Path,
        endpoint: Endpoint,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        self.record(Call::Put(guest_of(socket), endpoint));
        let answer = self.with_live(socket, |_, process| {
            match (endpoint, process.behaviour) {
                (Endpoint::VmBoot, Behaviour::RefusesBoot) => {
                    return Err(ApiError::Status {
                        endpoint: endpoint.path(),
                        status: 500,
                        body: "VmBoot: failed".into(),
                    });
                }
                (Endpoint::VmBoot | Endpoint::VmResume, _) => process.vm = VmState::Running,
                (Endpoint::VmPause, _) => process.vm = VmState::Paused,
                // The guest obeys: it powers off and cloud-hypervisor exits cleanly.
                (Endpoint::VmPowerButton, Behaviour::Boots) => {
                    process.ended.send_replace(Some(Exit::Status(0)));
                }
                _ => {}
            }
            Ok(())
        });
        async move { answer }.boxed()
    }
}

/// The core as the guests see it: fixed definitions, and the ports asked for.
#[derive(Default)]
pub struct FakeCore {
    pub guests: Mutex<Vec<GuestSpec>>,
    /// (tap, vSwitch, VLAN) of every attach.
    pub taps: Mutex<Vec<(String, String, Option<u16>)>>,
    /// When set, every attach is refused with this text.
    pub refuse_taps: Option<&'static str>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CoreSaysNo(&'static str);

impl CoreServices for FakeCore {
    fn guests(&self) -> Result<Vec<GuestSpec>, ServiceError> {
        Ok(self.guests.lock().expect("not poisoned").clone())
    }

    fn subvolume(&self, volume: &str, guest: &str) -> Result<PathBuf, ServiceError> {
        Ok(PathBuf::from(format!("/volumes/{volume}/vm-{guest}")))
    }

    fn attach_tap(&self, tap: &str, vswitch: &str, vlan: Option<u16>) -> Result<(), ServiceError> {
        if let Some(why) = self.refuse_taps {
            return Err(ServiceError::new(CoreSaysNo(why)));
        }
        self.taps
            .lock()
            .expect("not poisoned")
            .push((tap.to_string(), vswitch.to_string(), vlan));
        Ok(())
    }
}
