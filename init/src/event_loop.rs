//! The steady state: one poll(2) over the signalfd and the readiness pipes, with the
//! timeout taken from the nearest deadline (a service restart, the READY deadline).
//! It returns only with a shutdown request.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signalfd::SignalFd;

use crate::clock;
use crate::readiness::{BootTimes, ReadyGate};
use crate::reaper::reap_all;
use crate::services::Spawner;
use crate::shutdown::{Request, Requester};
use crate::signals::{self, Action};
use crate::supervisor::Supervisor;

/// What the READY line reports besides the moment it is printed.
pub struct BootMarks {
    pub board: String,
    pub init: Duration,
    pub modules: Duration,
    /// The boot slot systemd-boot started, marked good once READY is printed.
    pub slot: Option<String>,
}

pub fn run<S: Spawner>(
    supervisor: &mut Supervisor<S>,
    signals: &SignalFd,
    marks: &BootMarks,
    gate: &mut ReadyGate,
) -> Request {
    loop {
        let now = Instant::now();
        supervisor.start_due(now);
        let not_ready = supervisor.not_ready();
        if gate.due(&not_ready, now) {
            report_ready(marks, not_ready);
        }

        let deadline = [supervisor.next_deadline(), gate.deadline()]
            .into_iter()
            .flatten()
            .min();
        let (signalled, pipes) = match wait(supervisor, signals, deadline) {
            Ok(ready) => ready,
            Err(Errno::EINTR) => continue,
            Err(err) => {
                // poll on valid fds does not fail; if it ever does, do not spin.
                tracing::warn!("poll failed: {err}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        for index in pipes {
            supervisor.on_ready_pipe(index);
        }
        if signalled && let Some(request) = handle_signals(supervisor, signals) {
            return request;
        }
    }
}

/// Sleeps until a signal, a readiness pipe or `deadline`; returns whether the signalfd
/// is readable and which services' pipes are.
fn wait<S: Spawner>(
    supervisor: &Supervisor<S>,
    signals: &SignalFd,
    deadline: Option<Instant>,
) -> nix::Result<(bool, Vec<usize>)> {
    let timeout = match deadline {
        None => PollTimeout::NONE,
        Some(at) => {
            // Round up: waking a millisecond early would just loop once more.
            let wait = at.saturating_duration_since(Instant::now()) + Duration::from_micros(999);
            PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX)
        }
    };
    let pipes = supervisor.ready_fds();
    let mut fds = Vec::with_capacity(pipes.len() + 1);
    fds.push(PollFd::new(signals.as_fd(), PollFlags::POLLIN));
    fds.extend(
        pipes
            .iter()
            .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN)),
    );
    poll(&mut fds, timeout)?;
    let signalled = fds[0].any().unwrap_or(false);
    let readable = pipes
        .iter()
        .zip(&fds[1..])
        .filter(|(_, fd)| fd.any().unwrap_or(false))
        .map(|((index, _), _)| *index)
        .collect();
    Ok((signalled, readable))
}

/// Reaps on SIGCHLD; returns the first shutdown request, if any.
fn handle_signals<S: Spawner>(
    supervisor: &mut Supervisor<S>,
    signals: &SignalFd,
) -> Option<Request> {
    let mut request = None;
    for signal in signals::drain(signals) {
        match signals::action(signal) {
            Action::ReapChildren => {
                for (pid, status) in reap_all().exits {
                    // Orphans re-parented to init are reaped silently.
                    supervisor.on_exit(pid, status, Instant::now());
                }
            }
            Action::Shutdown(kind) => {
                request.get_or_insert(Request {
                    kind,
                    by: Requester::Signal(signal),
                });
            }
            Action::Ignore => tracing::debug!("ignoring {signal}"),
        }
    }
    request
}

fn report_ready(marks: &BootMarks, not_ready: Vec<String>) {
    // A boot whose services never all came up has not proven its slot.
    let all_ready = not_ready.is_empty();
    let times = BootTimes {
        board: marks.board.clone(),
        init: marks.init,
        modules: marks.modules,
        services: clock::since_boot(),
        not_ready,
    };
    tracing::info!("{}", times.ready_line());
    if let Err(err) = times.write(std::path::Path::new("/run")) {
        tracing::warn!("{}", crate::error::Chain(&err));
    }
    if let Some(slot) = marks.slot.as_deref().filter(|_| all_ready) {
        crate::boot_slot::mark_slot_good(slot);
    }
}
