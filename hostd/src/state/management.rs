//! The management address: where the appliance itself is reached (the API, the cluster),
//! on one interface: static addresses with a default gateway and DNS servers, or an IPv4
//! address from DHCP (`dhcp4 = true`, served by `network::dhcp`), with static IPv6 beside it.
//!
//! `dhcp4` names the family on purpose (as netplan's key does): the lease gives one IPv4
//! address, its router and DNS servers, so a static IPv4 address or gateway beside it is
//! refused, while IPv6 addresses and an IPv6 gateway may stay static. Static addressing is
//! what cluster mode requires. `confirm_s` is the grace period of a safe apply: a change
//! that leaves the management interface without a link (and, with DHCP, without a lease)
//! for that long is rolled back on its own.

use std::fmt;
use std::net::IpAddr;

use serde::{Serialize, Serializer};

use super::document;
use super::error::Errors;
use super::values::InterfaceName;

/// A safe apply waits this long for the management link when the document does not say.
pub const DEFAULT_CONFIRM_S: u32 = 60;
/// The grace period's bounds: long enough for a switch port to come up (spanning tree can
/// take 30 s), short enough that a locked-out admin is not kept waiting long.
pub const CONFIRM_S_RANGE: (u32, u32) = (5, 600);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Management {
    pub interface: InterfaceName,
    /// The IPv4 address, default route and DNS servers come from a DHCP lease.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dhcp4: bool,
    pub addresses: Vec<IpPrefix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_s: Option<u32>,
}

impl Management {
    pub fn confirm_seconds(&self) -> u32 {
        self.confirm_s.unwrap_or(DEFAULT_CONFIRM_S)
    }
}

/// An address with its prefix length: `192.168.1.10/24`, `fd00::10/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpPrefix {
    pub address: IpAddr,
    pub prefix: u8,
}

impl TryFrom<&str> for IpPrefix {
    type Error = String;

    fn try_from(text: &str) -> Result<Self, String> {
        let wrong = || {
            format!(
                "{text:?} is not an address with a prefix length (expected e.g. 192.168.1.10/24 or fd00::10/64)"
            )
        };
        let (address, prefix) = text.split_once('/').ok_or_else(wrong)?;
        let address: IpAddr = address.parse().map_err(|_| wrong())?;
        let prefix: u8 = prefix.parse().map_err(|_| wrong())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix == 0 || prefix > max {
            return Err(format!(
                "{text:?} has prefix length {prefix} (expected 1 to {max} for an IPv{} address)",
                if address.is_ipv4() { 4 } else { 6 }
            ));
        }
        if address.is_unspecified() || address.is_multicast() || address.is_loopback() {
            return Err(format!(
                "{text:?} cannot be a host's address (expected a unicast address)"
            ));
        }
        Ok(Self { address, prefix })
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn parse_ip(text: &str, what: &str) -> Result<IpAddr, String> {
    text.parse().map_err(|_| {
        format!(
            "{text:?} is not an IP address (expected the {what} as e.g. 192.168.1.1 or fd00::1)"
        )
    })
}

/// Converts the document's table; `None` (with errors recorded) if any value is wrong.
pub(super) fn convert(doc: &document::Management, errors: &mut Errors) -> Option<Management> {
    let path = "network.management";
    let interface = errors.check(
        format!("{path}.interface"),
        InterfaceName::try_from(doc.interface.as_str()),
    );
    let addresses = errors.check_all(
        &format!("{path}.addresses"),
        doc.addresses.iter().map(|a| IpPrefix::try_from(a.as_str())),
    );
    let gateway = errors.check_optional(
        format!("{path}.gateway"),
        doc.gateway.as_deref().map(|g| parse_ip(g, "gateway")),
    );
    let dns = errors.check_all(
        &format!("{path}.dns"),
        doc.dns.iter().map(|d| parse_ip(d, "DNS server")),
    );
    let confirm_s = errors.check_optional(
        format!("{path}.confirm_s"),
        doc.confirm_s.map(|seconds| {
            let (low, high) = CONFIRM_S_RANGE;
            u32::try_from(seconds)
                .ok()
                .filter(|s| (low..=high).contains(s))
                .ok_or_else(|| {
                    format!("{seconds} is out of range (expected {low} to {high} seconds)")
                })
        }),
    );
    Some(Management {
        interface: interface?,
        dhcp4: doc.dhcp4,
        addresses: addresses?,
        gateway: gateway?,
        dns: dns?,
        confirm_s: confirm_s?,
    })
}

/// Between fields and against the network section: the interface exists in the document
/// (or is a port), is not enslaved, and the gateway is reachable in some address's family.
pub(super) fn check(
    management: &Management,
    bond_of_port: &std::collections::BTreeMap<String, String>,
    uplink_of: &std::collections::BTreeMap<String, String>,
    declared_interfaces: &std::collections::BTreeSet<String>,
    errors: &mut Errors,
) {
    let path = "network.management";
    let name = management.interface.as_str();
    let is_port = super::values::PortName::try_from(name).is_ok();
    if let Some(bond) = bond_of_port.get(name) {
        errors.push(
            format!("{path}.interface"),
            format!("{name} is a member of {bond} (expected the bond itself)"),
        );
    } else if let Some(vswitch) = uplink_of.get(name) {
        errors.push(
            format!("{path}.interface"),
            format!("{name} is the uplink of {vswitch} (expected the vswitch itself: a bridge's port takes no address)"),
        );
    } else if !is_port && !declared_interfaces.contains(name) {
        let known: Vec<&str> = declared_interfaces.iter().map(String::as_str).collect();
        errors.push(
            format!("{path}.interface"),
            format!(
                "no port, bond, vswitch or VLAN named {name:?} (expected a port like lan1{})",
                if known.is_empty() {
                    String::new()
                } else {
                    format!(", or one of: {}", known.join(", "))
                }
            ),
        );
    }
    if management.addresses.is_empty() && !management.dhcp4 {
        errors.push(
            format!("{path}.addresses"),
            "empty (expected at least one address, e.g. 192.168.1.10/24, or dhcp4 = true)",
        );
    }
    if management.dhcp4 {
        check_beside_dhcp4(management, errors);
    } else if let Some(gateway) = management.gateway
        && !management
            .addresses
            .iter()
            .any(|a| a.address.is_ipv4() == gateway.is_ipv4())
    {
        errors.push(
            format!("{path}.gateway"),
            format!(
                "{gateway} is IPv{} but no address is (expected a gateway in the family of an address)",
                if gateway.is_ipv4() { 4 } else { 6 }
            ),
        );
    }
}

/// With `dhcp4 = true` the lease owns IPv4: a static IPv4 address or gateway would fight
/// it. IPv6 stays static (DHCPv6 is not offered).
fn check_beside_dhcp4(management: &Management, errors: &mut Errors) {
    let path = "network.management";
    for (i, address) in management.addresses.iter().enumerate() {
        if address.address.is_ipv4() {
            errors.push(
                format!("{path}.addresses[{i}]"),
                format!("{address} is IPv4 but dhcp4 = true takes the IPv4 address from the lease (expected IPv6 addresses only, or dhcp4 = false)"),
            );
        }
    }
    match management.gateway {
        Some(gateway @ IpAddr::V4(_)) => errors.push(
            format!("{path}.gateway"),
            format!("{gateway} is IPv4 but with dhcp4 = true the lease's router is the IPv4 gateway (expected an IPv6 gateway or none)"),
        ),
        Some(gateway @ IpAddr::V6(_)) if !management.addresses.iter().any(|a| a.address.is_ipv6()) => errors.push(
            format!("{path}.gateway"),
            format!("{gateway} is IPv6 but no address is (expected a gateway in the family of an address)"),
        ),
        Some(IpAddr::V6(_)) | None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(
            IpPrefix::try_from("192.168.1.10/24").map(|p| p.to_string()),
            Ok("192.168.1.10/24".into())
        );
        assert_eq!(IpPrefix::try_from("fd00::10/64").map(|p| p.prefix), Ok(64));
        assert_eq!(
            IpPrefix::try_from("10.0.0.1/33"),
            Err(
                r#""10.0.0.1/33" has prefix length 33 (expected 1 to 32 for an IPv4 address)"#
                    .into()
            )
        );
        assert!(
            IpPrefix::try_from("10.0.0.1")
                .is_err_and(|e| e.contains("expected e.g. 192.168.1.10/24"))
        );
        assert!(IpPrefix::try_from("224.0.0.1/4").is_err());
    }
}
