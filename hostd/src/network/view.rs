//! What `cairnctl net` shows: the board's ports and the bonds, vSwitches and VLANs the
//! kernel has, as one serialisable value (pure, from an observation).

use board_configs::Lan;
use serde::{Deserialize, Serialize};

use super::bridge_vlans::tagged_vids;
use super::observe::{LinkKind, NetObserved};
use super::taps::TapView;
use crate::state::BondMode;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetView {
    pub ports: Vec<PortView>,
    pub bonds: Vec<BondView>,
    pub vswitches: Vec<VSwitchView>,
    pub vlans: Vec<VlanView>,
    pub address: AddressView,
    /// Guests' ports.
    #[serde(default)]
    pub taps: Vec<TapView>,
}

/// The addresses, default routes and DNS servers hostd manages, as the box has them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressView {
    /// `interface address/prefix`.
    pub addresses: Vec<String>,
    /// `via gateway on interface`.
    pub default_routes: Vec<String>,
    pub dns: Vec<String>,
    /// The DHCP client's lease, when the document asks for `dhcp4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<super::dhcp::DhcpView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortView {
    pub name: String,
    /// Whether the board's port was found on the box.
    pub present: bool,
    pub pci: Option<String>,
    pub mac: Option<String>,
    pub up: bool,
    pub carrier: Option<bool>,
    /// The bond or vSwitch it belongs to.
    pub member_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BondView {
    pub name: String,
    /// The kernel's mode name; `other` for a mode Cairn does not manage.
    pub mode: String,
    pub miimon_ms: u32,
    pub primary: Option<String>,
    /// 802.3ad only.
    pub lacp_rate: Option<String>,
    pub xmit_hash_policy: Option<String>,
    pub members: Vec<String>,
    pub up: bool,
    pub member_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VSwitchView {
    pub name: String,
    /// Uplink and guest taps.
    pub members: Vec<String>,
    pub up: bool,
    /// VLANs the vSwitch carries tagged besides the native one (its VLAN table, from the
    /// uplink's row or else the bridge's own).
    #[serde(default)]
    pub tagged_vlans: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VlanView {
    pub name: String,
    pub parent: String,
    pub id: u16,
    pub up: bool,
}

/// Which part of the view `cairnctl net` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    All,
    Ports,
    Bonds,
    VSwitches,
    Vlans,
    Address,
    Taps,
}

fn yes_no(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

fn up_down(up: bool) -> &'static str {
    if up { "up" } else { "down" }
}

impl NetView {
    /// Human tables, one per section asked for.
    pub fn render(&self, section: Section) -> String {
        let mut out = Vec::new();
        let all = section == Section::All;
        if all || section == Section::Ports {
            let mut text = format!(
                "{:<6} {:<5} {:<7} {:<17} {:<12} {}",
                "PORT", "LINK", "CABLE", "MAC", "PCI", "IN"
            );
            for port in &self.ports {
                text.push_str(&format!(
                    "\n{:<6} {:<5} {:<7} {:<17} {:<12} {}",
                    port.name,
                    if port.present {
                        up_down(port.up)
                    } else {
                        "absent"
                    },
                    yes_no(port.carrier),
                    port.mac.as_deref().unwrap_or("-"),
                    port.pci.as_deref().unwrap_or("-"),
                    port.member_of.as_deref().unwrap_or("-")
                ));
            }
            out.push(text);
        }
        if all || section == Section::Bonds {
            let mut text = format!(
                "{:<10} {:<14} {:<7} {:<8} {:<5} {:<10} {}",
                "BOND", "MODE", "MIIMON", "PRIMARY", "LINK", "IN", "MEMBERS"
            );
            for bond in &self.bonds {
                text.push_str(&format!(
                    "\n{:<10} {:<14} {:<7} {:<8} {:<5} {:<10} {}",
                    bond.name,
                    bond.mode,
                    format!("{} ms", bond.miimon_ms),
                    bond.primary.as_deref().unwrap_or("-"),
                    up_down(bond.up),
                    bond.member_of.as_deref().unwrap_or("-"),
                    bond.members.join(", ")
                ));
            }
            out.push(text);
        }
        if all || section == Section::VSwitches {
            let mut text = format!(
                "{:<10} {:<5} {:<14} {}",
                "VSWITCH", "LINK", "TAGGED VLANS", "MEMBERS"
            );
            for vswitch in &self.vswitches {
                let tagged: Vec<String> = vswitch.tagged_vlans.iter().map(u16::to_string).collect();
                text.push_str(&format!(
                    "\n{:<10} {:<5} {:<14} {}",
                    vswitch.name,
                    up_down(vswitch.up),
                    if tagged.is_empty() {
                        "-".to_string()
                    } else {
                        tagged.join(",")
                    },
                    vswitch.members.join(", ")
                ));
            }
            out.push(text);
        }
        if all || section == Section::Vlans {
            let mut text = format!("{:<14} {:<10} {:<5} {}", "VLAN", "PARENT", "ID", "LINK");
            for vlan in &self.vlans {
                text.push_str(&format!(
                    "\n{:<14} {:<10} {:<5} {}",
                    vlan.name,
                    vlan.parent,
                    vlan.id,
                    up_down(vlan.up)
                ));
            }
            out.push(text);
        }
        if all || section == Section::Address {
            let mut text = String::from("ADDRESS");
            let lines = self
                .address
                .addresses
                .iter()
                .map(|a| format!("address {a}"))
                .chain(
                    self.address
                        .default_routes
                        .iter()
                        .map(|r| format!("default route {r}")),
                )
                .chain(self.address.dns.iter().map(|d| format!("dns {d}")));
            let mut any = false;
            for line in lines {
                text.push_str(&format!("\n{line}"));
                any = true;
            }
            if let Some(dhcp) = &self.address.dhcp {
                text.push_str(&render_dhcp(dhcp));
                any = true;
            }
            if !any {
                text.push_str("\nnone (no network.management in the document)");
            }
            out.push(text);
        }
        if all || section == Section::Taps {
            let mut text = format!(
                "{:<15} {:<10} {:<7} {}",
                "GUEST PORT", "VSWITCH", "VLAN", "IN USE"
            );
            for tap in &self.taps {
                text.push_str(&format!(
                    "\n{:<15} {:<10} {:<7} {}",
                    tap.name,
                    tap.vswitch.as_deref().unwrap_or("-"),
                    tap.vlan
                        .map_or_else(|| "native".to_string(), |v| v.to_string()),
                    if tap.in_use { "yes" } else { "no" }
                ));
            }
            out.push(text);
        }
        out.join("\n\n")
    }

    /// The JSON of the sections asked for.
    pub fn json(&self, section: Section) -> serde_json::Value {
        let value = serde_json::to_value(self).expect("a view is strings, numbers and lists");
        match section {
            Section::All => value,
            Section::Ports => value["ports"].clone(),
            Section::Bonds => value["bonds"].clone(),
            Section::VSwitches => value["vswitches"].clone(),
            Section::Vlans => value["vlans"].clone(),
            Section::Address => value["address"].clone(),
            Section::Taps => value["taps"].clone(),
        }
    }
}

/// The lease's lines under ADDRESS: `dhcp` first, then its details indented.
fn render_dhcp(dhcp: &super::dhcp::DhcpView) -> String {
    let mut text = format!(
        "\ndhcp on {}: {}{}",
        dhcp.interface,
        dhcp.state,
        dhcp.address
            .as_deref()
            .map_or_else(String::new, |a| format!(", lease {a}"))
    );
    let details = [
        ("server", dhcp.server.clone()),
        ("router", dhcp.router.clone()),
        ("dns", (!dhcp.dns.is_empty()).then(|| dhcp.dns.join(", "))),
        ("obtained", dhcp.obtained.clone()),
        ("renews at", dhcp.renews_at.clone()),
        ("expires", dhcp.expires.clone()),
    ];
    for (name, value) in details {
        if let Some(value) = value {
            text.push_str(&format!("\n  {name:<9} {value}"));
        }
    }
    text
}

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
