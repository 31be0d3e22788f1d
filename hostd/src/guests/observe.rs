//! The guests' processes as observed: the supervisor's table (hostd is each process's
//! parent, so it learns every start and exit as it happens — the table *is* the
//! observation), the processes that outlived a hostd restart (found through the run
//! directory and asked over their API), and what kind of file is at a path.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::admission::Demand;
use super::chv_api::VmState;
use super::layout::RunPaths;
use super::lifecycle::GuestState;
use super::vm_config::FileKind;
use super::vmm::Vmm;
use crate::state::{GuestSpec, RestartPolicy};

/// A surviving cloud-hypervisor answers at once; a stale socket refuses at once.
const ADOPT_PING: Duration = Duration::from_secs(5);

/// One guest's process as the supervisor knows it.
#[derive(Debug, Clone)]
pub struct GuestProcess {
    pub state: GuestState,
    pub since: SystemTime,
    pub pid: Option<u32>,
    /// What it was admitted with, while active.
    pub demand: Option<Demand>,
    pub policy: RestartPolicy,
    pub last_exit: Option<String>,
    pub log_tail: Vec<String>,
    /// Why hostd ended a start, read when the process's exit is reported.
    pub start_failure: Option<String>,
    pub restarts: u32,
    /// Raised on every start or take-over: a report or a restart timer of an older run
    /// does nothing.
    pub run: u64,
}

impl Default for GuestProcess {
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
            run: 0,
        }
    }
}

/// Every guest hostd has known since it started, by name.
pub type Processes = BTreeMap<String, GuestProcess>;

/// The state of `name` (stopped when never started).
pub fn state_of(processes: &Processes, name: &str) -> GuestState {
    processes
        .get(name)
        .map_or(GuestState::Stopped, |process| process.state)
}

/// The guests holding resources now, as admission counts them, but `except`.
pub fn demands(processes: &Processes, except: &str) -> Vec<Demand> {
    processes
        .iter()
        .filter(|(name, process)| process.state.is_active() && name.as_str() != except)
        .filter_map(|(_, process)| process.demand.clone())
        .collect()
}

/// The guests whose process runs (starting, running, paused, stopping).
pub fn active(processes: &Processes) -> Vec<String> {
    processes
        .iter()
        .filter(|(_, process)| process.state.is_active())
        .map(|(name, _)| name.clone())
        .collect()
}

/// What kind of file is at `path`.
pub fn file_kind(path: &Path) -> FileKind {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Err(_) => FileKind::Missing,
        Ok(meta) if meta.is_file() => FileKind::File,
        Ok(meta) if meta.file_type().is_block_device() => FileKind::BlockDevice,
        Ok(_) => FileKind::Other,
    }
}

/// A cloud-hypervisor that answered on a guest's API socket after a hostd restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survivor {
    pub name: String,
    pub pid: u32,
    /// The VM's state (`vm.info`); `None` when it did not say.
    pub vm: Option<VmState>,
}

/// The guests of the document whose cloud-hypervisor still runs: an API socket in the
/// run directory that answers a ping with a pid.
pub async fn survivors(vmm: &dyn Vmm, run_dir: &Path, guests: &[GuestSpec]) -> Vec<Survivor> {
    let mut found = Vec::new();
    for spec in guests {
        let name = spec.name.as_str();
        let socket = RunPaths::new(run_dir, name).api_socket();
        if !socket.exists() {
            continue;
        }
        let Ok(Ok(ping)) = tokio::time::timeout(ADOPT_PING, vmm.ping(&socket)).await else {
            continue;
        };
        let Some(pid) = ping.pid.and_then(|p| u32::try_from(p).ok()) else {
            continue;
        };
        let vm = vmm.info(&socket).await.ok().map(|info| info.state);
        found.push(Survivor {
            name: name.to_string(),
            pid,
            vm,
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_a_directory_and_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("disk.img");
        std::fs::write(&file, b"").expect("writes");
        assert_eq!(file_kind(&file), FileKind::File);
        assert_eq!(file_kind(dir.path()), FileKind::Other);
        assert_eq!(file_kind(&dir.path().join("nope")), FileKind::Missing);
    }

    #[test]
    fn only_active_guests_count() {
        let demand = |name: &str| Demand {
            name: name.into(),
            vcpus: 1,
            memory_mib: 64,
            reserved_threads: Vec::new(),
            disks: 0,
        };
        let mut processes = Processes::new();
        for (name, state) in [
            ("a", GuestState::Running),
            ("b", GuestState::Crashed),
            ("c", GuestState::Stopping),
        ] {
            processes.insert(
                name.into(),
                GuestProcess {
                    state,
                    demand: Some(demand(name)),
                    ..GuestProcess::default()
                },
            );
        }
        assert_eq!(active(&processes), ["a", "c"]);
        assert_eq!(demands(&processes, "c"), [demand("a")]);
        assert_eq!(state_of(&processes, "z"), GuestState::Stopped);
    }
}
