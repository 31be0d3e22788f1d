//! `org.cairn.Job1`: one long operation as a bus object. Properties for tools (`busctl
//! introspect` shows the state at a glance); `Snapshot()` for clients, which poll it: one
//! call gives a consistent view, where separate property reads could straddle a step.

use super::HostError;
use crate::core::{CoreError, Job};
use crate::jobs::JobSnapshot;

pub use cairn_api::{JOB_INTERFACE, JobView, job_path};

impl From<JobSnapshot<CoreError>> for JobView {
    fn from(snapshot: JobSnapshot<CoreError>) -> Self {
        let (error_name, error) = snapshot
            .failure
            .as_deref()
            .map(HostError::from)
            .map_or_else(Default::default, |wire| (wire.name(), wire.message()));
        Self {
            id: snapshot.id,
            kind: snapshot.kind,
            state: snapshot.state,
            done: snapshot.done,
            total: snapshot.total,
            step: snapshot.step,
            result: snapshot.result,
            error_name,
            error,
        }
    }
}

#[derive(Debug)]
pub struct JobObject {
    job: Job,
}

impl JobObject {
    pub fn new(job: Job) -> Self {
        Self { job }
    }

    fn view(&self) -> JobView {
        self.job.snapshot().into()
    }
}

#[zbus::interface(interface = "org.cairn.Job1")]
impl JobObject {
    /// JSON: id, kind, state, done, total, step, result, error_name, error.
    fn snapshot(&self) -> String {
        serde_json::to_string(&self.view()).expect("a snapshot is strings and numbers")
    }

    /// Stops the job at its next step boundary; it undoes what it did and ends `cancelled`.
    fn cancel(&self) -> Result<(), HostError> {
        Ok(self.job.request_cancel()?)
    }

    #[zbus(property)]
    fn id(&self) -> u64 {
        self.job.snapshot().id
    }

    #[zbus(property)]
    fn kind(&self) -> String {
        self.job.snapshot().kind
    }

    #[zbus(property)]
    fn state(&self) -> String {
        self.job.snapshot().state.to_string()
    }

    #[zbus(property)]
    fn done(&self) -> u32 {
        self.job.snapshot().done
    }

    #[zbus(property)]
    fn total(&self) -> u32 {
        self.job.snapshot().total
    }

    #[zbus(property)]
    fn step(&self) -> String {
        self.job.snapshot().step
    }

    #[zbus(property)]
    fn result(&self) -> String {
        self.job.snapshot().result
    }

    #[zbus(property)]
    fn error(&self) -> String {
        self.view().error
    }
}
