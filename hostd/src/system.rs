//! From the committed desired state to the live system, across subsystems.
//!
//! Each subsystem contributes its observed part to [`Observed`], its actions to [`SystemAction`]
//! and its steps to [`plan`], in the order they must run. A [`System`] observes and executes;
//! [`LiveSystem`] does it for real, tests use a double. Sections an apply does not act on
//! (guests: the guest supervisor starts and stops them on request and at boot) are only
//! recorded; [`pending_sections`] names them so that a plan never pretends they were acted
//! on.

use crate::hostname;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use board_configs::Lan;

use crate::network::{self, NetAction, NetError, NetExecutor, NetObserved, NetPaths};
use crate::plan::{Action, Executor, Undo};
use crate::state::DesiredState;
use crate::storage::{
    self, DrivePaths, LiveStorageTools, StorageAction, StorageError, StorageObserved, StorageTools,
};

/// What hostd sees on the box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub hostname: String,
    pub network: NetObserved,
    pub storage: StorageObserved,
}

/// One step on the live system, of any subsystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemAction {
    Hostname(hostname::SetHostname),
    Network(NetAction),
    Storage(StorageAction),
}

impl fmt::Display for SystemAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hostname(action) => action.fmt(f),
            Self::Network(action) => action.fmt(f),
            Self::Storage(action) => action.fmt(f),
        }
    }
}

fn wrap<A>(undo: Undo<A>, into: fn(A) -> SystemAction) -> Undo<SystemAction> {
    match undo {
        Undo::Run(action) => Undo::Run(into(action)),
        Undo::Nothing => Undo::Nothing,
        Undo::Impossible(why) => Undo::Impossible(why),
    }
}

impl Action for SystemAction {
    fn undo(&self) -> Undo<Self> {
        match self {
            Self::Hostname(action) => wrap(action.undo(), Self::Hostname),
            Self::Network(action) => wrap(action.undo(), Self::Network),
            Self::Storage(action) => wrap(action.undo(), Self::Storage),
        }
    }
}

/// Pure: every action that takes `observed` to `desired` on a board with these LAN ports,
/// in the order they must run.
pub fn plan(desired: &DesiredState, observed: &Observed, lan: &Lan) -> Vec<SystemAction> {
    let wanted = hostname::desired(desired.hostname.as_ref());
    let mut actions: Vec<SystemAction> = hostname::plan(&wanted, &observed.hostname)
        .map(SystemAction::Hostname)
        .into_iter()
        .collect();
    actions.extend(
        network::plan::plan(&desired.network, lan, &observed.network)
            .into_iter()
            .map(SystemAction::Network),
    );
    actions.extend(
        storage::plan::plan(&desired.storage, &observed.storage)
            .into_iter()
            .map(SystemAction::Storage),
    );
    actions
}

/// The document's sections that are recorded but that nothing acts on yet.
pub fn pending_sections(desired: &DesiredState) -> Vec<&'static str> {
    let mut sections = Vec::new();
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
    #[error("Cannot read the network links from {}", .path.display())]
    ObserveNetwork {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Network(#[from] NetError),
    #[error("Cannot read the drives from {}", .path.display())]
    ObserveStorage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Observes and changes the box; the seam between reconciling and the kernel.
pub trait System: Executor<SystemAction, Error = SystemError> + Send + std::fmt::Debug {
    fn observe(&self) -> Result<Observed, SystemError>;

    /// Gives the board's ports their names, brings them up and says which have a carrier,
    /// in board order (waiting briefly for links to come up). For the first boot's default
    /// network, which depends on where the cables are.
    fn port_carriers(&mut self, lan: &Lan) -> Result<Vec<(String, bool)>, SystemError>;

    /// What the core's storage jobs and views act through outside an apply: btrfs-progs,
    /// bcache, libbtrfsutil, statvfs. Shared, so that a job runs on them for hours without
    /// holding the core.
    ///
    /// The live tools unless a double says otherwise: a system that acts on the real box
    /// acts with the real tools, and a double whose box has no volumes never reaches them
    /// (a double that has volumes overrides this, as the core's tests do).
    fn storage_tools(&self) -> Arc<dyn StorageTools> {
        Arc::new(LiveStorageTools)
    }
}

/// How long a first boot waits for the LAN ports' links before deciding which have cables:
/// copper autonegotiation takes 1 to 3 s.
pub const CARRIER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

const PROC_MOUNTS: &str = "/proc/mounts";

/// The real box.
#[derive(Debug)]
pub struct LiveSystem {
    pub proc_hostname: PathBuf,
    pub net_paths: NetPaths,
    pub drive_paths: DrivePaths,
    net: NetExecutor,
}

impl Default for LiveSystem {
    fn default() -> Self {
        Self {
            proc_hostname: PathBuf::from(hostname::PROC_HOSTNAME),
            net_paths: NetPaths::default(),
            drive_paths: DrivePaths::default(),
            net: NetExecutor::default(),
        }
    }
}

impl Executor<SystemAction> for LiveSystem {
    type Error = SystemError;

    fn execute(&mut self, action: &SystemAction) -> Result<(), SystemError> {
        self.execute_reporting(action, &|_| {})
    }

    fn execute_reporting(
        &mut self,
        action: &SystemAction,
        report: &dyn Fn(&str),
    ) -> Result<(), SystemError> {
        match action {
            SystemAction::Hostname(set) => {
                hostname::execute(set).map_err(|source| SystemError::SetHostname {
                    name: set.to.clone(),
                    source,
                })
            }
            SystemAction::Network(action) => Ok(self.net.execute(action)?),
            SystemAction::Storage(action) => Ok(storage::execute::execute(action, report)?),
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
        let mut network =
            network::observe(&self.net_paths).map_err(|source| SystemError::ObserveNetwork {
                path: self.net_paths.class_net.clone(),
                source,
            })?;
        network.l3 = self.net.observe_l3()?;
        network.bridge_vlans = self.net.observe_bridge_vlans()?;
        let storage = storage::observe(&self.drive_paths, std::path::Path::new(PROC_MOUNTS))
            .map_err(|source| SystemError::ObserveStorage {
                path: self.drive_paths.sys_block.clone(),
                source,
            })?;
        Ok(Observed {
            hostname,
            network,
            storage,
        })
    }

    fn port_carriers(&mut self, lan: &Lan) -> Result<Vec<(String, bool)>, SystemError> {
        let observed = self.observe()?.network;
        let assignment = network::plan::port_assignment(lan, &observed);
        for rename in network::plan::plan_renames(&assignment, &observed) {
            self.net.execute(&rename)?;
        }
        let ports: Vec<String> = assignment.into_iter().map(|(_, port)| port).collect();
        for port in &ports {
            self.net.execute(&NetAction::SetUp { name: port.clone() })?;
        }
        let deadline = std::time::Instant::now() + CARRIER_WAIT;
        loop {
            let seen = self.observe()?.network;
            let carriers: Vec<(String, bool)> = ports
                .iter()
                .map(|port| {
                    let carrier = seen
                        .get(port)
                        .and_then(|link| link.carrier)
                        .unwrap_or(false);
                    (port.clone(), carrier)
                })
                .collect();
            if carriers.iter().all(|(_, carrier)| *carrier) || std::time::Instant::now() >= deadline
            {
                return Ok(carriers);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// hostd holds its system as a trait object, so that the API serves the live box and its
/// tests a double without being generic over either.
impl Executor<SystemAction> for Box<dyn System> {
    type Error = SystemError;

    fn execute(&mut self, action: &SystemAction) -> Result<(), SystemError> {
        self.as_mut().execute(action)
    }
}

impl System for Box<dyn System> {
    fn observe(&self) -> Result<Observed, SystemError> {
        self.as_ref().observe()
    }

    fn port_carriers(&mut self, lan: &Lan) -> Result<Vec<(String, bool)>, SystemError> {
        self.as_mut().port_carriers(lan)
    }

    fn storage_tools(&self) -> Arc<dyn StorageTools> {
        self.as_ref().storage_tools()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_document_on_a_fresh_box_needs_nothing() {
        let observed = Observed {
            hostname: hostname::DEFAULT_HOSTNAME.into(),
            network: NetObserved::default(),
            storage: StorageObserved::default(),
        };
        assert!(plan(&DesiredState::default(), &observed, &no_ports()).is_empty());
        assert!(pending_sections(&DesiredState::default()).is_empty());
    }

    #[test]
    fn a_new_name_plans_one_hostname_action() {
        let desired = DesiredState::from_toml("version = 1\nhostname = \"nas1\"\n")
            .expect("a valid document");
        let observed = Observed {
            hostname: "cairn".into(),
            network: NetObserved::default(),
            storage: StorageObserved::default(),
        };
        let actions = plan(&desired, &observed, &no_ports());
        assert_eq!(
            actions,
            vec![SystemAction::Hostname(hostname::SetHostname {
                from: "cairn".into(),
                to: "nas1".into()
            })]
        );
        assert_eq!(
            actions[0].undo(),
            Undo::Run(SystemAction::Hostname(hostname::SetHostname {
                from: "nas1".into(),
                to: "cairn".into()
            }))
        );
    }

    fn no_ports() -> Lan {
        Lan {
            bond_modes: None,
            discovery: board_configs::LanDiscovery::MacOrder,
            ports: Vec::new(),
        }
    }

    #[test]
    fn network_actions_follow_the_host_name() {
        let desired = DesiredState::from_toml(
            "version = 1\nhostname = \"nas1\"\n[[network.vswitches]]\nname = \"vs0\"\n",
        )
        .expect("a valid document");
        let observed = Observed {
            hostname: "cairn".into(),
            network: NetObserved::default(),
            storage: StorageObserved::default(),
        };
        let texts: Vec<String> = plan(&desired, &observed, &no_ports())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            texts,
            [
                r#"set the host name from "cairn" to "nas1""#,
                "create vSwitch vs0",
                "bring vs0 up"
            ]
        );
        assert!(pending_sections(&desired).is_empty());
    }
}
