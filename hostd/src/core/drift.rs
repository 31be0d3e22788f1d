//! Drift: the appliance changed behind hostd's back (an admin's `ip link` on the console, a
//! bond member released by hand, a volume unmounted). The drift check compares the appliance
//! with the committed document — the same observe and plan as an apply — and then either
//! corrects a difference or reports it, by [`policy`]:
//!
//! - the host name and the network the document declares are put back: every action has an
//!   undo, and a missing link, member or address cuts the admin or a guest off;
//! - an address or default route beside the document's is only reported: hostd owns every
//!   permanent address, so the next apply removes it as before, but an admin who added one
//!   by hand (a host address on a private vSwitch, say) does not lose it seconds later;
//! - storage is only reported: its actions create and mount filesystems and attach caches.
//!   A volume found unmounted may have lost a drive, and mounting it degraded or rebuilding
//!   a cache is a decision the admin makes (by applying the document again or by a storage
//!   job), never one hostd makes alone.
//!
//! Guests are not here: a guest's process exiting is the supervisor's, which restarts it by
//! its policy.

use super::{Core, CoreError};
use crate::error::{ByText, chain};
use crate::network::NetAction;
use crate::plan;
use crate::store::Filesystem;
use crate::system::{self, System, SystemAction};

pub use cairn_api::{DriftOutcome, DriftView};

/// Corrected differences kept for `cairnctl status` after they are gone.
pub const CORRECTED_KEPT: usize = 10;

/// Why an address or route beside the document's is reported and not removed.
pub const ADDED_BY_HAND: &str = "it is not in the document, but hostd puts back what the \
     document declares and does not take away what was added by hand; the next apply \
     removes it (or add it to the document's management section)";

/// Why storage drift is reported and not corrected, as status shows it.
pub const STORAGE_REPORTED: &str = "storage is changed only by an apply or a storage job: \
     a volume may have lost a drive, and mounting it degraded or rebuilding a cache is the \
     admin's decision (cairnctl config apply, or cairnctl storage …)";

/// What the drift check does about a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Correct,
    /// Leave it, and say why.
    Report(&'static str),
}

/// Pure: what to do about the step that would take the appliance back to the document.
pub fn policy(action: &SystemAction) -> Policy {
    match action {
        SystemAction::Network(NetAction::DelAddress { .. } | NetAction::DelDefaultRoute { .. }) => {
            Policy::Report(ADDED_BY_HAND)
        }
        SystemAction::Hostname(_) | SystemAction::Network(_) => Policy::Correct,
        SystemAction::Storage(_) => Policy::Report(STORAGE_REPORTED),
    }
}

/// The subsystem an action belongs to, as status names it.
pub fn subsystem(action: &SystemAction) -> &'static str {
    match action {
        SystemAction::Hostname(_) => "hostname",
        SystemAction::Network(_) => "network",
        SystemAction::Storage(_) => "storage",
    }
}

/// What the last checks found: the differences still there, and the corrected ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriftRecord {
    /// Reported or failed at the last check.
    pub open: Vec<DriftView>,
    /// Corrected at this or an earlier check, newest first, at most [`CORRECTED_KEPT`].
    pub corrected: Vec<DriftView>,
    pub checked_unix: Option<u64>,
}

impl DriftRecord {
    /// Everything status shows: what is still different first, then what was put back.
    pub fn views(&self) -> Vec<DriftView> {
        self.open.iter().chain(&self.corrected).cloned().collect()
    }

    fn record(&mut self, found: Vec<DriftView>, now_unix: u64) {
        let (corrected, open): (Vec<DriftView>, Vec<DriftView>) = found
            .into_iter()
            .partition(|view| view.outcome == DriftOutcome::Corrected);
        // A difference still open keeps the time it was first seen.
        self.open =
            open.into_iter()
                .map(|mut view| {
                    if let Some(before) = self.open.iter().find(|old| {
                        old.difference == view.difference && old.outcome == view.outcome
                    }) {
                        view.seen_unix = before.seen_unix;
                    }
                    view
                })
                .collect();
        let mut kept = corrected;
        kept.append(&mut self.corrected);
        kept.truncate(CORRECTED_KEPT);
        self.corrected = kept;
        self.checked_unix = Some(now_unix);
    }
}

fn view(action: &SystemAction, outcome: DriftOutcome, why: String, now_unix: u64) -> DriftView {
    DriftView {
        subsystem: subsystem(action).to_string(),
        difference: action.to_string(),
        outcome,
        why,
        seen_unix: now_unix,
    }
}

impl<S: System, F: Filesystem> Core<S, F> {
    /// Compares the appliance with the committed document, corrects what [`policy`] says to
    /// (undoing every correction when one fails), and records what it found for status.
    /// Returns this check's differences.
    pub fn check_drift(&mut self, now_unix: u64) -> Result<Vec<DriftView>, CoreError> {
        let desired = self.current()?.map(|(_, state)| state).unwrap_or_default();
        let observed = self.system.observe()?;
        let actions = system::plan(&desired, &observed, &self.lan);
        let mut found = Vec::new();
        let mut to_correct = Vec::new();
        for action in actions {
            match policy(&action) {
                Policy::Correct => to_correct.push(action),
                Policy::Report(why) => {
                    found.push(view(
                        &action,
                        DriftOutcome::Reported,
                        why.to_string(),
                        now_unix,
                    ));
                }
            }
        }
        if !to_correct.is_empty() {
            match plan::apply(&to_correct, &mut self.system) {
                Ok(done) => {
                    found.extend(done.iter().map(|action| {
                        view(action, DriftOutcome::Corrected, String::new(), now_unix)
                    }))
                }
                Err(failure) => {
                    let why = chain(&CoreError::Act(Box::new(ByText(failure))));
                    found.extend(
                        to_correct.iter().map(|action| {
                            view(action, DriftOutcome::Failed, why.clone(), now_unix)
                        }),
                    );
                }
            }
            // The management address may have been rebuilt: the lease follows the document.
            self.follow_dhcp(&desired);
        }
        for action in found
            .iter()
            .filter(|view| view.outcome == DriftOutcome::Corrected)
        {
            tracing::warn!(
                "drift corrected: {} ({})",
                action.difference,
                action.subsystem
            );
        }
        for action in found
            .iter()
            .filter(|view| view.outcome != DriftOutcome::Corrected)
        {
            tracing::warn!(
                "drift {}: {} ({}): {}",
                action.outcome.as_str(),
                action.difference,
                action.subsystem,
                action.why
            );
        }
        if found
            .iter()
            .all(|view| view.outcome == DriftOutcome::Corrected)
        {
            // The appliance matches the document again.
            self.reconcile_error = None;
        }
        self.drift.record(found.clone(), now_unix);
        Ok(found)
    }
}
