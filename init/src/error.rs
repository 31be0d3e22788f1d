//! Error types, one enum per subsystem and one variant per failed operation.
//!
//! Messages are short and never repeat their cause: the cause is the `#[source]`, and
//! the whole chain is printed once, where the error is finally handled, with [`Chain`].

use std::error::Error;
use std::fmt;
use std::path::PathBuf;

use nix::errno::Errno;

/// Failures that leave init unable to run the appliance: they lead to the emergency path.
#[derive(Debug, thiserror::Error)]
pub enum FatalError {
    #[error("Could not mount an essential filesystem")]
    EssentialMount(#[source] MountError),
    #[error("Could not open /dev/console")]
    NoConsole(#[source] std::io::Error),
    #[error("Could not set up signal handling")]
    Signals(#[source] Errno),
    #[error("Init panicked: {0}")]
    Panic(String),
    /// A step found that an earlier one did not leave what it promised: a bug in init.
    #[error("Init's boot sequence is broken: {0}")]
    Sequence(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("Could not create mount point {path}")]
    CreateMountPoint {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Could not mount {fstype} at {target}")]
    Mount {
        fstype: String,
        target: PathBuf,
        #[source]
        source: Errno,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("Could not find the running kernel's version")]
    KernelVersion(#[source] Errno),
    #[error("Could not read {path}")]
    ReadIndex {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Could not open module {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("The kernel refused module {name}")]
    Load {
        name: String,
        #[source]
        source: Errno,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigPartitionError {
    #[error("Could not read the start of {device}")]
    ReadStart {
        device: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Could not run {tool}")]
    RunTool {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} failed with {status}")]
    ToolFailed { tool: String, status: String },
    #[error("Could not mount {device} at {target}")]
    Mount {
        device: PathBuf,
        target: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("Could not create mount point {path}")]
    CreateMountPoint {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("Could not open terminal {path}")]
    OpenTty {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Could not set the speed of {path} to {baud} baud")]
    SetSpeed {
        path: PathBuf,
        baud: u32,
        #[source]
        source: Errno,
    },
    #[error("Could not create the readiness pipe")]
    ReadinessPipe(#[source] Errno),
    #[error("Could not create the runtime directory {path}")]
    RuntimeDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Could not start {path}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BootTimesError {
    #[error("Could not create {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Could not encode the boot times")]
    Encode(#[source] serde_json::Error),
    #[error("Could not write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Displays an error followed by each of its causes: `A: B: C`.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(err) = cause {
            write!(f, ": {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_prints_every_cause_once() {
        let err = FatalError::EssentialMount(MountError::Mount {
            fstype: "proc".to_owned(),
            target: PathBuf::from("/proc"),
            source: Errno::EPERM,
        });
        assert_eq!(
            Chain(&err).to_string(),
            "Could not mount an essential filesystem: Could not mount proc at /proc: \
             EPERM: Operation not permitted"
        );
    }
}
