//! The services init runs, as a table, and how one is started.
//!
//! Every service gets the same small environment (no inherited kernel variables), its
//! own session, and an empty signal mask. What differs is in [`SERVICES`]: readiness,
//! where its stdio goes, and how long it may take to stop.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::termios::{self, BaudRate, ControlFlags, SetArg};
use nix::unistd::Pid;

use crate::error::ServiceError;
use crate::readiness::{READY_FD, ReadyPipe};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Writes `READY\n` to fd 3 (`CAIRN_READY_FD`) when it is ready.
    Notify,
    /// Counts as started once it runs; nothing waits for it.
    Started,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioTarget {
    /// stdin from /dev/null, stdout and stderr to init's own: /dev/console.
    Console,
    /// All three on the board's console tty, which becomes its controlling terminal.
    BoardTty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: &'static str,
    pub path: &'static str,
    /// Arguments after the program name.
    pub args: &'static [&'static str],
    pub readiness: Readiness,
    pub stdio: StdioTarget,
    /// Between SIGTERM and SIGKILL at shutdown.
    pub stop_timeout: Duration,
    /// Added to the common environment.
    pub env: &'static [(&'static str, &'static str)],
    /// Created (mode 0755, with its parents) before every start: a directory under the
    /// `/run` tmpfs the service expects to exist, like systemd's `RuntimeDirectory=`.
    pub runtime_dir: Option<&'static str>,
}

/// In start order; shutdown stops them in reverse.
pub const SERVICES: &[ServiceSpec] = &[
    ServiceSpec {
        // The system bus hostd serves its API on (`org.cairn.Host1`); root-only by policy
        // (`/etc/cairn/dbus-system.conf`, written by the image builder). Nothing waits for
        // it: hostd retries its connection while the broker starts.
        name: "dbus",
        path: "/usr/bin/dbus-daemon",
        args: &[
            "--nofork",
            "--nopidfile",
            "--nosyslog",
            "--config-file=/etc/cairn/dbus-system.conf",
        ],
        readiness: Readiness::Started,
        stdio: StdioTarget::Console,
        // Holds no state worth waiting for; stopped after hostd (reverse order).
        stop_timeout: Duration::from_secs(5),
        env: &[],
        runtime_dir: Some("/run/dbus"),
    },
    ServiceSpec {
        name: "hostd",
        path: "/usr/bin/hostd",
        args: &[],
        readiness: Readiness::Notify,
        stdio: StdioTarget::Console,
        // hostd shuts its guests down cleanly before it exits; guests get 60 s from it,
        // plus time for hostd to unmount volumes.
        stop_timeout: Duration::from_secs(90),
        env: &[],
        runtime_dir: None,
    },
    ServiceSpec {
        name: "console",
        path: "/usr/bin/cairn-console",
        args: &[],
        readiness: Readiness::Started,
        stdio: StdioTarget::BoardTty,
        // A text UI holds nothing worth waiting for.
        stop_timeout: Duration::from_secs(2),
        // What systemd gives serial gettys: a safe common subset of escape sequences.
        env: &[("TERM", "vt220")],
        runtime_dir: None,
    },
];

pub const PATH: &str = "/usr/sbin:/usr/bin";

/// The whole environment of a service: nothing is inherited from init.
pub fn environment(spec: &ServiceSpec, board_id: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("CAIRN_BOARD".to_owned(), board_id.to_owned()),
        ("PATH".to_owned(), PATH.to_owned()),
    ];
    if spec.readiness == Readiness::Notify {
        env.push(("CAIRN_READY_FD".to_owned(), READY_FD.to_string()));
    }
    env.extend(
        spec.env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

/// termios speeds are an enum, not a number; `None` for a rate Linux does not have.
pub fn baud_rate(baud: u32) -> Option<BaudRate> {
    Some(match baud {
        1200 => BaudRate::B1200,
        2400 => BaudRate::B2400,
        4800 => BaudRate::B4800,
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115200 => BaudRate::B115200,
        230400 => BaudRate::B230400,
        460800 => BaudRate::B460800,
        500000 => BaudRate::B500000,
        921600 => BaudRate::B921600,
        1000000 => BaudRate::B1000000,
        1500000 => BaudRate::B1500000,
        _ => return None,
    })
}

/// Puts `rate` in the CBAUD bits of `c_cflag` (input speed bits cleared: "same as
/// output"), which is all cfsetspeed(3) does on Linux. Not cfsetspeed itself: the libc
/// crate binds it to the versioned symbol `cfsetspeed@GLIBC_2.2.5`, which a static
/// (`crt-static`) link cannot resolve.
pub fn with_speed(flags: ControlFlags, rate: BaudRate) -> ControlFlags {
    use nix::libc::{CBAUD, CIBAUD, tcflag_t};
    let cleared = flags.bits() & !(CBAUD | CIBAUD);
    ControlFlags::from_bits_retain(cleared | rate as tcflag_t)
}

/// A started service.
#[derive(Debug)]
pub struct Spawned {
    pub pid: Pid,
    pub ready: Option<ReadyPipe>,
}

/// Starting a process, so the supervisor can be tested without one.
pub trait Spawner {
    fn spawn(&mut self, spec: &ServiceSpec) -> Result<Spawned, ServiceError>;
}

pub struct ProcessSpawner {
    pub board_id: String,
    /// `/dev/<board console device>`.
    pub tty: PathBuf,
    pub baud: u32,
}

impl Spawner for ProcessSpawner {
    fn spawn(&mut self, spec: &ServiceSpec) -> Result<Spawned, ServiceError> {
        if let Some(dir) = spec.runtime_dir {
            create_runtime_dir(Path::new(dir)).map_err(|source| ServiceError::RuntimeDir {
                path: PathBuf::from(dir),
                source,
            })?;
        }
        let mut command = Command::new(spec.path);
        command
            .args(spec.args)
            .env_clear()
            .envs(environment(spec, &self.board_id))
            .current_dir("/");
        let controlling_tty = match spec.stdio {
            StdioTarget::Console => {
                command
                    .stdin(Stdio::null())
                    .stdout(Stdio::inherit())
                    .stderr(Stdio::inherit());
                false
            }
            StdioTarget::BoardTty => {
                let tty = open_tty(&self.tty, self.baud)?;
                let clone = |tty: &File| {
                    tty.try_clone().map_err(|source| ServiceError::OpenTty {
                        path: self.tty.clone(),
                        source,
                    })
                };
                command.stdin(clone(&tty)?).stdout(clone(&tty)?).stderr(tty);
                true
            }
        };
        let (ready, write_end): (Option<ReadyPipe>, Option<OwnedFd>) = match spec.readiness {
            Readiness::Notify => {
                let (pipe, write_end) = ReadyPipe::new().map_err(ServiceError::ReadinessPipe)?;
                (Some(pipe), Some(write_end))
            }
            Readiness::Started => (None, None),
        };
        let ready_fd = write_end.as_ref().map(AsRawFd::as_raw_fd);
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls (sigprocmask, setsid, ioctl, dup2, fcntl) on
        // fds that are open in the child; it allocates nothing and takes no locks.
        unsafe {
            command.pre_exec(move || prepare_child(ready_fd, controlling_tty));
        }
        let child = command.spawn().map_err(|source| ServiceError::Spawn {
            path: PathBuf::from(spec.path),
            source,
        })?;
        // Only the child may hold the write end, so its exit is seen as EOF.
        drop(write_end);
        let pid = i32::try_from(child.id()).map_err(|_| ServiceError::Spawn {
            path: PathBuf::from(spec.path),
            source: io::Error::other("pid out of range"),
        })?;
        // `child` is dropped without waiting: init reaps every child with waitpid(-1).
        Ok(Spawned {
            pid: Pid::from_raw(pid),
            ready,
        })
    }
}

fn create_runtime_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
}

/// Opens the board's console tty at its baud rate. O_NOCTTY: the tty must not become
/// init's controlling terminal, or the service could not take it.
pub fn open_tty(path: &Path, baud: u32) -> Result<File, ServiceError> {
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(path)
        .map_err(|source| ServiceError::OpenTty {
            path: path.to_owned(),
            source,
        })?;
    let set_speed = |rate: BaudRate| -> nix::Result<()> {
        let mut settings = termios::tcgetattr(&tty)?;
        settings.control_flags = with_speed(settings.control_flags, rate);
        termios::tcsetattr(&tty, SetArg::TCSANOW, &settings)
    };
    match baud_rate(baud) {
        Some(rate) => set_speed(rate).map_err(|source| ServiceError::SetSpeed {
            path: path.to_owned(),
            baud,
            source,
        })?,
        None => tracing::warn!(
            "{baud} baud is not a rate Linux knows; {} keeps its speed",
            path.display()
        ),
    }
    Ok(tty)
}

/// Runs in the child between fork and exec.
pub fn prepare_child(ready_fd: Option<RawFd>, controlling_tty: bool) -> io::Result<()> {
    // SAFETY: sigemptyset on a local, zero-initialised sigset_t, then sigprocmask with
    // valid pointers; both are async-signal-safe.
    unsafe {
        let mut empty: nix::libc::sigset_t = std::mem::zeroed();
        nix::libc::sigemptyset(&mut empty);
        if nix::libc::sigprocmask(nix::libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if let Some(fd) = ready_fd {
        if fd == READY_FD {
            // dup2 onto itself would keep close-on-exec set; clear it instead.
            // SAFETY: fcntl on an fd this process owns.
            if unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
        // SAFETY: dup2 between two fd numbers; READY_FD may be open in the child (it
        // is closed and replaced atomically, which is what we want).
        } else if unsafe { nix::libc::dup2(fd, READY_FD) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // Every service gets its own session: a tty's job-control signals stay with the
    // console service, and no service shares a process group with another.
    // SAFETY: setsid has no memory effects; it fails only for a group leader, which a
    // freshly forked child is not.
    if unsafe { nix::libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    if controlling_tty {
        // SAFETY: fd 0 is the tty std put there; TIOCSCTTY takes an int argument (0:
        // do not steal it from another session).
        if unsafe { nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_what_the_contract_says() {
        let dbus = &SERVICES[0];
        assert_eq!((dbus.name, dbus.path), ("dbus", "/usr/bin/dbus-daemon"));
        assert!(
            dbus.args
                .contains(&"--config-file=/etc/cairn/dbus-system.conf")
        );
        assert_eq!(dbus.readiness, Readiness::Started);
        assert_eq!(dbus.runtime_dir, Some("/run/dbus"));
        let hostd = &SERVICES[1];
        assert_eq!((hostd.name, hostd.path), ("hostd", "/usr/bin/hostd"));
        assert_eq!(hostd.readiness, Readiness::Notify);
        assert_eq!(hostd.stop_timeout, Duration::from_secs(90));
        let console = &SERVICES[2];
        assert_eq!(
            (console.name, console.path),
            ("console", "/usr/bin/cairn-console")
        );
        assert_eq!(console.stdio, StdioTarget::BoardTty);
        assert_eq!(console.stop_timeout, Duration::from_secs(2));
    }

    #[test]
    fn environment_is_small_and_complete() {
        let env = environment(&SERVICES[1], "ds918plus");
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("CAIRN_BOARD", "ds918plus"),
                ("PATH", "/usr/sbin:/usr/bin"),
                ("CAIRN_READY_FD", "3"),
            ]
        );
        let env = environment(&SERVICES[2], "generic");
        assert!(env.iter().all(|(k, _)| k != "CAIRN_READY_FD"));
        assert!(env.contains(&("TERM".to_owned(), "vt220".to_owned())));
    }

    #[test]
    fn speed_goes_into_the_cbaud_bits_only() {
        use nix::libc::{B9600, B115200, CBAUD, CIBAUD};
        let before = ControlFlags::CS8 | ControlFlags::CREAD | ControlFlags::CLOCAL;
        let slow = ControlFlags::from_bits_retain(before.bits() | B9600 | (B9600 << 16));
        let fast = with_speed(slow, BaudRate::B115200);
        assert_eq!(fast.bits() & CBAUD, B115200);
        assert_eq!(fast.bits() & CIBAUD, 0);
        assert_eq!(fast.bits() & !(CBAUD | CIBAUD), before.bits());
    }

    #[test]
    fn baud_rates() {
        assert_eq!(baud_rate(115200), Some(BaudRate::B115200));
        assert_eq!(baud_rate(9600), Some(BaudRate::B9600));
        assert_eq!(baud_rate(12345), None);
    }

    #[test]
    fn spawned_service_gets_fd3_env_and_empty_mask() {
        let _guard = crate::test_support::CHILDREN.lock();
        let dir = crate::test_support::TempDir::new("spawn");
        let out = dir.path().join("out");
        let script = format!(
            "#!/bin/sh\n\
             {{ echo \"board=$CAIRN_BOARD fd=$CAIRN_READY_FD path=$PATH\"; \
             grep SigBlk /proc/self/status; }} > {}\n\
             echo READY >&3\n",
            out.display()
        );
        let path = dir.write("svc", &script);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let leaked: &'static str = Box::leak(path.to_string_lossy().into_owned().into_boxed_str());
        let spec = ServiceSpec {
            name: "probe",
            path: leaked,
            args: &[],
            readiness: Readiness::Notify,
            stdio: StdioTarget::Console,
            stop_timeout: Duration::from_secs(1),
            env: &[],
            runtime_dir: None,
        };
        let mut spawner = ProcessSpawner {
            board_id: "testboard".into(),
            tty: PathBuf::from("/dev/null"),
            baud: 115200,
        };
        // A blocked signal in the spawning thread must not reach the service.
        let mut usr1 = nix::sys::signal::SigSet::empty();
        usr1.add(nix::sys::signal::Signal::SIGUSR1);
        nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_BLOCK,
            Some(&usr1),
            None,
        )
        .expect("block");
        let spawned = spawner.spawn(&spec);
        nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
            Some(&usr1),
            None,
        )
        .expect("unblock");
        let spawned = spawned.expect("spawn");
        let status = nix::sys::wait::waitpid(spawned.pid, None).expect("wait");
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(spawned.pid, 0));
        let mut pipe = spawned.ready.expect("notify service has a pipe");
        assert_eq!(pipe.read_available(), crate::readiness::PipeState::Ready);
        let text = std::fs::read_to_string(&out).expect("probe output");
        assert!(
            text.starts_with("board=testboard fd=3 path=/usr/sbin:/usr/bin\n"),
            "{text}"
        );
        assert!(text.contains("SigBlk:\t0000000000000000"), "{text}");
    }
}
