//! Long operations as jobs: a caller gets a job at once and follows its progress, may cancel
//! it, and reads its final result, instead of holding a D-Bus call open for minutes.
//!
//! A [`Job`] is shared between the thread doing the work (which reports steps and checks for
//! cancellation between them) and the API (which shows it as an `org.cairn.Job1` object). Its
//! lifecycle is a small state machine: `running` → `succeeded` | `failed` | `cancelled`, and a
//! finished job never changes again. [`Jobs`] numbers them and forgets the oldest finished
//! ones past [`KEEP_FINISHED`].
//!
//! A job keeps its failure as the typed error `F` of whoever runs it (the core's error in
//! hostd); the API maps it to the wire when it shows the job, so this registry speaks no
//! wire language.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Finished jobs kept for `cairnctl job list`; enough for a session's worth of changes.
pub const KEEP_FINISHED: usize = 32;

pub use cairn_api::JobState;

/// Everything there is to see of a job at one moment.
#[derive(Debug, PartialEq, Eq)]
pub struct JobSnapshot<F> {
    pub id: u64,
    /// What the job does, e.g. `config apply`.
    pub kind: String,
    pub state: JobState,
    /// Steps finished, of `total` (0 of 0 until the work knows its size).
    pub done: u32,
    pub total: u32,
    /// The step under way, or the last one.
    pub step: String,
    /// JSON, set when the job succeeded.
    pub result: String,
    /// Why it failed or what its cancel undid, set when it failed or was cancelled.
    pub failure: Option<Arc<F>>,
}

// By hand: a derive would ask `F: Clone`, and the failure is shared, not copied.
impl<F> Clone for JobSnapshot<F> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            kind: self.kind.clone(),
            state: self.state,
            done: self.done,
            total: self.total,
            step: self.step.clone(),
            result: self.result.clone(),
            failure: self.failure.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Job {id} is {state}; only a running job can be cancelled")]
pub struct NotRunning {
    pub id: u64,
    pub state: JobState,
}

/// A handle to one job; clones share it. `F` is what a failure is.
#[derive(Debug)]
pub struct Job<F> {
    snapshot: Arc<Mutex<JobSnapshot<F>>>,
    cancel_requested: Arc<AtomicBool>,
}

// By hand: a derive would ask `F: Clone`; clones share the job, not copy it.
impl<F> Clone for Job<F> {
    fn clone(&self) -> Self {
        Self {
            snapshot: Arc::clone(&self.snapshot),
            cancel_requested: Arc::clone(&self.cancel_requested),
        }
    }
}

impl<F> Job<F> {
    pub fn new(id: u64, kind: &str) -> Self {
        Self {
            snapshot: Arc::new(Mutex::new(JobSnapshot {
                id,
                kind: kind.to_string(),
                state: JobState::Running,
                done: 0,
                total: 0,
                step: "starting".to_string(),
                result: String::new(),
                failure: None,
            })),
            cancel_requested: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn id(&self) -> u64 {
        self.lock().id
    }

    pub fn snapshot(&self) -> JobSnapshot<F> {
        self.lock().clone()
    }

    pub fn set_total(&self, total: u32) {
        self.lock().total = total;
    }

    /// Reports that `done` steps are finished and what is under way now.
    pub fn progress(&self, done: u32, step: impl Into<String>) {
        let mut snapshot = self.lock();
        if snapshot.state == JobState::Running {
            snapshot.done = done;
            snapshot.step = step.into();
        }
    }

    /// Asks the work to stop at its next step boundary (it undoes what it did).
    pub fn request_cancel(&self) -> Result<(), NotRunning> {
        let snapshot = self.lock();
        if snapshot.state != JobState::Running {
            return Err(NotRunning {
                id: snapshot.id,
                state: snapshot.state,
            });
        }
        self.cancel_requested.store(true, Ordering::SeqCst);
        Ok(())
    }

    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested.load(Ordering::SeqCst)
    }

    pub fn succeed(&self, result: String) {
        self.finish(JobState::Succeeded, |snapshot| {
            snapshot.done = snapshot.total;
            snapshot.result = result;
        });
    }

    pub fn fail(&self, failure: F) {
        self.finish(JobState::Failed, |snapshot| {
            snapshot.failure = Some(Arc::new(failure));
        });
    }

    /// Ends a job that stopped on request; `failure` says what its cancel undid.
    pub fn cancelled(&self, failure: F) {
        self.finish(JobState::Cancelled, |snapshot| {
            snapshot.failure = Some(Arc::new(failure));
        });
    }

    fn finish(&self, state: JobState, fill: impl FnOnce(&mut JobSnapshot<F>)) {
        let mut snapshot = self.lock();
        if snapshot.state.can_become(state) {
            snapshot.state = state;
            fill(&mut snapshot);
        } else {
            tracing::warn!(
                job = snapshot.id,
                "job is already {} and stays so (asked to become {state})",
                snapshot.state
            );
        }
    }

    fn lock(&self) -> MutexGuard<'_, JobSnapshot<F>> {
        // A snapshot is plain data written field by field; a panic elsewhere cannot leave it
        // in a state worse than "one field stale".
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every job this hostd started and still remembers, by number.
#[derive(Debug)]
pub struct Jobs<F> {
    next_id: u64,
    jobs: BTreeMap<u64, Job<F>>,
}

// By hand: a derive would ask `F: Default`.
impl<F> Default for Jobs<F> {
    fn default() -> Self {
        Self {
            next_id: 0,
            jobs: BTreeMap::new(),
        }
    }
}

impl<F> Jobs<F> {
    /// Starts a job numbered one more than the last; returns it and the ids forgotten to make
    /// room (their D-Bus objects are to be removed).
    pub fn start(&mut self, kind: &str) -> (Job<F>, Vec<u64>) {
        self.next_id += 1;
        let job = Job::new(self.next_id, kind);
        self.jobs.insert(self.next_id, job.clone());
        (job, self.forget_old())
    }

    pub fn get(&self, id: u64) -> Option<&Job<F>> {
        self.jobs.get(&id)
    }

    /// Oldest first.
    pub fn all(&self) -> Vec<Job<F>> {
        self.jobs.values().cloned().collect()
    }

    /// The running job of `kind`, if any.
    pub fn running(&self, kind: &str) -> Option<&Job<F>> {
        self.jobs.values().find(|job| {
            let snapshot = job.snapshot();
            snapshot.kind == kind && snapshot.state == JobState::Running
        })
    }

    fn forget_old(&mut self) -> Vec<u64> {
        let finished: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, job)| job.snapshot().state.is_finished())
            .map(|(id, _)| *id)
            .collect();
        let excess = finished.len().saturating_sub(KEEP_FINISHED);
        let forgotten: Vec<u64> = finished.into_iter().take(excess).collect();
        for id in &forgotten {
            self.jobs.remove(id);
        }
        forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failures in these tests are plain text.
    type Job = super::Job<&'static str>;
    type Jobs = super::Jobs<&'static str>;

    #[test]
    fn only_a_running_job_changes_state() {
        use JobState::{Cancelled, Failed, Running, Succeeded};
        for end in [Succeeded, Failed, Cancelled] {
            assert!(Running.can_become(end));
            for next in [Running, Succeeded, Failed, Cancelled] {
                assert!(!end.can_become(next), "{end} -> {next}");
            }
        }
        assert!(!Running.can_become(Running));
    }

    #[test]
    fn progress_then_success_keeps_the_result() {
        let job = Job::new(7, "config apply");
        job.set_total(3);
        job.progress(1, "set the host name");
        let seen = job.snapshot();
        assert_eq!(
            (seen.done, seen.total, seen.step.as_str()),
            (1, 3, "set the host name")
        );
        job.succeed(r#"{"generation":2}"#.into());
        let seen = job.snapshot();
        assert_eq!(seen.state, JobState::Succeeded);
        assert_eq!(seen.done, 3);
        assert_eq!(seen.result, r#"{"generation":2}"#);
        // Finished is final: a late failure report does not overwrite it.
        job.fail("late");
        assert_eq!(job.snapshot().state, JobState::Succeeded);
        assert_eq!(job.snapshot().failure, None);
    }

    #[test]
    fn cancel_is_a_request_and_only_for_running_jobs() {
        let job = Job::new(1, "config apply");
        assert!(!job.cancel_requested());
        job.request_cancel().expect("running");
        assert!(job.cancel_requested());
        assert_eq!(job.snapshot().state, JobState::Running);
        job.cancelled("rolled back");
        assert_eq!(
            job.request_cancel(),
            Err(NotRunning {
                id: 1,
                state: JobState::Cancelled
            })
        );
    }

    #[test]
    fn the_registry_numbers_jobs_and_forgets_only_old_finished_ones() {
        let mut jobs = Jobs::default();
        let (running, forgotten) = jobs.start("config apply");
        assert!(forgotten.is_empty());
        assert_eq!(running.id(), 1);
        let mut forgotten = Vec::new();
        for _ in 0..KEEP_FINISHED + 3 {
            let (job, dropped) = jobs.start("other");
            forgotten.extend(dropped);
            job.succeed(String::new());
        }
        let (_, dropped) = jobs.start("other");
        forgotten.extend(dropped);
        // Ids 2..=36 finished: the oldest three are gone, the newest KEEP_FINISHED stay.
        assert_eq!(forgotten, vec![2, 3, 4]);
        let kept_finished = jobs
            .all()
            .iter()
            .filter(|job| job.snapshot().state.is_finished())
            .count();
        assert_eq!(kept_finished, KEEP_FINISHED);
        assert!(jobs.get(1).is_some(), "a running job is never forgotten");
        assert_eq!(jobs.running("config apply").map(Job::id), Some(1));
        assert!(jobs.running("nothing").is_none());
    }
}
