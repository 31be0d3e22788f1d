//! The root-only tier: `NetExecutor` (every netlink message hostd sends) against the real
//! kernel, in a fresh network namespace so nothing of the host is touched.
//!
//! Each test re-runs itself under `unshare --net` (util-linux) with [`INSIDE`] set, so the
//! whole test process, its netlink sockets and its tun ioctls live in the new namespace and
//! vanish with it. Not root: one `SKIPPED:` line on stderr and a pass, as the VM tests do
//! without their binaries. `make test` runs as root (CI does), so the tier runs there.
//!
//! What this host's kernel cannot do stays in the VM tests: it has no bonding, no 802.1Q
//! and no bridge VLAN filtering (LAB-FACTS). The bridge test therefore accepts exactly one
//! outcome per kernel: a VLAN-aware bridge where filtering exists, or the executor's typed
//! refusal naming the action where it does not.

mod namespace;

use std::net::IpAddr;

use futures::TryStreamExt;
use hostd::network::{NetAction, NetError, NetExecutor};
use hostd::state::IpPrefix;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::{LinkBridge, LinkVeth};

/// Set in the child that runs inside the fresh namespace.
const INSIDE: &str = "CAIRN_TEST_IN_NETNS";

/// Runs `body` in a fresh network namespace: directly when this process already is the
/// child, else by re-running this one test under `unshare --net`.
fn in_fresh_netns(test: &str, body: impl FnOnce()) {
    if std::env::var_os(INSIDE).is_some() {
        body();
        return;
    }
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED: {test}: needs root for a network namespace (make test runs as root)");
        return;
    }
    namespace::rerun_inside(test, &["--net"], INSIDE, "network");
}

/// What the test reads back from the kernel, over a netlink connection of its own (not the
/// executor's: the check must not share the code it checks).
struct Kernel {
    runtime: tokio::runtime::Runtime,
}

impl Kernel {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a tokio runtime");
        Self { runtime }
    }

    fn with_handle<T>(&self, work: impl AsyncFnOnce(rtnetlink::Handle) -> T) -> T {
        self.runtime.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection().expect("a netlink socket");
            let task = tokio::spawn(connection);
            let result = work(handle).await;
            task.abort();
            result
        })
    }

    fn links(&self) -> Vec<LinkMessage> {
        self.with_handle(async |handle| {
            handle
                .link()
                .get()
                .execute()
                .try_collect::<Vec<_>>()
                .await
                .expect("a link dump")
        })
    }

    fn link(&self, name: &str) -> Option<LinkMessage> {
        self.links().into_iter().find(|link| name_of(link) == name)
    }

    fn add_veth(&self, name: &str, peer: &str) {
        self.with_handle(async |handle| {
            handle
                .link()
                .add(LinkVeth::new(name, peer).build())
                .execute()
                .await
                .expect("a veth pair")
        });
    }

    /// A plain bridge (no VLAN filtering), which every kernel with bridges can make.
    fn add_plain_bridge(&self, name: &str) {
        self.with_handle(async |handle| {
            handle
                .link()
                .add(LinkBridge::new(name).build())
                .execute()
                .await
                .expect("a bridge")
        });
    }
}

fn name_of(link: &LinkMessage) -> String {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn controller_of(link: &LinkMessage) -> Option<u32> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::Controller(index) => Some(*index),
            _ => None,
        })
}

fn is_up(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::Up)
}

fn prefix(text: &str) -> IpPrefix {
    IpPrefix::try_from(text).expect("a valid prefix")
}

#[test]
fn renames_enslaves_releases_and_brings_links_up_and_down() {
    in_fresh_netns(
        "renames_enslaves_releases_and_brings_links_up_and_down",
        || {
            let kernel = Kernel::new();
            let executor = NetExecutor::default();
            kernel.add_veth("eth-test0", "eth-test1");
            kernel.add_plain_bridge("vmtest");

            executor
                .execute(&NetAction::SetUp {
                    name: "eth-test0".into(),
                })
                .expect("set up");
            assert!(is_up(&kernel.link("eth-test0").expect("the veth")));

            // The kernel renames only a link that is down: the executor takes it down and
            // brings it back up under the new name.
            executor
                .execute(&NetAction::Rename {
                    from: "eth-test0".into(),
                    to: "lan9".into(),
                })
                .expect("rename");
            assert!(kernel.link("eth-test0").is_none());
            let renamed = kernel.link("lan9").expect("renamed");
            assert!(is_up(&renamed), "up again after the rename");

            executor
                .execute(&NetAction::Enslave {
                    port: "lan9".into(),
                    controller: "vmtest".into(),
                })
                .expect("enslave");
            let bridge = kernel.link("vmtest").expect("the bridge");
            let port = kernel.link("lan9").expect("the port");
            assert_eq!(controller_of(&port), Some(bridge.header.index));
            assert!(
                is_up(&port),
                "a port that was up is up again after enslaving"
            );

            executor
                .execute(&NetAction::Release {
                    port: "lan9".into(),
                    controller: "vmtest".into(),
                })
                .expect("release");
            assert_eq!(controller_of(&kernel.link("lan9").expect("port")), None);

            executor
                .execute(&NetAction::SetDown {
                    name: "lan9".into(),
                })
                .expect("set down");
            assert!(!is_up(&kernel.link("lan9").expect("port")));

            executor
                .execute(&NetAction::DeleteBridge {
                    name: "vmtest".into(),
                })
                .expect("delete bridge");
            assert!(kernel.link("vmtest").is_none());
        },
    );
}

#[test]
fn adds_and_removes_addresses_and_the_default_route() {
    in_fresh_netns("adds_and_removes_addresses_and_the_default_route", || {
        let kernel = Kernel::new();
        let executor = NetExecutor::default();
        kernel.add_plain_bridge("vmnet");
        executor
            .execute(&NetAction::SetUp {
                name: "vmnet".into(),
            })
            .expect("up");
        let v4 = prefix("192.0.2.10/24");
        let v6 = prefix("2001:db8::10/64");
        for address in [v4, v6] {
            executor
                .execute(&NetAction::AddAddress {
                    interface: "vmnet".into(),
                    address,
                })
                .expect("add address");
        }
        let gateway: IpAddr = "192.0.2.1".parse().expect("an address");
        executor
            .execute(&NetAction::AddDefaultRoute {
                gateway,
                interface: "vmnet".into(),
            })
            .expect("add default route");

        let seen = executor.observe_l3().expect("observe");
        let addresses: Vec<(String, IpPrefix)> = seen
            .addresses
            .iter()
            .map(|a| (a.interface.clone(), a.address))
            .collect();
        assert!(addresses.contains(&("vmnet".into(), v4)), "{addresses:?}");
        assert!(addresses.contains(&("vmnet".into(), v6)), "{addresses:?}");
        assert!(
            seen.default_routes
                .iter()
                .any(|r| r.gateway == gateway && r.interface == "vmnet"),
            "{:?}",
            seen.default_routes
        );

        executor
            .execute(&NetAction::DelDefaultRoute {
                gateway,
                interface: "vmnet".into(),
            })
            .expect("delete default route");
        let remove = NetAction::DelAddress {
            interface: "vmnet".into(),
            address: v4,
        };
        executor.execute(&remove).expect("delete address");
        // Already gone is the state the action wants: a second run succeeds.
        executor.execute(&remove).expect("delete address again");
        let seen = executor.observe_l3().expect("observe");
        assert!(seen.default_routes.is_empty(), "{:?}", seen.default_routes);
        assert!(
            seen.addresses.iter().all(|a| a.address != v4),
            "{:?}",
            seen.addresses
        );
        assert!(seen.addresses.iter().any(|a| a.address == v6));
    });
}

#[test]
fn creates_and_deletes_persistent_guest_taps() {
    in_fresh_netns("creates_and_deletes_persistent_guest_taps", || {
        let kernel = Kernel::new();
        let executor = NetExecutor::default();
        executor
            .execute(&NetAction::CreateTap {
                name: "vm-test-0".into(),
            })
            .expect("create tap");
        // Persistent: it outlives the file descriptor the executor used to make it.
        assert!(kernel.link("vm-test-0").is_some());
        executor
            .execute(&NetAction::DeleteTap {
                name: "vm-test-0".into(),
            })
            .expect("delete tap");
        assert!(kernel.link("vm-test-0").is_none());
    });
}

#[test]
fn unknown_links_are_named_in_the_error() {
    in_fresh_netns("unknown_links_are_named_in_the_error", || {
        let executor = NetExecutor::default();
        let error = executor
            .execute(&NetAction::Enslave {
                port: "nosuch0".into(),
                controller: "nosuch1".into(),
            })
            .expect_err("no such link");
        assert!(
            matches!(&error, NetError::NoSuchLink(name) if name == "nosuch0"),
            "{error:?}"
        );
        let error = executor
            .execute(&NetAction::DeleteBridge {
                name: "vmghost".into(),
            })
            .expect_err("no such bridge");
        assert!(
            matches!(&error, NetError::NoSuchLink(name) if name == "vmghost"),
            "{error:?}"
        );
    });
}

#[test]
fn creates_a_vlan_aware_bridge_or_says_which_action_the_kernel_refused() {
    in_fresh_netns(
        "creates_a_vlan_aware_bridge_or_says_which_action_the_kernel_refused",
        || {
            let kernel = Kernel::new();
            let executor = NetExecutor::default();
            let created = executor.execute(&NetAction::CreateBridge {
                name: "vmnet".into(),
            });
            match created {
                Ok(()) => {
                    assert!(kernel.link("vmnet").is_some());
                    let sysfs_free_check = kernel.link("vmnet").expect("bridge");
                    assert_eq!(name_of(&sysfs_free_check), "vmnet");
                }
                // This host's kernel has bridges but no VLAN filtering: the refusal must
                // be the typed netlink error naming the action, and nothing left behind.
                Err(NetError::Netlink { action, source }) => {
                    assert_eq!(action, "create vSwitch vmnet");
                    assert!(
                        source.to_string().contains("Operation not supported")
                            || source.to_string().contains("-95"),
                        "{source}"
                    );
                    assert!(kernel.link("vmnet").is_none());
                }
                Err(other) => panic!("unexpected error {other:?}"),
            }
        },
    );
}
