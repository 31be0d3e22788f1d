//! The network section against the board: every port the document names must be one of
//! the board's LAN ports. The document's own validation cannot know this (it runs without a
//! board), so the core runs this before an apply or a plan.

use board_configs::Lan;

use crate::state::{FieldError, NetworkSpec};

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
    for (b, bond) in spec.bonds.iter().enumerate() {
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
}
