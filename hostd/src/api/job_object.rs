//! `org.cairn.Job1`: one long operation as a bus object. Properties for tools (`busctl
//! introspect` shows the state at a glance); `Snapshot()` for clients, which poll it: one
//! call gives a consistent view, where separate property reads could straddle a step.

use serde::{Deserialize, Serialize};
use zbus::OwnedObjectPath;

use super::HostError;
use crate::host::{CoreError, Job};
use crate::jobs::{JobSnapshot, JobState};

pub const JOB_INTERFACE: &str = "org.cairn.Job1";

/// `/org/cairn/Host1/job/<id>`.
pub fn job_path(id: u64) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("{}/job/{id}", super::OBJECT_PATH))
        .expect("a path of fixed segments and a number is valid")
}

/// A job as a client sees it, the JSON of `Snapshot()`: the core's snapshot with its
/// failure mapped to the wire (the D-Bus error name and message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
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
    /// The D-Bus error name and message, set when it failed or was cancelled.
    pub error_name: String,
    pub error: String,
}

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

/// The client side of `org.cairn.Job1`.
#[zbus::proxy(interface = "org.cairn.Job1", default_service = "org.cairn.Host1")]
pub trait Job1 {
    fn snapshot(&self) -> Result<String, HostError>;
    fn cancel(&self) -> Result<(), HostError>;
}
