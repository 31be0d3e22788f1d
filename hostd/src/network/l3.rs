//! The management address on the live system: addresses, the default route and DNS.
//!
//! Observed through netlink dumps (sysfs has no addresses) and `/etc/resolv.conf`. Only what
//! hostd owns is compared: permanent addresses outside link-local (the kernel's own fe80::
//! addresses, and addresses from router advertisements, are left alone) and default routes
//! of protocol `static`, the protocol hostd gives the routes it adds.

use std::fs;
use std::net::IpAddr;
use std::path::Path;

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::NetError;
use crate::state::IpPrefix;

/// Where the resolver reads its servers; the image's root is in memory, so this is
/// rewritten at every boot by the reconcile.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// `RT_TABLE_MAIN`.
const MAIN_TABLE: u8 = 254;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    pub interface: String,
    pub address: IpPrefix,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    pub gateway: IpAddr,
    pub interface: String,
}

/// Addresses and routes hostd owns, as netlink shows them now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L3Observed {
    pub addresses: Vec<HostAddress>,
    pub default_routes: Vec<DefaultRoute>,
    pub dns: Vec<IpAddr>,
}

fn is_link_local(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// `nameserver <ip>` lines of a resolv.conf; anything else is ignored.
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse().ok())
        .collect()
}

pub fn render_resolv_conf(servers: &[IpAddr]) -> String {
    let mut text = String::from(
        "# Written by hostd from network.management.dns; changes here are replaced.\n",
    );
    for server in servers {
        text.push_str(&format!("nameserver {server}\n"));
    }
    text
}

pub async fn observe(handle: &Handle, resolv_conf: &Path) -> Result<L3Observed, NetError> {
    let failed = |source| NetError::Netlink {
        action: "list addresses and routes".to_string(),
        source,
    };
    let mut names = std::collections::BTreeMap::new();
    let mut links = handle.link().get().execute();
    while let Some(link) = links.try_next().await.map_err(failed)? {
        let name = link
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                rtnetlink::packet_route::link::LinkAttribute::IfName(name) => Some(name.clone()),
                _ => None,
            });
        if let Some(name) = name {
            names.insert(link.header.index, name);
        }
    }
    let mut addresses = Vec::new();
    let mut dump = handle.address().get().execute();
    while let Some(message) = dump.try_next().await.map_err(failed)? {
        let Some(interface) = names.get(&message.header.index) else {
            continue;
        };
        if interface == "lo" || !message.header.flags.contains(AddressHeaderFlags::Permanent) {
            continue;
        }
        let address = message
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
        let address = address.or_else(|| {
            message
                .attributes
                .iter()
                .find_map(|attribute| match attribute {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
        });
        if let Some(ip) = address.filter(|ip| !is_link_local(*ip)) {
            addresses.push(HostAddress {
                interface: interface.clone(),
                address: IpPrefix {
                    address: ip,
                    prefix: message.header.prefix_len,
                },
            });
        }
    }
    let mut default_routes = Vec::new();
    for request in [
        RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
        RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
    ] {
        let mut dump = handle.route().get(request).execute();
        while let Some(route) = dump.try_next().await.map_err(failed)? {
            let header = &route.header;
            if header.destination_prefix_length != 0
                || header.table != MAIN_TABLE
                || header.protocol != RouteProtocol::Static
            {
                continue;
            }
            let mut gateway = None;
            let mut interface = None;
            for attribute in &route.attributes {
                match attribute {
                    RouteAttribute::Gateway(RouteAddress::Inet(v4)) => {
                        gateway = Some(IpAddr::V4(*v4))
                    }
                    RouteAttribute::Gateway(RouteAddress::Inet6(v6)) => {
                        gateway = Some(IpAddr::V6(*v6))
                    }
                    RouteAttribute::Oif(index) => interface = names.get(index).cloned(),
                    _ => {}
                }
            }
            if let (Some(gateway), Some(interface)) = (gateway, interface) {
                default_routes.push(DefaultRoute { gateway, interface });
            }
        }
    }
    let dns = parse_resolv_conf(&fs::read_to_string(resolv_conf).unwrap_or_default());
    Ok(L3Observed {
        addresses,
        default_routes,
        dns,
    })
}

/// The default route message hostd adds and deletes.
pub fn default_route_message(
    gateway: IpAddr,
    interface_index: u32,
) -> rtnetlink::packet_route::route::RouteMessage {
    let mut message = match gateway {
        IpAddr::V4(v4) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
            .gateway(v4)
            .output_interface(interface_index)
            .protocol(RouteProtocol::Static)
            .build(),
        IpAddr::V6(v6) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
            .gateway(v6)
            .output_interface(interface_index)
            .protocol(RouteProtocol::Static)
            .build(),
    };
    message.header.address_family = match gateway {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_round_trips_its_servers() {
        let servers: Vec<IpAddr> = vec![
            "192.168.1.1".parse().expect("ip"),
            "fd00::1".parse().expect("ip"),
        ];
        assert_eq!(parse_resolv_conf(&render_resolv_conf(&servers)), servers);
        assert_eq!(
            parse_resolv_conf("search lan\nnameserver x\n"),
            Vec::<IpAddr>::new()
        );
    }

    #[test]
    fn link_local_addresses_are_the_kernels() {
        assert!(is_link_local("fe80::1".parse().expect("ip")));
        assert!(is_link_local("169.254.3.4".parse().expect("ip")));
        assert!(!is_link_local("fd00::1".parse().expect("ip")));
    }
}
