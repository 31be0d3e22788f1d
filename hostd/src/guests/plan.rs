//! The guests' planner: pure functions from the document's guests, the run asked for and
//! the processes as observed to the actions that bring them there — or a refusal with its
//! reason. Admission (the white paper's memory and vCPU rules) is applied here, so a start
//! that does not fit is a planned refusal, not an executor's failure.
//!
//! It imports no acting code: no supervisor, no API client, no process or signal.
//! What an exit means and how long to wait before a restart are decided here too
//! ([`on_exit`], [`backoff`]); the supervisor keeps the table and the timers.

use std::time::Duration;

use board_configs::GuestRules;

use super::action::{Adopt, Control, ControlAction, Kill, Restart, Start, Stop, StopHow, Takeover};
use super::admission::{self, Demand, Machine, Refusal};
use super::chv_api::VmState;
use super::lifecycle::{GuestState, valid_transition};
use super::observe::{Processes, Survivor, demands, state_of};
use super::vm_config::Resolved;
use crate::state::{GuestSpec, RestartPolicy};

/// The restart backoff: 1 s, doubling to this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What admission counts against: the board's rules and the machine's size.
#[derive(Debug, Clone, Copy)]
pub struct Limits<'a> {
    pub rules: &'a GuestRules,
    pub machine: Machine,
}

/// Why a requested run is not planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("hostd is shutting down; guests are being stopped")]
    ShuttingDown,
    #[error("Guest {name:?} is {state}; {wanted}")]
    WrongState {
        name: String,
        state: GuestState,
        wanted: &'static str,
    },
    /// Admission: the guest does not fit now (the message shows the sum).
    #[error(transparent)]
    Admission(#[from] Refusal),
}

/// What `spec` asks of the machine while it runs.
pub fn demand(spec: &GuestSpec) -> Demand {
    Demand {
        name: spec.name.as_str().to_string(),
        vcpus: spec.vcpus.get(),
        memory_mib: spec.memory_mib.get(),
        reserved_threads: spec.reserved_threads.iter().map(|t| t.get()).collect(),
        disks: spec.disks.len(),
    }
}

/// A start of `spec`, whose files are `files`: planned when the guest is stopped or
/// crashed and it fits beside the active guests.
pub fn start(
    spec: &GuestSpec,
    files: Resolved,
    processes: &Processes,
    limits: Limits<'_>,
    shutting_down: bool,
) -> Result<Start, Refused> {
    if shutting_down {
        return Err(Refused::ShuttingDown);
    }
    let name = spec.name.as_str();
    let state = state_of(processes, name);
    if !valid_transition(state, GuestState::Starting) {
        return Err(Refused::WrongState {
            name: name.to_string(),
            state,
            wanted: "a start needs it stopped or crashed",
        });
    }
    let demand = demand(spec);
    admission::admit(
        limits.rules,
        limits.machine,
        &demands(processes, name),
        &demand,
    )?;
    Ok(Start {
        spec: spec.clone(),
        files,
        demand,
    })
}

/// A stop of `name`: the power button then a kill after `timeout`, or a kill at once with
/// `force` or while it is still starting (there is no VM to press a button on yet).
pub fn stop(
    name: &str,
    force: bool,
    timeout: Duration,
    processes: &Processes,
) -> Result<Stop, Refused> {
    let Some(process) = processes.get(name).filter(|p| p.state.is_active()) else {
        return Err(Refused::WrongState {
            name: name.to_string(),
            state: state_of(processes, name),
            wanted: "there is nothing to stop",
        });
    };
    let how = if force || process.state == GuestState::Starting {
        StopHow::Kill
    } else {
        StopHow::PowerButton {
            resume_first: process.state == GuestState::Paused,
            timeout,
        }
    };
    Ok(Stop {
        name: name.to_string(),
        pid: process.pid,
        how,
    })
}

/// A reboot, pause or resume: only from the state it needs.
pub fn control(
    name: &str,
    control: Control,
    processes: &Processes,
) -> Result<ControlAction, Refused> {
    let (from, to) = control.moves();
    let state = state_of(processes, name);
    if state != from {
        return Err(Refused::WrongState {
            name: name.to_string(),
            state,
            wanted: control.needs(),
        });
    }
    Ok(ControlAction {
        name: name.to_string(),
        control,
        to,
    })
}

/// After a hostd restart: a survivor whose VM runs or is paused is taken over; one with no
/// VM running (created but not booted, or shut down) was a start that hostd's death
/// interrupted, and is ended. Survivors of guests no longer in the document are left
/// alone (hostd never looks for them).
pub fn adopt(guests: &[GuestSpec], survivors: &[Survivor]) -> Vec<Takeover> {
    survivors
        .iter()
        .filter_map(|survivor| {
            let spec = guests.iter().find(|g| g.name.as_str() == survivor.name)?;
            let state = match survivor.vm {
                Some(VmState::Running) => GuestState::Running,
                Some(VmState::Paused) => GuestState::Paused,
                Some(VmState::Created | VmState::Shutdown) | None => {
                    return Some(Takeover::Kill(Kill {
                        name: survivor.name.clone(),
                        pid: survivor.pid,
                    }));
                }
            };
            Some(Takeover::Adopt(Adopt {
                name: survivor.name.clone(),
                pid: survivor.pid,
                state,
                demand: demand(spec),
                policy: spec.restart,
            }))
        })
        .collect()
}

/// The autostart guests in their order (then by name), each with the delay after it.
pub fn autostart(guests: &[GuestSpec]) -> Vec<(String, Duration)> {
    let mut queue: Vec<&GuestSpec> = guests.iter().filter(|g| g.autostart.is_some()).collect();
    queue.sort_by_key(|g| {
        (
            g.autostart.map(|a| a.order.get()),
            g.name.as_str().to_string(),
        )
    });
    queue
        .into_iter()
        .map(|guest| {
            let delay = guest.autostart.map_or(0, |a| a.delay_s.get());
            (
                guest.name.as_str().to_string(),
                Duration::from_secs(u64::from(delay)),
            )
        })
        .collect()
}

/// What an exit of the process means, from the state the guest was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitOutcome {
    pub state: GuestState,
    pub restart: bool,
}

/// The decision behind every process exit.
pub fn on_exit(
    was: GuestState,
    clean: bool,
    policy: RestartPolicy,
    shutting_down: bool,
) -> ExitOutcome {
    let (state, restart) = match was {
        // Asked for: a stop, forced or not.
        GuestState::Stopping => (GuestState::Stopped, false),
        // A start that failed: restarting it would fail the same way.
        GuestState::Starting => (GuestState::Crashed, false),
        GuestState::Running | GuestState::Paused if clean => (
            // The guest powered itself off.
            GuestState::Stopped,
            policy == RestartPolicy::Always,
        ),
        GuestState::Running | GuestState::Paused => (
            GuestState::Crashed,
            matches!(policy, RestartPolicy::OnCrash | RestartPolicy::Always),
        ),
        // No process was running: nothing changes (cannot happen; kept total).
        GuestState::Stopped | GuestState::Crashed => (was, false),
    };
    ExitOutcome {
        state,
        restart: restart && !shutting_down,
    }
}

/// Restart number `count` of `name`, by its policy, once its run `run` has ended: after
/// the back-off.
pub fn restart(name: &str, run: u64, count: u32) -> Restart {
    Restart {
        name: name.to_string(),
        run,
        after: backoff(count),
        count,
    }
}

/// The wait before restart number `restarts`: 1 s, 2 s, 4 s… up to [`MAX_BACKOFF`], so a
/// guest that cannot boot does not spin.
pub fn backoff(restarts: u32) -> Duration {
    let seconds = 1u64 << restarts.saturating_sub(1).min(6);
    Duration::from_secs(seconds).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests;
