//! How a request to the guests fails. The wire layer (`api/error.rs`) gives each variant
//! its `org.cairn.Error.*` name in one exhaustive match.

use std::path::PathBuf;

use super::admission::Refusal;
use super::api_client::ApiError;
use super::core_services::ServiceError;
use super::execute::LaunchError;
use super::lifecycle::GuestState;
use super::plan::Refused;

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("There is no guest {0:?} in the committed document")]
    NotFound(String),
    #[error("Guest {name:?} is {state}; {wanted}")]
    WrongState {
        name: String,
        state: GuestState,
        wanted: &'static str,
    },
    /// Admission: the guest does not fit now (the message shows the sum).
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("Guest {name:?} cannot start:\n  {}", problems.join("\n  "))]
    Files { name: String, problems: Vec<String> },
    #[error("This image has no cloud-hypervisor at {}; build it with CAIRN_CLOUD_HYPERVISOR", .0.display())]
    NoHypervisor(PathBuf),
    #[error("Guest {name:?}: cloud-hypervisor refused the request")]
    Api {
        name: String,
        #[source]
        source: ApiError,
    },
    /// The start was admitted and begun, and a step of it failed (the guest is crashed,
    /// with this as its last exit).
    #[error("Guest {name:?} did not start")]
    StartFailed {
        name: String,
        #[source]
        source: LaunchError,
    },
    /// What the core answered (a volume that is not mounted, …), with its own kind: it
    /// says all there is to say, so it is not wrapped.
    #[error(transparent)]
    Core(#[from] ServiceError),
    #[error("The request stopped unfinished")]
    Unfinished(#[source] tokio::task::JoinError),
    #[error("hostd is shutting down; guests are being stopped")]
    ShuttingDown,
}

impl From<Refused> for GuestError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::ShuttingDown => Self::ShuttingDown,
            Refused::WrongState {
                name,
                state,
                wanted,
            } => Self::WrongState {
                name,
                state,
                wanted,
            },
            Refused::Admission(refusal) => Self::Refused(refusal),
        }
    }
}
