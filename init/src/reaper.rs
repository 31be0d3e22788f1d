//! Reaping children, and waiting for them with a deadline.
//!
//! As PID 1, init inherits every orphan on the system, so every SIGCHLD is answered by
//! `waitpid(-1, WNOHANG)` until nothing is left: one signal can stand for many exits
//! (standard signals do not queue), and a zombie nobody reaps stays forever.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

#[derive(Debug, Default)]
pub struct Reaped {
    pub exits: Vec<(Pid, WaitStatus)>,
    /// ECHILD: init has no children left at all.
    pub none_left: bool,
}

pub fn reap_all() -> Reaped {
    let mut reaped = Reaped::default();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => break,
            Ok(status) => {
                if let Some(pid) = status.pid() {
                    reaped.exits.push((pid, status));
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => {
                reaped.none_left = true;
                break;
            }
            Err(err) => {
                // Not expected from waitpid(-1); never fatal, the next SIGCHLD retries.
                tracing::warn!("waitpid failed: {err}");
                break;
            }
        }
    }
    reaped
}

/// `exited with status 3` or `was killed by SIGKILL`; `None` for a status that is not
/// an exit (stopped, continued).
pub fn describe_exit(status: &WaitStatus) -> Option<String> {
    match status {
        WaitStatus::Exited(_, code) => Some(format!("exited with status {code}")),
        WaitStatus::Signaled(_, signal, _core_dumped) => {
            Some(format!("was killed by {}", signal.as_str()))
        }
        WaitStatus::Stopped(..)
        | WaitStatus::PtraceEvent(..)
        | WaitStatus::PtraceSyscall(..)
        | WaitStatus::Continued(..)
        | WaitStatus::StillAlive => None,
    }
}

/// Reaps until `done` says so or `deadline` passes; true if `done` did. `done` sees each
/// batch of exits and whether any child is left. Between batches it sleeps in poll(2) on
/// the signalfd, so an exit wakes it at once; the 100 ms cap is a safety net in case a
/// SIGCHLD was consumed elsewhere. Signals other than SIGCHLD are dropped with a note:
/// this runs during shutdown, when there is nothing more to ask for.
pub fn reap_until(
    signals: Option<&SignalFd>,
    deadline: Instant,
    mut done: impl FnMut(&Reaped) -> bool,
) -> bool {
    loop {
        if done(&reap_all()) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let wait = (deadline - now).min(Duration::from_millis(100));
        match signals {
            Some(signals) => {
                let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
                let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
                // Errors (EINTR) just mean looking again.
                let _ = poll(&mut fds, timeout);
                while let Ok(Some(info)) = signals.read_signal() {
                    let signo = i32::try_from(info.ssi_signo).unwrap_or_default();
                    match Signal::try_from(signo) {
                        Ok(Signal::SIGCHLD) => {}
                        Ok(signal) => tracing::info!("already shutting down; ignoring {signal}"),
                        Err(_) => {}
                    }
                }
            }
            None => std::thread::sleep(wait),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_descriptions() {
        let pid = Pid::from_raw(42);
        assert_eq!(
            describe_exit(&WaitStatus::Exited(pid, 3)).as_deref(),
            Some("exited with status 3")
        );
        assert_eq!(
            describe_exit(&WaitStatus::Exited(pid, 0)).as_deref(),
            Some("exited with status 0")
        );
        assert_eq!(
            describe_exit(&WaitStatus::Signaled(pid, Signal::SIGKILL, false)).as_deref(),
            Some("was killed by SIGKILL")
        );
        assert_eq!(
            describe_exit(&WaitStatus::Signaled(pid, Signal::SIGSEGV, true)).as_deref(),
            Some("was killed by SIGSEGV")
        );
        assert_eq!(describe_exit(&WaitStatus::Continued(pid)), None);
        assert_eq!(describe_exit(&WaitStatus::StillAlive), None);
    }

    #[test]
    fn reaps_a_real_child() {
        // Serialised with other tests that fork: waitpid(-1) would steal their children.
        let _guard = crate::test_support::CHILDREN.lock();
        // Reaped by reap_until below, not by Child::wait: that is what this test checks.
        #[allow(clippy::zombie_processes)]
        let child = std::process::Command::new("/bin/sh")
            .args(["-c", "exit 7"])
            .spawn()
            .expect("spawn sh");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
        let mut seen = None;
        let done = reap_until(None, Instant::now() + Duration::from_secs(10), |reaped| {
            for (p, status) in &reaped.exits {
                if *p == pid {
                    seen = Some(*status);
                }
            }
            seen.is_some()
        });
        assert!(done);
        assert_eq!(seen, Some(WaitStatus::Exited(pid, 7)));
    }
}
