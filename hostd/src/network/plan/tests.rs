//! The network planner on hand-made observations: create, change, removal and ordering.

use board_configs::LanPort;

use super::*;
use crate::plan::{Action, Undo};
use crate::state::DesiredState;
use crate::state::{LacpRate, XmitHashPolicy};

fn lan_pci() -> Lan {
    Lan {
        bond_modes: None,
        discovery: LanDiscovery::PciPath,
        ports: vec![
            LanPort {
                name: "lan1".into(),
                speed_mbps: 10_000,
                pci_path: Some("0000:00:03.0".into()),
            },
            LanPort {
                name: "lan2".into(),
                speed_mbps: 10_000,
                pci_path: Some("0000:00:04.0".into()),
            },
        ],
    }
}

fn nic(name: &str, pci: &str, mac: &str) -> Link {
    Link {
        name: name.into(),
        kind: LinkKind::Physical {
            pci: Some(pci.into()),
        },
        controller: None,
        up: false,
        carrier: None,
        mac: mac.into(),
        permanent_mac: mac.into(),
    }
}

fn fresh_box() -> NetObserved {
    NetObserved {
        links: vec![
            nic("enp0s3", "0000:00:03.0", "52:54:00:00:00:01"),
            nic("enp0s4", "0000:00:04.0", "52:54:00:00:00:02"),
        ],
        l3: Default::default(),
        bridge_vlans: Vec::new(),
    }
}

fn spec(text: &str) -> NetworkSpec {
    DesiredState::from_toml(&format!("version = 1\n{text}"))
        .expect("a valid document")
        .network
}

const BONDED: &str = r#"
[[network.bonds]]
name = "bond0"
mode = "active-backup"
members = ["lan1", "lan2"]
primary = "lan2"

[[network.vswitches]]
name = "vs0"
uplink = "bond0"

[[network.vlans]]
parent = "bond0"
id = 42
"#;

fn texts(actions: &[NetAction]) -> Vec<String> {
    actions.iter().map(ToString::to_string).collect()
}

#[test]
fn ports_are_renamed_by_pci_address_whatever_the_probe_order() {
    let observed = fresh_box();
    assert_eq!(
        texts(&plan(&NetworkSpec::default(), &lan_pci(), &observed)),
        ["rename NIC enp0s3 to lan1", "rename NIC enp0s4 to lan2"]
    );
}

#[test]
fn swapped_names_go_through_temporary_names() {
    let observed = NetObserved {
        links: vec![
            nic("lan2", "0000:00:03.0", "a"),
            nic("lan1", "0000:00:04.0", "b"),
        ],
        l3: Default::default(),
        bridge_vlans: Vec::new(),
    };
    assert_eq!(
        texts(&plan_renames(
            &port_assignment(&lan_pci(), &observed),
            &observed
        )),
        [
            "rename NIC lan2 to cairn-mv0",
            "rename NIC lan1 to cairn-mv1",
            "rename NIC cairn-mv0 to lan1",
            "rename NIC cairn-mv1 to lan2"
        ]
    );
}

#[test]
fn mac_order_uses_the_permanent_mac_not_the_one_a_bond_gave() {
    let lan = Lan {
        bond_modes: None,
        discovery: LanDiscovery::MacOrder,
        ports: vec![
            LanPort {
                name: "lan1".into(),
                speed_mbps: 1000,
                pci_path: None,
            },
            LanPort {
                name: "lan2".into(),
                speed_mbps: 1000,
                pci_path: None,
            },
        ],
    };
    let mut second = nic("eth0", "0000:00:05.0", "00:11:32:00:00:01");
    second.permanent_mac = "00:11:32:00:00:09".into();
    let observed = NetObserved {
        links: vec![second, nic("eth1", "0000:00:06.0", "00:11:32:00:00:02")],
        l3: Default::default(),
        bridge_vlans: Vec::new(),
    };
    assert_eq!(
        port_assignment(&lan, &observed),
        [
            ("eth1".to_string(), "lan1".to_string()),
            ("eth0".to_string(), "lan2".to_string())
        ]
    );
}

#[test]
fn a_bonded_vswitch_with_a_vlan_is_built_bottom_up() {
    let observed = fresh_box();
    assert_eq!(
        texts(&plan(&spec(BONDED), &lan_pci(), &observed)),
        [
            "rename NIC enp0s3 to lan1",
            "rename NIC enp0s4 to lan2",
            "create bond bond0 (mode active-backup, miimon 100 ms)",
            "add lan1 to bond0",
            "add lan2 to bond0",
            "set the primary of bond0 from none to lan2",
            "create VLAN bond0.42",
            "create vSwitch vs0",
            "add bond0 to vs0",
            "bring lan1 up",
            "bring lan2 up",
            "bring bond0 up",
            "bring bond0.42 up",
            "bring vs0 up",
        ]
    );
}

/// The box as it is after the bonded document was applied.
fn bonded_box() -> NetObserved {
    let mut lan1 = nic("lan1", "0000:00:03.0", "m1");
    let mut lan2 = nic("lan2", "0000:00:04.0", "m2");
    for port in [&mut lan1, &mut lan2] {
        port.controller = Some("bond0".into());
        port.up = true;
    }
    let up = |name: &str, kind: LinkKind, controller: Option<&str>| Link {
        name: name.into(),
        kind,
        controller: controller.map(String::from),
        up: true,
        carrier: Some(true),
        mac: String::new(),
        permanent_mac: String::new(),
    };
    NetObserved {
        links: vec![
            up(
                "bond0",
                LinkKind::Bond {
                    mode: Some(BondMode::ActiveBackup),
                    miimon_ms: 100,
                    primary: Some("lan2".into()),
                    lacp_rate: Some(LacpRate::Slow),
                    xmit_hash_policy: Some(XmitHashPolicy::Layer2),
                },
                Some("vs0"),
            ),
            up(
                "bond0.42",
                LinkKind::Vlan {
                    parent: "bond0".into(),
                    id: 42,
                },
                None,
            ),
            lan1,
            lan2,
            up("lo", LinkKind::Loopback, None),
            up("tap-guest", LinkKind::Tap, Some("vs0")),
            up(
                "vs0",
                LinkKind::Bridge {
                    vlan_filtering: true,
                },
                None,
            ),
        ],
        l3: Default::default(),
        bridge_vlans: Vec::new(),
    }
}

#[test]
fn an_applied_document_needs_nothing() {
    assert!(plan(&spec(BONDED), &lan_pci(), &bonded_box()).is_empty());
}

#[test]
fn changes_touch_only_what_differs() {
    let changed = BONDED
        .replace("primary = \"lan2\"", "primary = \"lan1\"\nmiimon_ms = 50")
        .replace("id = 42", "id = 43");
    assert_eq!(
        texts(&plan(&spec(&changed), &lan_pci(), &bonded_box())),
        [
            "delete VLAN bond0.42",
            "set miimon of bond0 from 100 to 50 ms",
            "set the primary of bond0 from lan2 to lan1",
            "create VLAN bond0.43",
            "bring bond0.43 up",
        ]
    );
}

#[test]
fn a_new_bond_mode_rebuilds_the_bond_and_its_members() {
    let changed = BONDED
        .replace("active-backup", "802.3ad")
        .replace("primary = \"lan2\"\n", "");
    assert_eq!(
        texts(&plan(&spec(&changed), &lan_pci(), &bonded_box())),
        [
            "remove bond0 from vs0",
            "remove lan1 from bond0",
            "remove lan2 from bond0",
            "delete bond bond0",
            "create bond bond0 (mode 802.3ad, miimon 100 ms, lacp_rate slow, xmit_hash_policy layer2)",
            "add lan1 to bond0",
            "add lan2 to bond0",
            "add bond0 to vs0",
            "bring lan1 up",
            "bring lan2 up",
            "bring bond0 up",
        ]
    );
}

#[test]
fn removal_tears_down_from_the_top_and_leaves_taps_alone() {
    let actions = plan(&NetworkSpec::default(), &lan_pci(), &bonded_box());
    assert_eq!(
        texts(&actions),
        [
            "delete VLAN bond0.42",
            "remove bond0 from vs0",
            "remove tap-guest from vs0",
            "delete vSwitch vs0",
            "remove lan1 from bond0",
            "remove lan2 from bond0",
            "delete bond bond0",
        ]
    );
    // Every removal can be undone, in reverse, to rebuild the same stack.
    for action in &actions {
        assert!(matches!(action.undo(), Undo::Run(_)), "{action}");
    }
}

#[test]
fn a_bond_in_a_mode_cairn_does_not_offer_is_replaced_and_cannot_be_rebuilt() {
    let mut observed = fresh_box();
    observed.links.push(Link {
        name: "bond0".into(),
        kind: LinkKind::Bond {
            mode: None,
            miimon_ms: 0,
            primary: None,
            lacp_rate: None,
            xmit_hash_policy: None,
        },
        controller: None,
        up: false,
        carrier: None,
        mac: String::new(),
        permanent_mac: String::new(),
    });
    let actions = plan(&NetworkSpec::default(), &lan_pci(), &observed);
    let delete = actions
        .iter()
        .find(|a| matches!(a, NetAction::DeleteBond { .. }))
        .expect("deleted");
    assert!(matches!(delete.undo(), Undo::Impossible(_)));
}

#[test]
fn every_undo_swaps_back() {
    let create = NetAction::CreateBond {
        name: "b".into(),
        mode: BondMode::BalanceAlb,
        miimon_ms: 10,
        lacp: None,
    };
    assert_eq!(
        create.undo(),
        Undo::Run(NetAction::DeleteBond {
            name: "b".into(),
            mode: Some(BondMode::BalanceAlb),
            miimon_ms: 10,
            lacp: None,
        })
    );
    let rename = NetAction::Rename {
        from: "a".into(),
        to: "b".into(),
    };
    assert_eq!(
        rename.undo(),
        Undo::Run(NetAction::Rename {
            from: "b".into(),
            to: "a".into()
        })
    );
    let enslave = NetAction::Enslave {
        port: "lan1".into(),
        controller: "bond0".into(),
    };
    assert_eq!(
        enslave.undo(),
        Undo::Run(NetAction::Release {
            port: "lan1".into(),
            controller: "bond0".into()
        })
    );
}

#[test]
fn lacp_options_are_set_at_creation_and_a_change_rebuilds_the_bond() {
    let lacp = BONDED.replace("active-backup", "802.3ad").replace(
        "primary = \"lan2\"\n",
        "lacp_rate = \"fast\"\nxmit_hash_policy = \"layer3+4\"\n",
    );
    let built = texts(&plan(&spec(&lacp), &lan_pci(), &fresh_box()));
    assert!(
        built.contains(&"create bond bond0 (mode 802.3ad, miimon 100 ms, lacp_rate fast, xmit_hash_policy layer3+4)".to_string()),
        "{built:?}"
    );
    let mut observed = bonded_box();
    observed.links[0].kind = LinkKind::Bond {
        mode: Some(BondMode::Lacp),
        miimon_ms: 100,
        primary: None,
        lacp_rate: Some(LacpRate::Slow),
        xmit_hash_policy: Some(XmitHashPolicy::Layer3And4),
    };
    let rebuilt = texts(&plan(&spec(&lacp), &lan_pci(), &observed));
    assert!(
        rebuilt.contains(&"delete bond bond0".to_string()),
        "{rebuilt:?}"
    );
}

const MANAGED: &str = r#"
[[network.vswitches]]
name = "vs0"
uplink = "lan1"

[network.management]
interface = "vs0"
addresses = ["192.168.7.2/24"]
gateway = "192.168.7.1"
dns = ["192.168.7.1"]
"#;

#[test]
fn the_management_address_goes_on_last_and_comes_off_first() {
    let built = texts(&plan(&spec(MANAGED), &lan_pci(), &fresh_box()));
    let tail: Vec<&str> = built
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "add address 192.168.7.2/24 to vs0",
            "add default route via 192.168.7.1 on vs0",
            "set the DNS servers to 192.168.7.1"
        ]
    );

    // Moving the address to a new interface removes the old one before anything else.
    let mut observed = fresh_box();
    observed.l3.addresses.push(crate::network::l3::HostAddress {
        interface: "enp0s3".into(),
        address: IpPrefix::try_from("10.0.0.5/8").expect("valid"),
    });
    observed
        .l3
        .default_routes
        .push(crate::network::l3::DefaultRoute {
            gateway: "10.0.0.1".parse().expect("ip"),
            interface: "enp0s3".into(),
        });
    let moved = texts(&plan(&spec(MANAGED), &lan_pci(), &observed));
    assert_eq!(
        moved[2], "remove default route via 10.0.0.1 on lan1",
        "{moved:?}"
    );
    assert_eq!(moved[3], "remove address 10.0.0.5/8 from lan1", "{moved:?}");
    let undo = NetAction::DelAddress {
        interface: "lan1".into(),
        address: IpPrefix::try_from("10.0.0.5/8").expect("valid"),
    }
    .undo();
    assert!(matches!(undo, Undo::Run(NetAction::AddAddress { .. })));
}

#[test]
fn without_a_management_section_dns_is_left_alone() {
    let mut observed = fresh_box();
    observed.l3.dns = vec!["9.9.9.9".parse().expect("ip")];
    let actions = plan(&NetworkSpec::default(), &lan_pci(), &observed);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, NetAction::SetDns { .. })),
        "{actions:?}"
    );
}

#[test]
fn a_port_a_bond_lets_go_of_is_brought_up_again_for_its_vlan() {
    // The bond closes a port it releases (the kernel's bond_release), so a VLAN on that
    // port needs the port brought up again before the VLAN can come up.
    let only_vlan = spec("[[network.vlans]]\nparent = \"lan1\"\nid = 42\n");
    let actions = texts(&plan(&only_vlan, &lan_pci(), &bonded_box()));
    let release = actions
        .iter()
        .position(|a| a == "remove lan1 from bond0")
        .expect("released");
    let up = actions
        .iter()
        .position(|a| a == "bring lan1 up")
        .expect("brought up");
    let vlan_up = actions
        .iter()
        .position(|a| a == "bring lan1.42 up")
        .expect("vlan up");
    assert!(release < up && up < vlan_up, "{actions:?}");
}

#[test]
fn with_dhcp4_the_plan_leaves_dns_and_ipv4_to_the_lease() {
    let dhcp = r#"
[[network.vswitches]]
name = "vs0"
uplink = "lan1"

[network.management]
interface = "vs0"
dhcp4 = true
addresses = ["fd00::10/64"]
"#;
    let mut observed = fresh_box();
    // What the DHCP client wrote: the plan must not take it back.
    observed.l3.dns = vec!["10.0.0.53".parse().expect("ip")];
    let built = texts(&plan(&spec(dhcp), &lan_pci(), &observed));
    assert_eq!(
        built.last().map(String::as_str),
        Some("add address fd00::10/64 to vs0"),
        "{built:?}"
    );
    assert!(
        !built.iter().any(|a| a.contains("DNS")),
        "the lease owns resolv.conf: {built:?}"
    );
}

#[test]
fn a_vswitch_made_before_vlan_filtering_gets_it_and_a_guest_vlan_reaches_its_uplink() {
    let mut observed = bonded_box();
    for link in &mut observed.links {
        if link.name == "vs0" {
            link.kind = LinkKind::Bridge {
                vlan_filtering: false,
            };
        }
    }
    observed.bridge_vlans = vec![
        crate::network::observe::BridgeVlan {
            port: "tap-guest".into(),
            vid: 7,
            pvid: true,
            untagged: true,
        },
        crate::network::observe::BridgeVlan {
            port: "bond0".into(),
            vid: 99,
            pvid: false,
            untagged: false,
        },
    ];
    assert_eq!(
        texts(&plan(&spec(BONDED), &lan_pci(), &observed)),
        [
            "turn on VLAN filtering on vSwitch vs0",
            "stop carrying VLAN 99 tagged on bond0 (vSwitch vs0)",
            "carry VLAN 7 tagged on bond0 (vSwitch vs0)",
        ]
    );
}

#[test]
fn a_host_vlan_on_a_new_vswitch_is_carried_by_the_bridge_and_its_uplink() {
    let text = "[[network.vswitches]]\nname = \"vmnet\"\nuplink = \"lan1\"\n\
                [[network.vlans]]\nparent = \"vmnet\"\nid = 42\n";
    let actions = texts(&plan(&spec(text), &lan_pci(), &fresh_box()));
    let position = |text: &str| {
        actions
            .iter()
            .position(|a| a == text)
            .unwrap_or_else(|| panic!("{text:?} missing from {actions:?}"))
    };
    assert!(
        position("add lan1 to vmnet") < position("carry VLAN 42 tagged on lan1 (vSwitch vmnet)")
    );
    assert!(
        position("create vSwitch vmnet") < position("carry VLAN 42 tagged on vSwitch vmnet itself")
    );
}
