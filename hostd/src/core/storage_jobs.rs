//! The on-demand storage operations as whole jobs: replace, add and remove a drive, scrub,
//! and subvolumes and snapshots, with the scrub schedule's policy and the scrub records
//! shown beside the volumes.
//!
//! A job runs for minutes to hours on the drives, so it takes the core (through
//! [`CoreAccess`]) only for what it must resolve or record: the request checked against the
//! committed document and the drives before, the document committed again after. The API
//! starts a job and publishes it; what the job does is decided here. The drives are acted
//! on through the system's [`StorageTools`], taken from the core with the plan and used
//! without it.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Core, CoreAccess, CoreError, Job};
use crate::error::{ByText, chain};
use crate::state::ObjectName;
use crate::storage::scrub_records::{self, ScrubRecord, ScrubRecords, Trigger};
use crate::storage::subvolumes::{SubvolumeEntry, Volume as Subvolumes};
use crate::storage::view::StorageView;
use crate::storage::{StorageError, StorageTools, maintenance, membership};
use crate::store::Filesystem;
use crate::system::System;

/// What a subvolume job does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubvolumeOp {
    /// An empty subvolume at the top of the volume.
    Create { name: ObjectName },
    /// A snapshot of `source`: read-only, or a writable clone.
    Snapshot {
        source: ObjectName,
        name: ObjectName,
        writable: bool,
    },
    /// Deletes a subvolume, snapshot or clone.
    Delete { name: ObjectName },
}

impl SubvolumeOp {
    /// The job's step while it runs.
    fn step(&self) -> String {
        match self {
            Self::Create { name } => format!("creating subvolume {name}"),
            Self::Snapshot {
                source,
                name,
                writable,
            } => {
                let what = if *writable { "clone" } else { "snapshot" };
                format!("creating {what} {name} of {source}")
            }
            Self::Delete { name } => format!("deleting {name}"),
        }
    }
}

fn storage_failed(error: StorageError) -> CoreError {
    CoreError::Storage(ByText(error))
}

/// Replaces drive `old` (a drive path, or `missing`) of a mounted volume by the blank drive
/// `new`, then converts chunks written while degraded. Returns the outcome as JSON.
pub fn replace<S: System, F: Filesystem>(
    mut core: impl CoreAccess<S, F>,
    job: &Job,
    volume: &str,
    old: &str,
    new: &str,
) -> Result<String, CoreError> {
    let (plan, tools) = core.with(|core| {
        Ok::<_, CoreError>((core.replacement(volume, old, new)?, core.storage_tools()))
    })?;
    job.set_total(100);
    let mut replaced = maintenance::replace(&*tools, &plan, &|done, step| {
        job.progress(done, step);
    })
    .map_err(storage_failed)?;
    replaced.generation = core.with(|core| core.record_replacement(volume, old, new))?;
    job.progress(100, "replaced");
    Ok(serde_json::to_string(&replaced).expect("an outcome is strings and numbers"))
}

/// Adds the blank drive `new` to a mounted volume, then balances every chunk over all its
/// drives. Returns the outcome as JSON.
pub fn add<S: System, F: Filesystem>(
    mut core: impl CoreAccess<S, F>,
    job: &Job,
    volume: &str,
    new: &str,
) -> Result<String, CoreError> {
    let (plan, tools) =
        core.with(|core| Ok::<_, CoreError>((core.addition(volume, new)?, core.storage_tools())))?;
    job.set_total(100);
    let outcome = membership::add(&*tools, &plan, &|done, step| job.progress(done, step));
    // Once Btrfs has the drive the document must name it, whether or not the balance after
    // it finished: a failed balance leaves the data where it was, on the old drives, and new
    // writes use all of them.
    let generation = match &outcome {
        Err(_) if !core.with(|core| core.is_member(volume, new)) => None,
        _ => Some(core.with(|core| core.record_addition(volume, new))?),
    };
    let mut added = outcome.map_err(storage_failed)?;
    added.generation = generation.unwrap_or_default();
    job.progress(100, "added");
    Ok(serde_json::to_string(&added).expect("an outcome is strings and numbers"))
}

/// Moves drive `old`'s chunks onto the other drives of a mounted volume and lets it go
/// (left blank); refused, touching nothing, when the drives left could not carry the
/// volume's profiles or data. Returns the outcome as JSON.
pub fn remove<S: System, F: Filesystem>(
    mut core: impl CoreAccess<S, F>,
    job: &Job,
    volume: &str,
    old: &str,
) -> Result<String, CoreError> {
    let (plan, tools) =
        core.with(|core| Ok::<_, CoreError>((core.removal(volume, old)?, core.storage_tools())))?;
    job.set_total(100);
    let outcome = membership::remove(&*tools, &plan, &|done, step| job.progress(done, step));
    // Once Btrfs has let the drive go the document must not name it, even if releasing it
    // from bcache failed after: a listed drive that is no member would make the next apply
    // refuse the document.
    let generation = match &outcome {
        Err(_) if core.with(|core| core.is_member(volume, old)) => None,
        _ => Some(core.with(|core| core.record_removal(volume, old, &plan.paths))?),
    };
    let mut removed = outcome.map_err(storage_failed)?;
    removed.generation = generation.unwrap_or_default();
    job.progress(100, "removed");
    Ok(serde_json::to_string(&removed).expect("an outcome is strings and numbers"))
}

/// Scrubs a mounted volume (reads every copy, repairs from good ones), on demand or
/// scheduled: its counters are the job's result (JSON) and the volume's kept record.
pub fn scrub<S: System, F: Filesystem>(
    mut core: impl CoreAccess<S, F>,
    job: &Job,
    records: &ScrubRecords,
    volume: &str,
    trigger: Trigger,
) -> Result<String, CoreError> {
    let (mount_point, tools) = mounted_with_tools(&mut core, volume)?;
    job.set_total(1);
    job.progress(0, format!("scrubbing {}", mount_point.display()));
    let result = maintenance::scrub(&*tools, volume, &mount_point.display().to_string())
        .map_err(storage_failed)?;
    if result.uncorrectable_errors > 0 {
        tracing::error!(
            "scrub of volume {volume}: {} uncorrectable errors",
            result.uncorrectable_errors
        );
    }
    let record = ScrubRecord {
        finished_unix: unix_now(),
        trigger,
        result,
    };
    if let Err(error) = records.keep(&record) {
        tracing::warn!("{}", chain(&error));
    }
    job.progress(1, "scrubbed");
    Ok(serde_json::to_string(&record.result).expect("counters are numbers"))
}

/// Runs a subvolume operation on volume `volume` as a one-step job. Returns `{"volume": …}`.
pub fn subvolume<S: System, F: Filesystem>(
    mut core: impl CoreAccess<S, F>,
    job: &Job,
    volume: &str,
    operation: &SubvolumeOp,
) -> Result<String, CoreError> {
    let (mount_point, tools) = mounted_with_tools(&mut core, volume)?;
    let step = operation.step();
    job.set_total(1);
    job.progress(0, step.clone());
    let subvolumes = Subvolumes {
        name: volume,
        mount_point: &mount_point,
        tools: &*tools,
    };
    match operation {
        SubvolumeOp::Create { name } => subvolumes.create(name),
        SubvolumeOp::Snapshot {
            source,
            name,
            writable,
        } => subvolumes.snapshot(source, name, *writable),
        SubvolumeOp::Delete { name } => subvolumes.delete(name),
    }?;
    job.progress(1, step);
    Ok(serde_json::json!({ "volume": volume }).to_string())
}

/// The volume's subvolumes, snapshots and clones; the core is held only to find the volume
/// (walking the subvolumes reads the drives).
pub fn snapshot_list<S: System, F: Filesystem>(
    mut core: impl CoreAccess<S, F>,
    volume: &str,
) -> Result<Vec<SubvolumeEntry>, CoreError> {
    let (mount_point, tools) = mounted_with_tools(&mut core, volume)?;
    Ok(Subvolumes {
        name: volume,
        mount_point: &mount_point,
        tools: &*tools,
    }
    .list()?)
}

/// The mount point of the document's volume `volume`, which must be mounted, and the tools
/// that reach it; the core is held only that long.
fn mounted_with_tools<S: System, F: Filesystem>(
    core: &mut impl CoreAccess<S, F>,
    volume: &str,
) -> Result<(PathBuf, Arc<dyn StorageTools>), CoreError> {
    core.with(|core| {
        let (_, mount_point) = core.mounted_volume(volume)?;
        Ok((mount_point, core.storage_tools()))
    })
}

impl<S: System, F: Filesystem> Core<S, F> {
    /// The mounted volumes whose `scrub_every_days` has passed since their last scrub (or
    /// that were never scrubbed), at `now` (seconds since 1970).
    pub fn due_scrubs(&self, records: &ScrubRecords, now: u64) -> Result<Vec<String>, CoreError> {
        Ok(self
            .scheduled_scrubs()?
            .into_iter()
            .filter(|(volume, every_days)| {
                let last = records.last(volume).map(|record| record.finished_unix);
                scrub_records::due(*every_days, last, now)
            })
            .map(|(volume, _)| volume)
            .collect())
    }

    /// The drives and the document's volumes as the box has them, each volume with its last
    /// scrub.
    pub fn storage_view_with_scrubs(
        &self,
        records: &ScrubRecords,
    ) -> Result<StorageView, CoreError> {
        let mut view = self.storage_view()?;
        for volume in &mut view.volumes {
            volume.last_scrub = records.last(&volume.name).map(|record| record.summary());
        }
        Ok(view)
    }
}

/// Seconds since 1970 (0 for a clock before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
