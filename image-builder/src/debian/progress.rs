//! Progress reporting seam: the CLI implements [`Progress`] with indicatif, tests use
//! [`NoProgress`]. The archive client only ever reports bytes, so the trait stays tiny.

/// Something that can show how far a download or a hash check has come.
pub trait Progress {
    /// Starts one task, e.g. downloading `pool/main/l/linux-signed-amd64/…deb`.
    /// `total_bytes` is `None` when the size is not known in advance (InRelease).
    fn start(&self, what: &str, total_bytes: Option<u64>) -> Box<dyn ProgressTask>;
}

/// One running task started by [`Progress::start`].
pub trait ProgressTask {
    /// `bytes` more bytes were processed.
    fn advance(&self, bytes: u64);
    /// The task is done (successfully or not); the bar can be cleared.
    fn finish(&self);
}

/// Shows nothing: for tests.
#[cfg(test)]
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

#[cfg(test)]
impl Progress for NoProgress {
    fn start(&self, _what: &str, _total_bytes: Option<u64>) -> Box<dyn ProgressTask> {
        Box::new(NoProgress)
    }
}

#[cfg(test)]
impl ProgressTask for NoProgress {
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

/// Calls [`ProgressTask::finish`] when dropped, so a task that fails half-way through
/// does not leave a bar spinning on the caller's terminal.
pub(crate) struct TaskGuard(pub(crate) Box<dyn ProgressTask>);

impl TaskGuard {
    pub(crate) fn advance(&self, bytes: u64) {
        self.0.advance(bytes);
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.finish();
    }
}
