//! The real [`Vmm`]: cloud-hypervisor processes started with tokio, signalled with
//! `kill(2)`, their API spoken over its unix socket ([`ApiClient`]).
//!
//! The processes run in their own process group: a Ctrl-C on the console or a signal to
//! hostd's group never reaches a guest, and they outlive a hostd restart (then they are
//! init's children, and [`Vmm::gone`] polls for their end).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::api_client::{ApiClient, ApiError};
use super::chv_api::{Endpoint, VmConfig, VmInfo, VmmPingResponse};
use super::console;
use super::layout::RunPaths;
use super::vmm::{Exit, Process, Vmm};

/// How often a process that is not hostd's child is looked at.
const ADOPTED_POLL: Duration = Duration::from_millis(200);

/// cloud-hypervisor at `program`.
#[derive(Debug, Clone)]
pub struct LiveVmm {
    program: PathBuf,
}

impl LiveVmm {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
        }
    }
}

impl Vmm for LiveVmm {
    fn program(&self) -> &Path {
        &self.program
    }

    fn installed(&self) -> bool {
        self.program.exists()
    }

    fn create_sparse(&self, path: &Path, size_mib: u64) -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        file.set_len(size_mib << 20)
    }

    fn spawn(&self, paths: &RunPaths) -> std::io::Result<Process> {
        std::fs::create_dir_all(&paths.dir)?;
        for stale in [paths.api_socket(), paths.serial_socket()] {
            let _ = std::fs::remove_file(stale);
        }
        let log = std::fs::File::create(paths.vmm_log())?;
        let log_err = log.try_clone()?;
        let mut child = tokio::process::Command::new(&self.program)
            .arg("--api-socket")
            .arg(format!("path={}", paths.api_socket().display()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own group: terminal and group signals aimed at hostd never reach it.
            .process_group(0)
            .kill_on_drop(false)
            .spawn()?;
        let pid = child.id().unwrap_or(0);
        let exit = async move {
            match child.wait().await {
                Ok(status) => exit_of(status),
                Err(error) => Exit::Unwaitable(error.to_string()),
            }
        };
        Ok(Process {
            pid,
            exit: exit.boxed(),
        })
    }

    fn kill(&self, pid: u32) {
        if let Ok(raw) = i32::try_from(pid)
            && raw > 0
        {
            // The pid is our unreaped child (its watcher has not waited yet), or one that
            // answered on the guest's API socket a moment ago: it cannot have been reused.
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }

    fn gone(&self, pid: u32) -> BoxFuture<'static, ()> {
        async move {
            let raw = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
            // kill(pid, 0): ESRCH once init has reaped it.
            while kill(raw, None).is_ok() {
                tokio::time::sleep(ADOPTED_POLL).await;
            }
        }
        .boxed()
    }

    fn relay_console(&self, paths: &RunPaths) {
        let _ = std::fs::rename(paths.console_log(), paths.dir.join("console.log.previous"));
        tokio::spawn(console::relay(
            paths.serial_socket(),
            paths.console_log(),
            paths.console_socket(),
        ));
    }

    fn ping<'a>(&'a self, socket: &'a Path) -> BoxFuture<'a, Result<VmmPingResponse, ApiError>> {
        async move { ApiClient::new(socket).get(Endpoint::VmmPing).await }.boxed()
    }

    fn info<'a>(&'a self, socket: &'a Path) -> BoxFuture<'a, Result<VmInfo, ApiError>> {
        async move { ApiClient::new(socket).get(Endpoint::VmInfo).await }.boxed()
    }

    fn create<'a>(
        &'a self,
        socket: &'a Path,
        config: &'a VmConfig,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        async move {
            ApiClient::new(socket)
                .put_json(Endpoint::VmCreate, config)
                .await
        }
        .boxed()
    }

    fn put<'a>(
        &'a self,
        socket: &'a Path,
        endpoint: Endpoint,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        async move { ApiClient::new(socket).put(endpoint).await }.boxed()
    }
}

/// What the kernel reported, as hostd says it.
fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Status(code),
        (None, Some(signal)) => Exit::Signal(
            Signal::try_from(signal).map_or_else(|_| signal.to_string(), |s| s.to_string()),
        ),
        (None, None) => Exit::Ended,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn a_status_and_a_signal_are_told_apart() {
        // Wait statuses as waitpid(2) reports them: the code in the high byte, or the signal.
        assert_eq!(
            exit_of(std::process::ExitStatus::from_raw(3 << 8)),
            Exit::Status(3)
        );
        assert_eq!(
            exit_of(std::process::ExitStatus::from_raw(9)),
            Exit::Signal("SIGKILL".into())
        );
    }

    #[test]
    fn a_sparse_disk_has_its_size_and_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data.img");
        let vmm = LiveVmm::new("/nonexistent/cloud-hypervisor");
        assert!(!vmm.installed());
        vmm.create_sparse(&path, 3).expect("creates");
        let meta = std::fs::metadata(&path).expect("exists");
        assert_eq!(meta.len(), 3 << 20);
        assert!(vmm.create_sparse(&path, 3).is_err(), "create_new");
    }
}
