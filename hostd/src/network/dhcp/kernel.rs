//! A lease on the box: its address (with the lease's remaining time as valid and preferred
//! lifetime, so the kernel drops it by itself should hostd die), its default route
//! (protocol `dhcp`, which the static planner does not own) and resolv.conf.
//!
//! The same netlink messages as the static path (`l3.rs`), with `replace` so a renewal
//! only moves the lifetimes on.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::address::{AddressAttribute, CacheInfo};
use rtnetlink::packet_route::route::RouteProtocol;

use super::machine::Lease;
use crate::network::NetError;
use crate::network::l3;

fn failed(action: String) -> impl Fn(rtnetlink::Error) -> NetError {
    move |source| NetError::Netlink {
        action: action.clone(),
        source,
    }
}

async fn index(handle: &Handle, name: &str) -> Result<u32, NetError> {
    handle
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
        .ok()
        .flatten()
        .map(|link| link.header.index)
        .ok_or_else(|| NetError::NoSuchLink(name.to_string()))
}

/// Seconds for a netlink lifetime; `u32::MAX` is "forever" to the kernel, which is what an
/// infinite lease (0xffffffff) means too.
fn lifetime(seconds: u64) -> u32 {
    u32::try_from(seconds).unwrap_or(u32::MAX)
}

/// Adds or refreshes the lease's address and route and writes the DNS servers (the
/// document's first, then the lease's).
pub async fn bind(
    handle: &Handle,
    interface: &str,
    lease: &Lease,
    remaining_s: u64,
    document_dns: &[IpAddr],
) -> Result<(), NetError> {
    let index = index(handle, interface).await?;
    let mut request = handle
        .address()
        .add(index, IpAddr::V4(lease.address), lease.prefix)
        .replace();
    let seconds = lifetime(remaining_s);
    // Valid and preferred lifetime: the kernel takes the address off by itself when the
    // lease runs out, even if hostd is not there to do it.
    let mut lifetimes = CacheInfo::default();
    lifetimes.ifa_preferred = seconds;
    lifetimes.ifa_valid = seconds;
    request
        .message_mut()
        .attributes
        .push(AddressAttribute::CacheInfo(lifetimes));
    request.execute().await.map_err(failed(format!(
        "add address {}/{} to {interface}",
        lease.address, lease.prefix
    )))?;
    if let Some(router) = lease.routers.first() {
        let mut message = super::super::execute::default_route_message(IpAddr::V4(*router), index);
        message.header.protocol = RouteProtocol::Dhcp;
        handle
            .route()
            .add(message)
            .replace()
            .execute()
            .await
            .map_err(failed(format!(
                "add default route via {router} on {interface}"
            )))?;
    }
    write_dns(document_dns, &lease.dns)
}

/// Removes what [`bind`] added. Missing pieces are not an error: the kernel removes an
/// expired address itself, and a rebuilt interface has lost it already.
pub async fn unbind(
    handle: &Handle,
    interface: &str,
    lease: &Lease,
    document_dns: &[IpAddr],
) -> Result<(), NetError> {
    let index = match index(handle, interface).await {
        Ok(index) => index,
        Err(NetError::NoSuchLink(_)) => return write_dns(document_dns, &[]),
        Err(error) => return Err(error),
    };
    if let Some(router) = lease.routers.first() {
        let mut message = super::super::execute::default_route_message(IpAddr::V4(*router), index);
        message.header.protocol = RouteProtocol::Dhcp;
        // Gone already when the address went first or expired: nothing to undo.
        let _ = handle.route().del(message).execute().await;
    }
    let mut dump = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    let action = format!(
        "remove address {}/{} from {interface}",
        lease.address, lease.prefix
    );
    while let Some(message) = dump.try_next().await.map_err(failed(action.clone()))? {
        let ours = message.header.prefix_len == lease.prefix
            && message.attributes.iter().any(|attribute| {
                matches!(attribute, AddressAttribute::Local(IpAddr::V4(ip)) if *ip == lease.address)
            });
        if ours {
            handle
                .address()
                .del(message)
                .execute()
                .await
                .map_err(failed(action.clone()))?;
            break;
        }
    }
    write_dns(document_dns, &[])
}

fn write_dns(document_dns: &[IpAddr], lease_dns: &[Ipv4Addr]) -> Result<(), NetError> {
    let mut servers = document_dns.to_vec();
    for server in lease_dns {
        let server = IpAddr::V4(*server);
        if !servers.contains(&server) {
            servers.push(server);
        }
    }
    crate::network::execute::write_resolv_conf(&servers).map_err(|source| NetError::Dns {
        path: l3::RESOLV_CONF,
        source,
    })
}
