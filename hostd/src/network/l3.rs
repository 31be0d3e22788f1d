//! The management address on the live system: addresses, the default route and DNS.
//!
//! Observed through netlink dumps (sysfs has no addresses; the reads are in `netlink.rs`)
//! and `/etc/resolv.conf`. Only what
//! hostd owns is compared: permanent addresses outside link-local (the kernel's own fe80::
//! addresses, and addresses from router advertisements, are left alone) and default routes
//! of protocol `static`, the protocol hostd gives the routes it adds.

use std::net::IpAddr;

use crate::state::IpPrefix;

/// Where the resolver reads its servers; the image's root is in memory, so this is
/// rewritten at every boot by the reconcile.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// `RT_TABLE_MAIN`.
pub(super) const MAIN_TABLE: u8 = 254;

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

pub(super) fn is_link_local(address: IpAddr) -> bool {
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
