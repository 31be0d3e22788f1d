//! hostd's API on the system bus: `org.cairn.Host1` at `/org/cairn/Host1`, and one
//! `org.cairn.Job1` object per long operation at `/org/cairn/Host1/job/<id>`.
//!
//! The D-Bus layer ([`HostApi`]) takes arguments off the wire and hands them to
//! [`Core`](crate::core::Core), which decides; this file only maps its answers and errors to
//! the wire. Applying a document is a job: `ConfigApply` and `ConfigRollback` validate at once
//! (a refused document is an `Invalid` error of the call itself), then return the job's path.
//! A client polls the job's `Snapshot()` (or its properties) until `State` is no longer
//! `running`; `Cancel()` stops it at the next step boundary and rolls back.

mod error;
pub mod guests;
mod job_object;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use zbus::OwnedObjectPath;
use zbus::object_server::ObjectServer;

pub use self::error::HostError;
pub use self::job_object::{JOB_INTERFACE, JobObject, JobView, job_path};
use crate::core::storage_jobs::{self, SubvolumeOp, unix_now};
use crate::core::storage_ops::subvolume_name;
use crate::core::{CoreError, Job, Jobs, keeps_running_guests, run_apply, run_job};
pub use crate::core::{LiveCore, SharedCore};
pub use crate::core::{Status, describe_plan, system_uptime};
use crate::log_ring::LogRing;
use crate::state::DesiredState;
use crate::storage::scrub_records::{ScrubRecords, Trigger};
pub use cairn_api::{Host1Proxy, Job1Proxy};
use tokio::sync::Mutex;

pub use cairn_api::{BUS_NAME, INTERFACE, OBJECT_PATH, SYSTEM_BUS_ADDRESS, WireLogRecord};
/// The kind of the jobs `ConfigApply` and `ConfigRollback` start; one runs at a time.
pub const APPLY_JOB: &str = "config apply";
/// The kind of the on-demand storage jobs (replace, scrub, subvolumes and snapshots); one
/// runs at a time, since they compete for the same drives.
pub const STORAGE_JOB: &str = "storage";
/// Log records one `Log` call returns at most, so that one answer stays well under the bus's
/// message size limit even with long records.
pub const LOG_BATCH_MAX: u32 = 1000;
/// Scrub records without a config partition (lost at reboot, like the document then).
pub const VOLATILE_SCRUB_RECORDS: &str = "/run/cairn/storage/scrub";
/// With one: beside the desired state, so a reboot keeps results and the schedule's count.
pub const PERSISTENT_SCRUB_RECORDS: &str = "/config/storage/scrub";

/// Runs `work` on the core on a blocking thread: observing the box uses netlink through a
/// runtime of its own, which must not run inside the bus's.
pub(crate) async fn on_core<T: Send + 'static, E: Send + 'static>(
    core: &SharedCore,
    work: impl FnOnce(&mut LiveCore) -> Result<T, E> + Send + 'static,
) -> Result<T, HostError>
where
    HostError: From<E>,
{
    let core = Arc::clone(core);
    tokio::task::spawn_blocking(move || work(&mut core.blocking_lock()))
        .await
        .map_err(|error| HostError::unfinished(&error))?
        .map_err(HostError::from)
}

/// The `org.cairn.Host1` object. Clones share the core and the job registry: the scrub
/// schedule holds one to start its jobs the same way the bus does.
#[derive(Debug, Clone)]
pub struct HostApi {
    core: SharedCore,
    jobs: Arc<std::sync::Mutex<Jobs>>,
    log: LogRing,
    scrub_records: ScrubRecords,
    /// The guests whose process runs, so that an apply cannot drop one from the document.
    running_guests: Option<crate::guests::supervisor::Supervisor>,
}

impl HostApi {
    pub fn new(core: SharedCore, log: LogRing) -> Self {
        Self {
            core,
            jobs: Arc::default(),
            log,
            scrub_records: ScrubRecords::new(VOLATILE_SCRUB_RECORDS),
            running_guests: None,
        }
    }

    /// Refuses documents that drop a guest this supervisor runs.
    pub fn with_guests(mut self, supervisor: crate::guests::supervisor::Supervisor) -> Self {
        self.running_guests = Some(supervisor);
        self
    }

    fn keeps_running_guests(&self, desired: &DesiredState) -> Result<(), CoreError> {
        let active = self
            .running_guests
            .as_ref()
            .map(|supervisor| supervisor.active())
            .unwrap_or_default();
        keeps_running_guests(desired, active)
    }

    /// Where scrub results are kept (on the config partition when there is one).
    pub fn with_scrub_records(mut self, records: ScrubRecords) -> Self {
        self.scrub_records = records;
        self
    }

    /// Starts the scrub of every mounted volume whose `scrub_every_days` has passed since
    /// its last scrub (or that was never scrubbed). One storage job runs at a time: a volume
    /// that finds another job running waits for the next round. Returns the volumes started.
    pub async fn run_scrub_schedule(&self, server: &ObjectServer) -> Vec<String> {
        let records = self.scrub_records.clone();
        let due = self.blocking(move |core| core.due_scrubs(&records, unix_now()));
        let due = match due.await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!("scrub schedule: {}", error.message());
                return Vec::new();
            }
        };
        let mut started = Vec::new();
        for volume in due {
            match self
                .start_scrub(server, volume.clone(), Trigger::Schedule)
                .await
            {
                Ok(path) => {
                    tracing::info!("scheduled scrub of volume {volume} started as {path}");
                    started.push(volume);
                }
                Err(HostError::Busy(_)) => break,
                Err(error) => tracing::warn!(
                    "scheduled scrub of volume {volume} not started: {}",
                    error.message()
                ),
            }
        }
        started
    }

    /// The scrub job, on demand or scheduled.
    async fn start_scrub(
        &self,
        server: &ObjectServer,
        volume: String,
        trigger: Trigger,
    ) -> Result<OwnedObjectPath, HostError> {
        let records = self.scrub_records.clone();
        self.start_storage_job(server, move |job, core| {
            storage_jobs::scrub(core, job, &records, &volume, trigger)
        })
        .await
    }

    fn job_registry(&self) -> std::sync::MutexGuard<'_, Jobs> {
        // The registry is a map of handles; a panic while it is held cannot corrupt it.
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut LiveCore) -> Result<T, CoreError> + Send + 'static,
    ) -> Result<T, HostError> {
        on_core(&self.core, work).await
    }

    /// Starts a job of `kind` unless one is running (then `Busy`, with `busy`'s text for
    /// its id), publishes its object and drops the objects of jobs the registry forgot.
    async fn publish_job(
        &self,
        server: &ObjectServer,
        kind: &'static str,
        busy: fn(u64) -> CoreError,
    ) -> Result<(Job, OwnedObjectPath), HostError> {
        let (job, forgotten) = {
            let mut jobs = self.job_registry();
            if let Some(running) = jobs.running(kind) {
                return Err(busy(running.id()).into());
            }
            jobs.start(kind)
        };
        for id in forgotten {
            // Already gone is fine: the object is only a view of the registry.
            let _ = server.remove::<JobObject, _>(job_path(id)).await;
        }
        let path = job_path(job.id());
        server
            .at(path.clone(), JobObject::new(job.clone()))
            .await
            .map_err(HostError::ZBus)?;
        Ok((job, path))
    }

    /// Registers a job object and runs the apply as the job.
    async fn start_apply(
        &self,
        desired: DesiredState,
        server: &ObjectServer,
    ) -> Result<OwnedObjectPath, HostError> {
        let (job, path) = self
            .publish_job(server, APPLY_JOB, |job| CoreError::ApplyBusy { job })
            .await?;
        let core = Arc::clone(&self.core);
        run_job(job, move |job| {
            // The core is locked per phase, not for the confirm window: see `run_apply`.
            let applied = run_apply(&*core, &desired, job)?;
            Ok(serde_json::to_string(&applied).expect("an outcome is strings and numbers"))
        });
        Ok(path)
    }
}

impl HostApi {
    /// A subvolume job on `volume`.
    async fn start_subvolume_job(
        &self,
        server: &ObjectServer,
        volume: &str,
        operation: SubvolumeOp,
    ) -> Result<OwnedObjectPath, HostError> {
        let volume = volume.to_string();
        self.start_storage_job(server, move |job, core| {
            storage_jobs::subvolume(core, job, &volume, &operation)
        })
        .await
    }

    /// Registers a storage job and runs `work` as the job; `work` gets the job for progress
    /// and the core (to lock briefly for what it must resolve), and returns the job's JSON
    /// result.
    async fn start_storage_job(
        &self,
        server: &ObjectServer,
        work: impl FnOnce(&Job, &Mutex<LiveCore>) -> Result<String, CoreError> + Send + 'static,
    ) -> Result<OwnedObjectPath, HostError> {
        let (job, path) = self
            .publish_job(server, STORAGE_JOB, |job| CoreError::StorageBusy { job })
            .await?;
        let core = Arc::clone(&self.core);
        run_job(job, move |job| work(job, &core));
        Ok(path)
    }
}

#[zbus::interface(interface = "org.cairn.Host1")]
impl HostApi {
    /// JSON: board, uptime_seconds, generation, persistence, reconcile_error.
    async fn status(&self) -> Result<String, HostError> {
        let status = self.blocking(|core| core.status()).await?;
        Ok(serde_json::to_string(&status).expect("a status is strings, numbers and booleans"))
    }

    /// JSON of the board's configuration.
    async fn board(&self) -> Result<String, HostError> {
        Ok(self.core.lock().await.board()?)
    }

    async fn config_show(&self) -> Result<(u64, String), HostError> {
        Ok(self.core.lock().await.show()?)
    }

    async fn config_plan(&self, toml: &str) -> Result<String, HostError> {
        let toml = toml.to_string();
        self.blocking(move |core| core.plan(&toml)).await
    }

    /// Validates the document and starts applying it; returns the job.
    async fn config_apply(
        &self,
        toml: &str,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, HostError> {
        let desired = DesiredState::from_toml(toml).map_err(CoreError::from)?;
        self.keeps_running_guests(&desired)?;
        self.start_apply(desired, server).await
    }

    async fn config_history(&self) -> Result<Vec<(u64, u64)>, HostError> {
        Ok(self.core.lock().await.history()?)
    }

    /// Applies the document of a kept generation again, as a new generation; returns the job.
    async fn config_rollback(
        &self,
        generation: u64,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, HostError> {
        let desired = self.core.lock().await.generation(generation)?;
        self.keeps_running_guests(&desired)?;
        self.start_apply(desired, server).await
    }

    /// JSON: the board's ports and the kernel's bonds, vSwitches and VLANs.
    async fn net_show(&self) -> Result<String, HostError> {
        let view = self.blocking(|core| core.net_view()).await?;
        Ok(serde_json::to_string(&view).expect("a view is strings, numbers and lists"))
    }

    /// Puts a guest's tap (created when missing) on a vSwitch of the committed document, on
    /// `vlan` (1 to 4094) or, with 0, on the native VLAN. Returns the actions run.
    async fn tap_attach(
        &self,
        tap: &str,
        vswitch: &str,
        vlan: u16,
    ) -> Result<Vec<String>, HostError> {
        let (tap, vswitch) = (tap.to_string(), vswitch.to_string());
        let vlan = (vlan != 0).then_some(vlan);
        self.blocking(move |core| core.attach_tap(&tap, &vswitch, vlan))
            .await
    }

    /// Deletes a guest's tap and the uplink VLANs only it needed. Returns the actions run.
    async fn tap_detach(&self, tap: &str) -> Result<Vec<String>, HostError> {
        let tap = tap.to_string();
        self.blocking(move |core| core.detach_tap(&tap)).await
    }

    /// JSON: the drives (slot, model, serial, size, kind, use) and the document's volumes
    /// (state, space, profiles, members).
    async fn storage_show(&self) -> Result<String, HostError> {
        let records = self.scrub_records.clone();
        let view = self
            .blocking(move |core| core.storage_view_with_scrubs(&records))
            .await?;
        Ok(serde_json::to_string(&view).expect("a view is strings, numbers and lists"))
    }

    /// Replaces drive `old` (a drive path, or `missing`) of a mounted volume by the blank
    /// drive `new`, then converts chunks written while degraded; returns the job.
    async fn storage_replace(
        &self,
        volume: &str,
        old: &str,
        new: &str,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, HostError> {
        let (volume, old, new) = (volume.to_string(), old.to_string(), new.to_string());
        self.start_storage_job(server, move |job, core| {
            storage_jobs::replace(core, job, &volume, &old, &new)
        })
        .await
    }

    /// Adds the blank drive `new` to a mounted volume, then balances every chunk over all its
    /// drives; returns the job.
    async fn storage_add(
        &self,
        volume: &str,
        new: &str,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, HostError> {
        let (volume, new) = (volume.to_string(), new.to_string());
        self.start_storage_job(server, move |job, core| {
            storage_jobs::add(core, job, &volume, &new)
        })
        .await
    }

    /// Moves drive `old`'s chunks onto the other drives of a mounted volume and lets it go
    /// (left blank); refused, touching nothing, when the drives left could not carry the
    /// volume's profiles or data. Returns the job.
    async fn storage_remove(
        &self,
        volume: &str,
        old: &str,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, HostError> {
        let (volume, old) = (volume.to_string(), old.to_string());
        self.start_storage_job(server, move |job, core| {
            storage_jobs::remove(core, job, &volume, &old)
        })
        .await
    }

    /// Scrubs a mounted volume (reads every copy, repairs from good ones); returns the job,
    /// whose result holds the counters.
    async fn storage_scrub(
        &self,
        volume: &str,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, HostError> {
        self.start_scrub(server, volume.to_string(), Trigger::OnDemand)
            .await
    }

    /// Creates an empty subvolume `name` at the top of a mounted volume; returns the job.
    async fn subvolume_create(
        &self,
        volume: &str,
        name: &str,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, HostError> {
        let operation = SubvolumeOp::Create {
            name: subvolume_name("name", name)?,
        };
        self.start_subvolume_job(server, volume, operation).await
    }

    /// A snapshot of subvolume `source` named `name`: read-only, or a writable clone.
    async fn snapshot_create(
        &self,
        volume: &str,
        source: &str,
        name: &str,
        writable: bool,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, HostError> {
        let operation = SubvolumeOp::Snapshot {
            source: subvolume_name("source", source)?,
            name: subvolume_name("name", name)?,
            writable,
        };
        self.start_subvolume_job(server, volume, operation).await
    }

    /// Deletes a subvolume, snapshot or clone.
    async fn snapshot_delete(
        &self,
        volume: &str,
        name: &str,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, HostError> {
        let operation = SubvolumeOp::Delete {
            name: subvolume_name("name", name)?,
        };
        self.start_subvolume_job(server, volume, operation).await
    }

    /// JSON: the volume's subvolumes, snapshots and clones with their origin and size.
    async fn snapshot_list(&self, volume: &str) -> Result<String, HostError> {
        let (core, volume) = (Arc::clone(&self.core), volume.to_string());
        let entries =
            tokio::task::spawn_blocking(move || storage_jobs::snapshot_list(&*core, &volume))
                .await
                .map_err(|error| HostError::unfinished(&error))??;
        Ok(serde_json::to_string(&entries).expect("entries are strings and numbers"))
    }

    /// The jobs hostd remembers, oldest first.
    async fn jobs(&self) -> Vec<OwnedObjectPath> {
        self.job_registry()
            .all()
            .iter()
            .map(|job| job_path(job.id()))
            .collect()
    }

    /// Log records numbered `since` and later, at most `max` (and [`LOG_BATCH_MAX`]); with
    /// the number to ask from next. A first record numbered above `since` means the ones
    /// between fell out of the ring.
    async fn log(&self, since: u64, max: u32) -> (u64, Vec<WireLogRecord>) {
        let limit = max.min(LOG_BATCH_MAX) as usize;
        let records: Vec<WireLogRecord> = self
            .log
            .since(since)
            .into_iter()
            .take(limit)
            .map(|record| {
                let micros = record
                    .time
                    .duration_since(std::time::SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
                (
                    record.sequence,
                    micros,
                    record.level.to_string(),
                    record.target,
                    record.message,
                )
            })
            .collect();
        let next = records.last().map_or(since, |record| record.0 + 1);
        (next, records)
    }
}
