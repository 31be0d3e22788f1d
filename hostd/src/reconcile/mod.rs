//! From the committed desired state to the live system, across subsystems.
//!
//! Each subsystem contributes its observed part to [`Observed`], its actions to [`HostAction`]
//! and its steps to [`plan`], in the order they must run. A [`System`] observes and executes;
//! [`LiveSystem`] does it for real, tests use a double. Subsystems that have no executor yet
//! (network, storage, guests: their issues add them) are only recorded; [`pending_sections`]
//! names them so that a plan never pretends they were acted on.

pub mod hostname;

use std::fmt;
use std::path::PathBuf;

use crate::plan::{Action, Executor, Undo};
use crate::state::DesiredState;

/// What hostd sees on the box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub hostname: String,
}

/// One step on the live system, of any subsystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAction {
    Hostname(hostname::SetHostname),
}

impl fmt::Display for HostAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hostname(action) => action.fmt(f),
        }
    }
}

impl Action for HostAction {
    fn undo(&self) -> Undo<Self> {
        match self {
            Self::Hostname(action) => match action.undo() {
                Undo::Run(undo) => Undo::Run(Self::Hostname(undo)),
                Undo::Nothing => Undo::Nothing,
                Undo::Impossible(why) => Undo::Impossible(why),
            },
        }
    }
}

/// Pure: every action that takes `observed` to `desired`, in the order they must run.
pub fn plan(desired: &DesiredState, observed: &Observed) -> Vec<HostAction> {
    let wanted = hostname::desired(desired.hostname.as_ref());
    hostname::plan(&wanted, &observed.hostname)
        .map(HostAction::Hostname)
        .into_iter()
        .collect()
}

/// The document's sections that are recorded but that nothing acts on yet.
pub fn pending_sections(desired: &DesiredState) -> Vec<&'static str> {
    let mut sections = Vec::new();
    if !desired.network.is_empty() {
        sections.push("network");
    }
    if !desired.storage.is_empty() {
        sections.push("storage");
    }
    if !desired.guests.is_empty() {
        sections.push("guests");
    }
    sections
}

#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error("Cannot read the host name from {}", .path.display())]
    ObserveHostname {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot set the host name to {name:?}")]
    SetHostname {
        name: String,
        #[source]
        source: nix::Error,
    },
}

/// Observes and changes the box; the seam between reconciling and the kernel.
pub trait System: Executor<HostAction, Error = SystemError> + Send + std::fmt::Debug {
    fn observe(&self) -> Result<Observed, SystemError>;
}

/// The real box.
#[derive(Debug, Clone)]
pub struct LiveSystem {
    pub proc_hostname: PathBuf,
}

impl Default for LiveSystem {
    fn default() -> Self {
        Self {
            proc_hostname: PathBuf::from(hostname::PROC_HOSTNAME),
        }
    }
}

impl Executor<HostAction> for LiveSystem {
    type Error = SystemError;

    fn execute(&mut self, action: &HostAction) -> Result<(), SystemError> {
        match action {
            HostAction::Hostname(set) => {
                hostname::execute(set).map_err(|source| SystemError::SetHostname {
                    name: set.to.clone(),
                    source,
                })
            }
        }
    }
}

impl System for LiveSystem {
    fn observe(&self) -> Result<Observed, SystemError> {
        let hostname = hostname::observe(&self.proc_hostname).map_err(|source| {
            SystemError::ObserveHostname {
                path: self.proc_hostname.clone(),
                source,
            }
        })?;
        Ok(Observed { hostname })
    }
}

/// hostd holds its system as a trait object, so that the API serves the live box and its
/// tests a double without being generic over either.
impl Executor<HostAction> for Box<dyn System> {
    type Error = SystemError;

    fn execute(&mut self, action: &HostAction) -> Result<(), SystemError> {
        self.as_mut().execute(action)
    }
}

impl System for Box<dyn System> {
    fn observe(&self) -> Result<Observed, SystemError> {
        self.as_ref().observe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_document_on_a_fresh_box_needs_nothing() {
        let observed = Observed {
            hostname: hostname::DEFAULT_HOSTNAME.into(),
        };
        assert!(plan(&DesiredState::default(), &observed).is_empty());
        assert!(pending_sections(&DesiredState::default()).is_empty());
    }

    #[test]
    fn a_new_name_plans_one_hostname_action() {
        let desired = DesiredState::from_toml("version = 1\nhostname = \"nas1\"\n")
            .expect("a valid document");
        let observed = Observed {
            hostname: "cairn".into(),
        };
        let actions = plan(&desired, &observed);
        assert_eq!(
            actions,
            vec![HostAction::Hostname(hostname::SetHostname {
                from: "cairn".into(),
                to: "nas1".into()
            })]
        );
        assert_eq!(
            actions[0].undo(),
            Undo::Run(HostAction::Hostname(hostname::SetHostname {
                from: "nas1".into(),
                to: "cairn".into()
            }))
        );
    }

    #[test]
    fn sections_without_an_executor_are_named() {
        let desired = DesiredState::from_toml(
            "version = 1\n[[network.bonds]]\nname = \"bond0\"\nmode = \"active-backup\"\nmembers = [\"lan1\", \"lan2\"]\n",
        )
        .expect("a valid document");
        assert_eq!(pending_sections(&desired), vec!["network"]);
    }
}
