//! hostd's start-up as data: the phases in order, each with the line `hostd/README.md` shows
//! for it (a test keeps the two the same). `main.rs` marks each phase as it enters it, so the
//! log says how long each took.

use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPhase {
    /// Before anything else logs.
    Logging,
    /// Needs logging; everything after needs the committed document.
    Store,
    /// Needs the document (only a document with volumes waits for drives).
    Drives,
    /// Needs the drives: a volume is mounted only once its drives are there.
    Reconcile,
    /// Needs the reconciled box: status answers only once there is something to answer.
    Bus,
    /// Needs READY sent: nothing here may hold up the appliance's boot.
    Background,
    /// On SIGTERM or SIGINT.
    Stop,
}

pub const START_PHASES: [StartPhase; 7] = [
    StartPhase::Logging,
    StartPhase::Store,
    StartPhase::Drives,
    StartPhase::Reconcile,
    StartPhase::Bus,
    StartPhase::Background,
    StartPhase::Stop,
];

impl StartPhase {
    /// What the phase does, as the README lists it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Logging => {
                "Logging: the ring, the rotating file on `/config/logs` when the config partition is mounted, warnings and errors on stderr (init's console)."
            }
            Self::Store => {
                "The store: `/config/desired`, or `/run/cairn/desired` without a config partition; an apply that was waiting for its management link when the box went down is rolled back."
            }
            Self::Drives => {
                "The drives: when the document has volumes, wait for the controllers' disks to settle, assemble cache arrays and register bcache devices (no udev in the image)."
            }
            Self::Reconcile => {
                "Reconcile: the box is brought to the committed document (first boot: the board's default network). A failure is kept for `cairnctl status`, never fatal: the admin needs the API to fix it."
            }
            Self::Bus => {
                "The bus: connect (init starts the broker just before hostd), serve the objects, take the name, then READY on init's pipe."
            }
            Self::Background => {
                "Background work: the scrub schedule, the drift watch (netlink events and a 60 s timer), the guests' restart policy, adopting guests still running and autostart in order."
            }
            Self::Stop => {
                "On SIGTERM: every running guest's power button, up to 60 s, then kill; then exit (init gives hostd 90 s)."
            }
        }
    }
}

/// Marks phases as hostd enters them, with the time since start-up began.
#[derive(Debug, Clone, Copy)]
pub struct PhaseClock {
    started: Instant,
}

impl Default for PhaseClock {
    fn default() -> Self {
        Self {
            started: Instant::now(),
        }
    }
}

impl PhaseClock {
    pub fn enter(&self, phase: StartPhase) {
        tracing::debug!(
            "start-up phase {phase:?} at {} ms",
            self.started.elapsed().as_millis()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_the_phases_in_order_with_the_same_words() {
        let readme = include_str!("../README.md");
        let section = readme
            .split("## Start-up, in order")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("the README has a start-up section");
        // Numbered items, each joined from its wrapped lines.
        let mut items: Vec<String> = Vec::new();
        for line in section.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match line.split_once(". ") {
                Some((number, text)) if number.parse::<usize>().is_ok() => {
                    items.push(text.to_string());
                }
                _ => {
                    if let Some(last) = items.last_mut() {
                        last.push(' ');
                        last.push_str(line);
                    }
                }
            }
        }
        let wanted: Vec<&str> = START_PHASES.iter().map(|phase| phase.describe()).collect();
        assert_eq!(items, wanted);
    }
}
