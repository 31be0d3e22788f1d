//! Every way an operation of the core can fail, as a value: one variant per failed
//! operation, with the names and numbers it is about as fields, and the subsystem error that
//! caused it as its source.
//!
//! The core knows nothing of the wire: `api/error.rs` maps each variant to an
//! `org.cairn.Error.*` name in one exhaustive match, so a new variant cannot reach a client
//! without someone deciding what kind of error it is. The variants derive `PartialEq`
//! (causes without it are compared by their text, [`ByText`]) so tests assert the exact
//! error.
//!
//! A failed apply is the one place where a message says more than its own step: the text
//! users see (and `cairnctl status` keeps as the reconcile error) puts what was restored
//! after the cause, so [`CoreError::Apply`] prints its failure's chain itself instead of
//! leaving it to a `#[source]`.

use crate::error::{ByText, chain};
use crate::network::taps::TapError;
use crate::plan::ApplyError;
use crate::state::{Invalid, ValueError};
use crate::storage::StorageError;
use crate::storage::subvolumes::SubvolumeError;
use crate::store::{Generation, StoreError};
use crate::system::{SystemAction, SystemError};

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// The box's board id is not one board-configs knows.
    #[error("Board {board:?} is not in board-configs")]
    UnknownBoard { board: String },
    /// A document (or the document a change would make) does not validate.
    #[error(transparent)]
    Refused(Invalid),
    /// A request's argument is not a valid value (a name, a VLAN id, a drive path).
    #[error("{field}: {error}")]
    BadValue {
        field: &'static str,
        error: ValueError,
    },
    /// The store on the config partition failed.
    #[error(transparent)]
    Store(StoreError),
    #[error("Generation {generation} is not in the history (kept: {kept})")]
    UnknownGeneration {
        generation: Generation,
        kept: String,
    },
    /// The box could not be observed.
    #[error(transparent)]
    Observe(ByText<SystemError>),
    /// Actions outside an apply (a reconcile, a guest port) failed and were undone.
    #[error(transparent)]
    Act(Failed<SystemError>),
    /// An apply's action failed; its actions were undone and the store restored.
    #[error("{}{restored}", chain(failure))]
    Apply {
        failure: Failed<WatchedError>,
        restored: Restored,
    },
    /// An apply cancelled between two actions; the ones that ran were undone.
    #[error(
        "Cancelled before \"{}\"; {}{restored}",
        failure.0.failed_action,
        rollback_text(&failure.0)
    )]
    Cancelled {
        failure: Failed<WatchedError>,
        restored: Restored,
    },
    /// A safe apply whose management link was not confirmed (or that was cancelled in its
    /// confirm window): its actions were undone and the store restored.
    #[error(
        "Rolled back ({undone} undo steps): {why}{}{restored}",
        not_undone_text(not_undone)
    )]
    Unconfirmed {
        why: LinkWait,
        undone: usize,
        /// The undo steps that failed, as text: their effect is still on the box.
        not_undone: Vec<String>,
        restored: Restored,
    },
    /// An apply is running; one runs at a time.
    #[error(
        "Job {job} is applying a document; wait for it (`cairnctl job wait {job}`) or cancel it (`cairnctl job cancel {job}`)"
    )]
    ApplyBusy { job: u64 },
    /// A storage job is running; one runs at a time, they compete for the same drives.
    #[error(
        "Job {job} is a storage operation still running; wait for it (`cairnctl job wait {job}`)"
    )]
    StorageBusy { job: u64 },
    /// A document would drop guests whose process runs.
    #[error(
        "guests: the document drops {} while running (stop first: cairnctl vm stop)",
        guests.join(", ")
    )]
    DropsRunningGuests { guests: Vec<String> },
    #[error(
        "There is no volume {name:?} in the committed document (it has: {})",
        if known.is_empty() { "none".to_string() } else { known.join(", ") }
    )]
    NoSuchVolume { name: String, known: Vec<String> },
    #[error(
        "Volume {volume} is not mounted at {path} (see `cairnctl status` and `cairnctl storage volume`)"
    )]
    NotMounted { volume: String, path: String },
    /// The document names the volume but none of its drives is on the box.
    #[error("No drive of volume {volume} is present")]
    NoDrives { volume: String },
    /// `replace … missing` on a volume that misses no drive.
    #[error("old: volume {volume} has no missing drive (expected the path of one of its drives)")]
    NoMissingDrive { volume: String },
    /// A drive to replace or remove that is not a member; `missing` says whether the
    /// request could have named the missing drive instead (a replace).
    #[error(
        "old: {drive} is not a drive of volume {volume} (expected one of its drives{})",
        if *or_missing { ", or `missing`" } else { ": `cairnctl storage volume` lists them" }
    )]
    NotAMember {
        volume: String,
        drive: String,
        or_missing: bool,
    },
    #[error("new: {drive} is not a drive on this box (`cairnctl storage drives` lists them)")]
    NoSuchDrive { drive: String },
    #[error("new: {drive} is the boot device (it is never offered)")]
    BootDrive { drive: String },
    #[error("new: {drive} holds {holds} (expected a blank drive)")]
    NotBlank { drive: String, holds: String },
    /// Removing the drive would leave the volume unable to carry its profiles or data.
    #[error("old: {drive} cannot be removed: {why}")]
    CannotRemove { drive: String, why: String },
    /// Measuring a volume's space (btrfs filesystem show/usage) failed.
    #[error(transparent)]
    Measure(ByText<StorageError>),
    #[error("`btrfs filesystem usage` of {mount_point} printed no Used: line")]
    NoUsedLine { mount_point: String },
    /// A storage job's work (replace, add, remove, scrub) failed on the drives.
    #[error(transparent)]
    Storage(ByText<StorageError>),
    /// Creating, snapshotting, listing or deleting a subvolume failed.
    #[error(transparent)]
    Subvolume(ByText<SubvolumeError>),
    /// A guest port request the network refuses.
    #[error(transparent)]
    Tap(TapError),
    #[error("There is no guest {name:?} in the committed document")]
    NoSuchGuest { name: String },
    /// A guest whose files (kernel, disks, firmware) are not where it says.
    #[error("{}", problems.join("\n"))]
    GuestFiles { problems: Vec<String> },
}

impl CoreError {
    /// Whether this ends a job that stopped on request (it is then `cancelled`, not
    /// `failed`).
    pub fn is_cancellation(&self) -> bool {
        matches!(
            self,
            Self::Cancelled { .. }
                | Self::Unconfirmed {
                    why: LinkWait::Cancelled { .. },
                    ..
                }
        )
    }
}

/// A run of actions that failed and was rolled back; boxed, it is the largest cause.
pub type Failed<E> = Box<ByText<ApplyError<SystemAction, E>>>;

/// Why a safe apply's confirm window closed without the management link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkWait {
    #[error("cancelled while confirming the management link on {interface}")]
    Cancelled { interface: String },
    #[error("the management interface {interface} had no link within {seconds} s")]
    NoLink { interface: String, seconds: u32 },
    #[error("the management interface {interface} had no DHCP lease within {seconds} s")]
    NoLease { interface: String, seconds: u32 },
}

/// Where the store stands after a failed apply was taken back; prints as the end of the
/// apply's message.
#[derive(Debug, PartialEq)]
pub enum Restored {
    /// Nothing new had been committed (the document was the committed one).
    Unchanged,
    /// The previous document is current again, as this generation.
    Back(Generation),
    /// The previous document could not be committed again (boxed: the rare case should not
    /// make every error larger).
    Failed(Box<StoreError>),
}

impl std::fmt::Display for Restored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unchanged => Ok(()),
            Self::Back(generation) => write!(
                f,
                "; the store is back at the previous document (now generation {generation})"
            ),
            Self::Failed(error) => write!(
                f,
                "; AND the previous document could not be committed again: {}",
                chain(error)
            ),
        }
    }
}

/// Why a watched action did not run.
#[derive(Debug, thiserror::Error)]
pub enum WatchedError {
    #[error("Cancelled on request")]
    Cancelled,
    #[error(transparent)]
    System(#[from] SystemError),
}

impl From<StoreError> for CoreError {
    /// An unknown generation is the caller's; the rest the store's.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UnknownGeneration { generation, kept } => {
                Self::UnknownGeneration { generation, kept }
            }
            StoreError::Read { .. }
            | StoreError::List { .. }
            | StoreError::CreateDir { .. }
            | StoreError::Write { .. }
            | StoreError::Sync { .. }
            | StoreError::Rename { .. }
            | StoreError::Remove { .. }
            | StoreError::Corrupt { .. } => Self::Store(error),
        }
    }
}

impl From<Invalid> for CoreError {
    fn from(invalid: Invalid) -> Self {
        Self::Refused(invalid)
    }
}

impl From<SystemError> for CoreError {
    fn from(error: SystemError) -> Self {
        Self::Observe(ByText(error))
    }
}

impl From<TapError> for CoreError {
    fn from(error: TapError) -> Self {
        Self::Tap(error)
    }
}

impl From<SubvolumeError> for CoreError {
    fn from(error: SubvolumeError) -> Self {
        Self::Subvolume(ByText(error))
    }
}

fn rollback_text<E: std::error::Error + 'static>(failure: &ApplyError<SystemAction, E>) -> String {
    match failure.rollback_failures.len() {
        0 => format!("rolled back ({} undo steps)", failure.rolled_back.len()),
        n => format!("rollback incomplete: {n} steps could not be undone"),
    }
}

fn not_undone_text(not_undone: &[String]) -> String {
    not_undone
        .iter()
        .map(|failure| format!("; NOT undone: {failure}"))
        .collect()
}
