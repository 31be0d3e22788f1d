//! The decisions behind every API call, over any store and any [`System`].
//!
//! Applying a document (or rolling back to an old one) is one transaction across the store
//! and the box:
//! 1. validate the whole document (refused before anything happens);
//! 2. observe the box and plan the actions that take it to the document;
//! 3. commit the document as the next generation;
//! 4. run the actions in order, checking for cancellation between them;
//! 5. on a failure or a cancel: undo the actions that ran, newest first, and commit the
//!    previous document again, so the store and the box both say "before".
//!
//! Committing before acting is what makes a hostd killed at any point safe: when it starts
//! again, [`Core::reconcile`] takes the box to whatever the store holds — the old document if
//! the kill came before step 3 finished, the new one after — and the rename in the store makes
//! that "old or new", never a mix.
//!
//! The transaction is written once, [`run_apply`]: the daemon runs it over the shared core
//! (released during a safe apply's confirm window), the tests over a core they own. Every
//! operation fails with a [`CoreError`]; the API maps it to the wire, this module knows
//! nothing of D-Bus.

pub mod drift;
pub mod engine;
pub mod error;
pub mod guest_admin;
mod guest_ops;
pub mod storage_jobs;
mod storage_membership;
pub mod storage_ops;
mod taps;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant, SystemTime};

use board_configs::{DriveSlot, Lan};

pub use self::error::{CoreError, LinkWait, Restored, WatchedError};
pub use self::guest_ops::{CoreOps, keeps_running_guests};
use crate::error::{ByText, chain};
use crate::jobs;
use crate::network;
use crate::plan::{self, Executor, describe};
use crate::state::{DesiredState, Invalid, Management, Validated};
use crate::storage::{self, view::StorageView};
use crate::store::{Filesystem, Generation, OsFilesystem, StateStore};
use crate::system::{self, System, SystemAction};

pub use cairn_api::{Applied, Status};

/// How [`run_apply`] reaches the core between the phases of an apply: the daemon locks
/// the shared core for each phase; a test passes the core itself.
pub trait CoreAccess<S: System, F: Filesystem> {
    /// Runs `work` on the core, holding it only that long.
    fn with<T>(&mut self, work: impl FnOnce(&mut Core<S, F>) -> T) -> T;
}

impl<S: System, F: Filesystem> CoreAccess<S, F> for &mut Core<S, F> {
    fn with<T>(&mut self, work: impl FnOnce(&mut Core<S, F>) -> T) -> T {
        work(self)
    }
}

impl<S: System, F: Filesystem> CoreAccess<S, F> for &tokio::sync::Mutex<Core<S, F>> {
    /// On a blocking thread only (the daemon runs jobs on them).
    fn with<T>(&mut self, work: impl FnOnce(&mut Core<S, F>) -> T) -> T {
        work(&mut self.blocking_lock())
    }
}

/// The one safe-apply transaction, the daemon's and the tests': act → confirm window →
/// settle (see the module's comment).
///
/// The core is held while acting and while settling, not during the confirm window (up to
/// 10 minutes): status, views and guest ports stay answerable meanwhile, and the job
/// registry still keeps a second apply out. Each look at the link takes the core briefly.
pub fn run_apply<S: System, F: Filesystem>(
    mut core: impl CoreAccess<S, F>,
    desired: &Validated<DesiredState>,
    job: &Job,
) -> Result<Applied, CoreError> {
    match core.with(|core| core.act(desired, job))? {
        Acted::Finished(applied) => Ok(applied),
        Acted::AwaitingLink(pending) => {
            let outcome = wait_for_link(&pending, job, &mut || {
                core.with(|core| core.link_confirmed(&pending))
            });
            core.with(|core| core.settle(*pending, outcome))
        }
    }
}

/// Runs a job's `work` on a blocking thread (actions are syscalls, and observing the box
/// runs a netlink runtime of its own, which must not run inside the caller's), then ends
/// the job: succeeded with the JSON `work` returned, cancelled or failed with its error.
/// Must be called inside a tokio runtime (the daemon's).
pub fn run_job(job: Job, work: impl FnOnce(&Job) -> Result<String, CoreError> + Send + 'static) {
    tokio::task::spawn_blocking(move || {
        let kind = job.snapshot().kind;
        match work(&job) {
            Ok(result) => {
                tracing::info!(job = job.id(), "{kind} finished: {result}");
                job.succeed(result);
            }
            Err(error) if error.is_cancellation() => {
                tracing::warn!(job = job.id(), "{kind} cancelled: {}", chain(&error));
                job.cancelled(error);
            }
            Err(error) => {
                tracing::error!(job = job.id(), "{kind} failed: {}", chain(&error));
                job.fail(error);
            }
        }
    });
}

/// What [`Core::act`] leaves: a finished apply, or one in its confirm window.
#[derive(Debug)]
enum Acted {
    Finished(Applied),
    AwaitingLink(Box<AwaitingLink>),
}

/// A safe apply whose actions ran and whose management link is still to be confirmed.
#[derive(Debug)]
struct AwaitingLink {
    done: Vec<SystemAction>,
    previous: Option<Generation>,
    generation: Generation,
    management: Management,
    step: u32,
    applied: Applied,
}

/// One look at the management interface during a safe apply's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    NoLink,
    /// Linked, but `dhcp4` has no lease yet.
    NoLease,
    Confirmed,
}

/// The safe apply's check: the management interface must reach the wire (a cable, a switch
/// port that came up) and, with `dhcp4`, hold a lease within the grace period. `look`
/// looks once; `Err` says why the window closed without it.
fn wait_for_link(
    pending: &AwaitingLink,
    job: &Job,
    look: &mut dyn FnMut() -> Reach,
) -> Result<(), LinkWait> {
    let name = pending.management.interface.as_str();
    let seconds = pending.management.confirm_seconds();
    job.progress(
        pending.step,
        format!("confirming the management link on {name} (up to {seconds} s)"),
    );
    let deadline = Instant::now() + Duration::from_secs(u64::from(seconds));
    loop {
        if job.cancel_requested() {
            return Err(LinkWait::Cancelled {
                interface: name.to_string(),
            });
        }
        let reach = look();
        if reach == Reach::Confirmed {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let interface = name.to_string();
            return Err(if reach == Reach::NoLease {
                LinkWait::NoLease { interface, seconds }
            } else {
                LinkWait::NoLink { interface, seconds }
            });
        }
        std::thread::sleep(CONFIRM_POLL);
    }
}

/// A job of the core: its failure is a [`CoreError`].
pub type Job = jobs::Job<CoreError>;
pub type Jobs = jobs::Jobs<CoreError>;

/// The core hostd serves, shared between the bus, the guest supervisor and the threads
/// running jobs.
pub type SharedCore = std::sync::Arc<tokio::sync::Mutex<LiveCore>>;
pub type LiveCore = Core<Box<dyn System>, OsFilesystem>;

/// How often a safe apply looks at the management link while it waits.
const CONFIRM_POLL: Duration = Duration::from_millis(250);

/// The sections of a desired-state document, in document order.
const SECTIONS: [&str; 4] = ["hostname", "network", "storage", "guests"];

#[derive(Debug)]
pub struct Core<S: System, F: Filesystem = OsFilesystem> {
    store: StateStore<F>,
    system: S,
    board: String,
    /// The board's LAN ports (the generic board's for an unknown board id).
    lan: Lan,
    /// The board's drive bays and M.2 slots.
    slots: Vec<DriveSlot>,
    persistent: bool,
    uptime: fn() -> Option<f64>,
    reconcile_error: Option<String>,
    /// What the drift checks found (see `drift.rs`).
    drift: drift::DriftRecord,
    /// The DHCP client, told after every apply and reconcile what the committed document
    /// asks; none in tests that do not need one.
    dhcp: Option<network::dhcp::DhcpHandle>,
}

impl<S: System, F: Filesystem> Core<S, F> {
    pub fn new(
        store: StateStore<F>,
        system: S,
        board: impl Into<String>,
        persistent: bool,
        uptime: fn() -> Option<f64>,
    ) -> Self {
        let board = board.into();
        let known = board_configs::by_id(&board).unwrap_or_else(board_configs::generic);
        let lan = known.lan.clone();
        let slots = known.storage.slots.clone();
        Self {
            store,
            system,
            board,
            lan,
            slots,
            persistent,
            uptime,
            reconcile_error: None,
            drift: drift::DriftRecord::default(),
            dhcp: None,
        }
    }

    /// The DHCP client this core drives (hostd's; tests may pass a detached one).
    pub fn with_dhcp(mut self, dhcp: network::dhcp::DhcpHandle) -> Self {
        self.dhcp = Some(dhcp);
        self
    }

    /// Tells the DHCP client what `desired` asks (serve an interface, or release).
    fn follow_dhcp(&self, desired: &DesiredState) {
        if let Some(dhcp) = &self.dhcp {
            dhcp.follow(desired.network.management.as_ref());
        }
    }

    /// The same for whatever the store holds now (after a rollback or a reconcile).
    fn follow_committed_dhcp(&self) {
        if let Ok(committed) = self.current() {
            self.follow_dhcp(&committed.map(|(_, state)| state).unwrap_or_default());
        }
    }

    pub fn status(&self) -> Result<Status, CoreError> {
        // A box that cannot be observed still answers its status; the observe error shows
        // up in every command that needs the box.
        let alerts = match self.system.observe() {
            Ok(observed) => storage::view::alerts(&self.storage_view_of(&observed)?),
            Err(error) => vec![format!("cannot observe the box: {}", chain(&error))],
        };
        Ok(Status {
            alerts,
            board: self.board.clone(),
            uptime_seconds: (self.uptime)(),
            generation: self
                .current()?
                .map_or(0, |(generation, _)| generation.get()),
            persistence: self.persistent,
            reconcile_error: self.reconcile_error.clone(),
            drift: self.drift.views(),
            drift_checked_unix: self.drift.checked_unix,
        })
    }

    /// The board's configuration (board-configs) as JSON.
    pub fn board(&self) -> Result<String, CoreError> {
        let board = board_configs::by_id(&self.board).ok_or_else(|| CoreError::UnknownBoard {
            board: self.board.clone(),
        })?;
        Ok(serde_json::to_string(board).expect("a board is strings, numbers and lists"))
    }

    /// The committed document and its generation; generation 0 and the empty document before
    /// the first commit.
    pub fn show(&self) -> Result<(u64, String), CoreError> {
        Ok(match self.current()? {
            Some((generation, state)) => (generation.get(), state.to_toml()),
            None => (0, DesiredState::default().to_toml()),
        })
    }

    /// Validates `text` and says what applying it would change: sections, then actions.
    pub fn plan(&self, text: &str) -> Result<String, CoreError> {
        let desired = DesiredState::from_toml(text)?;
        self.check_board(&desired)?;
        let observed = self.system.observe()?;
        check_drives(&desired, &observed)?;
        let actions = system::plan(&desired, &observed, &self.lan);
        let current = self.current()?;
        Ok(describe_plan(
            current
                .as_ref()
                .map(|(generation, state)| (*generation, &**state)),
            &desired,
            &actions,
        ))
    }

    /// The board's ports and the kernel's bonds, vSwitches and VLANs.
    pub fn net_view(&self) -> Result<network::view::NetView, CoreError> {
        let observed = self.system.observe()?;
        let mut view = network::view::view(&observed.network, &self.lan);
        view.address.dhcp = self.dhcp.as_ref().and_then(|dhcp| dhcp.status());
        Ok(view)
    }

    /// The drives and the document's volumes as the box has them.
    pub fn storage_view(&self) -> Result<StorageView, CoreError> {
        let observed = self.system.observe()?;
        self.storage_view_of(&observed)
    }

    fn storage_view_of(&self, observed: &system::Observed) -> Result<StorageView, CoreError> {
        // The volumes' size and use from statvfs(2), through the system's storage tools.
        let tools = self.system.storage_tools();
        let desired = self.current()?.map(|(_, state)| state).unwrap_or_default();
        Ok(storage::view::view(
            &desired.storage,
            &observed.storage,
            &self.slots,
            &|path| tools.space(path),
        ))
    }

    /// The document of a kept generation, for a rollback (which is an apply of it).
    pub fn generation(&self, generation: u64) -> Result<Validated<DesiredState>, CoreError> {
        Ok(self.store.read_generation(Generation::new(generation))?)
    }

    /// Applies a validated document as one transaction (see the module's comment), reporting
    /// progress on `job`: [`run_apply`] over this core, held throughout.
    pub fn apply(
        &mut self,
        desired: &Validated<DesiredState>,
        job: &Job,
    ) -> Result<Applied, CoreError> {
        run_apply(self, desired, job)
    }

    /// The apply up to the safe apply's confirm window: check against the board, observe,
    /// plan, commit, act (undoing and restoring on a failure or a cancel). The document was
    /// validated when it was made.
    fn act(&mut self, desired: &Validated<DesiredState>, job: &Job) -> Result<Acted, CoreError> {
        self.check_board(desired)?;
        job.progress(0, "observing the box");
        let observed = self.system.observe()?;
        check_drives(desired, &observed)?;
        let actions = system::plan(desired, &observed, &self.lan);
        let previous = self.current()?;
        // One step for the commit, one per action, one for confirming the management link.
        let confirm = desired.network.management.as_ref().filter(|_| {
            actions
                .iter()
                .any(|a| matches!(a, SystemAction::Network(_)))
        });
        let steps = actions.len() + 1 + usize::from(confirm.is_some());
        job.set_total(u32::try_from(steps).unwrap_or(u32::MAX));
        let recorded_only = system::pending_sections(desired)
            .into_iter()
            .map(String::from)
            .collect();

        if confirm.is_some() {
            self.store
                .mark_unconfirmed(previous.as_ref().map(|(g, _)| *g))?;
        }
        let generation = match &previous {
            Some((generation, state)) if state == desired => *generation,
            _ => {
                job.progress(0, "committing the document");
                let generation = self.store.commit(desired)?;
                tracing::info!(%generation, "committed a new desired state");
                generation
            }
        };
        job.progress(1, format!("committed generation {generation}"));

        let mut watched = Watched {
            system: &mut self.system,
            job,
            next_step: 1,
            stopping: false,
        };
        match plan::apply(&actions, &mut watched) {
            Ok(done) => {
                // Before the confirmation: with DHCP, the lease is what it waits for.
                self.follow_dhcp(desired);
                let applied = Applied {
                    generation: generation.get(),
                    actions: done.iter().map(ToString::to_string).collect(),
                    recorded_only,
                };
                let Some(management) = confirm else {
                    self.reconcile_error = None;
                    return Ok(Acted::Finished(applied));
                };
                let step = u32::try_from(actions.len() + 1).unwrap_or(u32::MAX);
                Ok(Acted::AwaitingLink(Box::new(AwaitingLink {
                    done,
                    previous: previous.as_ref().map(|(g, _)| *g),
                    generation,
                    management: management.clone(),
                    step,
                    applied,
                })))
            }
            Err(failure) => {
                let cancelled = matches!(failure.cause, WatchedError::Cancelled);
                let restored = self.restore(previous.as_ref().map(|(g, _)| *g), generation);
                if confirm.is_some() {
                    self.clear_unconfirmed();
                }
                self.follow_committed_dhcp();
                let incomplete = !failure.rollback_failures.is_empty();
                let failure = Box::new(ByText(failure));
                let error = if cancelled {
                    CoreError::Cancelled { failure, restored }
                } else {
                    CoreError::Apply { failure, restored }
                };
                if incomplete {
                    self.reconcile_error = Some(error.to_string());
                }
                tracing::error!("{error}");
                Err(error)
            }
        }
    }

    /// One look at the box: whether the management interface of `pending` reaches a
    /// cabled port (through its bond or vSwitch) and, with `dhcp4`, holds a lease.
    fn link_confirmed(&self, pending: &AwaitingLink) -> Reach {
        let name = pending.management.interface.as_str();
        let has_link = self
            .system
            .observe()
            .ok()
            .is_some_and(|observed| observed.network.reaches_wire(name));
        // With DHCP, reachable means a lease too: a link into a network with no DHCP
        // server (the wrong VLAN, the wrong port) leaves the box unreachable.
        let has_lease = !pending.management.dhcp4
            || self.dhcp.as_ref().is_some_and(|dhcp| dhcp.has_lease(name));
        match (has_link, has_lease) {
            (false, _) => Reach::NoLink,
            (true, false) => Reach::NoLease,
            (true, true) => Reach::Confirmed,
        }
    }

    /// Ends a safe apply: keeps it when the link was confirmed, otherwise undoes its
    /// actions and commits the previous document again.
    fn settle(
        &mut self,
        pending: AwaitingLink,
        outcome: Result<(), LinkWait>,
    ) -> Result<Applied, CoreError> {
        let result = match outcome {
            Ok(()) => {
                self.reconcile_error = None;
                Ok(pending.applied)
            }
            Err(why) => {
                let error = self.reject(&pending.done, pending.previous, pending.generation, why);
                self.follow_committed_dhcp();
                Err(error)
            }
        };
        self.clear_unconfirmed();
        result
    }

    /// On the very first start (nothing committed, no history): commits the Default VM
    /// Network as generation 1 and says what it is; `None` on every later start.
    pub fn first_boot(&mut self) -> Result<Option<String>, CoreError> {
        if self.current()?.is_some() || !self.store.history()?.is_empty() {
            return Ok(None);
        }
        let carriers = self
            .system
            .port_carriers(&self.lan)
            .map_err(CoreError::from)?;
        let network = network::defaults::default_network(&carriers);
        let description = network::defaults::describe(&network);
        let document = DesiredState {
            network,
            ..DesiredState::default()
        }
        .validated()?;
        let generation = self.store.commit(&document)?;
        tracing::info!(%generation, "first boot: the Default VM Network is {description}");
        Ok(Some(description))
    }

    /// At start-up, before the reconcile: a safe apply that was still waiting for its
    /// management link when hostd stopped (killed, or the box lost power) was never
    /// confirmed, so its previous document is committed again (see `store::unconfirmed`).
    /// Returns the generation now current when it went back.
    pub fn revert_unconfirmed(&mut self) -> Result<Option<Generation>, CoreError> {
        let Some(marker) = self.store.unconfirmed()? else {
            return Ok(None);
        };
        let current = self.current()?.map(|(generation, _)| generation);
        let reverted = if current == marker.back_to {
            None // the crash came before the commit: nothing to take back
        } else {
            let back = match marker.back_to {
                Some(generation) => self.store.rollback(generation)?,
                None => self.store.commit(&Validated::default())?,
            };
            let from = current.map_or_else(|| "none".to_string(), |g| g.to_string());
            tracing::warn!(
                "safe apply: hostd stopped while generation {from} waited for its management link; \
                 it was never confirmed, so the previous document is current again (now generation {back})"
            );
            Some(back)
        };
        self.store.clear_unconfirmed()?;
        Ok(reverted)
    }

    /// A marker that cannot be removed would revert a confirmed change at the next start:
    /// loud, but the change itself stands.
    fn clear_unconfirmed(&self) {
        if let Err(error) = self.store.clear_unconfirmed() {
            tracing::error!(
                "cannot remove the safe-apply marker; the next start of hostd will go back to the previous document: {error}"
            );
        }
    }

    /// Takes the box to the committed document (at start-up, after a crash or a reboot).
    /// Returns the actions it ran.
    pub fn reconcile(&mut self) -> Result<Vec<String>, CoreError> {
        let desired = self.current()?.map(|(_, state)| state).unwrap_or_default();
        let result = self
            .system
            .observe()
            .map_err(CoreError::from)
            .map(|observed| system::plan(&desired, &observed, &self.lan))
            .and_then(|actions| {
                plan::apply(&actions, &mut self.system)
                    .map_err(|failure| CoreError::Act(Box::new(ByText(failure))))
            });
        // Even when the reconcile failed: the lease does not depend on every action.
        self.follow_dhcp(&desired);
        match result {
            Ok(done) => {
                self.reconcile_error = None;
                Ok(done.iter().map(ToString::to_string).collect())
            }
            Err(error) => {
                self.reconcile_error = Some(chain(&error));
                Err(error)
            }
        }
    }

    /// `(generation, committed at in seconds since 1970)`, oldest first.
    pub fn history(&self) -> Result<Vec<(u64, u64)>, CoreError> {
        Ok(self
            .store
            .history()?
            .into_iter()
            .map(|version| {
                let since_epoch = version
                    .committed_at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO);
                (version.generation.get(), since_epoch.as_secs())
            })
            .collect())
    }

    /// Takes back an apply whose actions all ran but whose check failed: undoes them,
    /// newest first, and commits the previous document again. Returns the error to report.
    fn reject(
        &mut self,
        done: &[SystemAction],
        previous: Option<Generation>,
        attempted: Generation,
        why: LinkWait,
    ) -> CoreError {
        let (undone, failures) = plan::undo_all(done, &mut self.system);
        let error = CoreError::Unconfirmed {
            why,
            undone: undone.len(),
            not_undone: failures.iter().map(ToString::to_string).collect(),
            restored: self.restore(previous, attempted),
        };
        if !failures.is_empty() {
            self.reconcile_error = Some(error.to_string());
        }
        tracing::warn!("safe apply: {error}");
        error
    }

    /// After a failed apply: commits the previous document again (if the failed one was
    /// committed), or the empty document when there was none before.
    fn restore(&mut self, previous: Option<Generation>, attempted: Generation) -> Restored {
        if previous == Some(attempted) {
            return Restored::Unchanged; // nothing new was committed
        }
        let back = match previous {
            Some(generation) => self.store.rollback(generation),
            None => self.store.commit(&Validated::default()),
        };
        match back {
            Ok(generation) => Restored::Back(generation),
            Err(error) => Restored::Failed(Box::new(error)),
        }
    }

    /// What only the board can tell: the ports a document names exist.
    pub fn check_board(&self, desired: &DesiredState) -> Result<(), CoreError> {
        let errors = network::board_check::check(&desired.network, &self.lan, &self.board);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Invalid { errors }.into())
        }
    }

    fn current(&self) -> Result<Option<(Generation, Validated<DesiredState>)>, CoreError> {
        Ok(self.store.current()?)
    }
}

/// What only the drives can tell: the ones a document names exist and may be used. Runs
/// before anything is committed, so a refused document touches no drive.
fn check_drives(desired: &DesiredState, observed: &system::Observed) -> Result<(), CoreError> {
    let errors = storage::plan::check(&desired.storage, &observed.storage);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Invalid { errors }.into())
    }
}

/// Runs actions through the system while reporting each as a job step, and stops at the
/// first step boundary after a cancel request. Once it has refused a step, it lets every
/// later call through: those are the rollback's undo actions.
struct Watched<'a, S: System> {
    system: &'a mut S,
    job: &'a Job,
    next_step: u32,
    stopping: bool,
}

impl<S: System> Executor<SystemAction> for Watched<'_, S> {
    type Error = WatchedError;

    fn execute(&mut self, action: &SystemAction) -> Result<(), WatchedError> {
        if self.stopping {
            self.job
                .progress(self.next_step, format!("undoing: {action}"));
            return Ok(self.system.execute(action)?);
        }
        if self.job.cancel_requested() {
            self.stopping = true;
            return Err(WatchedError::Cancelled);
        }
        self.job.progress(self.next_step, action.to_string());
        let (job, step) = (self.job, self.next_step);
        let result = self.system.execute_reporting(action, &|detail| {
            job.progress(step, format!("{action}: {detail}"));
        });
        if result.is_err() {
            self.stopping = true;
        }
        result?;
        self.next_step += 1;
        self.job.progress(self.next_step, action.to_string());
        Ok(())
    }
}

/// The plan's text: which sections change against what, then the actions on the box.
pub fn describe_plan(
    current: Option<(Generation, &DesiredState)>,
    desired: &DesiredState,
    actions: &[SystemAction],
) -> String {
    let empty = DesiredState::default();
    let (against, before) = match current {
        Some((generation, state)) => (format!("generation {generation}"), state),
        None => (
            "the empty document (nothing committed yet)".to_string(),
            &empty,
        ),
    };
    let changed: Vec<&str> = SECTIONS
        .into_iter()
        .filter(|section| section_differs(section, before, desired))
        .collect();
    if changed.is_empty() && actions.is_empty() {
        return format!("No changes against {against}.\n");
    }
    let mut text = format!("Against {against}:\n");
    for section in SECTIONS {
        let verdict = if changed.contains(&section) {
            "changed"
        } else {
            "unchanged"
        };
        text.push_str(&format!("  {section}: {verdict}\n"));
    }
    text.push_str("Actions on the box:\n");
    if actions.is_empty() {
        text.push_str("  none\n");
    } else {
        for line in describe(actions).lines() {
            text.push_str(&format!("  {line}\n"));
        }
    }
    let pending = system::pending_sections(desired);
    if !pending.is_empty() {
        text.push_str(&format!(
            "Recorded only (an apply does not start or stop guests: `cairnctl vm`, autostart): {}\n",
            pending.join(", ")
        ));
    }
    text
}

fn section_differs(section: &str, a: &DesiredState, b: &DesiredState) -> bool {
    match section {
        "hostname" => a.hostname != b.hostname,
        "network" => a.network != b.network,
        "storage" => a.storage != b.storage,
        "guests" => a.guests != b.guests,
        _ => unreachable!("SECTIONS lists only these"),
    }
}

/// Seconds since boot, from /proc/uptime.
pub fn system_uptime() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    text.split_whitespace().next()?.parse().ok()
}
