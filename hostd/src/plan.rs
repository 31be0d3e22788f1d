//! The one shape every subsystem follows: desired + observed → plan → apply.
//!
//! ```text
//! desired (validated) ─┐
//!                      ├─► plan (pure) ─► [Action] ─► apply ─► Executor (syscalls…)
//! observed ────────────┘
//! ```
//!
//! - A subsystem's planner is a pure function (`hostname::plan`, `network::plan::plan`,
//!   `storage::plan::plan`, `guests::plan`), so what to create, change and remove, and in
//!   which order, is unit-tested without root. They take different inputs (the network's
//!   needs the board's ports), so there is no planner trait: `system::plan` calls them in
//!   the order they must run.
//! - An [`Action`] is a value (like rtnetlink's message builders): it can be shown to the
//!   admin before anything runs ([`describe`]), compared in tests, and it knows its own undo.
//!   An action that removes something carries what it removes, so its undo can rebuild it.
//! - [`apply`] runs the actions in order through an [`Executor`]. On the first failure it
//!   undoes what it did, newest first, and reports the failure, what it undid and what it
//!   could not undo ([`ApplyError`]). Nothing is left half-applied unless an undo itself
//!   fails, and then the error says exactly what remains.
//!
//! The executor's contract: an action that fails leaves no effect behind (it cleans up its
//! own partial work), because the driver undoes only the actions that succeeded.

use std::fmt;

/// One step a subsystem takes on the live system.
pub trait Action: Clone + fmt::Debug + fmt::Display + PartialEq {
    /// What undoes this action after it succeeded.
    fn undo(&self) -> Undo<Self>;
}

/// How an action is undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo<A> {
    /// Run this action.
    Run(A),
    /// The action left nothing to undo (a check, a read).
    Nothing,
    /// The action cannot be undone (a drive wiped); planners put such actions last, so that a
    /// failure before them needs no undo of them. The text says why.
    Impossible(String),
}

/// Carries out actions on the live system (netlink, syscalls, subprocesses, REST calls).
pub trait Executor<A> {
    type Error: std::error::Error + 'static;

    /// Runs one action. On error it must leave no effect of the action behind.
    fn execute(&mut self, action: &A) -> Result<(), Self::Error>;

    /// Runs one action and tells `report` how a long one is getting on (`12.5 MiB of dirty
    /// data left to write back`). Executors whose actions are all quick keep this default.
    fn execute_reporting(&mut self, action: &A, report: &dyn Fn(&str)) -> Result<(), Self::Error> {
        let _ = report;
        self.execute(action)
    }
}

/// The plan as the admin sees it before it runs: one numbered line per action.
pub fn describe<A: fmt::Display>(actions: &[A]) -> String {
    if actions.is_empty() {
        return "nothing to do\n".to_string();
    }
    actions
        .iter()
        .enumerate()
        .map(|(i, action)| format!("{:>3}. {action}\n", i + 1))
        .collect()
}

/// A step rollback could not take: its effect is still on the system.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackFailure<A: fmt::Display, E: std::error::Error + 'static> {
    #[error("Undoing \"{action}\" with \"{undo}\" failed")]
    Failed {
        action: A,
        undo: A,
        #[source]
        cause: E,
    },
    #[error("\"{action}\" cannot be undone: {why}")]
    Impossible { action: A, why: String },
}

/// An apply that failed, after its rollback.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{failed_action}\" failed; {}",
    rollback_summary(.rolled_back.len(), .rollback_failures.len())
)]
pub struct ApplyError<A: fmt::Display, E: std::error::Error + 'static> {
    pub failed_action: A,
    #[source]
    pub cause: E,
    /// The undo actions that ran and succeeded, in the order they ran.
    pub rolled_back: Vec<A>,
    /// The steps whose effect remains, in the order rollback met them.
    pub rollback_failures: Vec<RollbackFailure<A, E>>,
}

fn rollback_summary(undone: usize, failed: usize) -> String {
    match failed {
        0 => format!("rolled back ({undone} undo step{})", plural(undone)),
        _ => format!(
            "rollback incomplete: {failed} step{} could not be undone",
            plural(failed)
        ),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Runs `actions` in order; returns them all when every one succeeded. On the first failure
/// it undoes the actions that succeeded, newest first, carrying on past an undo that fails so
/// that as much as possible is undone.
pub fn apply<A, E>(actions: &[A], executor: &mut E) -> Result<Vec<A>, ApplyError<A, E::Error>>
where
    A: Action,
    E: Executor<A>,
{
    for (done, action) in actions.iter().enumerate() {
        if let Err(cause) = executor.execute(action) {
            let (rolled_back, rollback_failures) = roll_back(&actions[..done], executor);
            return Err(ApplyError {
                failed_action: action.clone(),
                cause,
                rolled_back,
                rollback_failures,
            });
        }
    }
    Ok(actions.to_vec())
}

type RollbackReport<A, E> = (Vec<A>, Vec<RollbackFailure<A, E>>);

/// Undoes actions that all succeeded, newest first (a change rejected after it was made:
/// a safe apply whose check failed). Returns the undo actions run and what could not be
/// undone.
pub fn undo_all<A, E>(done: &[A], executor: &mut E) -> RollbackReport<A, E::Error>
where
    A: Action,
    E: Executor<A>,
{
    roll_back(done, executor)
}

fn roll_back<A, E>(done: &[A], executor: &mut E) -> RollbackReport<A, E::Error>
where
    A: Action,
    E: Executor<A>,
{
    let mut rolled_back = Vec::new();
    let mut failures = Vec::new();
    for action in done.iter().rev() {
        match action.undo() {
            Undo::Run(undo) => match executor.execute(&undo) {
                Ok(()) => rolled_back.push(undo),
                Err(cause) => failures.push(RollbackFailure::Failed {
                    action: action.clone(),
                    undo,
                    cause,
                }),
            },
            Undo::Nothing => {}
            Undo::Impossible(why) => failures.push(RollbackFailure::Impossible {
                action: action.clone(),
                why,
            }),
        }
    }
    (rolled_back, failures)
}

#[cfg(test)]
mod tests;
