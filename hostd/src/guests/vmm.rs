//! The seam in front of cloud-hypervisor: everything the guests do with its process and its
//! REST API goes through [`Vmm`] — spawn the process, signal it, learn that it ended (and
//! how), the API calls, the sparse disk files, the serial relay. [`LiveVmm`] is the real one
//! (`live_vmm.rs`); the lifecycle tests script a fake one, so start, crash, restart with
//! back-off, adopt and shutdown ordering are proved without cloud-hypervisor or root.
//!
//! [`LiveVmm`]: super::live_vmm::LiveVmm

use std::fmt;
use std::path::Path;

use futures::future::BoxFuture;

use super::api_client::ApiError;
use super::chv_api::{Endpoint, VmConfig, VmInfo, VmmPingResponse};
use super::layout::RunPaths;

/// A cloud-hypervisor process hostd started: its pid, and its end (resolves once, when the
/// kernel reports the exit).
pub struct Process {
    pub pid: u32,
    pub exit: BoxFuture<'static, Exit>,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// How a cloud-hypervisor process ended. The text completes "cloud-hypervisor …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status (0: cleanly).
    Status(i32),
    /// A signal ended it (the signal's name: `SIGKILL`).
    Signal(String),
    /// Neither a status nor a signal was reported.
    Ended,
    /// Waiting for it failed (the error's text).
    Unwaitable(String),
    /// A process taken over after a hostd restart is not hostd's child: its end is seen,
    /// its status is not.
    Unknown,
}

impl Exit {
    /// A clean exit: the guest powered itself off, or it obeyed the power button.
    pub fn clean(&self) -> bool {
        matches!(self, Self::Status(0))
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(code) => write!(f, "exited with status {code}"),
            Self::Signal(name) => write!(f, "was killed by {name}"),
            Self::Ended => f.write_str("ended"),
            Self::Unwaitable(error) => write!(f, "could not be waited for: {error}"),
            Self::Unknown => f.write_str(
                "ended (taken over after a hostd restart, so its exit status is unknown)",
            ),
        }
    }
}

/// cloud-hypervisor, as the guests use it. API calls name the process by its API socket
/// (`RunPaths::api_socket`), as `ch-remote` does.
pub trait Vmm: Send + Sync + 'static {
    /// Where the binary is (for the error when it is not).
    fn program(&self) -> &Path;
    /// Whether this image has cloud-hypervisor at all.
    fn installed(&self) -> bool;
    /// Creates an empty (sparse) disk image of `size_mib`; refuses to overwrite a file.
    fn create_sparse(&self, path: &Path, size_mib: u64) -> std::io::Result<()>;
    /// Starts cloud-hypervisor with only its API socket in the guest's run directory
    /// (created; stale sockets removed; its output to `vmm.log`), in a process group of its
    /// own.
    fn spawn(&self, paths: &RunPaths) -> std::io::Result<Process>;
    /// SIGKILL to `pid` (nothing when it is gone).
    fn kill(&self, pid: u32);
    /// Resolves when `pid`, a process that is not hostd's child, no longer exists.
    fn gone(&self, pid: u32) -> BoxFuture<'static, ()>;
    /// Relays the guest's serial socket to its console log and `console.sock` for the
    /// process's life; each run starts a fresh log (the previous one is kept beside it).
    fn relay_console(&self, paths: &RunPaths);
    /// `GET vmm.ping`.
    fn ping<'a>(&'a self, socket: &'a Path) -> BoxFuture<'a, Result<VmmPingResponse, ApiError>>;
    /// `GET vm.info`.
    fn info<'a>(&'a self, socket: &'a Path) -> BoxFuture<'a, Result<VmInfo, ApiError>>;
    /// `PUT vm.create` with the guest's `VmConfig`.
    fn create<'a>(
        &'a self,
        socket: &'a Path,
        config: &'a VmConfig,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
    /// A `PUT` without a body (`vm.boot`, `vm.power-button`, `vm.pause`, …).
    fn put<'a>(
        &'a self,
        socket: &'a Path,
        endpoint: Endpoint,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn how_a_process_ended_reads_after_cloud_hypervisor() {
        let cases = [
            (Exit::Status(0), "exited with status 0", true),
            (Exit::Status(1), "exited with status 1", false),
            (
                Exit::Signal("SIGKILL".into()),
                "was killed by SIGKILL",
                false,
            ),
            (Exit::Ended, "ended", false),
            (
                Exit::Unknown,
                "ended (taken over after a hostd restart, so its exit status is unknown)",
                false,
            ),
        ];
        for (exit, text, clean) in cases {
            assert_eq!((exit.to_string().as_str(), exit.clean()), (text, clean));
        }
    }
}
