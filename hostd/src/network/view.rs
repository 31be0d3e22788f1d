//! What `cairnctl net` shows, built from an observation (pure): the board's ports and the
//! bonds, vSwitches and VLANs the kernel has. The view and its rendering are cairn-api's.

use board_configs::Lan;

use super::bridge_vlans::tagged_vids;
use super::observe::{LinkKind, NetObserved};
use crate::state::BondMode;
pub use cairn_api::net::{
    AddressView, BondView, NetView, PortView, Section, VSwitchView, VlanView,
};

pub fn view(observed: &NetObserved, lan: &Lan) -> NetView {
    let members_of = |controller: &str| -> Vec<String> {
        observed
            .links
            .iter()
            .filter(|link| link.controller.as_deref() == Some(controller))
            .map(|link| link.name.clone())
            .collect()
    };
    let ports = lan
        .ports
        .iter()
        .map(|port| match observed.get(&port.name) {
            Some(link) => PortView {
                name: port.name.clone(),
                present: true,
                pci: match &link.kind {
                    LinkKind::Physical { pci } => pci.clone(),
                    _ => None,
                },
                mac: Some(link.permanent_mac.clone()),
                up: link.up,
                carrier: link.carrier,
                member_of: link.controller.clone(),
            },
            None => PortView {
                name: port.name.clone(),
                present: false,
                pci: port.pci_path.clone(),
                mac: None,
                up: false,
                carrier: None,
                member_of: None,
            },
        })
        .collect();
    let mut bonds = Vec::new();
    let mut vswitches = Vec::new();
    let mut vlans = Vec::new();
    for link in &observed.links {
        match &link.kind {
            LinkKind::Bond {
                mode,
                miimon_ms,
                primary,
                lacp_rate,
                xmit_hash_policy,
            } => {
                let lacp = *mode == Some(BondMode::Lacp);
                bonds.push(BondView {
                    name: link.name.clone(),
                    mode: mode.map_or_else(|| "other".to_string(), |m| m.as_str().to_string()),
                    miimon_ms: *miimon_ms,
                    primary: primary.clone(),
                    lacp_rate: lacp_rate.filter(|_| lacp).map(|r| r.as_str().to_string()),
                    xmit_hash_policy: xmit_hash_policy
                        .filter(|_| lacp)
                        .map(|h| h.as_str().to_string()),
                    members: members_of(&link.name),
                    up: link.up,
                    member_of: link.controller.clone(),
                });
            }
            LinkKind::Bridge { .. } => vswitches.push(VSwitchView {
                name: link.name.clone(),
                members: members_of(&link.name),
                up: link.up,
                tagged_vlans: {
                    let uplink = observed.links.iter().find(|member| {
                        member.controller.as_deref() == Some(link.name.as_str())
                            && member.kind != LinkKind::Tap
                    });
                    let on = uplink.map_or(link.name.as_str(), |u| u.name.as_str());
                    tagged_vids(&observed.bridge_vlans, on)
                        .into_iter()
                        .collect()
                },
            }),
            LinkKind::Vlan { parent, id } => vlans.push(VlanView {
                name: link.name.clone(),
                parent: parent.clone(),
                id: *id,
                up: link.up,
            }),
            LinkKind::Loopback | LinkKind::Physical { .. } | LinkKind::Tap | LinkKind::Other => {}
        }
    }
    let l3 = &observed.l3;
    let address = AddressView {
        addresses: l3
            .addresses
            .iter()
            .map(|a| format!("{} {}", a.interface, a.address))
            .collect(),
        default_routes: l3
            .default_routes
            .iter()
            .map(|r| format!("via {} on {}", r.gateway, r.interface))
            .collect(),
        dns: l3.dns.iter().map(ToString::to_string).collect(),
        dhcp: None,
    };
    NetView {
        ports,
        bonds,
        vswitches,
        vlans,
        address,
        taps: super::taps::view(observed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::observe::Link;

    fn link(name: &str, kind: LinkKind, controller: Option<&str>) -> Link {
        Link {
            name: name.into(),
            kind,
            controller: controller.map(String::from),
            up: true,
            carrier: Some(true),
            mac: "52:54:00:00:00:01".into(),
            permanent_mac: "52:54:00:00:00:01".into(),
        }
    }

    #[test]
    fn ports_come_from_the_board_and_stacks_from_the_kernel() {
        let lan = board_configs::by_id("qemu-x86_64")
            .expect("test board")
            .lan
            .clone();
        let observed = NetObserved {
            links: vec![
                link(
                    "bond0",
                    LinkKind::Bond {
                        mode: Some(BondMode::ActiveBackup),
                        miimon_ms: 100,
                        primary: None,
                        lacp_rate: None,
                        xmit_hash_policy: None,
                    },
                    Some("vmnet"),
                ),
                link(
                    "lan1",
                    LinkKind::Physical {
                        pci: Some("0000:00:03.0".into()),
                    },
                    Some("bond0"),
                ),
                link("tap0", LinkKind::Tap, Some("vmnet")),
                link(
                    "vmnet",
                    LinkKind::Bridge {
                        vlan_filtering: true,
                    },
                    None,
                ),
            ],
            l3: Default::default(),
            bridge_vlans: Vec::new(),
        };
        let seen = view(&observed, &lan);
        assert_eq!(seen.ports.len(), 2);
        assert!(seen.ports[0].present && seen.ports[0].member_of.as_deref() == Some("bond0"));
        assert!(
            !seen.ports[1].present,
            "lan2 is on the board but not on the box"
        );
        assert_eq!(seen.bonds[0].members, ["lan1"]);
        assert_eq!(seen.bonds[0].mode, "active-backup");
        assert_eq!(seen.vswitches[0].members, ["bond0", "tap0"]);
        assert!(seen.vlans.is_empty());
        let table = seen.render(Section::Ports);
        assert_eq!(
            table.lines().nth(1),
            Some("lan1   up    yes     52:54:00:00:00:01 0000:00:03.0 bond0")
        );
        assert_eq!(
            table.lines().nth(2),
            Some("lan2   absent -       -                 0000:00:04.0 -")
        );
        assert_eq!(seen.json(Section::Bonds)[0]["members"][0], "lan1");
    }

    #[test]
    fn the_lease_shows_under_address_with_its_times() {
        let view = NetView {
            ports: Vec::new(),
            bonds: Vec::new(),
            vswitches: Vec::new(),
            vlans: Vec::new(),
            taps: Vec::new(),
            address: AddressView {
                dhcp: Some(crate::network::dhcp::DhcpView {
                    interface: "vmnet".into(),
                    state: "bound".into(),
                    address: Some("10.7.0.50/24".into()),
                    server: Some("10.7.0.1".into()),
                    router: Some("10.7.0.1".into()),
                    dns: vec!["10.7.0.1".into()],
                    obtained: Some("2026-11-25T04:00:00Z".into()),
                    renews_at: Some("2026-11-25T04:00:30Z".into()),
                    expires: Some("2026-11-25T04:02:00Z".into()),
                }),
                ..AddressView::default()
            },
        };
        assert_eq!(
            view.render(Section::Address),
            "ADDRESS\ndhcp on vmnet: bound, lease 10.7.0.50/24\n  server    10.7.0.1\n  router    10.7.0.1\n  dns       10.7.0.1\n  obtained  2026-11-25T04:00:00Z\n  renews at 2026-11-25T04:00:30Z\n  expires   2026-11-25T04:02:00Z"
        );
        assert_eq!(
            view.json(Section::Address)["dhcp"]["address"],
            "10.7.0.50/24"
        );
    }
}
