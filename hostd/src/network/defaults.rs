//! The network a fresh appliance starts with: the "Default VM Network", so that guests have
//! a switch to join before anyone writes a document (as Synology's VMM does).
//!
//! It is the vSwitch [`DEFAULT_VSWITCH`] over every LAN port that has a cable. With two or
//! more such ports it goes through an active-backup bond, so the ports fail over for each
//! other and never form a loop through the switch. With none, it goes over the first port,
//! ready for the cable. It is an ordinary document (generation 1), changed like any other.

use crate::state::{Bond, BondMode, InterfaceName, NetworkSpec, PortName, VSwitch};

/// The Default VM Network's interface name (interface names are at most 15 characters).
pub const DEFAULT_VSWITCH: &str = "vmnet";
/// The bond under it when several ports have a cable.
pub const DEFAULT_BOND: &str = "bond0";

/// Pure: the default network for ports `(name, has carrier)` in board order.
pub fn default_network(ports: &[(String, bool)]) -> NetworkSpec {
    let with_cable: Vec<&str> = ports
        .iter()
        .filter(|(_, carrier)| *carrier)
        .map(|(name, _)| name.as_str())
        .collect();
    let uplink_ports: Vec<&str> = match (with_cable.len(), ports.first()) {
        (0, Some((first, _))) => vec![first.as_str()],
        (0, None) => Vec::new(),
        _ => with_cable,
    };
    let interface = |name: &str| {
        InterfaceName::try_from(name).expect("fixed and port names are valid interface names")
    };
    let mut spec = NetworkSpec::default();
    let uplink = match uplink_ports.as_slice() {
        [] => None,
        [single] => Some(interface(single)),
        several => {
            spec.bonds.push(Bond {
                name: interface(DEFAULT_BOND),
                mode: BondMode::ActiveBackup,
                members: several
                    .iter()
                    .map(|name| PortName::try_from(*name).expect("board port names are lanN"))
                    .collect(),
                miimon_ms: None,
                primary: None,
                lacp_rate: None,
                xmit_hash_policy: None,
            });
            Some(interface(DEFAULT_BOND))
        }
    };
    spec.vswitches.push(VSwitch {
        name: interface(DEFAULT_VSWITCH),
        uplink,
    });
    spec
}

/// One line for the log: what the default network is made of.
pub fn describe(spec: &NetworkSpec) -> String {
    match (spec.vswitches.first(), spec.bonds.first()) {
        (Some(vswitch), Some(bond)) => {
            let members: Vec<&str> = bond.members.iter().map(PortName::as_str).collect();
            format!(
                "vSwitch {} over active-backup bond {} of {}",
                vswitch.name,
                bond.name,
                members.join(", ")
            )
        }
        (Some(vswitch), None) => match &vswitch.uplink {
            Some(uplink) => format!("vSwitch {} over {uplink}", vswitch.name),
            None => format!(
                "vSwitch {} without an uplink (the board has no LAN port)",
                vswitch.name
            ),
        },
        (None, _) => "no vSwitch".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::DesiredState;

    fn ports(list: &[(&str, bool)]) -> Vec<(String, bool)> {
        list.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    fn valid(spec: NetworkSpec) -> NetworkSpec {
        let state = DesiredState {
            network: spec.clone(),
            ..DesiredState::default()
        };
        state
            .validate()
            .expect("the default network is a valid document");
        spec
    }

    #[test]
    fn two_cabled_ports_go_through_an_active_backup_bond() {
        let spec = valid(default_network(&ports(&[
            ("lan1", true),
            ("lan2", true),
            ("lan3", false),
        ])));
        assert_eq!(
            describe(&spec),
            "vSwitch vmnet over active-backup bond bond0 of lan1, lan2"
        );
    }

    #[test]
    fn one_cabled_port_is_the_uplink_itself() {
        let spec = valid(default_network(&ports(&[("lan1", false), ("lan2", true)])));
        assert!(spec.bonds.is_empty());
        assert_eq!(describe(&spec), "vSwitch vmnet over lan2");
    }

    #[test]
    fn without_a_cable_the_first_port_waits_for_one() {
        let spec = valid(default_network(&ports(&[("lan1", false), ("lan2", false)])));
        assert_eq!(describe(&spec), "vSwitch vmnet over lan1");
    }

    #[test]
    fn a_board_without_ports_gets_a_private_vswitch() {
        let spec = valid(default_network(&[]));
        assert_eq!(
            describe(&spec),
            "vSwitch vmnet without an uplink (the board has no LAN port)"
        );
    }
}
