//! What the guests' planner decides and the executor does, as values with their text.
//!
//! Unlike the document's actions (`plan::Action`), these have no undo: a process that was
//! started is ended by a stop, which is itself planned, and a stop cannot be taken back.

use std::fmt;
use std::time::Duration;

use super::admission::Demand;
use super::lifecycle::GuestState;
use super::vm_config::Resolved;
use crate::state::{GuestSpec, RestartPolicy};

/// Start the guest's process, create and boot its VM (admitted with `demand`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub spec: GuestSpec,
    pub files: Resolved,
    pub demand: Demand,
}

/// Stop the guest's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub name: String,
    pub pid: Option<u32>,
    pub how: StopHow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopHow {
    /// The ACPI power button (after a resume when it was paused: a paused guest cannot see
    /// it), then SIGKILL if it has not powered off within `timeout`.
    PowerButton {
        resume_first: bool,
        timeout: Duration,
    },
    /// SIGKILL at once: asked with force, or a start that has no VM to press a button on.
    Kill,
}

/// An API request that keeps the process: reboot, pause, resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlAction {
    pub name: String,
    pub control: Control,
    /// The state it leaves the guest in.
    pub to: GuestState,
}

/// The API actions that keep the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Reboot,
    Pause,
    Resume,
}

impl Control {
    /// The state the action needs, and the one it leaves.
    pub fn moves(self) -> (GuestState, GuestState) {
        match self {
            Self::Reboot => (GuestState::Running, GuestState::Running),
            Self::Pause => (GuestState::Running, GuestState::Paused),
            Self::Resume => (GuestState::Paused, GuestState::Running),
        }
    }

    /// Why it was refused in another state.
    pub fn needs(self) -> &'static str {
        match self {
            Self::Reboot | Self::Pause => "it must be running",
            Self::Resume => "it must be paused",
        }
    }
}

/// Take over a cloud-hypervisor that outlived a hostd restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopt {
    pub name: String,
    pub pid: u32,
    pub state: GuestState,
    pub demand: Demand,
    pub policy: RestartPolicy,
}

/// End a cloud-hypervisor that outlived hostd with no VM running in it: a start that
/// hostd's death interrupted (the admin starts it again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    pub name: String,
    pub pid: u32,
}

/// What to do with a cloud-hypervisor found running after a hostd restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Takeover {
    Adopt(Adopt),
    Kill(Kill),
}

/// Start the guest again after `after`, by its restart policy, unless someone acted on it
/// since its run `run` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    pub name: String,
    pub run: u64,
    pub after: Duration,
    /// How many restarts this is.
    pub count: u32,
}

impl fmt::Display for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let demand = &self.demand;
        write!(
            f,
            "start guest {} ({} vCPU{}, {} MiB)",
            demand.name,
            demand.vcpus,
            if demand.vcpus == 1 { "" } else { "s" },
            demand.memory_mib
        )
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.name;
        match self.how {
            StopHow::PowerButton {
                resume_first,
                timeout,
            } => write!(
                f,
                "stop guest {name}: {}power button, then a kill after {} s",
                if resume_first { "resume, " } else { "" },
                timeout.as_secs()
            ),
            StopHow::Kill => write!(f, "stop guest {name}: kill"),
        }
    }
}

impl fmt::Display for ControlAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.control {
            Control::Reboot => "reboot",
            Control::Pause => "pause",
            Control::Resume => "resume",
        };
        write!(f, "{verb} guest {} (then {})", self.name, self.to)
    }
}

impl fmt::Display for Takeover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Adopt(Adopt {
                name, pid, state, ..
            }) => write!(f, "take over guest {name} ({state}, pid {pid})"),
            Self::Kill(Kill { name, pid }) => write!(
                f,
                "end guest {name}'s unfinished start (pid {pid}, no VM running)"
            ),
        }
    }
}

impl fmt::Display for Restart {
    /// As the supervisor logs it: `restart policy starts it again in 2 s (restart 2)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "restart policy starts it again in {} s (restart {})",
            self.after.as_secs(),
            self.count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_say_what_they_do() {
        let stop = |how| {
            Stop {
                name: "web".into(),
                pid: Some(7),
                how,
            }
            .to_string()
        };
        let cases = [
            (
                stop(StopHow::PowerButton {
                    resume_first: true,
                    timeout: Duration::from_secs(60),
                }),
                "stop guest web: resume, power button, then a kill after 60 s",
            ),
            (stop(StopHow::Kill), "stop guest web: kill"),
            (
                Takeover::Kill(Kill {
                    name: "web".into(),
                    pid: 7,
                })
                .to_string(),
                "end guest web's unfinished start (pid 7, no VM running)",
            ),
            (
                ControlAction {
                    name: "web".into(),
                    control: Control::Pause,
                    to: GuestState::Paused,
                }
                .to_string(),
                "pause guest web (then paused)",
            ),
            (
                Restart {
                    name: "web".into(),
                    run: 3,
                    after: Duration::from_secs(4),
                    count: 3,
                }
                .to_string(),
                "restart policy starts it again in 4 s (restart 3)",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(text, expected);
        }
    }
}
