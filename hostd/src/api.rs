//! hostd's API on the system bus: `org.cairn.Host1` at `/org/cairn/Host1`, and one
//! `org.cairn.Job1` object per long operation at `/org/cairn/Host1/job/<id>`.
//!
//! The D-Bus layer ([`HostApi`]) takes arguments off the wire and hands them to
//! the core's [`Engine`], which decides; this file only maps its answers and errors to
//! the wire. Applying a document is a job: `ConfigApply` and `ConfigRollback` validate at once
//! (a refused document is an `Invalid` error of the call itself), then return the job's path.
//! A client polls the job's `Snapshot()` (or its properties) until `State` is no longer
//! `running`; `Cancel()` stops it at the next step boundary and rolls back.

mod error;
#[cfg(test)]
mod fake_engine_tests;
pub mod guests;
mod job_object;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::Arc;

use zbus::OwnedObjectPath;
use zbus::object_server::ObjectServer;

pub use self::error::HostError;
pub use self::job_object::{JOB_INTERFACE, JobObject, JobView, job_path};
use crate::core::engine::Engine;
use crate::core::storage_jobs::SubvolumeOp;
use crate::core::storage_ops::subvolume_name;
use crate::core::{CoreError, Job};
pub use crate::core::{LiveCore, SharedCore};
pub use crate::core::{Status, describe_plan, system_uptime};
use crate::log_ring::LogRing;
use crate::storage::scrub_records::Trigger;
pub use cairn_api::{Host1Proxy, Job1Proxy};

pub use cairn_api::{BUS_NAME, INTERFACE, OBJECT_PATH, SYSTEM_BUS_ADDRESS, WireLogRecord};
/// Log records one `Log` call returns at most, so that one answer stays well under the bus's
/// message size limit even with long records.
pub const LOG_BATCH_MAX: u32 = 1000;
/// Scrub records without a config partition (lost at reboot, like the document then).
pub const VOLATILE_SCRUB_RECORDS: &str = "/run/cairn/storage/scrub";
/// With one: beside the desired state, so a reboot keeps results and the schedule's count.
pub const PERSISTENT_SCRUB_RECORDS: &str = "/config/storage/scrub";

/// The `org.cairn.Host1` object: each method parses its arguments, calls the [`Engine`] and
/// maps the answer. Clones share the engine and the set of published job objects: the scrub
/// schedule holds one to publish its jobs the same way.
#[derive(Debug, Clone)]
pub struct HostApi {
    engine: Arc<dyn Engine>,
    log: LogRing,
    /// The ids of the job objects on the bus, so that the objects of jobs the engine no
    /// longer remembers are removed.
    published: Arc<std::sync::Mutex<BTreeSet<u64>>>,
}

impl HostApi {
    pub fn new(engine: Arc<dyn Engine>, log: LogRing) -> Self {
        Self {
            engine,
            log,
            published: Arc::default(),
        }
    }

    /// Calls the engine on a blocking thread and maps its error to the wire.
    async fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Engine) -> Result<T, CoreError> + Send + 'static,
    ) -> Result<T, HostError> {
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || work(&*engine))
            .await
            .map_err(|error| HostError::unfinished(&error))?
            .map_err(HostError::from)
    }

    /// Starts a job through the engine and publishes its object; returns its path.
    async fn start(
        &self,
        server: &ObjectServer,
        work: impl FnOnce(&dyn Engine) -> Result<Job, CoreError> + Send + 'static,
    ) -> Result<OwnedObjectPath, HostError> {
        let job = self.call(work).await?;
        self.publish(server, job).await
    }

    /// Puts `job` on the bus and takes down the objects of jobs the engine forgot.
    async fn publish(&self, server: &ObjectServer, job: Job) -> Result<OwnedObjectPath, HostError> {
        let remembered: BTreeSet<u64> = self.engine.jobs().iter().map(Job::id).collect();
        let forgotten: Vec<u64> = {
            let mut published = self
                .published
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let forgotten = published.difference(&remembered).copied().collect();
            published.retain(|id| remembered.contains(id));
            published.insert(job.id());
            forgotten
        };
        for id in forgotten {
            // Already gone is fine: the object is only a view of the registry.
            let _ = server.remove::<JobObject, _>(job_path(id)).await;
        }
        let path = job_path(job.id());
        server
            .at(path.clone(), JobObject::new(job))
            .await
            .map_err(HostError::ZBus)?;
        Ok(path)
    }

    /// Starts the scrub of every volume whose schedule says it is due and publishes the
    /// jobs. Returns the volumes started.
    pub async fn run_scrub_schedule(&self, server: &ObjectServer) -> Vec<String> {
        let due = match self.call(|engine| engine.start_due_scrubs()).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!("scrub schedule: {}", error.message());
                return Vec::new();
            }
        };
        let mut started = Vec::new();
        for (volume, outcome) in due {
            match outcome {
                Ok(job) => match self.publish(server, job).await {
                    Ok(path) => {
                        tracing::info!("scheduled scrub of volume {volume} started as {path}");
                        started.push(volume);
                    }
                    Err(error) => tracing::warn!(
                        "scheduled scrub of volume {volume} runs but has no bus object: {}",
                        error.message()
                    ),
                },
                Err(CoreError::StorageBusy { .. }) => break,
                Err(error) => tracing::warn!(
                    "scheduled scrub of volume {volume} not started: {}",
                    HostError::from(error).message()
                ),
            }
        }
        started
    }

    async fn start_subvolume_job(
        &self,
        server: &ObjectServer,
        volume: &str,
        operation: SubvolumeOp,
    ) -> Result<OwnedObjectPath, HostError> {
        let volume = volume.to_string();
        self.start(server, move |engine| engine.subvolume(&volume, operation))
            .await
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("views are strings, numbers, booleans and lists")
}

#[zbus::interface(interface = "org.cairn.Host1")]
impl HostApi {
    /// JSON: board, uptime_seconds, generation, persistence, reconcile_error, alerts, drift.
    async fn status(&self) -> Result<String, HostError> {
        let status = self.call(|engine| engine.status()).await?;
        Ok(json(&status))
    }

    /// JSON of the board's configuration.
    async fn board(&self) -> Result<String, HostError> {
        self.call(|engine| engine.board()).await
    }

    async fn config_show(&self) -> Result<(u64, String), HostError> {
        self.call(|engine| engine.config_show()).await
    }

    async fn config_plan(&self, toml: &str) -> Result<String, HostError> {
        let toml = toml.to_string();
        self.call(move |engine| engine.config_plan(&toml)).await
    }

    /// Validates the document and starts applying it; returns the job.
    async fn config_apply(
        &self,
        toml: &str,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, HostError> {
        let toml = toml.to_string();
        self.start(server, move |engine| engine.config_apply(&toml))
            .await
    }

    async fn config_history(&self) -> Result<Vec<(u64, u64)>, HostError> {
        self.call(|engine| engine.config_history()).await
    }

    /// Applies the document of a kept generation again, as a new generation; returns the job.
    async fn config_rollback(
        &self,
        generation: u64,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, HostError> {
        self.start(server, move |engine| engine.config_rollback(generation))
            .await
    }

    /// JSON: the board's ports and the kernel's bonds, vSwitches and VLANs.
    async fn net_show(&self) -> Result<String, HostError> {
        let view = self.call(|engine| engine.net_view()).await?;
        Ok(json(&view))
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
        self.call(move |engine| engine.tap_attach(&tap, &vswitch, vlan))
            .await
    }

    /// Deletes a guest's tap and the uplink VLANs only it needed. Returns the actions run.
    async fn tap_detach(&self, tap: &str) -> Result<Vec<String>, HostError> {
        let tap = tap.to_string();
        self.call(move |engine| engine.tap_detach(&tap)).await
    }

    /// JSON: the drives (slot, model, serial, size, kind, use) and the document's volumes
    /// (state, space, profiles, members, last scrub).
    async fn storage_show(&self) -> Result<String, HostError> {
        let view = self.call(|engine| engine.storage_view()).await?;
        Ok(json(&view))
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
        self.start(server, move |engine| {
            engine.storage_replace(&volume, &old, &new)
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
        self.start(server, move |engine| engine.storage_add(&volume, &new))
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
        self.start(server, move |engine| engine.storage_remove(&volume, &old))
            .await
    }

    /// Scrubs a mounted volume (reads every copy, repairs from good ones); returns the job,
    /// whose result holds the counters.
    async fn storage_scrub(
        &self,
        volume: &str,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, HostError> {
        let volume = volume.to_string();
        self.start(server, move |engine| {
            engine.storage_scrub(&volume, Trigger::OnDemand)
        })
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
        let volume = volume.to_string();
        let entries = self
            .call(move |engine| engine.snapshot_list(&volume))
            .await?;
        Ok(json(&entries))
    }

    /// The jobs hostd remembers, oldest first.
    async fn jobs(&self) -> Vec<OwnedObjectPath> {
        self.engine
            .jobs()
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
