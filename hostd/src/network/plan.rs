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
use std::net::IpAddr;

use board_configs::{Lan, LanDiscovery};

use super::action::{LacpOptions, NetAction};
use super::observe::{BridgeVlan, Link, LinkKind, NetObserved};
use crate::state::{Bond, BondMode, IpPrefix, NetworkSpec};

/// Link monitoring when the document does not say: the bonding driver's own default for
/// the modes that need it, stated here so that plans never depend on module parameters.
pub const DEFAULT_MIIMON_MS: u32 = 100;

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

/// The network actions, in the order of the module's comment: each stage below is one of
/// its steps.
pub fn plan(spec: &NetworkSpec, lan: &Lan, observed: &NetObserved) -> Vec<NetAction> {
    let assignment = port_assignment(lan, observed);
    let mut actions = plan_renames(&assignment, observed);
    let renamed = |name: &str| -> String {
        assignment
            .iter()
            .find(|(from, _)| from == name)
            .map_or_else(|| name.to_string(), |(_, to)| to.clone())
    };
    let links = Links::new(spec, observed, &renamed);

    // Addresses and the default route come off first: an interface about to go may carry
    // them, and the undo puts them back only once the interface is rebuilt.
    let (l3_removals, l3_additions) = plan_management(spec, &renamed, observed);
    actions.extend(l3_removals);
    tear_down(&links, &mut actions);
    let mut bring_up: Vec<String> = Vec::new();
    build_bonds(&links, &mut actions, &mut bring_up);
    build_vlans(&links, false, &mut actions, &mut bring_up);
    build_vswitches(&links, &mut actions, &mut bring_up);
    build_vlans(&links, true, &mut actions, &mut bring_up);
    let table: Vec<BridgeVlan> = observed
        .bridge_vlans
        .iter()
        .map(|row| BridgeVlan {
            port: renamed(&row.port),
            ..row.clone()
        })
        .collect();
    let trunks = {
        let enslaved_here = |port: &str, bridge: &str| enslaved_by(&actions, port, bridge);
        super::bridge_vlans::plan(spec, &links.observed, &table, &enslaved_here)
    };
    actions.extend(trunks);
    raise(&links, bring_up, &mut actions);
    actions.extend(l3_additions);
    actions
}

/// The observed links under the names they will have after this plan's renames, beside
/// what the document wants of them: what every stage asks.
struct Links<'a> {
    spec: &'a NetworkSpec,
    observed: Vec<Link>,
    /// `(port, controller)`: the bond or vSwitch the document puts each port in.
    wanted_controller: Vec<(String, String)>,
    wanted_vlans: BTreeSet<(String, u16)>,
}

impl<'a> Links<'a> {
    fn new(
        spec: &'a NetworkSpec,
        observed: &NetObserved,
        renamed: &dyn Fn(&str) -> String,
    ) -> Self {
        let observed = observed
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
        let wanted_vlans = spec
            .vlans
            .iter()
            .map(|vlan| (vlan.parent.to_string(), vlan.id.get()))
            .collect();
        Self {
            spec,
            observed,
            wanted_controller,
            wanted_vlans,
        }
    }

    fn seen(&self, name: &str) -> Option<&Link> {
        self.observed.iter().find(|link| link.name == name)
    }

    fn controller_of(&self, name: &str) -> Option<&str> {
        self.wanted_controller
            .iter()
            .find(|(port, _)| port == name)
            .map(|(_, controller)| controller.as_str())
    }

    /// Whether an observed link stays as it is (links the planner does not manage always do).
    fn keep(&self, link: &Link) -> bool {
        let spec = self.spec;
        match &link.kind {
            LinkKind::Bond { .. } => spec
                .bonds
                .iter()
                .any(|b| b.name.as_str() == link.name && bond_matches(link, b)),
            LinkKind::Bridge { .. } => spec.vswitches.iter().any(|v| v.name.as_str() == link.name),
            LinkKind::Vlan { parent, id } => {
                self.wanted_vlans.contains(&(parent.clone(), *id))
                    && spec.vlans.iter().any(|v| v.interface_name() == link.name)
            }
            LinkKind::Loopback | LinkKind::Physical { .. } | LinkKind::Tap | LinkKind::Other => {
                true
            }
        }
    }

    /// A kept link named `name` that `ok` accepts.
    fn exists(&self, name: &str, ok: &dyn Fn(&Link) -> bool) -> bool {
        self.seen(name)
            .is_some_and(|link| ok(link) && self.keep(link))
    }

    fn enslaved_already(&self, port: &str, controller: &str) -> bool {
        self.seen(port)
            .is_some_and(|l| self.keep(l) && l.controller.as_deref() == Some(controller))
            && self.exists(controller, &|_| true)
    }
}

/// An observed bond is the document's when its mode and LACP settings are (a change of
/// either rebuilds it).
fn bond_matches(link: &Link, bond: &Bond) -> bool {
    match &link.kind {
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
    }
}

/// Tears down, from the top of the stack: VLANs, then bridges, then bonds that are not
/// wanted or not as wanted. A link leaves its controller before it is deleted (so that the
/// undo puts it back there), and only links the planner manages (ports, bonds, VLANs,
/// bridges) are moved out of a kept controller: a guest's tap stays on its vSwitch. A port
/// enslaved to something that is not a bond or bridge we manage stays: it is not ours to
/// move (and validation keeps the document from claiming it twice).
fn tear_down(links: &Links<'_>, actions: &mut Vec<NetAction>) {
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
        .observed
        .iter()
        .filter(|l| matches!(l.kind, LinkKind::Vlan { .. }) && !links.keep(l))
    {
        if let Some(controller) = &link.controller {
            release(actions, &link.name, controller);
        }
        if let LinkKind::Vlan { parent, id } = &link.kind {
            actions.push(NetAction::DeleteVlan {
                parent: parent.clone(),
                id: *id,
            });
        }
    }
    for controller_kind in [KindClass::Bridge, KindClass::Bond] {
        for link in links
            .observed
            .iter()
            .filter(|l| controller_kind.matches(&l.kind))
        {
            let doomed = !links.keep(link);
            for member in links
                .observed
                .iter()
                .filter(|m| m.controller.as_deref() == Some(link.name.as_str()))
            {
                let moves = managed(member)
                    && links.controller_of(&member.name) != Some(link.name.as_str());
                if doomed || moves || !links.keep(member) {
                    release(actions, &member.name, &link.name);
                }
            }
            if doomed {
                if let Some(controller) = &link.controller {
                    release(actions, &link.name, controller);
                }
                actions.push(deletion(link));
            }
        }
    }
}

/// The action that deletes an observed bond or bridge, carrying what its undo rebuilds.
fn deletion(link: &Link) -> NetAction {
    match &link.kind {
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
    }
}

/// Bonds (created, or their link monitoring and primary set), their members enslaved.
fn build_bonds(links: &Links<'_>, actions: &mut Vec<NetAction>, bring_up: &mut Vec<String>) {
    for bond in &links.spec.bonds {
        let name = bond.name.to_string();
        let miimon = bond.miimon_ms.map_or(DEFAULT_MIIMON_MS, |m| m.get());
        let as_wanted = links.exists(&name, &|l| bond_matches(l, bond));
        if as_wanted {
            if let Some(LinkKind::Bond { miimon_ms, .. }) = links.seen(&name).map(|l| &l.kind)
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
            if !links.enslaved_already(member.as_str(), &name) {
                actions.push(NetAction::Enslave {
                    port: member.to_string(),
                    controller: name.clone(),
                });
            }
            bring_up.push(member.to_string());
        }
        if bond.mode.has_primary() {
            let observed_primary = match links.seen(&name).map(|l| &l.kind) {
                Some(LinkKind::Bond { primary, .. }) if as_wanted => primary.clone(),
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
}

/// The document's VLAN interfaces on vSwitches (`on_vswitch`) or on ports and bonds.
fn build_vlans(
    links: &Links<'_>,
    on_vswitch: bool,
    actions: &mut Vec<NetAction>,
    bring_up: &mut Vec<String>,
) {
    let spec = links.spec;
    let is_vswitch = |name: &str| spec.vswitches.iter().any(|v| v.name.as_str() == name);
    for vlan in spec
        .vlans
        .iter()
        .filter(|v| is_vswitch(v.parent.as_str()) == on_vswitch)
    {
        let name = vlan.interface_name();
        let present = links.exists(
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
}

/// vSwitches: VLAN-filtering bridges, their uplinks enslaved.
fn build_vswitches(links: &Links<'_>, actions: &mut Vec<NetAction>, bring_up: &mut Vec<String>) {
    for vswitch in &links.spec.vswitches {
        let name = vswitch.name.to_string();
        match links.seen(&name).filter(|l| links.keep(l)).map(|l| &l.kind) {
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
            if !links.enslaved_already(uplink.as_str(), &name) {
                actions.push(NetAction::Enslave {
                    port: uplink.to_string(),
                    controller: name.clone(),
                });
            }
            bring_up.push(uplink.to_string());
        }
        bring_up.push(name);
    }
}

/// Whether this plan puts `port` on `bridge` (or creates the bridge, whose ports are then
/// all new): nothing of theirs is observed yet.
fn enslaved_by(actions: &[NetAction], port: &str, bridge: &str) -> bool {
    actions.iter().any(|action| match action {
        NetAction::Enslave {
            port: p,
            controller,
        } => p == port && controller == bridge,
        NetAction::CreateBridge { name } => name == bridge,
        _ => false,
    })
}

/// Up, in build order, once each: links that are down, that this plan creates, or that a
/// bond releases (a bond closes a port it releases: observed up, it is down by then).
fn raise(links: &Links<'_>, bring_up: Vec<String>, actions: &mut Vec<NetAction>) {
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
        let released_port = actions.iter().any(|action| {
            matches!(action, NetAction::Release { port, controller }
                if *port == name && links.seen(controller).is_some_and(|c| matches!(c.kind, LinkKind::Bond { .. })))
        });
        let down =
            created.contains(&name) || released_port || links.seen(&name).is_some_and(|l| !l.up);
        if down && raised.insert(name.clone()) {
            actions.push(NetAction::SetUp { name });
        }
    }
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
