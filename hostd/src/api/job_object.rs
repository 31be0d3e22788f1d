//! `org.cairn.Job1`: one long operation as a bus object. Properties for tools (`busctl
//! introspect` shows the state at a glance); `Snapshot()` for clients, which poll it: one
//! call gives a consistent view, where separate property reads could straddle a step.

use zbus::OwnedObjectPath;

use super::HostError;
use crate::jobs::Job;

pub const JOB_INTERFACE: &str = "org.cairn.Job1";

/// `/org/cairn/Host1/job/<id>`.
pub fn job_path(id: u64) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("{}/job/{id}", super::OBJECT_PATH))
        .expect("a path of fixed segments and a number is valid")
}

#[derive(Debug)]
pub struct JobObject {
    job: Job,
}

impl JobObject {
    pub fn new(job: Job) -> Self {
        Self { job }
    }
}

#[zbus::interface(interface = "org.cairn.Job1")]
impl JobObject {
    /// JSON: id, kind, state, done, total, step, result, error_name, error.
    fn snapshot(&self) -> String {
        serde_json::to_string(&self.job.snapshot()).expect("a snapshot is strings and numbers")
    }

    /// Stops the job at its next step boundary; it undoes what it did and ends `cancelled`.
    fn cancel(&self) -> Result<(), HostError> {
        self.job
            .request_cancel()
            .map_err(|not_running| HostError::Invalid(not_running.to_string()))
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
        self.job.snapshot().error
    }
}

/// The client side of `org.cairn.Job1`.
#[zbus::proxy(interface = "org.cairn.Job1", default_service = "org.cairn.Host1")]
pub trait Job1 {
    fn snapshot(&self) -> Result<String, HostError>;
    fn cancel(&self) -> Result<(), HostError>;
}
