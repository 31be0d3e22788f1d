//! One QEMU process, with a teardown that always runs.
//!
//! [`Vm::start`] launches QEMU paused (`-S`), attaches the serial console and QMP, and
//! only then lets the guest run, so the transcript holds every byte the guest printed.
//!
//! Teardown follows cloud-hypervisor's test_infra: whatever way the test ends, dropping
//! the `Vm` kills QEMU and reaps it. A test that succeeds says so with [`Vm::finish`]; a
//! `Vm` dropped without it (a panic, or an early `?` return) prints the console tail,
//! QEMU's stderr and the scratch directory before going, so the failure explains itself.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::builder::{BuildError, QemuBuilder};
use crate::console::{Console, ConsoleError, TAIL_LINES};
use crate::qmp::{Qmp, QmpError};
use crate::timeouts;
use crate::workdir::{KEEP_ENV, WorkDir};

/// `sun_path` is 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// How often `wait_for_exit` and socket setup look again. std has no wait-with-timeout
/// for a child; 20 ms bounds the added latency and costs nothing measurable.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

#[derive(Debug, Error)]
pub enum VmError {
    #[error("Cannot build the QEMU command line")]
    Build(#[from] BuildError),
    #[error(
        "Socket path {0} is longer than the 107 bytes unix sockets allow; set TMPDIR to a shorter directory"
    )]
    SocketPathTooLong(PathBuf),
    #[error("Cannot create {path}")]
    Scratch {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot start {binary}: install Debian's qemu-system-x86 package")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("QEMU exited during startup ({status}); its stderr:\n{stderr}")]
    ExitedEarly { status: ExitStatus, stderr: String },
    #[error("QEMU did not open {path} within {waited:?}; its stderr:\n{stderr}")]
    SocketTimeout {
        path: PathBuf,
        waited: Duration,
        stderr: String,
    },
    #[error("Serial console failed")]
    Console(#[from] ConsoleError),
    #[error("QMP failed")]
    Qmp(#[from] QmpError),
    #[error(
        "QEMU still running {waited:?} after the guest was asked to stop; console's last lines:\n{tail}"
    )]
    ExitTimeout { waited: Duration, tail: String },
    #[error("Cannot wait for or kill the QEMU process")]
    Process(#[source] io::Error),
}

/// A running (or exited, not yet dropped) QEMU.
pub struct Vm {
    name: String,
    child: Child,
    exit: Option<ExitStatus>,
    console: Console,
    qmp: Qmp,
    stderr_path: PathBuf,
    finished: bool,
    // Declared last so it is removed after the console and QMP sockets are closed.
    dir: WorkDir,
}

impl fmt::Debug for Vm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vm")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .field("exit", &self.exit)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// Kills a child that never made it into a `Vm` (setup failed half-way).
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            // Best effort: the setup error is what gets reported.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Vm {
    /// Starts QEMU from `builder` with its console, QMP socket, console log and stderr in
    /// `dir`, and lets the guest run once both sockets are attached.
    pub fn start(name: &str, builder: QemuBuilder, dir: WorkDir) -> Result<Self, VmError> {
        let serial = dir.join("console.sock");
        let qmp_path = dir.join("qmp.sock");
        for socket in [&serial, &qmp_path] {
            if socket.as_os_str().len() > MAX_SOCKET_PATH {
                return Err(VmError::SocketPathTooLong(socket.clone()));
            }
        }
        let builder = builder
            .name(name)
            .serial_socket(&serial, dir.join("console.log"))
            .qmp_socket(&qmp_path)
            .start_paused(true);
        let args = builder.args()?;

        let scratch = |path: PathBuf| {
            move |source| VmError::Scratch {
                path: path.clone(),
                source,
            }
        };
        let cmdline_path = dir.join("qemu.cmdline");
        let cmdline = std::iter::once(builder.binary_path().as_os_str())
            .chain(args.iter().map(|a| a.as_os_str()))
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        // Kept beside the console log so a failure can be rerun by hand.
        std::fs::write(&cmdline_path, cmdline + "\n").map_err(scratch(cmdline_path.clone()))?;
        let stderr_path = dir.join("qemu.stderr");
        let stderr = File::create(&stderr_path).map_err(scratch(stderr_path.clone()))?;
        let stdout = stderr.try_clone().map_err(scratch(stderr_path.clone()))?;

        let child = Command::new(builder.binary_path())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|source| VmError::Spawn {
                binary: builder.binary_path().to_owned(),
                source,
            })?;
        let mut guard = KillOnDrop(Some(child));

        let attached = (|| {
            let deadline = Instant::now() + timeouts::qemu_sockets();
            let console_stream = connect_when_ready(&mut guard, &serial, deadline, &stderr_path)?;
            let qmp_stream = connect_when_ready(&mut guard, &qmp_path, deadline, &stderr_path)?;
            let console = Console::new(console_stream)?;
            let mut qmp = Qmp::handshake(qmp_stream)?;
            qmp.cont()?;
            Ok::<_, VmError>((console, qmp))
        })();
        let (console, qmp) = match attached {
            Ok(attached) => attached,
            // QEMU refusing its command line closes the sockets it had just opened; its
            // stderr says why, the socket error does not.
            Err(e) => return Err(exited_early(&mut guard, &stderr_path).unwrap_or(e)),
        };

        let child = guard
            .0
            .take()
            .expect("the guard holds the child until here");
        Ok(Self {
            name: name.to_owned(),
            child,
            exit: None,
            console,
            qmp,
            stderr_path,
            finished: false,
            dir,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn console(&mut self) -> &mut Console {
        &mut self.console
    }

    pub fn qmp(&mut self) -> &mut Qmp {
        &mut self.qmp
    }

    /// The scratch directory: overlays, `console.log`, `qemu.stderr`, `qemu.cmdline`.
    pub fn dir(&self) -> &WorkDir {
        &self.dir
    }

    /// The exit status, if QEMU has exited (reaping it if needed).
    pub fn try_exit(&mut self) -> Result<Option<ExitStatus>, VmError> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().map_err(VmError::Process)?;
        }
        Ok(self.exit)
    }

    /// Waits for QEMU to exit by itself (guest poweroff), up to `timeout`.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Result<ExitStatus, VmError> {
        let started = Instant::now();
        let deadline = started + timeout;
        loop {
            if let Some(status) = self.try_exit()? {
                return Ok(status);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(VmError::ExitTimeout {
                    waited: now - started,
                    tail: self.console.tail(TAIL_LINES),
                });
            }
            std::thread::sleep(POLL_INTERVAL.min(deadline - now));
        }
    }

    /// Pulls the plug: SIGKILL, then reap. Returns the exit status.
    pub fn kill(&mut self) -> Result<ExitStatus, VmError> {
        if let Some(status) = self.try_exit()? {
            return Ok(status);
        }
        self.child.kill().map_err(VmError::Process)?;
        let status = self.child.wait().map_err(VmError::Process)?;
        self.exit = Some(status);
        Ok(status)
    }

    /// Marks the test as passed and tears down quietly.
    pub fn finish(mut self) {
        self.finished = true;
    }

    fn failure_report(&self, how_qemu_ended: &str) -> String {
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let stderr = stderr.trim();
        let dir = self.dir.path().display();
        let kept = if self.dir.is_kept() {
            format!("kept at {dir}")
        } else {
            format!("{dir} (removed now; set {KEEP_ENV}=1 to keep it)")
        };
        format!(
            "==== VM {name}: test failed; QEMU {how_qemu_ended} ====\n\
             ---- serial console, last {TAIL_LINES} lines ----\n{console}\n\
             ---- QEMU stderr ----\n{stderr}\n\
             ---- scratch directory: {kept}\n",
            name = self.name,
            console = self.console.tail(TAIL_LINES),
            stderr = if stderr.is_empty() { "(empty)" } else { stderr },
        )
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let how = match self.exit {
            Some(status) => format!("had exited ({status})"),
            None => match self.kill() {
                Ok(_) => "was killed by the teardown".to_owned(),
                Err(e) => format!("could not be killed ({e}); pid {}", self.child.id()),
            },
        };
        if !self.finished || std::thread::panicking() {
            eprintln!("{}", self.failure_report(&how));
        }
    }
}

/// `ExitedEarly` with QEMU's stderr if the child has exited (give it a moment to do so).
fn exited_early(guard: &mut KillOnDrop, stderr_path: &Path) -> Option<VmError> {
    let child = guard.0.as_mut()?;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let stderr = std::fs::read_to_string(stderr_path).unwrap_or_default();
            return Some(VmError::ExitedEarly {
                status,
                stderr: stderr.trim().to_owned(),
            });
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Connects to a socket QEMU is about to create, failing fast if QEMU exits instead.
fn connect_when_ready(
    guard: &mut KillOnDrop,
    path: &Path,
    deadline: Instant,
    stderr_path: &Path,
) -> Result<UnixStream, VmError> {
    let started = Instant::now();
    let stderr = || {
        std::fs::read_to_string(stderr_path)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    loop {
        if let Some(child) = &mut guard.0
            && let Some(status) = child.try_wait().map_err(VmError::Process)?
        {
            return Err(VmError::ExitedEarly {
                status,
                stderr: stderr(),
            });
        }
        if let Ok(stream) = UnixStream::connect(path) {
            return Ok(stream);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(VmError::SocketTimeout {
                path: path.to_owned(),
                waited: now - started,
                stderr: stderr(),
            });
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(binary: &str) -> QemuBuilder {
        QemuBuilder::new()
            .binary(binary)
            .direct_kernel("/k", "/i", "")
    }

    #[test]
    fn a_missing_emulator_names_the_package() {
        let dir = WorkDir::new("vm-unit").expect("scratch");
        let err = Vm::start("t", builder("/nonexistent/qemu"), dir).expect_err("no binary");
        assert!(matches!(err, VmError::Spawn { .. }), "{err:?}");
        assert!(err.to_string().contains("qemu-system-x86"));
    }

    #[test]
    fn an_emulator_that_exits_at_once_is_reported() {
        // `false` stands in for a QEMU that rejects its command line.
        let dir = WorkDir::new("vm-unit").expect("scratch");
        let err = Vm::start("t", builder("false"), dir).expect_err("exits early");
        match err {
            VmError::ExitedEarly { status, .. } => assert_eq!(status.code(), Some(1)),
            other => panic!("unexpected {other:?}"),
        }
    }
}
