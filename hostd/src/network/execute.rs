//! Carries out [`NetAction`]s through rtnetlink: every message is built as a value
//! (`LinkBond::new(..).mode(..).build()`) and sent here, nowhere else.
//!
//! hostd's planner and executor are synchronous (they run on a blocking thread during an
//! apply), rtnetlink is async: the executor keeps a small current-thread runtime of its own
//! and opens one netlink connection per action, which costs microseconds and leaves nothing
//! to go stale between applies.

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::BridgeVlanInfoFlags;
use rtnetlink::packet_route::link::{
    BondLacpRate, BondMode as NlBondMode, BondXmitHashPolicy, LinkFlags, LinkMessage,
};
use std::net::IpAddr;

use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::RouteProtocol;
use rtnetlink::{
    Handle, LinkBond, LinkBridge, LinkBridgeVlan, LinkUnspec, LinkVlan, RouteMessageBuilder,
};

use super::action::NetAction;
use super::l3::{self, L3Observed};
use crate::state::{BondMode, LacpRate, XmitHashPolicy};

/// Replaces resolv.conf whole: a reader never sees half a file.
pub(crate) fn write_resolv_conf(servers: &[std::net::IpAddr]) -> std::io::Result<()> {
    let path = std::path::Path::new(l3::RESOLV_CONF);
    let temporary = path.with_extension("conf.cairn-tmp");
    std::fs::write(&temporary, l3::render_resolv_conf(servers))?;
    std::fs::rename(&temporary, path)
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("Cannot start the netlink runtime")]
    Runtime(#[source] std::io::Error),
    #[error("Cannot open a netlink socket")]
    Connect(#[source] std::io::Error),
    #[error("There is no network interface named {0:?}")]
    NoSuchLink(String),
    #[error("Cannot write {path}")]
    Dns {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot {action} (is the tun module loaded?)")]
    Tap {
        action: String,
        #[source]
        source: nix::Error,
    },
    #[error("The kernel refused to {action}")]
    Netlink {
        action: String,
        #[source]
        source: rtnetlink::Error,
    },
}

#[derive(Debug, Default)]
pub struct NetExecutor {
    runtime: std::sync::OnceLock<tokio::runtime::Runtime>,
}

impl NetExecutor {
    fn runtime(&self) -> Result<&tokio::runtime::Runtime, NetError> {
        if let Some(runtime) = self.runtime.get() {
            return Ok(runtime);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(NetError::Runtime)?;
        // Set once; a racing setter's runtime is dropped, either serves.
        let _ = self.runtime.set(runtime);
        Ok(self.runtime.get().expect("set just above"))
    }

    /// Runs `work` with a fresh netlink connection on this executor's runtime. Must not be
    /// called from async code (it blocks): hostd calls it from blocking threads.
    fn with_handle<T, F, Fut>(&self, work: F) -> Result<T, NetError>
    where
        F: FnOnce(Handle) -> Fut,
        Fut: std::future::Future<Output = Result<T, NetError>>,
    {
        self.runtime()?.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection().map_err(NetError::Connect)?;
            let task = tokio::spawn(connection);
            let result = work(handle).await;
            task.abort();
            result
        })
    }

    pub fn execute(&self, action: &NetAction) -> Result<(), NetError> {
        self.with_handle(|handle| async move { run(&handle, action).await })
    }

    /// Every bridge's VLAN table.
    pub fn observe_bridge_vlans(&self) -> Result<Vec<super::observe::BridgeVlan>, NetError> {
        self.with_handle(|handle| async move { super::netlink::bridge_vlans(&handle).await })
    }

    /// Addresses, default routes and DNS servers as the kernel and resolv.conf have them.
    pub fn observe_l3(&self) -> Result<L3Observed, NetError> {
        self.with_handle(|handle| async move {
            super::netlink::l3(&handle, std::path::Path::new(super::l3::RESOLV_CONF)).await
        })
    }
}

fn netlink(action: &NetAction) -> impl Fn(rtnetlink::Error) -> NetError + '_ {
    move |source| NetError::Netlink {
        action: action.to_string(),
        source,
    }
}

async fn link(handle: &Handle, name: &str) -> Result<LinkMessage, NetError> {
    let found = handle
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await;
    match found {
        Ok(Some(message)) => Ok(message),
        // The kernel answers ENODEV for an unknown name.
        Ok(None) | Err(_) => Err(NetError::NoSuchLink(name.to_string())),
    }
}

async fn index(handle: &Handle, name: &str) -> Result<u32, NetError> {
    Ok(link(handle, name).await?.header.index)
}

fn nl_mode(mode: BondMode) -> NlBondMode {
    match mode {
        BondMode::Lacp => NlBondMode::Ieee8023Ad,
        BondMode::ActiveBackup => NlBondMode::ActiveBackup,
        BondMode::BalanceAlb => NlBondMode::BalanceAlb,
    }
}

async fn set_up(handle: &Handle, name: &str, up: bool, action: &NetAction) -> Result<(), NetError> {
    let builder = LinkUnspec::new_with_name(name);
    let message = if up { builder.up() } else { builder.down() }.build();
    handle
        .link()
        .change(message)
        .execute()
        .await
        .map_err(netlink(action))
}

async fn run(handle: &Handle, action: &NetAction) -> Result<(), NetError> {
    let failed = netlink(action);
    match action {
        NetAction::Rename { from, to } => {
            // The kernel renames only a link that is down.
            let current = link(handle, from).await?;
            let was_up = current.header.flags.contains(LinkFlags::Up);
            if was_up {
                set_up(handle, from, false, action).await?;
            }
            let message = LinkUnspec::new_with_index(current.header.index)
                .name(to.clone())
                .build();
            handle
                .link()
                .change(message)
                .execute()
                .await
                .map_err(&failed)?;
            if was_up {
                set_up(handle, to, true, action).await?;
            }
            Ok(())
        }
        NetAction::CreateBond {
            name,
            mode,
            miimon_ms,
            lacp,
        } => {
            let mut builder = LinkBond::new(name).mode(nl_mode(*mode)).miimon(*miimon_ms);
            if let Some(lacp) = lacp {
                builder = builder
                    .ad_lacp_rate(match lacp.rate {
                        LacpRate::Slow => BondLacpRate::Slow,
                        LacpRate::Fast => BondLacpRate::Fast,
                    })
                    .xmit_hash_policy(match lacp.hash {
                        XmitHashPolicy::Layer2 => BondXmitHashPolicy::Layer2,
                        XmitHashPolicy::Layer2And3 => BondXmitHashPolicy::Layer23,
                        XmitHashPolicy::Layer3And4 => BondXmitHashPolicy::Layer34,
                        XmitHashPolicy::Encap2And3 => BondXmitHashPolicy::Encap23,
                        XmitHashPolicy::Encap3And4 => BondXmitHashPolicy::Encap34,
                    });
            }
            let message = builder.build();
            handle.link().add(message).execute().await.map_err(failed)
        }
        NetAction::SetMiimon { bond, to, .. } => {
            let message = LinkBond::new(bond).miimon(*to).build();
            handle
                .link()
                .change(message)
                .execute()
                .await
                .map_err(failed)
        }
        NetAction::SetPrimary { bond, to, .. } => {
            // Index 0 clears the primary.
            let port = match to {
                Some(port) => index(handle, port).await?,
                None => 0,
            };
            let message = LinkBond::new(bond).primary(port).build();
            handle
                .link()
                .change(message)
                .execute()
                .await
                .map_err(failed)
        }
        NetAction::CreateBridge { name } => handle
            .link()
            .add(LinkBridge::new(name).vlan_filtering(true).build())
            .execute()
            .await
            .map_err(failed),
        NetAction::SetVlanFiltering { bridge, on } => {
            let message = LinkBridge::new(bridge).vlan_filtering(*on).build();
            handle
                .link()
                .change(message)
                .execute()
                .await
                .map_err(failed)
        }
        NetAction::AddBridgeVlan {
            bridge,
            port,
            vid,
            untagged,
        }
        | NetAction::DelBridgeVlan {
            bridge,
            port,
            vid,
            untagged,
        } => {
            let flags = if *untagged {
                BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged
            } else {
                BridgeVlanInfoFlags::empty()
            };
            let mut builder = LinkBridgeVlan::new(index(handle, port).await?).vlan(*vid, flags);
            if port == bridge {
                builder = builder.bridge_self();
            }
            let message = builder.build();
            if matches!(action, NetAction::AddBridgeVlan { .. }) {
                handle.link().set(message).execute().await.map_err(failed)
            } else {
                rtnetlink::LinkDelRequest::new_with_message(handle.clone(), message)
                    .execute()
                    .await
                    .map_err(failed)
            }
        }
        NetAction::CreateTap { name } => {
            super::tun::create_persistent_tap(name).map_err(|source| NetError::Tap {
                action: action.to_string(),
                source,
            })
        }
        NetAction::DeleteTap { name } => {
            super::tun::delete_persistent_tap(name).map_err(|source| NetError::Tap {
                action: action.to_string(),
                source,
            })
        }
        NetAction::CreateVlan { parent, id } => {
            let parent_index = index(handle, parent).await?;
            let message = LinkVlan::new(&format!("{parent}.{id}"), parent_index, *id).build();
            handle.link().add(message).execute().await.map_err(failed)
        }
        NetAction::DeleteBond { name, .. } | NetAction::DeleteBridge { name } => {
            let index = index(handle, name).await?;
            handle.link().del(index).execute().await.map_err(failed)
        }
        NetAction::DeleteVlan { parent, id } => {
            let index = index(handle, &format!("{parent}.{id}")).await?;
            handle.link().del(index).execute().await.map_err(failed)
        }
        NetAction::Enslave { port, controller } => {
            // A bond takes only a port that is down; it is brought back up after.
            let current = link(handle, port).await?;
            let was_up = current.header.flags.contains(LinkFlags::Up);
            let controller_index = index(handle, controller).await?;
            if was_up {
                set_up(handle, port, false, action).await?;
            }
            let message = LinkUnspec::new_with_name(port)
                .controller(controller_index)
                .build();
            let result = handle
                .link()
                .change(message)
                .execute()
                .await
                .map_err(&failed);
            if was_up {
                set_up(handle, port, true, action).await?;
            }
            result
        }
        NetAction::Release { port, .. } => {
            let message = LinkUnspec::new_with_name(port).nocontroller().build();
            handle
                .link()
                .change(message)
                .execute()
                .await
                .map_err(failed)
        }
        NetAction::AddAddress { interface, address } => {
            let index = index(handle, interface).await?;
            handle
                .address()
                .add(index, address.address, address.prefix)
                .execute()
                .await
                .map_err(failed)
        }
        NetAction::DelAddress { interface, address } => {
            let index = index(handle, interface).await?;
            let mut dump = handle
                .address()
                .get()
                .set_link_index_filter(index)
                .execute();
            while let Some(message) = dump.try_next().await.map_err(&failed)? {
                let matches = message.header.prefix_len == address.prefix
                    && message.attributes.iter().any(|attribute| {
                        matches!(attribute, AddressAttribute::Local(ip) | AddressAttribute::Address(ip) if *ip == address.address)
                    });
                if matches {
                    return handle
                        .address()
                        .del(message)
                        .execute()
                        .await
                        .map_err(failed);
                }
            }
            Ok(()) // already gone: the state the action wants
        }
        NetAction::AddDefaultRoute { gateway, interface } => {
            let index = index(handle, interface).await?;
            let message = default_route_message(*gateway, index);
            handle.route().add(message).execute().await.map_err(failed)
        }
        NetAction::DelDefaultRoute { gateway, interface } => {
            let index = index(handle, interface).await?;
            let message = default_route_message(*gateway, index);
            handle.route().del(message).execute().await.map_err(failed)
        }
        NetAction::SetDns { to, .. } => write_resolv_conf(to).map_err(|source| NetError::Dns {
            path: l3::RESOLV_CONF,
            source,
        }),
        NetAction::SetUp { name } => set_up(handle, name, true, action).await,
        NetAction::SetDown { name } => set_up(handle, name, false, action).await,
    }
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
