//! The network part of the desired state: bonds over the board's ports, vSwitches (Linux
//! bridges) that guests attach to, and VLANs on ports, bonds or vSwitches.
//!
//! Bonds, vSwitches and VLAN interfaces share the kernel's one namespace of interface names,
//! so names are checked across all three. A port in a bond belongs to the bond: nothing else
//! may stack on it (a VLAN or a vSwitch goes on the bond instead).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

use super::Declared;
use super::document;
use super::error::{Errors, expected_one_of};
use super::management::{self, Management};
use super::values::{InterfaceName, MiimonMs, PortName, ValueError, VlanId};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkSpec {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bonds: Vec<Bond>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vswitches: Vec<VSwitch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vlans: Vec<Vlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub management: Option<Management>,
}

impl NetworkSpec {
    pub fn is_empty(&self) -> bool {
        self.bonds.is_empty()
            && self.vswitches.is_empty()
            && self.vlans.is_empty()
            && self.management.is_none()
    }
}

/// Link aggregation over ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bond {
    pub name: InterfaceName,
    pub mode: BondMode,
    pub members: Vec<PortName>,
    /// Link-monitoring interval; absent means the kernel's default for the mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub miimon_ms: Option<MiimonMs>,
    /// The member that carries traffic while its link is up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<PortName>,
    /// How often LACP partners exchange frames (802.3ad only; the kernel's default is slow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lacp_rate: Option<LacpRate>,
    /// Which headers pick the member a flow goes out on (802.3ad only; default layer2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xmit_hash_policy: Option<XmitHashPolicy>,
}

/// A closed set of names, each the bonding driver's own spelling.
macro_rules! named_choice {
    ($(#[$doc:meta])* $name:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValueError;
            fn try_from(text: &str) -> Result<Self, ValueError> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(ValueError::UnknownChoice {
                        what: $what,
                        value: text.to_string(),
                        expected: Self::NAMES,
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

named_choice!(
    /// LACPDU rate: every 30 s (slow) or every second (fast, quicker to notice a dead link).
    LacpRate, "lacp_rate", { Slow => "slow", Fast => "fast" }
);

named_choice!(
    /// The transmit hash of an 802.3ad bond.
    XmitHashPolicy, "xmit_hash_policy", {
        Layer2 => "layer2",
        Layer2And3 => "layer2+3",
        Layer3And4 => "layer3+4",
        Encap2And3 => "encap2+3",
        Encap3And4 => "encap3+4",
    }
);

/// The bonding modes Cairn offers, named as the kernel's bonding driver names them. The
/// others (balance-rr, balance-xor, broadcast, balance-tlb) either reorder packets or need
/// switch setup an appliance cannot check, so they are left out until someone needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BondMode {
    /// IEEE 802.3ad dynamic link aggregation (LACP): needs the switch's side configured.
    Lacp,
    /// One member carries traffic, the others wait: works with any switch.
    ActiveBackup,
    /// Adaptive load balancing: spreads traffic by rewriting ARP, works with any switch.
    BalanceAlb,
}

impl BondMode {
    pub const NAMES: &'static [&'static str] = &["802.3ad", "active-backup", "balance-alb"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lacp => "802.3ad",
            Self::ActiveBackup => "active-backup",
            Self::BalanceAlb => "balance-alb",
        }
    }

    /// The bonding driver takes a `primary` only in the modes that pick one member to send on.
    pub fn has_primary(self) -> bool {
        match self {
            Self::ActiveBackup | Self::BalanceAlb => true,
            Self::Lacp => false,
        }
    }
}

impl TryFrom<&str> for BondMode {
    type Error = ValueError;
    fn try_from(text: &str) -> Result<Self, ValueError> {
        match text {
            "802.3ad" => Ok(Self::Lacp),
            "active-backup" => Ok(Self::ActiveBackup),
            "balance-alb" => Ok(Self::BalanceAlb),
            _ => Err(ValueError::UnknownChoice {
                what: "mode",
                value: text.to_string(),
                expected: Self::NAMES,
            }),
        }
    }
}

impl fmt::Display for BondMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for BondMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A Linux bridge guests attach to, optionally with an uplink to the LAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VSwitch {
    pub name: InterfaceName,
    /// A port, a bond or a VLAN interface (`bond0.100`); absent for a host-only switch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uplink: Option<InterfaceName>,
}

/// An 802.1Q VLAN on a port, a bond or a vSwitch. Its interface is `<parent>.<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vlan {
    pub parent: InterfaceName,
    pub id: VlanId,
}

impl Vlan {
    /// The kernel interface name, as `ip link add link <parent> name <parent>.<id>` makes it.
    pub fn interface_name(&self) -> String {
        format!("{}.{}", self.parent, self.id)
    }
}

/// Where each converted item stood in the document, for error paths: an item with a wrong
/// value is left out of the spec, so the spec's indices and the document's differ.
#[derive(Debug, Default)]
pub(super) struct Positions {
    pub bonds: Vec<usize>,
    pub vswitches: Vec<usize>,
    pub vlans: Vec<usize>,
}

impl Positions {
    /// Positions of a spec that is the whole document.
    pub(super) fn of(spec: &NetworkSpec) -> Self {
        Self {
            bonds: (0..spec.bonds.len()).collect(),
            vswitches: (0..spec.vswitches.len()).collect(),
            vlans: (0..spec.vlans.len()).collect(),
        }
    }
}

/// Items paired with their positions in the document.
pub(super) struct Indexed<'a> {
    bonds: Vec<(usize, &'a Bond)>,
    vswitches: Vec<(usize, &'a VSwitch)>,
    vlans: Vec<(usize, &'a Vlan)>,
    management: Option<&'a Management>,
}

impl<'a> Indexed<'a> {
    pub(super) fn new(spec: &'a NetworkSpec, positions: &Positions) -> Self {
        Self {
            bonds: positions.bonds.iter().copied().zip(&spec.bonds).collect(),
            vswitches: positions
                .vswitches
                .iter()
                .copied()
                .zip(&spec.vswitches)
                .collect(),
            vlans: positions.vlans.iter().copied().zip(&spec.vlans).collect(),
            management: spec.management.as_ref(),
        }
    }
}

/// Converts every value of the document's network table; items with a wrong value are left
/// out (their errors recorded).
pub(super) fn convert(doc: &document::Network, errors: &mut Errors) -> (NetworkSpec, Positions) {
    let mut spec = NetworkSpec::default();
    let mut positions = Positions::default();
    for (i, bond) in doc.bonds.iter().enumerate() {
        let path = format!("network.bonds[{i}]");
        let name = errors.check(
            format!("{path}.name"),
            InterfaceName::try_from(bond.name.as_str()),
        );
        let mode = errors.check(
            format!("{path}.mode"),
            BondMode::try_from(bond.mode.as_str()),
        );
        let members = errors.check_all(
            &format!("{path}.members"),
            bond.members.iter().map(|m| PortName::try_from(m.as_str())),
        );
        let miimon_ms = errors.check_optional(
            format!("{path}.miimon_ms"),
            bond.miimon_ms.map(MiimonMs::try_from),
        );
        let primary = errors.check_optional(
            format!("{path}.primary"),
            bond.primary.as_deref().map(PortName::try_from),
        );
        let lacp_rate = errors.check_optional(
            format!("{path}.lacp_rate"),
            bond.lacp_rate.as_deref().map(LacpRate::try_from),
        );
        let xmit_hash_policy = errors.check_optional(
            format!("{path}.xmit_hash_policy"),
            bond.xmit_hash_policy
                .as_deref()
                .map(XmitHashPolicy::try_from),
        );
        if let (
            Some(name),
            Some(mode),
            Some(members),
            Some(miimon_ms),
            Some(primary),
            Some(lacp_rate),
            Some(xmit_hash_policy),
        ) = (
            name,
            mode,
            members,
            miimon_ms,
            primary,
            lacp_rate,
            xmit_hash_policy,
        ) {
            spec.bonds.push(Bond {
                name,
                mode,
                members,
                miimon_ms,
                primary,
                lacp_rate,
                xmit_hash_policy,
            });
            positions.bonds.push(i);
        }
    }
    for (i, vswitch) in doc.vswitches.iter().enumerate() {
        let path = format!("network.vswitches[{i}]");
        let name = errors.check(
            format!("{path}.name"),
            InterfaceName::try_from(vswitch.name.as_str()),
        );
        let uplink = errors.check_optional(
            format!("{path}.uplink"),
            vswitch.uplink.as_deref().map(InterfaceName::try_from),
        );
        if let (Some(name), Some(uplink)) = (name, uplink) {
            spec.vswitches.push(VSwitch { name, uplink });
            positions.vswitches.push(i);
        }
    }
    for (i, vlan) in doc.vlans.iter().enumerate() {
        let path = format!("network.vlans[{i}]");
        let parent = errors.check(
            format!("{path}.parent"),
            InterfaceName::try_from(vlan.parent.as_str()),
        );
        let id = errors.check(format!("{path}.id"), VlanId::try_from(vlan.id));
        if let (Some(parent), Some(id)) = (parent, id) {
            spec.vlans.push(Vlan { parent, id });
            positions.vlans.push(i);
        }
    }
    spec.management = doc
        .management
        .as_ref()
        .and_then(|wanted| management::convert(wanted, errors));
    (spec, positions)
}

/// The checks between items: names, membership, parents and uplinks.
pub(super) fn check_relations(network: &Indexed<'_>, declared: &Declared, errors: &mut Errors) {
    check_names(network, errors);
    check_bonds(network, errors);
    check_vlans(network, declared, errors);
    check_uplinks(network, declared, errors);
    if let Some(wanted) = network.management {
        let uplink_of = network
            .vswitches
            .iter()
            .filter_map(|(_, v)| Some((v.uplink.as_ref()?.to_string(), v.name.to_string())))
            .collect();
        let interfaces = declared
            .bonds
            .iter()
            .chain(&declared.vswitches)
            .chain(&declared.vlan_interfaces)
            .cloned()
            .collect();
        management::check(
            wanted,
            &declared.bond_of_port,
            &uplink_of,
            &interfaces,
            errors,
        );
    }
}

/// Bonds, vSwitches and VLAN interfaces share one namespace, and `lanN` belongs to ports.
fn check_names(network: &Indexed<'_>, errors: &mut Errors) {
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    let named = network
        .bonds
        .iter()
        .map(|(i, bond)| (format!("network.bonds[{i}]"), &bond.name))
        .chain(
            network
                .vswitches
                .iter()
                .map(|(i, vswitch)| (format!("network.vswitches[{i}]"), &vswitch.name)),
        );
    for (path, name) in named {
        if PortName::try_from(name.as_str()).is_ok() {
            errors.push(
                format!("{path}.name"),
                format!(
                    "{:?} is a port's name (expected a name other than lan1, lan2, …)",
                    name.as_str()
                ),
            );
        } else if let Some(first) = taken.get(name.as_str()) {
            errors.push(
                format!("{path}.name"),
                format!(
                    "{:?} is already the name of {first} (expected a name no other bond, vswitch or VLAN uses)",
                    name.as_str()
                ),
            );
        } else {
            taken.insert(name.to_string(), path);
        }
    }
    for (i, vlan) in &network.vlans {
        let path = format!("network.vlans[{i}]");
        let interface = vlan.interface_name();
        // IFNAMSIZ: 15 characters and the terminating NUL.
        if interface.len() > 15 {
            errors.push(
                path,
                format!(
                    "interface name {interface:?} would be {} characters (expected at most 15: shorten the parent's name)",
                    interface.len()
                ),
            );
        } else if let Some(first) = taken.get(&interface) {
            errors.push(
                path,
                format!(
                    "VLAN {} on {} (interface {interface}) is already declared as {first}",
                    vlan.id, vlan.parent
                ),
            );
        } else {
            taken.insert(interface, path);
        }
    }
}

fn check_bonds(network: &Indexed<'_>, errors: &mut Errors) {
    let mut owner: BTreeMap<&str, &InterfaceName> = BTreeMap::new();
    for (i, bond) in &network.bonds {
        let path = format!("network.bonds[{i}]");
        if bond.members.is_empty() {
            errors.push(
                format!("{path}.members"),
                "empty (expected at least one port)",
            );
        }
        for (j, member) in bond.members.iter().enumerate() {
            let member_path = format!("{path}.members[{j}]");
            if bond.members[..j].contains(member) {
                errors.push(
                    member_path,
                    format!("{member} is listed twice in this bond"),
                );
            } else if let Some(other) = owner.get(member.as_str()) {
                errors.push(
                    member_path,
                    format!(
                        "{member} is already a member of {other} (expected each port in one bond at most)"
                    ),
                );
            } else {
                owner.insert(member.as_str(), &bond.name);
            }
        }
        let lacp_only = [
            ("lacp_rate", bond.lacp_rate.is_some()),
            ("xmit_hash_policy", bond.xmit_hash_policy.is_some()),
        ];
        for (option, set) in lacp_only {
            if set && bond.mode != BondMode::Lacp {
                errors.push(
                    format!("{path}.{option}"),
                    format!(
                        "mode {} has no {option} (expected no {option}, or mode 802.3ad)",
                        bond.mode
                    ),
                );
            }
        }
        if let Some(primary) = &bond.primary {
            if !bond.mode.has_primary() {
                errors.push(
                    format!("{path}.primary"),
                    format!(
                        "mode {} has no primary port (expected no primary, or mode active-backup or balance-alb)",
                        bond.mode
                    ),
                );
            } else if !bond.members.contains(primary) {
                errors.push(
                    format!("{path}.primary"),
                    format!(
                        "{primary} is not a member of this bond ({})",
                        expected_one_of(&bond.members, "member")
                    ),
                );
            }
        }
    }
}

/// A VLAN sits on a port, a bond or a vSwitch, never on a port a bond has taken.
fn check_vlans(network: &Indexed<'_>, declared: &Declared, errors: &mut Errors) {
    for (i, vlan) in &network.vlans {
        let path = format!("network.vlans[{i}].parent");
        let parent = vlan.parent.as_str();
        if let Some(bond) = declared.bond_of_port.get(parent) {
            errors.push(
                path,
                format!("{parent} is a member of {bond} (expected the bond itself)"),
            );
        } else if PortName::try_from(parent).is_err()
            && !declared.bonds.contains(parent)
            && !declared.vswitches.contains(parent)
        {
            let candidates = declared.bonds.iter().chain(&declared.vswitches);
            errors.push(
                path,
                format!(
                    "no port, bond or vswitch named {parent:?} ({})",
                    expected_port_or(candidates, "bond or vswitch")
                ),
            );
        } else if declared.vswitches.contains(parent) && vlan.id.get() == 1 {
            // vSwitches filter VLANs, and 1 is their untagged native VLAN: the bridge's own
            // interface already is VLAN 1, so parent.1 would never see a frame.
            errors.push(
                format!("network.vlans[{i}].id"),
                format!(
                    "VLAN 1 is the untagged native VLAN of vSwitch {parent} (its own address is on it; expected 2 to 4094 on a vSwitch)"
                ),
            );
        }
    }
}

/// A vSwitch's uplink is a port, a bond or a VLAN interface, each uplinking one vSwitch.
fn check_uplinks(network: &Indexed<'_>, declared: &Declared, errors: &mut Errors) {
    let mut used: BTreeMap<&str, &InterfaceName> = BTreeMap::new();
    for (i, vswitch) in &network.vswitches {
        let Some(uplink) = &vswitch.uplink else {
            continue;
        };
        let path = format!("network.vswitches[{i}].uplink");
        let name = uplink.as_str();
        if let Some(bond) = declared.bond_of_port.get(name) {
            errors.push(
                path,
                format!("{name} is a member of {bond} (expected the bond itself)"),
            );
        } else if PortName::try_from(name).is_err()
            && !declared.bonds.contains(name)
            && !declared.vlan_interfaces.contains(name)
        {
            let candidates = declared.bonds.iter().chain(&declared.vlan_interfaces);
            errors.push(
                path,
                format!(
                    "no port, bond or VLAN named {name:?} ({})",
                    expected_port_or(candidates, "bond or VLAN")
                ),
            );
        } else if let Some(first) = used.get(name) {
            errors.push(
                path,
                format!(
                    "{name} is already the uplink of {first} (expected each interface to uplink one vswitch at most)"
                ),
            );
        } else {
            used.insert(name, &vswitch.name);
        }
    }
}

/// "expected a port like lan1, or one of: a, b" for references that may name a port.
fn expected_port_or<'a>(candidates: impl Iterator<Item = &'a String>, what: &str) -> String {
    let names: Vec<&str> = candidates.map(String::as_str).collect();
    if names.is_empty() {
        format!("expected a port like lan1; no {what} is declared")
    } else {
        format!("expected a port like lan1, or one of: {}", names.join(", "))
    }
}
