//! VLAN-aware vSwitches: which VLANs each bridge port carries.
//!
//! Every vSwitch is a bridge with `vlan_filtering` on, so a guest's port can sit on one
//! VLAN while the uplink carries several, tagged — the way a managed switch does it, and
//! without a bridge per VLAN. VLAN 1 is the native VLAN: untagged on the uplink, on the
//! bridge itself (the host's address on the vSwitch) and on a guest port with no VLAN,
//! exactly as the kernel sets up a new port; the planner leaves it alone.
//!
//! The planner owns the rest of the bridge itself and of its uplink: the bridge carries the
//! host's VLAN interfaces on the vSwitch (`vmnet.42`) tagged; the uplink carries those and
//! every VLAN a guest port on the vSwitch uses, tagged. Guest ports' own entries belong to
//! `taps.rs`; the planner reads them only to know what the uplink must carry.

use std::collections::BTreeSet;

use super::action::NetAction;
use super::observe::{BridgeVlan, Link, LinkKind};
use crate::state::NetworkSpec;

/// The native VLAN: untagged, never planned.
pub const NATIVE_VLAN: u16 = 1;

/// Pure: the additions and removals that make each vSwitch's own VLANs and its uplink's
/// match the document and the guest ports on it. `links` carries the names the links will
/// have once this plan's renames ran; `created` names the bridges and enslavements this
/// plan makes (nothing of theirs is observed yet).
pub fn plan(
    spec: &NetworkSpec,
    links: &[Link],
    table: &[BridgeVlan],
    freshly_enslaved: &dyn Fn(&str, &str) -> bool,
) -> Vec<NetAction> {
    let mut actions = Vec::new();
    for vswitch in &spec.vswitches {
        let bridge = vswitch.name.as_str();
        let host_vids: BTreeSet<u16> = spec
            .vlans
            .iter()
            .filter(|vlan| vlan.parent.as_str() == bridge)
            .map(|vlan| vlan.id.get())
            .filter(|vid| *vid != NATIVE_VLAN)
            .collect();
        let guest_vids: BTreeSet<u16> = links
            .iter()
            .filter(|link| link.kind == LinkKind::Tap && link.controller.as_deref() == Some(bridge))
            .flat_map(|tap| tagged_vids(table, &tap.name))
            .collect();
        diff(
            &mut actions,
            bridge,
            bridge,
            &host_vids,
            &tagged_vids(table, bridge),
        );
        if let Some(uplink) = &vswitch.uplink {
            let wanted: BTreeSet<u16> = host_vids.union(&guest_vids).copied().collect();
            // An uplink that joins the bridge in this plan starts with the native VLAN
            // only; what it had elsewhere went when it left.
            let had = if freshly_enslaved(uplink.as_str(), bridge) {
                BTreeSet::new()
            } else {
                tagged_vids(table, uplink.as_str())
            };
            diff(&mut actions, bridge, uplink.as_str(), &wanted, &had);
        }
    }
    actions
}

/// The VLANs other than the native one that `port` carries.
pub fn tagged_vids(table: &[BridgeVlan], port: &str) -> BTreeSet<u16> {
    table
        .iter()
        .filter(|row| row.port == port && row.vid != NATIVE_VLAN)
        .map(|row| row.vid)
        .collect()
}

fn diff(
    actions: &mut Vec<NetAction>,
    bridge: &str,
    port: &str,
    wanted: &BTreeSet<u16>,
    had: &BTreeSet<u16>,
) {
    for vid in had.difference(wanted) {
        actions.push(NetAction::DelBridgeVlan {
            bridge: bridge.to_string(),
            port: port.to_string(),
            vid: *vid,
            untagged: false,
        });
    }
    for vid in wanted.difference(had) {
        actions.push(NetAction::AddBridgeVlan {
            bridge: bridge.to_string(),
            port: port.to_string(),
            vid: *vid,
            untagged: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::DesiredState;

    fn spec(text: &str) -> NetworkSpec {
        DesiredState::from_toml(text)
            .expect("a valid document")
            .network
    }

    fn link(name: &str, kind: LinkKind, controller: Option<&str>) -> Link {
        Link {
            name: name.into(),
            kind,
            controller: controller.map(String::from),
            up: true,
            carrier: Some(true),
            mac: String::new(),
            permanent_mac: String::new(),
        }
    }

    fn row(port: &str, vid: u16) -> BridgeVlan {
        BridgeVlan {
            port: port.into(),
            vid,
            pvid: vid == NATIVE_VLAN,
            untagged: vid == NATIVE_VLAN,
        }
    }

    const VMNET_WITH_VLAN_42: &str = r#"
version = 1
[[network.vswitches]]
name = "vmnet"
uplink = "lan1"
[[network.vlans]]
parent = "vmnet"
id = 42
"#;

    fn vmnet_links() -> Vec<Link> {
        vec![
            link("lan1", LinkKind::Physical { pci: None }, Some("vmnet")),
            link(
                "vmnet",
                LinkKind::Bridge {
                    vlan_filtering: true,
                },
                None,
            ),
            link("tap-a", LinkKind::Tap, Some("vmnet")),
            link("tap-b", LinkKind::Tap, Some("vmnet")),
            link("tap-x", LinkKind::Tap, Some("other")),
        ]
    }

    fn add(port: &str, vid: u16) -> NetAction {
        NetAction::AddBridgeVlan {
            bridge: "vmnet".into(),
            port: port.into(),
            vid,
            untagged: false,
        }
    }

    fn del(port: &str, vid: u16) -> NetAction {
        NetAction::DelBridgeVlan {
            bridge: "vmnet".into(),
            port: port.into(),
            vid,
            untagged: false,
        }
    }

    #[test]
    fn a_host_vlan_is_carried_by_the_bridge_and_the_uplink_and_guest_vlans_by_the_uplink() {
        let table = vec![
            row("lan1", 1),
            row("vmnet", 1),
            row("tap-a", 7),
            row("tap-b", 7),
            row("tap-x", 9),
        ];
        let actions = plan(
            &spec(VMNET_WITH_VLAN_42),
            &vmnet_links(),
            &table,
            &|_, _| false,
        );
        assert_eq!(
            actions,
            vec![add("vmnet", 42), add("lan1", 7), add("lan1", 42)],
            "VLAN 9 belongs to a tap on another bridge"
        );
    }

    #[test]
    fn vlans_nothing_uses_any_more_leave_the_uplink_and_the_native_vlan_is_never_touched() {
        let table = vec![
            row("lan1", 1),
            row("lan1", 7),
            row("lan1", 42),
            row("lan1", 100),
            row("vmnet", 1),
            row("vmnet", 42),
            row("tap-a", 7),
        ];
        let actions = plan(
            &spec(VMNET_WITH_VLAN_42),
            &vmnet_links(),
            &table,
            &|_, _| false,
        );
        assert_eq!(actions, vec![del("lan1", 100)]);
    }

    #[test]
    fn an_uplink_joining_in_this_plan_gets_everything_whatever_it_had_elsewhere() {
        let table = vec![row("lan1", 42), row("vmnet", 42)];
        let actions = plan(
            &spec(VMNET_WITH_VLAN_42),
            &vmnet_links(),
            &table,
            &|port, bridge| port == "lan1" && bridge == "vmnet",
        );
        assert_eq!(actions, vec![add("lan1", 42)]);
    }

    #[test]
    fn a_vswitch_without_vlans_needs_nothing() {
        let text = "version = 1\n[[network.vswitches]]\nname = \"vmnet\"\nuplink = \"lan1\"\n";
        let table = vec![row("lan1", 1), row("vmnet", 1)];
        assert!(plan(&spec(text), &vmnet_links(), &table, &|_, _| false).is_empty());
    }
}
