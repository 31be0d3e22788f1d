//! `cairnctl storage`: drives, volumes and caches as the box has them; replace, add, remove,
//! scrub, subvolumes and snapshots as jobs followed to their end.

use cairn_api::storage::{StorageView, SubvolumeEntry};
use cairn_api::{Host1Proxy, HostError, JobState};
use clap::Subcommand;
use zbus::OwnedObjectPath;

use crate::CtlError;
use crate::job::{follow_job, job_proxy};

#[derive(Debug, Subcommand)]
pub(crate) enum StorageCommand {
    /// The drives: slot, device, HDD or SSD, size, model, serial, use, stable path.
    Drives,
    /// The document's volumes: state, profiles, space, member drives.
    Volume,
    /// Each volume's SSD cache: mode, state, dirty data, hit ratio, SSDs.
    Cache,
    /// Replace drive OLD (its path, or `missing`) of VOLUME by the blank drive NEW, as a job
    /// with progress.
    Replace {
        volume: String,
        old: String,
        new: String,
    },
    /// Add the blank drive NEW to VOLUME, then rebalance its data over all its drives, as a
    /// job with progress.
    Add { volume: String, new: String },
    /// Move drive OLD's data onto VOLUME's other drives and release it (left blank), as a job
    /// with progress; refused when the drives left could not hold the volume's profile or data.
    Remove { volume: String, old: String },
    /// Read every copy of every block of VOLUME and repair what can be; prints the counters.
    Scrub { volume: String },
    /// Subvolumes at the top of a volume.
    #[command(subcommand)]
    Subvolume(SubvolumeCommand),
    /// Read-only snapshots and writable clones of subvolumes.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SubvolumeCommand {
    /// An empty subvolume NAME in VOLUME (mounted at /volumeN/NAME).
    Create { volume: String, name: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SnapshotCommand {
    /// A read-only snapshot NAME of subvolume SOURCE; --writable makes a clone instead.
    Create {
        #[arg(long)]
        writable: bool,
        volume: String,
        source: String,
        name: String,
    },
    /// The subvolumes, snapshots and clones of VOLUME with origin and size.
    List { volume: String },
    /// Delete subvolume, snapshot or clone NAME.
    Delete { volume: String, name: String },
}

pub(crate) async fn run(
    connection: &zbus::Connection,
    host: &Host1Proxy<'_>,
    command: &StorageCommand,
    json: bool,
) -> Result<String, CtlError> {
    let path = match command {
        StorageCommand::Drives => {
            let view = show(host).await?;
            return Ok(if json {
                serde_json::to_string(&view.drives).expect("drives are strings and numbers")
            } else {
                view.render_drives()
            });
        }
        StorageCommand::Volume => {
            let view = show(host).await?;
            return Ok(if json {
                serde_json::to_string(&view.volumes).expect("volumes are strings and numbers")
            } else {
                view.render_volumes()
            });
        }
        StorageCommand::Cache => {
            let view = show(host).await?;
            return Ok(if json {
                serde_json::to_string(&view.caches).expect("caches are strings and numbers")
            } else {
                view.render_caches()
            });
        }
        StorageCommand::Snapshot(SnapshotCommand::List { volume }) => {
            return snapshot_list(host, volume, json).await;
        }
        StorageCommand::Replace { volume, old, new } => {
            host.storage_replace(volume, old, new).await?
        }
        StorageCommand::Add { volume, new } => host.storage_add(volume, new).await?,
        StorageCommand::Remove { volume, old } => host.storage_remove(volume, old).await?,
        StorageCommand::Scrub { volume } => host.storage_scrub(volume).await?,
        StorageCommand::Subvolume(SubvolumeCommand::Create { volume, name }) => {
            host.subvolume_create(volume, name).await?
        }
        StorageCommand::Snapshot(SnapshotCommand::Create {
            writable,
            volume,
            source,
            name,
        }) => {
            host.snapshot_create(volume, source, name, *writable)
                .await?
        }
        StorageCommand::Snapshot(SnapshotCommand::Delete { volume, name }) => {
            host.snapshot_delete(volume, name).await?
        }
    };
    follow(connection, path, json).await
}

async fn show(host: &Host1Proxy<'_>) -> Result<StorageView, CtlError> {
    let text = host.storage_show().await?;
    serde_json::from_str(&text).map_err(CtlError::BadAnswer)
}

/// The subvolumes and snapshots of a volume.
async fn snapshot_list(
    host: &Host1Proxy<'_>,
    volume: &str,
    json: bool,
) -> Result<String, CtlError> {
    let text = host.snapshot_list(volume).await?;
    if json {
        return Ok(text);
    }
    let entries: Vec<SubvolumeEntry> = serde_json::from_str(&text).map_err(CtlError::BadAnswer)?;
    let mut out = format!(
        "{:<24} {:<9} {:<24} {:>12}",
        "name", "kind", "origin", "bytes"
    );
    for entry in entries {
        let kind = match (&entry.origin, entry.read_only) {
            (None, false) => "subvolume",
            (None, true) => "read-only",
            (Some(_), true) => "snapshot",
            (Some(_), false) => "clone",
        };
        out.push_str(&format!(
            "\n{:<24} {kind:<9} {:<24} {:>12}",
            entry.name,
            entry.origin.as_deref().unwrap_or("-"),
            entry.bytes
        ));
    }
    Ok(out)
}

/// Follows a storage job to its end: the job's JSON result with `--json`, a short line
/// otherwise.
async fn follow(
    connection: &zbus::Connection,
    path: OwnedObjectPath,
    json: bool,
) -> Result<String, CtlError> {
    let job = job_proxy(connection, path).await?;
    let finished = follow_job(&job, json).await?;
    match finished.state {
        JobState::Succeeded if json => Ok(finished.result),
        JobState::Succeeded => Ok(format!("done: {}", finished.result)),
        JobState::Failed | JobState::Cancelled | JobState::Running => Err(CtlError::Host(
            HostError::from_job(&finished.error_name, finished.error.clone()),
        )),
    }
}
