//! Guest ports planned against hand-made observations.

use super::*;
use crate::network::observe::Link;
use crate::state::DesiredState;

const DOCUMENT: &str = r#"
version = 1
[[network.vswitches]]
name = "vmnet"
uplink = "lan1"
[[network.vswitches]]
name = "priv"
"#;

fn spec() -> NetworkSpec {
    DesiredState::from_toml(DOCUMENT)
        .expect("a valid document")
        .network
}

fn link(name: &str, kind: LinkKind, controller: Option<&str>) -> Link {
    Link {
        name: name.into(),
        kind,
        controller: controller.map(String::from),
        up: true,
        carrier: Some(false),
        mac: String::new(),
        permanent_mac: String::new(),
    }
}

fn bridge(name: &str) -> Link {
    link(
        name,
        LinkKind::Bridge {
            vlan_filtering: true,
        },
        None,
    )
}

fn row(port: &str, vid: u16, untagged: bool) -> BridgeVlan {
    BridgeVlan {
        port: port.into(),
        vid,
        pvid: untagged,
        untagged,
    }
}

fn the_box(extra: Vec<Link>, table: Vec<BridgeVlan>) -> NetObserved {
    let mut links = vec![
        link("lan1", LinkKind::Physical { pci: None }, Some("vmnet")),
        bridge("vmnet"),
        bridge("priv"),
    ];
    links.extend(extra);
    NetObserved {
        links,
        l3: Default::default(),
        bridge_vlans: table,
    }
}

fn request(tap: &str, vswitch: &str, vlan: Option<u16>) -> TapRequest {
    TapRequest {
        tap: InterfaceName::try_from(tap).expect("a valid name"),
        vswitch: vswitch.into(),
        vlan: vlan.map(|v| VlanId::new(v).expect("a valid VLAN")),
    }
}

fn row_action(add: bool, port: &str, vid: u16, untagged: bool) -> NetAction {
    let (bridge, port, vid) = ("vmnet".to_string(), port.to_string(), vid);
    if add {
        NetAction::AddBridgeVlan {
            bridge,
            port,
            vid,
            untagged,
        }
    } else {
        NetAction::DelBridgeVlan {
            bridge,
            port,
            vid,
            untagged,
        }
    }
}

#[test]
fn a_new_port_on_a_vlan_is_created_enslaved_moved_off_the_native_vlan_and_trunked() {
    let observed = the_box(vec![], vec![row("lan1", 1, true), row("vmnet", 1, true)]);
    let actions =
        plan_attach(&request("vm-db-0", "vmnet", Some(42)), &spec(), &observed).expect("a plan");
    assert_eq!(
        actions,
        vec![
            NetAction::CreateTap {
                name: "vm-db-0".into()
            },
            NetAction::Enslave {
                port: "vm-db-0".into(),
                controller: "vmnet".into()
            },
            row_action(true, "vm-db-0", 42, true),
            row_action(false, "vm-db-0", 1, true),
            row_action(true, "lan1", 42, false),
            NetAction::SetUp {
                name: "vm-db-0".into()
            },
        ]
    );
    assert_eq!(
        actions[2].to_string(),
        "carry VLAN 42 untagged on vm-db-0 (vSwitch vmnet)"
    );
}

#[test]
fn a_port_without_a_vlan_stays_on_the_native_vlan_and_the_uplink_is_left_alone() {
    let observed = the_box(vec![], vec![]);
    let actions =
        plan_attach(&request("vm-web-0", "vmnet", None), &spec(), &observed).expect("a plan");
    assert_eq!(
        actions,
        vec![
            NetAction::CreateTap {
                name: "vm-web-0".into()
            },
            NetAction::Enslave {
                port: "vm-web-0".into(),
                controller: "vmnet".into()
            },
            NetAction::SetUp {
                name: "vm-web-0".into()
            },
        ]
    );
}

#[test]
fn attaching_what_is_already_attached_does_nothing() {
    let observed = the_box(
        vec![link("vm-db-0", LinkKind::Tap, Some("vmnet"))],
        vec![row("vm-db-0", 42, true), row("lan1", 42, false)],
    );
    let actions =
        plan_attach(&request("vm-db-0", "vmnet", Some(42)), &spec(), &observed).expect("a plan");
    assert_eq!(actions, vec![]);
}

#[test]
fn a_port_moves_between_vlans_on_its_vswitch() {
    let observed = the_box(
        vec![link("vm-db-0", LinkKind::Tap, Some("vmnet"))],
        vec![row("vm-db-0", 42, true), row("lan1", 42, false)],
    );
    let actions =
        plan_attach(&request("vm-db-0", "vmnet", Some(7)), &spec(), &observed).expect("a plan");
    assert_eq!(
        actions,
        vec![
            row_action(true, "vm-db-0", 7, true),
            row_action(false, "vm-db-0", 42, true),
            row_action(true, "lan1", 7, false),
        ],
        "VLAN 42 leaves the uplink at the next reconcile or detach, not here"
    );
}

#[test]
fn unknown_and_missing_vswitches_and_foreign_links_are_refused() {
    let observed = the_box(vec![], vec![]);
    assert_eq!(
        plan_attach(&request("vm-a-0", "lab", None), &spec(), &observed).map_err(|e| e.to_string()),
        Err("unknown vSwitch \"lab\" (the document's vSwitches are: vmnet, priv)".to_string())
    );
    let without_priv = NetObserved {
        links: observed
            .links
            .iter()
            .filter(|l| l.name != "priv")
            .cloned()
            .collect(),
        ..observed.clone()
    };
    assert_eq!(
        plan_attach(&request("vm-a-0", "priv", None), &spec(), &without_priv),
        Err(TapError::VSwitchMissing("priv".into()))
    );
    assert_eq!(
        plan_attach(&request("lan1", "vmnet", None), &spec(), &observed),
        Err(TapError::NotATap("lan1".into()))
    );
}

#[test]
fn detaching_deletes_the_port_and_the_uplink_vlan_only_it_needed() {
    let observed = the_box(
        vec![
            link("vm-a-0", LinkKind::Tap, Some("vmnet")),
            link("vm-b-0", LinkKind::Tap, Some("vmnet")),
        ],
        vec![
            row("vm-a-0", 42, true),
            row("vm-b-0", 7, true),
            row("lan1", 1, true),
            row("lan1", 7, false),
            row("lan1", 42, false),
        ],
    );
    assert_eq!(
        plan_detach("vm-a-0", &spec(), &observed),
        Ok(vec![
            NetAction::DeleteTap {
                name: "vm-a-0".into()
            },
            row_action(false, "lan1", 42, false),
        ])
    );
    assert_eq!(
        plan_detach("lan1", &spec(), &observed),
        Err(TapError::NoSuchTap("lan1".into()))
    );
}

#[test]
fn the_view_shows_each_port_its_vswitch_and_vlan() {
    let observed = the_box(
        vec![
            link("vm-a-0", LinkKind::Tap, Some("vmnet")),
            link("vm-b-0", LinkKind::Tap, Some("priv")),
        ],
        vec![row("vm-a-0", 42, true), row("vm-b-0", 1, true)],
    );
    assert_eq!(
        view(&observed),
        vec![
            TapView {
                name: "vm-a-0".into(),
                vswitch: Some("vmnet".into()),
                vlan: Some(42),
                in_use: false,
            },
            TapView {
                name: "vm-b-0".into(),
                vswitch: Some("priv".into()),
                vlan: None,
                in_use: false,
            },
        ]
    );
}
