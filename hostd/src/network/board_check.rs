//! The network section against the board: every port the document names must be one of
//! the board's LAN ports, every bond's mode one the board offers, and an 802.3ad bond's
//! ports of one speed (LACP aggregates only equal ports: mixed speeds would leave some idle
//! in a second aggregator while the bond looked healthy). The document's own validation cannot know this (it runs without a
//! board), so the core runs this before an apply or a plan.

use board_configs::Lan;

use crate::state::{BondMode, FieldError, NetworkSpec};

/// One error per port the board does not have.
pub fn check(spec: &NetworkSpec, lan: &Lan, board: &str) -> Vec<FieldError> {
    let ports: Vec<&str> = lan.ports.iter().map(|port| port.name.as_str()).collect();
    let has = |name: &str| ports.contains(&name);
    let expected = if ports.is_empty() {
        "it has no LAN ports".to_string()
    } else {
        format!("it has {}", ports.join(", "))
    };
    let missing = |path: String, name: &str| {
        FieldError::new(
            path,
            format!("port {name:?} does not exist on board {board} ({expected})"),
        )
    };
    let looks_like_port = |name: &str| {
        name.strip_prefix("lan")
            .is_some_and(|digits| !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
    };
    let mut errors = Vec::new();
    let offered = lan.offered_bond_modes();
    for (b, bond) in spec.bonds.iter().enumerate() {
        if !offered.contains(&bond.mode.as_str()) {
            errors.push(FieldError::new(
                format!("network.bonds[{b}].mode"),
                format!(
                    "board {board} cannot do bond mode {:?} (it offers {})",
                    bond.mode.as_str(),
                    offered.join(", ")
                ),
            ));
        }
        let speeds: Vec<(&str, u32)> = bond
            .members
            .iter()
            .filter_map(|member| {
                lan.ports
                    .iter()
                    .find(|port| port.name == member.as_str())
                    .map(|port| (port.name.as_str(), port.speed_mbps))
            })
            .collect();
        if bond.mode == BondMode::Lacp
            && let Some((first, first_speed)) = speeds.first()
            && let Some((other, other_speed)) = speeds.iter().find(|(_, s)| s != first_speed)
        {
            errors.push(FieldError::new(
                format!("network.bonds[{b}].members"),
                format!(
                    "802.3ad aggregates ports of one speed, and {first} is {first_speed} Mb/s but {other} is {other_speed} Mb/s (use active-backup, or bond ports of one speed)"
                ),
            ));
        }
        for (m, member) in bond.members.iter().enumerate() {
            if !has(member.as_str()) {
                errors.push(missing(
                    format!("network.bonds[{b}].members[{m}]"),
                    member.as_str(),
                ));
            }
        }
        if let Some(primary) = &bond.primary
            && !has(primary.as_str())
        {
            errors.push(missing(
                format!("network.bonds[{b}].primary"),
                primary.as_str(),
            ));
        }
    }
    for (v, vswitch) in spec.vswitches.iter().enumerate() {
        if let Some(uplink) = &vswitch.uplink
            && looks_like_port(uplink.as_str())
            && !has(uplink.as_str())
        {
            errors.push(missing(
                format!("network.vswitches[{v}].uplink"),
                uplink.as_str(),
            ));
        }
    }
    for (i, vlan) in spec.vlans.iter().enumerate() {
        if looks_like_port(vlan.parent.as_str()) && !has(vlan.parent.as_str()) {
            errors.push(missing(
                format!("network.vlans[{i}].parent"),
                vlan.parent.as_str(),
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::DesiredState;

    #[test]
    fn ports_the_board_lacks_are_named_with_what_it_has() {
        let lan = board_configs::by_id("qemu-x86_64")
            .expect("test board")
            .lan
            .clone();
        let spec = DesiredState::from_toml(
            "version = 1\n[[network.bonds]]\nname = \"bond0\"\nmode = \"active-backup\"\nmembers = [\"lan1\", \"lan3\"]\n\n[[network.vswitches]]\nname = \"vs1\"\nuplink = \"lan7\"\n\n[[network.vlans]]\nparent = \"lan2\"\nid = 5\n",
        )
        .expect("valid without a board")
        .network;
        let lines: Vec<String> = check(&spec, &lan, "qemu-x86_64")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                r#"network.bonds[0].members[1]: port "lan3" does not exist on board qemu-x86_64 (it has lan1, lan2)"#,
                r#"network.vswitches[0].uplink: port "lan7" does not exist on board qemu-x86_64 (it has lan1, lan2)"#,
            ]
        );
    }

    fn lan(bond_modes: Option<&[&str]>, speeds: &[u32]) -> Lan {
        Lan {
            discovery: board_configs::LanDiscovery::MacOrder,
            ports: speeds
                .iter()
                .enumerate()
                .map(|(i, speed)| board_configs::LanPort {
                    name: format!("lan{}", i + 1),
                    speed_mbps: *speed,
                    pci_path: None,
                })
                .collect(),
            bond_modes: bond_modes.map(|modes| modes.iter().map(|m| m.to_string()).collect()),
        }
    }

    fn bond(mode: &str, members: &str) -> NetworkSpec {
        DesiredState::from_toml(&format!(
            "version = 1\n[[network.bonds]]\nname = \"bond0\"\nmode = \"{mode}\"\nmembers = {members}\n"
        ))
        .expect("valid without a board")
        .network
    }

    fn lines(spec: &NetworkSpec, lan: &Lan) -> Vec<String> {
        check(spec, lan, "nas-x")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_mode_the_board_does_not_offer_is_refused_with_what_it_offers() {
        let board = lan(Some(&["active-backup", "802.3ad"]), &[1000, 1000]);
        assert_eq!(
            lines(&bond("balance-alb", r#"["lan1", "lan2"]"#), &board),
            [
                r#"network.bonds[0].mode: board nas-x cannot do bond mode "balance-alb" (it offers active-backup, 802.3ad)"#
            ]
        );
        assert!(lines(&bond("802.3ad", r#"["lan1", "lan2"]"#), &board).is_empty());
        assert!(
            lines(
                &bond("balance-alb", r#"["lan1", "lan2"]"#),
                &lan(None, &[1000, 1000])
            )
            .is_empty(),
            "a board that does not say offers every mode"
        );
    }

    #[test]
    fn lacp_over_ports_of_different_speeds_is_refused_and_active_backup_is_not() {
        let board = lan(None, &[1000, 1000, 10000]);
        assert_eq!(
            lines(&bond("802.3ad", r#"["lan1", "lan3"]"#), &board),
            [
                "network.bonds[0].members: 802.3ad aggregates ports of one speed, and lan1 is 1000 Mb/s but lan3 is 10000 Mb/s (use active-backup, or bond ports of one speed)"
            ]
        );
        assert!(lines(&bond("active-backup", r#"["lan1", "lan3"]"#), &board).is_empty());
        assert!(lines(&bond("802.3ad", r#"["lan1", "lan2"]"#), &board).is_empty());
    }
}
