//! What only netlink tells about the network, read through the executor's handle:
//! hostd's addresses and default routes, and the bridges' VLAN tables.

use std::fs;
use std::net::IpAddr;
use std::path::Path;

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags};
use rtnetlink::packet_route::link::{AfSpecBridge, LinkAttribute, LinkExtentMask};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::NetError;
use super::l3::{
    DefaultRoute, HostAddress, L3Observed, MAIN_TABLE, is_link_local, parse_resolv_conf,
};
use super::observe::BridgeVlan;
use crate::state::IpPrefix;

/// Addresses and routes hostd owns, and the DNS servers `resolv_conf` lists.
pub async fn l3(handle: &Handle, resolv_conf: &Path) -> Result<L3Observed, NetError> {
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

/// Every bridge's and bridge port's VLAN table, from an `AF_BRIDGE` link dump with the
/// VLAN filter (what `bridge vlan show` asks for).
pub async fn bridge_vlans(handle: &Handle) -> Result<Vec<BridgeVlan>, NetError> {
    let mut dump = handle
        .link()
        .get()
        .set_filter_mask(AddressFamily::Bridge, vec![LinkExtentMask::Brvlan])
        .execute();
    let mut table = Vec::new();
    loop {
        let message = match dump.try_next().await {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(source) => {
                return Err(NetError::Netlink {
                    action: "list the bridges' VLAN tables".to_string(),
                    source,
                });
            }
        };
        let name = message.attributes.iter().find_map(|attr| match attr {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        });
        let Some(name) = name else { continue };
        for attr in &message.attributes {
            let LinkAttribute::AfSpecBridge(specs) = attr else {
                continue;
            };
            for spec in specs {
                if let AfSpecBridge::VlanInfo(info) = spec {
                    use rtnetlink::packet_route::link::BridgeVlanInfoFlags as Flags;
                    table.push(BridgeVlan {
                        port: name.clone(),
                        vid: info.vid,
                        pvid: info.flags.contains(Flags::Pvid),
                        untagged: info.flags.contains(Flags::Untagged),
                    });
                }
            }
        }
    }
    table.sort();
    table.dedup();
    Ok(table)
}
