//! The one way out: every request, fatal error and panic ends here.
//!
//! The phases run in a fixed order ([`PHASES`]); each is guarded so that a panic or an
//! error in one cannot keep the machine from reaching reboot(2). PID 1 must never
//! return or exit: the kernel would panic.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::reboot::RebootMode;
use nix::sys::signal::{Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::unistd::Pid;

use crate::mounts::{SystemUnmounter, read_mounts, unmount_all, unmount_order};
use crate::reaper::reap_until;
use crate::services::Spawner;
use crate::supervisor::Supervisor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownKind {
    PowerOff,
    Reboot,
    Halt,
}

impl ShutdownKind {
    /// As in `shutdown: <kind> requested by …`.
    pub fn name(self) -> &'static str {
        match self {
            ShutdownKind::PowerOff => "poweroff",
            ShutdownKind::Reboot => "reboot",
            ShutdownKind::Halt => "halt",
        }
    }

    /// The last line before reboot(2).
    pub fn last_words(self) -> &'static str {
        match self {
            ShutdownKind::PowerOff => "powering off",
            ShutdownKind::Reboot => "rebooting",
            ShutdownKind::Halt => "halting",
        }
    }

    fn mode(self) -> RebootMode {
        match self {
            ShutdownKind::PowerOff => RebootMode::RB_POWER_OFF,
            ShutdownKind::Reboot => RebootMode::RB_AUTOBOOT,
            ShutdownKind::Halt => RebootMode::RB_HALT_SYSTEM,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    Signal(Signal),
    FatalError,
    EmergencyShellExit,
}

impl fmt::Display for Requester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requester::Signal(signal) => f.write_str(signal.as_str()),
            Requester::FatalError => f.write_str("a fatal error"),
            Requester::EmergencyShellExit => f.write_str("the emergency shell exiting"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: ShutdownKind,
    pub by: Requester,
}

impl Request {
    /// `shutdown: <kind> requested by <what>`
    pub fn line(&self) -> String {
        format!("shutdown: {} requested by {}", self.kind.name(), self.by)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Services in reverse start order, each with its own deadline.
    StopServices,
    /// SIGTERM, then SIGKILL, to whatever is left.
    KillRemaining,
    /// Flush dirty pages while every filesystem is still mounted, with a timeout: a hung
    /// disk must not keep the machine from rebooting.
    Sync,
    /// Everything but the root, newest first.
    Unmount,
    /// reboot(2).
    Reboot,
}

pub const PHASES: [Phase; 5] = [
    Phase::StopServices,
    Phase::KillRemaining,
    Phase::Sync,
    Phase::Unmount,
    Phase::Reboot,
];

/// The work of each phase, so the sequence can be tested without a machine.
pub trait Actions {
    fn stop_services(&mut self);
    fn kill_remaining(&mut self);
    fn sync(&mut self);
    fn unmount(&mut self);
    fn reboot(&mut self, kind: ShutdownKind);
}

/// Runs [`PHASES`] in order. A phase that panics is logged and skipped.
pub fn execute(actions: &mut impl Actions, request: &Request) {
    tracing::info!("{}", request.line());
    for phase in PHASES {
        let result = catch_unwind(AssertUnwindSafe(|| match phase {
            Phase::StopServices => actions.stop_services(),
            Phase::KillRemaining => actions.kill_remaining(),
            Phase::Sync => actions.sync(),
            Phase::Unmount => actions.unmount(),
            Phase::Reboot => actions.reboot(request.kind),
        }));
        if result.is_err() {
            tracing::error!("shutdown phase {phase:?} panicked; going on");
        }
    }
}

/// After SIGTERM to everything left: most programs exit within a second; 5 s covers a
/// slow one flushing a file without stalling the reboot much.
const REMAINING_TERM_WAIT: Duration = Duration::from_secs(5);
/// After SIGKILL, only the kernel's teardown is left to wait for.
const KILL_WAIT: Duration = Duration::from_secs(2);
/// A sync that takes longer means a hung device; reboot anyway.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// The real machine.
pub struct SystemActions<'a, S> {
    pub supervisor: Option<&'a mut Supervisor<S>>,
    pub signals: Option<&'a SignalFd>,
    pub proc_root: &'a Path,
}

impl<S: Spawner> SystemActions<'_, S> {
    fn stop_one(&mut self, name: &str, index: usize, timeout: Duration) {
        let Some(supervisor) = self.supervisor.as_deref_mut() else {
            return;
        };
        let Some(pid) = supervisor.running_pid(index) else {
            return;
        };
        let signals = self.signals;
        let wait = |supervisor: &mut Supervisor<S>, deadline: Instant| {
            reap_until(signals, deadline, |reaped| {
                for (pid, status) in &reaped.exits {
                    supervisor.on_exit(*pid, *status, Instant::now());
                }
                supervisor.running_pid(index).is_none() || reaped.none_left
            })
        };
        let _ = kill(pid, Signal::SIGTERM);
        if !wait(supervisor, Instant::now() + timeout) {
            tracing::warn!(
                "{name} did not stop within {} s; killing it",
                timeout.as_secs()
            );
            let _ = kill(pid, Signal::SIGKILL);
            if !wait(supervisor, Instant::now() + KILL_WAIT) {
                tracing::warn!("{name} (pid {pid}) survived SIGKILL");
                return;
            }
        }
        tracing::info!("stopped {name}");
    }
}

impl<S: Spawner> Actions for SystemActions<'_, S> {
    fn stop_services(&mut self) {
        let order = match self.supervisor.as_deref_mut() {
            Some(supervisor) => {
                supervisor.begin_shutdown();
                supervisor.stop_order()
            }
            None => return,
        };
        for (index, spec) in order {
            self.stop_one(spec.name, index, spec.stop_timeout);
        }
    }

    fn kill_remaining(&mut self) {
        for (signal, wait) in [
            (Signal::SIGTERM, REMAINING_TERM_WAIT),
            (Signal::SIGKILL, KILL_WAIT),
        ] {
            // kill(-1) reaches every process but init itself. ESRCH: none left.
            if kill(Pid::from_raw(-1), signal).is_err() {
                return;
            }
            let gone = reap_until(self.signals, Instant::now() + wait, |reaped| {
                reaped.none_left
            });
            if gone {
                return;
            }
        }
        tracing::warn!("some processes survived SIGKILL");
    }

    fn sync(&mut self) {
        let (done_tx, done_rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("sync".into())
            .spawn(move || {
                nix::unistd::sync();
                let _ = done_tx.send(());
            });
        match spawned {
            Ok(_) => {
                if done_rx.recv_timeout(SYNC_TIMEOUT).is_err() {
                    tracing::warn!("sync did not finish within {} s", SYNC_TIMEOUT.as_secs());
                }
            }
            // No thread: sync inline rather than not at all.
            Err(_) => nix::unistd::sync(),
        }
    }

    fn unmount(&mut self) {
        let entries = match read_mounts(self.proc_root) {
            Ok(entries) => entries,
            Err(err) => {
                tracing::warn!("could not read the mount table: {err}");
                return;
            }
        };
        let report = unmount_all(&unmount_order(&entries), &mut SystemUnmounter);
        if report.all_clean() {
            tracing::info!("all filesystems unmounted");
        } else {
            let busy: Vec<String> = report
                .busy_block
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            tracing::warn!("not cleanly unmounted: {}", busy.join(", "));
        }
    }

    fn reboot(&mut self, kind: ShutdownKind) {
        tracing::info!("{}", kind.last_words());
        let err = match nix::sys::reboot::reboot(kind.mode()) {
            Ok(never) => match never {},
            Err(err) => err,
        };
        tracing::error!("reboot(2) failed: {err}; halting instead");
        let _ = nix::sys::reboot::reboot(RebootMode::RB_HALT_SYSTEM);
    }
}

/// The end of PID 1: if even halting failed, wait forever rather than exit.
pub fn park() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_order() {
        assert_eq!(
            PHASES,
            [
                Phase::StopServices,
                Phase::KillRemaining,
                Phase::Sync,
                Phase::Unmount,
                Phase::Reboot
            ]
        );
    }

    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        panic_in_unmount: bool,
    }

    impl Actions for Recorder {
        fn stop_services(&mut self) {
            self.calls.push("stop_services".into());
        }
        fn kill_remaining(&mut self) {
            self.calls.push("kill_remaining".into());
        }
        fn sync(&mut self) {
            self.calls.push("sync".into());
        }
        fn unmount(&mut self) {
            self.calls.push("unmount".into());
            if self.panic_in_unmount {
                panic!("unmount broke");
            }
        }
        fn reboot(&mut self, kind: ShutdownKind) {
            self.calls.push(format!("reboot {}", kind.name()));
        }
    }

    #[test]
    fn runs_every_phase_in_order() {
        let mut rec = Recorder::default();
        let request = Request {
            kind: ShutdownKind::PowerOff,
            by: Requester::Signal(Signal::SIGUSR2),
        };
        execute(&mut rec, &request);
        assert_eq!(
            rec.calls,
            [
                "stop_services",
                "kill_remaining",
                "sync",
                "unmount",
                "reboot poweroff"
            ]
        );
    }

    #[test]
    fn a_panicking_phase_still_reaches_reboot() {
        let mut rec = Recorder {
            panic_in_unmount: true,
            ..Recorder::default()
        };
        let request = Request {
            kind: ShutdownKind::Reboot,
            by: Requester::FatalError,
        };
        execute(&mut rec, &request);
        assert_eq!(rec.calls.last().map(String::as_str), Some("reboot reboot"));
    }

    #[test]
    fn contract_lines() {
        let line = |kind, by| Request { kind, by }.line();
        assert_eq!(
            line(ShutdownKind::PowerOff, Requester::Signal(Signal::SIGUSR2)),
            "shutdown: poweroff requested by SIGUSR2"
        );
        assert_eq!(
            line(ShutdownKind::Reboot, Requester::Signal(Signal::SIGINT)),
            "shutdown: reboot requested by SIGINT"
        );
        assert_eq!(
            line(ShutdownKind::Halt, Requester::Signal(Signal::SIGUSR1)),
            "shutdown: halt requested by SIGUSR1"
        );
        assert_eq!(
            line(ShutdownKind::PowerOff, Requester::FatalError),
            "shutdown: poweroff requested by a fatal error"
        );
        assert_eq!(ShutdownKind::PowerOff.last_words(), "powering off");
        assert_eq!(ShutdownKind::Reboot.last_words(), "rebooting");
        assert_eq!(ShutdownKind::Halt.last_words(), "halting");
    }
}
