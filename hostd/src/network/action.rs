//! The network's actions as values: what each does (its text, as plans show it) and what
//! undoes it. Built by the planners, run by `execute.rs`.

use std::fmt;
use std::net::IpAddr;

use crate::plan::{Action, Undo};
use crate::state::{Bond, BondMode, IpPrefix, LacpRate, XmitHashPolicy};

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
