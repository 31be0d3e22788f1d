//! Pure: from the document's network section, the board's ports and the observed links to
//! the ordered actions that make the kernel match.
//!
//! Order (a stack is torn down from the top and built from the bottom, like Talos' link
//! controller): rename NICs to their port names; delete VLANs, bridges and bonds that are
//! not wanted or not as wanted, releasing their members first; create bonds and enslave
//! their ports; create VLANs on ports and bonds; create vSwitches and enslave their uplinks;
//! create VLANs on vSwitches; bring everything wanted up. Only bonds, bridges and VLANs are
//! ever deleted: taps, veths and anything else the planner did not make are left alone.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use board_configs::{Lan, LanDiscovery};

use super::observe::{Link, LinkKind, NetObserved};
use crate::plan::{Action, Undo};
use crate::state::{Bond, BondMode, IpPrefix, LacpRate, NetworkSpec, XmitHashPolicy};

/// Link monitoring when the document does not say: the bonding driver's own default for
/// the modes that need it, stated here so that plans never depend on module parameters.
pub const DEFAULT_MIIMON_MS: u32 = 100;

/// An 802.3ad bond's LACP settings, fixed when the bond is made (a change rebuilds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LacpOptions {
    pub rate: LacpRate,
    pub hash: XmitHashPolicy,
}

impl LacpOptions {
    /// What the document asks for, with the kernel's defaults filled in; `None` outside
    /// 802.3ad.
    pub fn of(bond: &Bond) -> Option<Self> {
        (bond.mode == BondMode::Lacp).then(|| Self {
            rate: bond.lacp_rate.unwrap_or(LacpRate::Slow),
            hash: bond.xmit_hash_policy.unwrap_or(XmitHashPolicy::Layer2),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetAction {
    Rename {
        from: String,
        to: String,
    },
    CreateBond {
        name: String,
        mode: BondMode,
        miimon_ms: u32,
        lacp: Option<LacpOptions>,
    },
    /// Carries what it removes so that its undo can build it again; `mode` is `None` for a
    /// bond in a mode Cairn does not offer (which cannot be rebuilt).
    DeleteBond {
        name: String,
        mode: Option<BondMode>,
        miimon_ms: u32,
        lacp: Option<LacpOptions>,
    },
    SetMiimon {
        bond: String,
        from: u32,
        to: u32,
    },
    SetPrimary {
        bond: String,
        from: Option<String>,
        to: Option<String>,
    },
    CreateBridge {
        name: String,
    },
    DeleteBridge {
        name: String,
    },
    CreateVlan {
        parent: String,
        id: u16,
    },
    DeleteVlan {
        parent: String,
        id: u16,
    },
    Enslave {
        port: String,
        controller: String,
    },
    Release {
        port: String,
        controller: String,
    },
    AddAddress {
        interface: String,
        address: IpPrefix,
    },
    DelAddress {
        interface: String,
        address: IpPrefix,
    },
    AddDefaultRoute {
        gateway: IpAddr,
        interface: String,
    },
    DelDefaultRoute {
        gateway: IpAddr,
        interface: String,
    },
    SetDns {
        from: Vec<IpAddr>,
        to: Vec<IpAddr>,
    },
    SetUp {
        name: String,
    },
    SetDown {
        name: String,
    },
    SetVlanFiltering {
        bridge: String,
        on: bool,
    },
    /// A row of `bridge`'s VLAN table: on `port`, or on the bridge itself when `port` is
    /// the bridge; `untagged` makes it the port's PVID and untagged VLAN (a guest's port).
    AddBridgeVlan {
        bridge: String,
        port: String,
        vid: u16,
        untagged: bool,
    },
    DelBridgeVlan {
        bridge: String,
        port: String,
        vid: u16,
        untagged: bool,
    },
    /// A persistent tap for a guest (see `taps.rs`).
    CreateTap {
        name: String,
    },
    DeleteTap {
        name: String,
    },
}

impl fmt::Display for NetAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rename { from, to } => write!(f, "rename NIC {from} to {to}"),
            Self::CreateBond {
                name,
                mode,
                miimon_ms,
                lacp,
            } => {
                write!(f, "create bond {name} (mode {mode}, miimon {miimon_ms} ms")?;
                if let Some(lacp) = lacp {
                    write!(
                        f,
                        ", lacp_rate {}, xmit_hash_policy {}",
                        lacp.rate, lacp.hash
                    )?;
                }
                f.write_str(")")
            }
            Self::DeleteBond { name, .. } => write!(f, "delete bond {name}"),
            Self::SetMiimon { bond, from, to } => {
                write!(f, "set miimon of {bond} from {from} to {to} ms")
            }
            Self::SetPrimary { bond, from, to } => write!(
                f,
                "set the primary of {bond} from {} to {}",
                from.as_deref().unwrap_or("none"),
                to.as_deref().unwrap_or("none")
            ),
            Self::CreateBridge { name } => write!(f, "create vSwitch {name}"),
            Self::DeleteBridge { name } => write!(f, "delete vSwitch {name}"),
            Self::CreateVlan { parent, id } => write!(f, "create VLAN {parent}.{id}"),
            Self::DeleteVlan { parent, id } => write!(f, "delete VLAN {parent}.{id}"),
            Self::Enslave { port, controller } => write!(f, "add {port} to {controller}"),
            Self::Release { port, controller } => write!(f, "remove {port} from {controller}"),
            Self::AddAddress { interface, address } => {
                write!(f, "add address {address} to {interface}")
            }
            Self::DelAddress { interface, address } => {
                write!(f, "remove address {address} from {interface}")
            }
            Self::AddDefaultRoute { gateway, interface } => {
                write!(f, "add default route via {gateway} on {interface}")
            }
            Self::DelDefaultRoute { gateway, interface } => {
                write!(f, "remove default route via {gateway} on {interface}")
            }
            Self::SetDns { to, .. } => {
                let servers: Vec<String> = to.iter().map(ToString::to_string).collect();
                if servers.is_empty() {
                    write!(f, "clear the DNS servers")
                } else {
                    write!(f, "set the DNS servers to {}", servers.join(", "))
                }
            }
            Self::SetUp { name } => write!(f, "bring {name} up"),
            Self::SetDown { name } => write!(f, "bring {name} down"),
            Self::SetVlanFiltering { bridge, on } => write!(
                f,
                "turn {} VLAN filtering on vSwitch {bridge}",
                if *on { "on" } else { "off" }
            ),
            Self::AddBridgeVlan {
                bridge,
                port,
                vid,
                untagged,
            } => {
                write!(f, "carry VLAN {vid} ")?;
                describe_vlan_row(f, bridge, port, *untagged)
            }
            Self::DelBridgeVlan {
                bridge,
                port,
                vid,
                untagged,
            } => {
                write!(f, "stop carrying VLAN {vid} ")?;
                describe_vlan_row(f, bridge, port, *untagged)
            }
            Self::CreateTap { name } => write!(f, "create guest port {name}"),
            Self::DeleteTap { name } => write!(f, "delete guest port {name}"),
        }
    }
}

impl Action for NetAction {
    fn undo(&self) -> Undo<Self> {
        Undo::Run(match self.clone() {
            Self::Rename { from, to } => Self::Rename { from: to, to: from },
            Self::CreateBond {
                name,
                mode,
                miimon_ms,
                lacp,
            } => Self::DeleteBond {
                name,
                mode: Some(mode),
                miimon_ms,
                lacp,
            },
            Self::DeleteBond {
                name,
                mode: Some(mode),
                miimon_ms,
                lacp,
            } => Self::CreateBond {
                name,
                mode,
                miimon_ms,
                lacp,
            },
            Self::DeleteBond {
                name, mode: None, ..
            } => {
                return Undo::Impossible(format!(
                    "bond {name} was in a mode Cairn does not manage and cannot be rebuilt"
                ));
            }
            Self::SetMiimon { bond, from, to } => Self::SetMiimon {
                bond,
                from: to,
                to: from,
            },
            Self::SetPrimary { bond, from, to } => Self::SetPrimary {
                bond,
                from: to,
                to: from,
            },
            Self::CreateBridge { name } => Self::DeleteBridge { name },
            Self::DeleteBridge { name } => Self::CreateBridge { name },
            Self::CreateVlan { parent, id } => Self::DeleteVlan { parent, id },
            Self::DeleteVlan { parent, id } => Self::CreateVlan { parent, id },
            Self::Enslave { port, controller } => Self::Release { port, controller },
            Self::Release { port, controller } => Self::Enslave { port, controller },
            Self::AddAddress { interface, address } => Self::DelAddress { interface, address },
            Self::DelAddress { interface, address } => Self::AddAddress { interface, address },
            Self::AddDefaultRoute { gateway, interface } => {
                Self::DelDefaultRoute { gateway, interface }
            }
            Self::DelDefaultRoute { gateway, interface } => {
                Self::AddDefaultRoute { gateway, interface }
            }
            Self::SetDns { from, to } => Self::SetDns { from: to, to: from },
            Self::SetUp { name } => Self::SetDown { name },
            Self::SetDown { name } => Self::SetUp { name },
            Self::SetVlanFiltering { bridge, on } => Self::SetVlanFiltering { bridge, on: !on },
            Self::AddBridgeVlan {
                bridge,
                port,
                vid,
                untagged,
            } => Self::DelBridgeVlan {
                bridge,
                port,
                vid,
                untagged,
            },
            Self::DelBridgeVlan {
                bridge,
                port,
                vid,
                untagged,
            } => Self::AddBridgeVlan {
                bridge,
                port,
                vid,
                untagged,
            },
            Self::CreateTap { name } => Self::DeleteTap { name },
            Self::DeleteTap { name } => Self::CreateTap { name },
        })
    }
}

fn describe_vlan_row(
    f: &mut fmt::Formatter<'_>,
    bridge: &str,
    port: &str,
    untagged: bool,
) -> fmt::Result {
    let how = if untagged { "untagged" } else { "tagged" };
    if port == bridge {
        write!(f, "{how} on vSwitch {bridge} itself")
    } else {
        write!(f, "{how} on {port} (vSwitch {bridge})")
    }
}

/// Which observed NIC each board port is: `(current name, port name)`, in port order.
/// Ports the box does not have are left out (the document's validation refuses them).
pub fn port_assignment(lan: &Lan, observed: &NetObserved) -> Vec<(String, String)> {
    let physical: Vec<&Link> = observed
        .links
        .iter()
        .filter(|link| matches!(link.kind, LinkKind::Physical { .. }))
        .collect();
    match lan.discovery {
        LanDiscovery::PciPath => lan
            .ports
            .iter()
            .filter_map(|port| {
                let pci = port.pci_path.as_deref()?;
                let nic = physical.iter().find(
                    |link| matches!(&link.kind, LinkKind::Physical { pci: Some(p) } if p == pci),
                )?;
                Some((nic.name.clone(), port.name.clone()))
            })
            .collect(),
        LanDiscovery::MacOrder => {
            let mut by_mac = physical;
            by_mac.sort_by(|a, b| a.permanent_mac.cmp(&b.permanent_mac));
            by_mac
                .iter()
                .zip(&lan.ports)
                .map(|(nic, port)| (nic.name.clone(), port.name.clone()))
                .collect()
        }
    }
}

/// Renames that give every NIC its port name; through temporary names when a wanted name
/// is held by another NIC that moves too (lan1 ↔ lan2).
pub fn plan_renames(assignment: &[(String, String)], observed: &NetObserved) -> Vec<NetAction> {
    let moves: Vec<&(String, String)> = assignment.iter().filter(|(from, to)| from != to).collect();
    let taken = |name: &str| observed.get(name).is_some();
    if moves.iter().all(|(_, to)| !taken(to)) {
        return moves
            .iter()
            .map(|(from, to)| NetAction::Rename {
                from: from.clone(),
                to: to.clone(),
            })
            .collect();
    }
    let mut actions = Vec::new();
    for (i, (from, _)) in moves.iter().enumerate() {
        actions.push(NetAction::Rename {
            from: from.clone(),
            to: format!("cairn-mv{i}"),
        });
    }
    for (i, (_, to)) in moves.iter().enumerate() {
        actions.push(NetAction::Rename {
            from: format!("cairn-mv{i}"),
            to: to.clone(),
        });
    }
    actions
}

/// The network actions, renames first.
pub fn plan(spec: &NetworkSpec, lan: &Lan, observed: &NetObserved) -> Vec<NetAction> {
    let assignment = port_assignment(lan, observed);
    let mut actions = plan_renames(&assignment, observed);
    // From here on, links are spoken of by the names they will have after the renames.
    let renamed = |name: &str| -> String {
        assignment
            .iter()
            .find(|(from, _)| from == name)
            .map_or_else(|| name.to_string(), |(_, to)| to.clone())
    };
    let links: Vec<Link> = observed
        .links
        .iter()
        .map(|link| Link {
            name: renamed(&link.name),
            controller: link.controller.as_deref().map(renamed),
            kind: match &link.kind {
                LinkKind::Vlan { parent, id } => LinkKind::Vlan {
                    parent: renamed(parent),
                    id: *id,
                },
                other => other.clone(),
            },
            ..link.clone()
        })
        .collect();
    let seen = |name: &str| links.iter().find(|link| link.name == name);

    // What the document wants each link's controller to be.
    let mut wanted_controller: Vec<(String, String)> = Vec::new();
    for bond in &spec.bonds {
        for member in &bond.members {
            wanted_controller.push((member.to_string(), bond.name.to_string()));
        }
    }
    for vswitch in &spec.vswitches {
        if let Some(uplink) = &vswitch.uplink {
            wanted_controller.push((uplink.to_string(), vswitch.name.to_string()));
        }
    }
    let controller_of = |name: &str| {
        wanted_controller
            .iter()
            .find(|(port, _)| port == name)
            .map(|(_, c)| c.clone())
    };

    let bond_ok = |link: &Link, bond: &Bond| match &link.kind {
        LinkKind::Bond {
            mode: Some(mode),
            lacp_rate,
            xmit_hash_policy,
            ..
        } if *mode == bond.mode => match LacpOptions::of(bond) {
            Some(wanted) => {
                *lacp_rate == Some(wanted.rate) && *xmit_hash_policy == Some(wanted.hash)
            }
            None => true,
        },
        _ => false,
    };
    let wanted_vlans: BTreeSet<(String, u16)> = spec
        .vlans
        .iter()
        .map(|vlan| (vlan.parent.to_string(), vlan.id.get()))
        .collect();
    let keep = |link: &Link| -> bool {
        match &link.kind {
            LinkKind::Bond { .. } => spec
                .bonds
                .iter()
                .any(|b| b.name.as_str() == link.name && bond_ok(link, b)),
            LinkKind::Bridge { .. } => spec.vswitches.iter().any(|v| v.name.as_str() == link.name),
            LinkKind::Vlan { parent, id } => {
                wanted_vlans.contains(&(parent.clone(), *id))
                    && spec.vlans.iter().any(|v| v.interface_name() == link.name)
            }
            LinkKind::Loopback | LinkKind::Physical { .. } | LinkKind::Tap | LinkKind::Other => {
                true
            }
        }
    };

    // Addresses and the default route come off first: an interface about to go may carry
    // them, and the undo puts them back only once the interface is rebuilt.
    let (l3_removals, l3_additions) = plan_management(spec, &renamed, observed);
    actions.extend(l3_removals);

    // Tear down, from the top of the stack. A link leaves its controller before it is
    // deleted (so that the undo puts it back there), and only links the planner manages
    // (ports, bonds, VLANs, bridges) are moved out of a kept controller: a guest's tap
    // stays on its vSwitch.
    let managed = |link: &Link| {
        !matches!(
            link.kind,
            LinkKind::Tap | LinkKind::Other | LinkKind::Loopback
        )
    };
    let mut released: BTreeSet<String> = BTreeSet::new();
    let mut release = |actions: &mut Vec<NetAction>, port: &str, controller: &str| {
        if released.insert(port.to_string()) {
            actions.push(NetAction::Release {
                port: port.to_string(),
                controller: controller.to_string(),
            });
        }
    };
    for link in links
        .iter()
        .filter(|l| matches!(l.kind, LinkKind::Vlan { .. }) && !keep(l))
    {
        if let Some(controller) = &link.controller {
            release(&mut actions, &link.name, controller);
        }
        if let LinkKind::Vlan { parent, id } = &link.kind {
            actions.push(NetAction::DeleteVlan {
                parent: parent.clone(),
                id: *id,
            });
        }
    }
    for controller_kind in [KindClass::Bridge, KindClass::Bond] {
        for link in links.iter().filter(|l| controller_kind.matches(&l.kind)) {
            let doomed = !keep(link);
            for member in links
                .iter()
                .filter(|m| m.controller.as_deref() == Some(link.name.as_str()))
            {
                let moves = managed(member)
                    && controller_of(&member.name).as_deref() != Some(link.name.as_str());
                if doomed || moves || !keep(member) {
                    release(&mut actions, &member.name, &link.name);
                }
            }
            if doomed {
                if let Some(controller) = &link.controller {
                    release(&mut actions, &link.name, controller);
                }
                actions.push(match &link.kind {
                    LinkKind::Bond {
                        mode,
                        miimon_ms,
                        lacp_rate,
                        xmit_hash_policy,
                        ..
                    } => NetAction::DeleteBond {
                        name: link.name.clone(),
                        mode: *mode,
                        miimon_ms: *miimon_ms,
                        lacp: match (mode, lacp_rate, xmit_hash_policy) {
                            (Some(BondMode::Lacp), Some(rate), Some(hash)) => Some(LacpOptions {
                                rate: *rate,
                                hash: *hash,
                            }),
                            _ => None,
                        },
                    },
                    _ => NetAction::DeleteBridge {
                        name: link.name.clone(),
                    },
                });
            }
        }
    }
    // A port enslaved to something that is not a bond or bridge we manage stays: it is not
    // ours to move (and validation keeps the document from claiming it twice).

    let exists =
        |name: &str, ok: &dyn Fn(&Link) -> bool| seen(name).is_some_and(|l| ok(l) && keep(l));
    let enslaved_already = |port: &str, controller: &str| {
        seen(port).is_some_and(|l| keep(l) && l.controller.as_deref() == Some(controller))
            && exists(controller, &|_| true)
    };
    let mut bring_up: Vec<String> = Vec::new();

    // Bonds and their members.
    for bond in &spec.bonds {
        let name = bond.name.to_string();
        let miimon = bond.miimon_ms.map_or(DEFAULT_MIIMON_MS, |m| m.get());
        if exists(&name, &|l| bond_ok(l, bond)) {
            if let Some(LinkKind::Bond { miimon_ms, .. }) = seen(&name).map(|l| &l.kind)
                && *miimon_ms != miimon
            {
                actions.push(NetAction::SetMiimon {
                    bond: name.clone(),
                    from: *miimon_ms,
                    to: miimon,
                });
            }
        } else {
            actions.push(NetAction::CreateBond {
                name: name.clone(),
                mode: bond.mode,
                miimon_ms: miimon,
                lacp: LacpOptions::of(bond),
            });
        }
        for member in &bond.members {
            if !enslaved_already(member.as_str(), &name) {
                actions.push(NetAction::Enslave {
                    port: member.to_string(),
                    controller: name.clone(),
                });
            }
            bring_up.push(member.to_string());
        }
        if bond.mode.has_primary() {
            let observed_primary = match seen(&name).map(|l| &l.kind) {
                Some(LinkKind::Bond { primary, .. }) if exists(&name, &|l| bond_ok(l, bond)) => {
                    primary.clone()
                }
                _ => None,
            };
            let wanted = bond.primary.as_ref().map(ToString::to_string);
            if observed_primary != wanted {
                actions.push(NetAction::SetPrimary {
                    bond: name.clone(),
                    from: observed_primary,
                    to: wanted,
                });
            }
        }
        bring_up.push(name);
    }

    let is_vswitch = |name: &str| spec.vswitches.iter().any(|v| v.name.as_str() == name);
    let vlan_actions = |on_vswitch: bool,
                        actions: &mut Vec<NetAction>,
                        bring_up: &mut Vec<String>| {
        for vlan in spec
            .vlans
            .iter()
            .filter(|v| is_vswitch(v.parent.as_str()) == on_vswitch)
        {
            let name = vlan.interface_name();
            let present = exists(
                &name,
                &|l| matches!(&l.kind, LinkKind::Vlan { parent, id } if parent == vlan.parent.as_str() && *id == vlan.id.get()),
            );
            if !present {
                actions.push(NetAction::CreateVlan {
                    parent: vlan.parent.to_string(),
                    id: vlan.id.get(),
                });
            }
            bring_up.push(vlan.parent.to_string());
            bring_up.push(name);
        }
    };
    vlan_actions(false, &mut actions, &mut bring_up);

    for vswitch in &spec.vswitches {
        let name = vswitch.name.to_string();
        match seen(&name).filter(|l| keep(l)).map(|l| &l.kind) {
            Some(LinkKind::Bridge {
                vlan_filtering: true,
            }) => {}
            Some(LinkKind::Bridge {
                vlan_filtering: false,
            }) => actions.push(NetAction::SetVlanFiltering {
                bridge: name.clone(),
                on: true,
            }),
            _ => actions.push(NetAction::CreateBridge { name: name.clone() }),
        }
        if let Some(uplink) = &vswitch.uplink {
            if !enslaved_already(uplink.as_str(), &name) {
                actions.push(NetAction::Enslave {
                    port: uplink.to_string(),
                    controller: name.clone(),
                });
            }
            bring_up.push(uplink.to_string());
        }
        bring_up.push(name);
    }
    vlan_actions(true, &mut actions, &mut bring_up);
    let enslaved_here = |port: &str, bridge: &str| {
        actions.iter().any(|action| {
            matches!(action, NetAction::Enslave { port: p, controller }
                if p == port && controller == bridge)
        }) || actions
            .iter()
            .any(|action| matches!(action, NetAction::CreateBridge { name } if name == bridge))
    };
    let table: Vec<super::bridge_vlans::BridgeVlan> = observed
        .bridge_vlans
        .iter()
        .map(|row| super::bridge_vlans::BridgeVlan {
            port: renamed(&row.port),
            ..row.clone()
        })
        .collect();
    let trunks = super::bridge_vlans::plan(spec, &links, &table, &enslaved_here);
    actions.extend(trunks);

    // Up, in build order, once each; links that will be created come up too.
    let created: BTreeSet<String> = actions
        .iter()
        .filter_map(|action| match action {
            NetAction::CreateBond { name, .. } | NetAction::CreateBridge { name } => {
                Some(name.clone())
            }
            NetAction::CreateVlan { parent, id } => Some(format!("{parent}.{id}")),
            _ => None,
        })
        .collect();
    let mut raised = BTreeSet::new();
    for name in bring_up {
        // A bond closes a port it releases: observed up, it is down by the time we get here.
        let released_port = actions.iter().any(|action| {
            matches!(action, NetAction::Release { port, controller }
                if *port == name && seen(controller).is_some_and(|c| matches!(c.kind, LinkKind::Bond { .. })))
        });
        let down = created.contains(&name) || released_port || seen(&name).is_some_and(|l| !l.up);
        if down && raised.insert(name.clone()) {
            actions.push(NetAction::SetUp { name });
        }
    }
    actions.extend(l3_additions);
    actions
}

/// The management address's actions: `(removals, additions)`. Only hostd's own addresses
/// and routes are observed (see `l3.rs`), so anything not wanted is removed; DNS is left
/// alone when the document has no management section. A DHCP lease's address (finite
/// lifetimes, so not permanent) and route (protocol `dhcp`) are not observed here: the DHCP
/// client owns them, and this plan never removes them.
fn plan_management(
    spec: &NetworkSpec,
    renamed: &dyn Fn(&str) -> String,
    observed: &NetObserved,
) -> (Vec<NetAction>, Vec<NetAction>) {
    let l3 = &observed.l3;
    let wanted_addresses: Vec<(String, IpPrefix)> = spec
        .management
        .iter()
        .flat_map(|m| m.addresses.iter().map(|a| (m.interface.to_string(), *a)))
        .collect();
    let wanted_route: Option<(IpAddr, String)> = spec
        .management
        .as_ref()
        .and_then(|m| Some((m.gateway?, m.interface.to_string())));
    let mut removals = Vec::new();
    let mut additions = Vec::new();
    let seen_routes: Vec<(IpAddr, String)> = l3
        .default_routes
        .iter()
        .map(|r| (r.gateway, renamed(&r.interface)))
        .collect();
    for (gateway, interface) in &seen_routes {
        if wanted_route.as_ref() != Some(&(*gateway, interface.clone())) {
            removals.push(NetAction::DelDefaultRoute {
                gateway: *gateway,
                interface: interface.clone(),
            });
        }
    }
    let seen_addresses: Vec<(String, IpPrefix)> = l3
        .addresses
        .iter()
        .map(|a| (renamed(&a.interface), a.address))
        .collect();
    for (interface, address) in &seen_addresses {
        if !wanted_addresses.contains(&(interface.clone(), *address)) {
            removals.push(NetAction::DelAddress {
                interface: interface.clone(),
                address: *address,
            });
        }
    }
    for (interface, address) in &wanted_addresses {
        if !seen_addresses.contains(&(interface.clone(), *address)) {
            additions.push(NetAction::AddAddress {
                interface: interface.clone(),
                address: *address,
            });
        }
    }
    if let Some((gateway, interface)) = &wanted_route
        && !seen_routes.contains(&(*gateway, interface.clone()))
    {
        additions.push(NetAction::AddDefaultRoute {
            gateway: *gateway,
            interface: interface.clone(),
        });
    }
    // With DHCP the client writes resolv.conf (the document's servers, then the lease's):
    // planning it here would undo the lease at every apply.
    if let Some(management) = &spec.management
        && !management.dhcp4
        && management.dns != l3.dns
    {
        additions.push(NetAction::SetDns {
            from: l3.dns.clone(),
            to: management.dns.clone(),
        });
    }
    (removals, additions)
}

#[derive(Clone, Copy)]
enum KindClass {
    Bond,
    Bridge,
}

impl KindClass {
    fn matches(self, kind: &LinkKind) -> bool {
        match self {
            Self::Bond => matches!(kind, LinkKind::Bond { .. }),
            Self::Bridge => matches!(kind, LinkKind::Bridge { .. }),
        }
    }
}

#[cfg(test)]
mod tests;
