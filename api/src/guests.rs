//! Guests as `cairnctl vm` sees them: a guest's view and state, the host's headroom, sizes
//! for people, and where a guest's runtime files are (its console socket).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One guest as `vm list`/`vm show` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestView {
    pub name: String,
    pub state: GuestState,
    pub vcpus: u32,
    pub memory_mib: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Seconds since 1970 of the last state change.
    pub since: u64,
    pub autostart: bool,
    pub restart: RestartPolicy,
    pub restarts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
    pub nics: Vec<NicView>,
    pub console_log: String,
    pub console_tail: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicView {
    pub tap: String,
    pub vswitch: String,
    pub mac: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestState {
    /// No cloud-hypervisor process.
    Stopped,
    /// The process is starting; the VM is being created and booted over the API.
    Starting,
    Running,
    Paused,
    /// Asked to stop (power button, or forced); waiting for the process to end.
    Stopping,
    /// The process ended without being asked to (killed, failed, or a failed start).
    Crashed,
}

impl GuestState {
    pub fn is_active(self) -> bool {
        match self {
            Self::Starting | Self::Running | Self::Paused | Self::Stopping => true,
            Self::Stopped | Self::Crashed => false,
        }
    }
}

impl fmt::Display for GuestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Stopped => "stopped",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopping => "stopping",
            Self::Crashed => "crashed",
        })
    }
}

/// What hostd does when a guest's cloud-hypervisor process ends without being asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Stays stopped (or crashed).
    Never,
    /// Started again after a crash (a process killed or failed), not after the guest
    /// powered itself off.
    #[default]
    OnCrash,
    /// Started again whenever it ends without hostd having stopped it.
    Always,
}

impl RestartPolicy {
    pub const NAMES: [&str; 3] = ["never", "on-crash", "always"];

    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "never" => Some(Self::Never),
            "on-crash" => Some(Self::OnCrash),
            "always" => Some(Self::Always),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mib(pub u64);

impl fmt::Display for Mib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = self.0;
        if mib >= 1024 && mib.is_multiple_of(1024) {
            write!(f, "{} GiB", mib / 1024)
        } else if mib < 1024 {
            write!(f, "{mib} MiB")
        } else {
            // Two decimals of GiB: what the white paper's own tables use.
            #[allow(clippy::cast_precision_loss)] // sizes far below 2^52 MiB
            let gib = mib as f64 / 1024.0;
            write!(f, "{gib:.2} GiB")
        }
    }
}

/// The headroom, for `cairnctl vm capacity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub memory_mib: u64,
    pub host_reserve_mib: u64,
    pub guests_mib: u64,
    pub free_mib: u64,
    pub threads: u32,
    pub reserved_threads: Vec<u32>,
    pub vcpus_per_thread: u32,
    pub shared_vcpus_used: u32,
    pub shared_vcpus_limit: u32,
    pub running: usize,
    /// With a size asked: how many more guests of it fit now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fits: Option<Fits>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fits {
    pub vcpus: u32,
    pub memory_mib: u64,
    /// What one such guest costs the host, in MiB.
    pub cost_mib: u64,
    pub count: u64,
    /// `memory` or `vcpus`: which rule stops the next one.
    pub limited_by: String,
}

/// The default run directory (tmpfs).
pub const RUN_DIR: &str = "/run/cairn/guests";

/// One guest's runtime files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPaths {
    pub dir: PathBuf,
}

impl RunPaths {
    pub fn new(run_dir: &Path, guest: &str) -> Self {
        Self {
            dir: run_dir.join(guest),
        }
    }
    pub fn api_socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }
    pub fn serial_socket(&self) -> PathBuf {
        self.dir.join("serial.sock")
    }
    pub fn console_socket(&self) -> PathBuf {
        self.dir.join("console.sock")
    }
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    pub fn vmm_log(&self) -> PathBuf {
        self.dir.join("vmm.log")
    }
}
