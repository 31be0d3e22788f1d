//! Signals arrive through a signalfd, never through handlers.
//!
//! Init blocks the signals it cares about and reads them as data in its poll loop, so
//! no work happens in async-signal context. Blocked signals are also what makes them
//! reach PID 1 at all: the kernel drops signals to init whose action is the default,
//! but never drops a blocked one. Children get an empty mask back before exec (see
//! services.rs), since a blocked mask is inherited.

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::shutdown::ShutdownKind;

/// Every signal init acts on; see docs/image-contract.md, "Talking to init".
pub const HANDLED: [Signal; 6] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGPWR,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ReapChildren,
    Shutdown(ShutdownKind),
    Ignore,
}

pub fn action(signal: Signal) -> Action {
    match signal {
        Signal::SIGCHLD => Action::ReapChildren,
        // SIGINT is ctrl-alt-del once the kernel's own handling is off.
        Signal::SIGTERM | Signal::SIGINT => Action::Shutdown(ShutdownKind::Reboot),
        Signal::SIGPWR | Signal::SIGUSR2 => Action::Shutdown(ShutdownKind::PowerOff),
        Signal::SIGUSR1 => Action::Shutdown(ShutdownKind::Halt),
        _ => Action::Ignore,
    }
}

/// Blocks [`HANDLED`] for this thread (and the threads it starts) and returns a
/// non-blocking signalfd for them.
pub fn block_and_open() -> nix::Result<SignalFd> {
    let mut mask = SigSet::empty();
    for signal in HANDLED {
        mask.add(signal);
    }
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

/// Every pending signal, oldest first.
pub fn drain(signals: &SignalFd) -> Vec<Signal> {
    let mut pending = Vec::new();
    loop {
        match signals.read_signal() {
            Ok(Some(info)) => {
                if let Ok(signal) = i32::try_from(info.ssi_signo)
                    .map_err(|_| nix::errno::Errno::EINVAL)
                    .and_then(Signal::try_from)
                {
                    pending.push(signal);
                }
            }
            Ok(None) => break,
            Err(nix::errno::Errno::EINTR) => {}
            Err(err) => {
                tracing::warn!("could not read the signalfd: {err}");
                break;
            }
        }
    }
    pending
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_signal_table() {
        assert_eq!(action(Signal::SIGCHLD), Action::ReapChildren);
        assert_eq!(
            action(Signal::SIGTERM),
            Action::Shutdown(ShutdownKind::Reboot)
        );
        assert_eq!(
            action(Signal::SIGINT),
            Action::Shutdown(ShutdownKind::Reboot)
        );
        assert_eq!(
            action(Signal::SIGPWR),
            Action::Shutdown(ShutdownKind::PowerOff)
        );
        assert_eq!(
            action(Signal::SIGUSR2),
            Action::Shutdown(ShutdownKind::PowerOff)
        );
        assert_eq!(
            action(Signal::SIGUSR1),
            Action::Shutdown(ShutdownKind::Halt)
        );
        assert_eq!(action(Signal::SIGHUP), Action::Ignore);
        for signal in HANDLED {
            assert_ne!(
                action(signal),
                Action::Ignore,
                "{signal} is blocked but ignored"
            );
        }
    }
}
