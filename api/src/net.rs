//! What `cairnctl net` shows: the board's ports and the bonds, vSwitches and VLANs the
//! kernel has, as one serialisable value, and how it renders (hostd builds it from an
//! observation).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    pub dhcp: Option<DhcpView>,
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
fn render_dhcp(dhcp: &DhcpView) -> String {
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

/// A guest port as `cairnctl net` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapView {
    pub name: String,
    pub vswitch: Option<String>,
    /// The VLAN the guest's frames are on; `None` for the native VLAN.
    pub vlan: Option<u16>,
    /// Whether a VMM has it open (the tun driver's carrier).
    pub in_use: bool,
}

/// The DHCP client's lease as `cairnctl net address` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpView {
    pub interface: String,
    /// selecting, requesting, bound, renewing, rebinding, stopped.
    pub state: String,
    /// `address/prefix` of the lease held, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// UTC, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obtained: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renews_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl DhcpView {
    /// Whether a lease is held (bound, renewing or rebinding).
    pub fn has_lease(&self) -> bool {
        self.address.is_some()
    }
}
