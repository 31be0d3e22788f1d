//! The contract between hostd and its clients (cairnctl, the tests): the bus names and
//! paths, the client proxies of `org.cairn.Host1`, `org.cairn.Guests1` and `org.cairn.Job1`,
//! the wire error [`HostError`], and the JSON views the calls answer with. hostd serves
//! these types and cairnctl reads them; a field renamed here is a change of the contract.

pub mod error;
pub mod guests;
pub mod net;
pub mod storage;
pub mod utc;

use std::fmt;

use serde::{Deserialize, Serialize};
use zbus::OwnedObjectPath;

pub use self::error::HostError;

/// The well-known name hostd owns on the system bus.
pub const BUS_NAME: &str = "org.cairn.Host1";
/// The object that carries [`INTERFACE`].
pub const OBJECT_PATH: &str = "/org/cairn/Host1";
pub const INTERFACE: &str = "org.cairn.Host1";
/// Where the image's broker listens (`/etc/cairn/dbus-system.conf`). Named explicitly: zbus's
/// default system address is under `/var/run`, which the image does not have.
pub const SYSTEM_BUS_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";
/// The interface beside [`INTERFACE`] on [`OBJECT_PATH`]: guests.
pub const GUESTS_INTERFACE: &str = "org.cairn.Guests1";
pub const JOB_INTERFACE: &str = "org.cairn.Job1";

/// `/org/cairn/Host1/job/<id>`.
pub fn job_path(id: u64) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("{}/job/{id}", OBJECT_PATH))
        .expect("a path of fixed segments and a number is valid")
}

/// A job as a client sees it, the JSON of `Snapshot()`: the core's snapshot with its
/// failure mapped to the wire (the D-Bus error name and message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    pub id: u64,
    /// What the job does, e.g. `config apply`.
    pub kind: String,
    pub state: JobState,
    /// Steps finished, of `total` (0 of 0 until the work knows its size).
    pub done: u32,
    pub total: u32,
    /// The step under way, or the last one.
    pub step: String,
    /// JSON, set when the job succeeded.
    pub result: String,
    /// The D-Bus error name and message, set when it failed or was cancelled.
    pub error_name: String,
    pub error: String,
}

/// One log record on the wire: (sequence, microseconds since 1970, level, target, message).
pub type WireLogRecord = (u64, u64, String, String, String);

/// What `Status()` answers, as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub board: String,
    /// Seconds since the kernel started; absent when /proc/uptime cannot be read.
    pub uptime_seconds: Option<f64>,
    /// The committed desired state's generation; 0 before the first commit.
    pub generation: u64,
    /// Whether the desired state is on the config partition (survives a reboot).
    pub persistence: bool,
    /// Why the box does not match the committed document, when the last reconcile failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_error: Option<String>,
    /// What needs an admin now (a degraded volume), one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
    /// What the last drift check found different from the committed document, and what
    /// hostd did about each difference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftView>,
    /// When hostd last compared the appliance with the document (seconds since 1970);
    /// absent before the first check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_checked_unix: Option<u64>,
}

/// One difference between the appliance and the committed document, found by the drift
/// check (after a netlink event or on its timer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftView {
    /// `hostname`, `network` or `storage`.
    pub subsystem: String,
    /// The step that takes the appliance back to the document, as a plan shows it.
    pub difference: String,
    pub outcome: DriftOutcome,
    /// Why it was only reported, or why correcting it failed; empty when corrected.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
    /// When it was found (seconds since 1970).
    pub seen_unix: u64,
}

/// What hostd did about a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftOutcome {
    /// Put back as the document says.
    Corrected,
    /// Left as it is, for the admin: see `why`.
    Reported,
    /// Correcting it failed and was undone: see `why`.
    Failed,
}

impl DriftOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Corrected => "corrected",
            Self::Reported => "reported",
            Self::Failed => "failed",
        }
    }
}

/// A successful apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub generation: u64,
    /// The actions run on the box, as shown in the plan.
    pub actions: Vec<String>,
    /// Sections recorded but not acted on yet (no subsystem for them).
    pub recorded_only: Vec<String>,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn is_finished(self) -> bool {
        match self {
            Self::Running => false,
            Self::Succeeded | Self::Failed | Self::Cancelled => true,
        }
    }

    /// Only a running job moves, and only to an end state.
    pub fn can_become(self, next: Self) -> bool {
        match (self, next) {
            (Self::Running, Self::Succeeded | Self::Failed | Self::Cancelled) => true,
            (Self::Running, Self::Running)
            | (Self::Succeeded | Self::Failed | Self::Cancelled, _) => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The client side of `org.cairn.Host1`, for cairnctl and the tests.
#[zbus::proxy(
    interface = "org.cairn.Host1",
    default_service = "org.cairn.Host1",
    default_path = "/org/cairn/Host1"
)]
pub trait Host1 {
    fn status(&self) -> Result<String, HostError>;
    fn board(&self) -> Result<String, HostError>;
    fn config_show(&self) -> Result<(u64, String), HostError>;
    fn config_plan(&self, toml: &str) -> Result<String, HostError>;
    fn config_apply(&self, toml: &str) -> Result<OwnedObjectPath, HostError>;
    fn config_history(&self) -> Result<Vec<(u64, u64)>, HostError>;
    fn config_rollback(&self, generation: u64) -> Result<OwnedObjectPath, HostError>;
    fn net_show(&self) -> Result<String, HostError>;
    fn tap_attach(&self, tap: &str, vswitch: &str, vlan: u16) -> Result<Vec<String>, HostError>;
    fn tap_detach(&self, tap: &str) -> Result<Vec<String>, HostError>;
    fn storage_show(&self) -> Result<String, HostError>;
    fn storage_replace(
        &self,
        volume: &str,
        old: &str,
        new: &str,
    ) -> Result<OwnedObjectPath, HostError>;
    fn storage_add(&self, volume: &str, new: &str) -> Result<OwnedObjectPath, HostError>;
    fn storage_remove(&self, volume: &str, old: &str) -> Result<OwnedObjectPath, HostError>;
    fn storage_scrub(&self, volume: &str) -> Result<OwnedObjectPath, HostError>;
    fn subvolume_create(&self, volume: &str, name: &str) -> Result<OwnedObjectPath, HostError>;
    fn snapshot_create(
        &self,
        volume: &str,
        source: &str,
        name: &str,
        writable: bool,
    ) -> Result<OwnedObjectPath, HostError>;
    fn snapshot_delete(&self, volume: &str, name: &str) -> Result<OwnedObjectPath, HostError>;
    fn snapshot_list(&self, volume: &str) -> Result<String, HostError>;
    fn jobs(&self) -> Result<Vec<OwnedObjectPath>, HostError>;
    fn log(&self, since: u64, max: u32) -> Result<(u64, Vec<WireLogRecord>), HostError>;
}

/// The client side of `org.cairn.Guests1`.
#[zbus::proxy(
    interface = "org.cairn.Guests1",
    default_service = "org.cairn.Host1",
    default_path = "/org/cairn/Host1"
)]
pub trait Guests1 {
    fn list(&self) -> Result<String, HostError>;
    fn show(&self, name: &str) -> Result<String, HostError>;
    fn create(&self, guest: &str) -> Result<u64, HostError>;
    fn delete(&self, name: &str, remove_disks: bool) -> Result<u64, HostError>;
    fn start(&self, name: &str) -> Result<String, HostError>;
    fn stop(&self, name: &str, force: bool, timeout_s: u32) -> Result<String, HostError>;
    fn reboot(&self, name: &str) -> Result<String, HostError>;
    fn pause(&self, name: &str) -> Result<String, HostError>;
    fn resume(&self, name: &str) -> Result<String, HostError>;
    fn capacity(&self, vcpus: u32, memory_mib: u64) -> Result<String, HostError>;
}

/// The client side of `org.cairn.Job1`.
#[zbus::proxy(interface = "org.cairn.Job1", default_service = "org.cairn.Host1")]
pub trait Job1 {
    fn snapshot(&self) -> Result<String, HostError>;
    fn cancel(&self) -> Result<(), HostError>;
}
