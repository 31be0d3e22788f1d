//! The core's surface: every request a transport may make of hostd, named once.
//!
//! [`Engine`] is what the D-Bus interface (and the HTTP API after it) calls; [`LiveEngine`]
//! is the daemon's, over the shared [`Core`](super::Core), the job registry and the scrub
//! records. A transport parses its arguments, calls one method and maps the answer, so it is
//! tested over a fake engine, and the engine is tested without a bus.
//!
//! Every method blocks (observing the appliance runs a netlink runtime of its own, and jobs
//! take the core's lock from blocking threads): an async transport calls them on a blocking
//! thread. Long operations return at once with their [`Job`], which runs on a thread the
//! engine owns; the transport only publishes it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::drift::DriftView;
use super::storage_jobs::{self, SubvolumeOp, unix_now};
use super::{Core, CoreError, Job, Jobs, Status, keeps_running_guests};
use super::{run_apply, run_job};
use crate::network::view::NetView;
use crate::state::{DesiredState, Validated};
use crate::storage::scrub_records::{ScrubRecords, Trigger};
use crate::storage::subvolumes::SubvolumeEntry;
use crate::storage::view::StorageView;
use crate::store::{Filesystem, OsFilesystem};
use crate::system::System;

/// The kind of the jobs `ConfigApply` and `ConfigRollback` start; one runs at a time.
pub const APPLY_JOB: &str = "config apply";
/// The kind of the on-demand storage jobs (replace, scrub, subvolumes and snapshots); one
/// runs at a time, since they compete for the same drives.
pub const STORAGE_JOB: &str = "storage";

/// Everything a transport may ask of hostd's core (guests aside: `Guests1` has its own).
pub trait Engine: Send + Sync + std::fmt::Debug + 'static {
    /// Board, uptime, generation, persistence, the last reconcile's error, alerts, drift.
    fn status(&self) -> Result<Status, CoreError>;
    /// The board's configuration as JSON.
    fn board(&self) -> Result<String, CoreError>;
    /// The committed document and its generation.
    fn config_show(&self) -> Result<(u64, String), CoreError>;
    /// What applying `document` would change, as text.
    fn config_plan(&self, document: &str) -> Result<String, CoreError>;
    /// Validates `document` (refused at once, as a whole) and starts applying it.
    fn config_apply(&self, document: &str) -> Result<Job, CoreError>;
    /// `(generation, committed at)` of the kept generations, oldest first.
    fn config_history(&self) -> Result<Vec<(u64, u64)>, CoreError>;
    /// Starts applying a kept generation's document again, as a new generation.
    fn config_rollback(&self, generation: u64) -> Result<Job, CoreError>;
    /// The board's ports and the kernel's bonds, vSwitches and VLANs.
    fn net_view(&self) -> Result<NetView, CoreError>;
    /// Puts a guest's tap on a vSwitch (on `vlan`, or the native VLAN); the actions run.
    fn tap_attach(
        &self,
        tap: &str,
        vswitch: &str,
        vlan: Option<u16>,
    ) -> Result<Vec<String>, CoreError>;
    /// Deletes a guest's tap and the uplink VLANs only it needed; the actions run.
    fn tap_detach(&self, tap: &str) -> Result<Vec<String>, CoreError>;
    /// The drives and the document's volumes, each with its last scrub.
    fn storage_view(&self) -> Result<StorageView, CoreError>;
    /// Starts replacing drive `old` (or `missing`) of a mounted volume by the blank `new`.
    fn storage_replace(&self, volume: &str, old: &str, new: &str) -> Result<Job, CoreError>;
    /// Starts adding the blank drive `new` to a mounted volume.
    fn storage_add(&self, volume: &str, new: &str) -> Result<Job, CoreError>;
    /// Starts moving drive `old`'s data off and letting it go.
    fn storage_remove(&self, volume: &str, old: &str) -> Result<Job, CoreError>;
    /// Starts a scrub of a mounted volume.
    fn storage_scrub(&self, volume: &str, trigger: Trigger) -> Result<Job, CoreError>;
    /// Starts creating, snapshotting or deleting a subvolume of a mounted volume.
    fn subvolume(&self, volume: &str, operation: SubvolumeOp) -> Result<Job, CoreError>;
    /// The subvolumes, snapshots and clones of a mounted volume.
    fn snapshot_list(&self, volume: &str) -> Result<Vec<SubvolumeEntry>, CoreError>;
    /// Starts the scrub of every volume whose schedule says it is due; one result per
    /// volume started or refused, in order. Stops at the first volume that finds another
    /// storage job running: the rest wait for the next round.
    fn start_due_scrubs(&self) -> Result<Vec<ScheduledScrub>, CoreError>;
    /// The jobs hostd remembers, oldest first.
    fn jobs(&self) -> Vec<Job>;
}

/// A volume the scrub schedule found due, and its job or why it did not start.
pub type ScheduledScrub = (String, Result<Job, CoreError>);

/// The names of the guests whose process runs now.
pub type RunningGuests = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// The daemon's engine: the shared core, the jobs it started and the scrub records. Tests
/// run it over a double of the appliance and a store in memory.
pub struct LiveEngine<S: System = Box<dyn System>, F: Filesystem = OsFilesystem> {
    core: Arc<tokio::sync::Mutex<Core<S, F>>>,
    jobs: Arc<Mutex<Jobs>>,
    scrub_records: ScrubRecords,
    /// So that an apply cannot drop a guest whose process runs.
    running_guests: RunningGuests,
}

impl<S: System, F: Filesystem> Clone for LiveEngine<S, F> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
            jobs: Arc::clone(&self.jobs),
            scrub_records: self.scrub_records.clone(),
            running_guests: Arc::clone(&self.running_guests),
        }
    }
}

impl<S: System, F: Filesystem> std::fmt::Debug for LiveEngine<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveEngine")
            .field("scrub_records", &self.scrub_records)
            .finish_non_exhaustive()
    }
}

impl<S: System + 'static, F: Filesystem + Send + 'static> LiveEngine<S, F> {
    pub fn new(core: Arc<tokio::sync::Mutex<Core<S, F>>>, scrub_records: ScrubRecords) -> Self {
        Self {
            core,
            jobs: Arc::default(),
            scrub_records,
            running_guests: Arc::new(Vec::new),
        }
    }

    /// Refuses documents that drop a guest `running` names.
    pub fn with_running_guests(mut self, running: RunningGuests) -> Self {
        self.running_guests = running;
        self
    }

    /// The core this engine serves (the guest supervisor shares it).
    pub fn core(&self) -> &Arc<tokio::sync::Mutex<Core<S, F>>> {
        &self.core
    }

    fn registry(&self) -> MutexGuard<'_, Jobs> {
        // The registry is a map of handles; a panic while it is held cannot corrupt it.
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn locked(&self) -> tokio::sync::MutexGuard<'_, Core<S, F>> {
        self.core.blocking_lock()
    }

    /// Registers a job of `kind` unless one is running (then `busy` with its id).
    fn register(&self, kind: &'static str, busy: fn(u64) -> CoreError) -> Result<Job, CoreError> {
        let mut jobs = self.registry();
        if let Some(running) = jobs.running(kind) {
            return Err(busy(running.id()));
        }
        // The registry forgets the oldest finished jobs itself; their handles go with them.
        let (job, _forgotten) = jobs.start(kind);
        Ok(job)
    }

    /// Runs a drift check (see `drift.rs`) unless an apply or a storage job is running: an
    /// apply in its confirm window and a storage job both change the appliance on purpose.
    /// `None` when it did not run.
    pub fn check_drift(&self) -> Option<Result<Vec<DriftView>, CoreError>> {
        {
            let jobs = self.registry();
            if jobs.running(APPLY_JOB).is_some() || jobs.running(STORAGE_JOB).is_some() {
                return None;
            }
        }
        Some(self.locked().check_drift(unix_now()))
    }

    fn start_apply(&self, desired: Validated<DesiredState>) -> Result<Job, CoreError> {
        keeps_running_guests(&desired, (self.running_guests)())?;
        let job = self.register(APPLY_JOB, |job| CoreError::ApplyBusy { job })?;
        let core = Arc::clone(&self.core);
        run_job(job.clone(), move |job| {
            // The core is locked per phase, not for the confirm window: see `run_apply`.
            let applied = run_apply(&*core, &desired, job)?;
            Ok(serde_json::to_string(&applied).expect("an outcome is strings and numbers"))
        });
        Ok(job)
    }

    fn start_storage_job(
        &self,
        work: impl FnOnce(&Job, &tokio::sync::Mutex<Core<S, F>>) -> Result<String, CoreError>
        + Send
        + 'static,
    ) -> Result<Job, CoreError> {
        let job = self.register(STORAGE_JOB, |job| CoreError::StorageBusy { job })?;
        let core = Arc::clone(&self.core);
        run_job(job.clone(), move |job| work(job, &core));
        Ok(job)
    }
}

impl<S: System + 'static, F: Filesystem + Send + 'static> Engine for LiveEngine<S, F> {
    fn status(&self) -> Result<Status, CoreError> {
        self.locked().status()
    }

    fn board(&self) -> Result<String, CoreError> {
        self.locked().board()
    }

    fn config_show(&self) -> Result<(u64, String), CoreError> {
        self.locked().show()
    }

    fn config_plan(&self, document: &str) -> Result<String, CoreError> {
        self.locked().plan(document)
    }

    fn config_apply(&self, document: &str) -> Result<Job, CoreError> {
        let desired = DesiredState::parse(document)?;
        self.start_apply(desired)
    }

    fn config_history(&self) -> Result<Vec<(u64, u64)>, CoreError> {
        self.locked().history()
    }

    fn config_rollback(&self, generation: u64) -> Result<Job, CoreError> {
        let desired = self.locked().generation(generation)?;
        self.start_apply(desired)
    }

    fn net_view(&self) -> Result<NetView, CoreError> {
        self.locked().net_view()
    }

    fn tap_attach(
        &self,
        tap: &str,
        vswitch: &str,
        vlan: Option<u16>,
    ) -> Result<Vec<String>, CoreError> {
        self.locked().attach_tap(tap, vswitch, vlan)
    }

    fn tap_detach(&self, tap: &str) -> Result<Vec<String>, CoreError> {
        self.locked().detach_tap(tap)
    }

    fn storage_view(&self) -> Result<StorageView, CoreError> {
        self.locked().storage_view_with_scrubs(&self.scrub_records)
    }

    fn storage_replace(&self, volume: &str, old: &str, new: &str) -> Result<Job, CoreError> {
        let (volume, old, new) = (volume.to_string(), old.to_string(), new.to_string());
        self.start_storage_job(move |job, core| {
            storage_jobs::replace(core, job, &volume, &old, &new)
        })
    }

    fn storage_add(&self, volume: &str, new: &str) -> Result<Job, CoreError> {
        let (volume, new) = (volume.to_string(), new.to_string());
        self.start_storage_job(move |job, core| storage_jobs::add(core, job, &volume, &new))
    }

    fn storage_remove(&self, volume: &str, old: &str) -> Result<Job, CoreError> {
        let (volume, old) = (volume.to_string(), old.to_string());
        self.start_storage_job(move |job, core| storage_jobs::remove(core, job, &volume, &old))
    }

    fn storage_scrub(&self, volume: &str, trigger: Trigger) -> Result<Job, CoreError> {
        let (volume, records) = (volume.to_string(), self.scrub_records.clone());
        self.start_storage_job(move |job, core| {
            storage_jobs::scrub(core, job, &records, &volume, trigger)
        })
    }

    fn subvolume(&self, volume: &str, operation: SubvolumeOp) -> Result<Job, CoreError> {
        let volume = volume.to_string();
        self.start_storage_job(move |job, core| {
            storage_jobs::subvolume(core, job, &volume, &operation)
        })
    }

    fn snapshot_list(&self, volume: &str) -> Result<Vec<SubvolumeEntry>, CoreError> {
        storage_jobs::snapshot_list(&*self.core, volume)
    }

    fn start_due_scrubs(&self) -> Result<Vec<ScheduledScrub>, CoreError> {
        let due = self.locked().due_scrubs(&self.scrub_records, unix_now())?;
        let mut started = Vec::new();
        for volume in due {
            let outcome = self.storage_scrub(&volume, Trigger::Schedule);
            let busy = matches!(outcome, Err(CoreError::StorageBusy { .. }));
            started.push((volume, outcome));
            if busy {
                break;
            }
        }
        Ok(started)
    }

    fn jobs(&self) -> Vec<Job> {
        self.registry().all()
    }
}
