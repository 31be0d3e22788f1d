//! The links the kernel has, read from sysfs and procfs.
//!
//! sysfs says everything the planner compares (kind, controller, bond mode and monitoring,
//! the PCI address behind a NIC) in plain files, and reading it needs no runtime, so the
//! observer stays synchronous and is tested on fixture trees. Changes go through rtnetlink
//! (`execute.rs`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::state::{BondMode, LacpRate, XmitHashPolicy};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    Loopback,
    /// A NIC with a device behind it (a port candidate); `pci` is its PCI address.
    Physical {
        pci: Option<String>,
    },
    Bond {
        /// `None` for a mode Cairn does not offer (it is replaced if desired).
        mode: Option<BondMode>,
        miimon_ms: u32,
        primary: Option<String>,
        /// Only meaningful in 802.3ad; the kernel shows them in every mode.
        lacp_rate: Option<LacpRate>,
        xmit_hash_policy: Option<XmitHashPolicy>,
    },
    /// `vlan_filtering`: the bridge forwards by VLAN (guest ports on their own VLANs).
    Bridge {
        vlan_filtering: bool,
    },
    Vlan {
        parent: String,
        id: u16,
    },
    /// A tun/tap device: a guest's port, attached through `taps.rs`, never touched by the
    /// planner.
    Tap,
    /// veth, anything else: never touched by the planner.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub kind: LinkKind,
    /// The bond or bridge it is enslaved to.
    pub controller: Option<String>,
    pub up: bool,
    /// Whether a cable (or the peer) is there; `None` while the link is down (the kernel
    /// knows only for a link that is up).
    pub carrier: Option<bool>,
    pub mac: String,
    /// The factory MAC: a bond rewrites its members' `address`, not this.
    pub permanent_mac: String,
}

/// One row of a bridge's VLAN table. `port` is the bridge's own name for the bridge itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BridgeVlan {
    pub port: String,
    pub vid: u16,
    /// Untagged frames entering the port belong to this VLAN.
    pub pvid: bool,
    /// Frames of this VLAN leave the port without a tag.
    pub untagged: bool,
}

/// Every link, sorted by name, and the addresses and routes hostd owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetObserved {
    pub links: Vec<Link>,
    /// Filled by the live system from netlink; empty from [`observe`] alone.
    pub l3: super::l3::L3Observed,
    /// The bridges' VLAN tables, from netlink too (sysfs does not show them).
    pub bridge_vlans: Vec<BridgeVlan>,
}

impl NetObserved {
    pub fn get(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|link| link.name == name)
    }
}

/// Where to read from: `/sys/class/net` and `/proc/net/vlan/config`, or fixtures.
#[derive(Debug, Clone)]
pub struct NetPaths {
    pub class_net: PathBuf,
    pub vlan_config: PathBuf,
}

impl Default for NetPaths {
    fn default() -> Self {
        Self {
            class_net: PathBuf::from("/sys/class/net"),
            vlan_config: PathBuf::from("/proc/net/vlan/config"),
        }
    }
}

/// `IFF_UP` in the `flags` file.
const IFF_UP: u32 = 0x1;
/// `ARPHRD_LOOPBACK` in the `type` file.
const ARPHRD_LOOPBACK: u32 = 772;

pub fn observe(paths: &NetPaths) -> std::io::Result<NetObserved> {
    let vlans = read_vlan_config(&paths.vlan_config);
    let mut links = Vec::new();
    for entry in fs::read_dir(&paths.class_net)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = entry.path();
        let flags = read_number(&dir.join("flags"), 16).unwrap_or(0);
        let link_type = read_number(&dir.join("type"), 10).unwrap_or(0);
        let kind = if link_type == ARPHRD_LOOPBACK {
            LinkKind::Loopback
        } else if dir.join("bonding").is_dir() {
            read_bond(&dir.join("bonding"))
        } else if dir.join("bridge").is_dir() {
            LinkKind::Bridge {
                vlan_filtering: read_number(&dir.join("bridge/vlan_filtering"), 10) == Some(1),
            }
        } else if let Some((parent, id)) = vlans
            .iter()
            .find(|(vlan, _, _)| *vlan == name)
            .map(|(_, id, parent)| (parent.clone(), *id))
        {
            LinkKind::Vlan { parent, id }
        } else if dir.join("device").exists() && !dir.join("tun_flags").exists() {
            LinkKind::Physical {
                pci: fs::canonicalize(dir.join("device"))
                    .ok()
                    .and_then(|path| nearest_pci_address(&path)),
            }
        } else if dir.join("tun_flags").exists() {
            LinkKind::Tap
        } else {
            LinkKind::Other
        };
        let controller = fs::read_link(dir.join("master"))
            .ok()
            .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()));
        let mac = read_trimmed(&dir.join("address"));
        let permanent = read_trimmed(&dir.join("bonding_slave/perm_hwaddr"));
        links.push(Link {
            name,
            kind,
            controller,
            up: flags & IFF_UP != 0,
            carrier: read_number(&dir.join("carrier"), 10).map(|value| value == 1),
            permanent_mac: if permanent.is_empty() {
                mac.clone()
            } else {
                permanent
            },
            mac,
        });
    }
    links.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(NetObserved {
        links,
        l3: super::l3::L3Observed::default(),
        bridge_vlans: Vec::new(),
    })
}

fn read_trimmed(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn read_number(path: &Path, radix: u32) -> Option<u32> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    let digits = text.strip_prefix("0x").unwrap_or(text);
    u32::from_str_radix(digits, radix).ok()
}

/// `bonding/mode` reads `active-backup 1`.
fn read_bond(dir: &Path) -> LinkKind {
    let mode_text = fs::read_to_string(dir.join("mode")).unwrap_or_default();
    let mode = mode_text
        .split_whitespace()
        .next()
        .and_then(|name| BondMode::try_from(name).ok());
    let primary = fs::read_to_string(dir.join("primary"))
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty());
    // `slow 0`, `layer2 0`: the name, then the number.
    let first_word = |file: &str| -> String {
        fs::read_to_string(dir.join(file))
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    LinkKind::Bond {
        mode,
        miimon_ms: read_number(&dir.join("miimon"), 10).unwrap_or(0),
        primary,
        lacp_rate: LacpRate::try_from(first_word("lacp_rate").as_str()).ok(),
        xmit_hash_policy: XmitHashPolicy::try_from(first_word("xmit_hash_policy").as_str()).ok(),
    }
}

/// `(vlan interface, id, parent)` from `/proc/net/vlan/config`: two header lines, then
/// `bond0.42       | 42  | bond0`. Absent file (no VLANs, or 8021q not loaded): none.
fn read_vlan_config(path: &Path) -> Vec<(String, u16, String)> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split('|').map(str::trim);
            let name = fields.next()?;
            let id = fields.next()?.parse().ok()?;
            let parent = fields.next()?;
            Some((name.to_string(), id, parent.to_string()))
        })
        .collect()
}

/// The last path component shaped like a PCI address (`0000:00:03.0`): a virtio NIC's
/// `device` is the virtio device under its PCI function.
fn nearest_pci_address(path: &Path) -> Option<String> {
    path.ancestors()
        .filter_map(|dir| dir.file_name()?.to_str())
        .find(|name| board_configs::is_pci_address(name))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    #[test]
    fn a_fixture_tree_gives_kinds_controllers_and_pci_addresses() {
        let root = tempfile::tempdir().expect("tempdir");
        let net = root.path().join("class/net");
        let devices = root.path().join("devices/pci0000:00/0000:00:03.0/virtio0");
        fs::create_dir_all(&devices).expect("mkdir");
        for (name, flags, kind) in [
            ("lo", "0x9", "772"),
            ("eth0", "0x1003", "1"),
            ("bond0", "0x1403", "1"),
            ("vs0", "0x1003", "1"),
            ("bond0.42", "0x1003", "1"),
            ("tap0", "0x1002", "1"),
        ] {
            write(&net.join(name).join("flags"), &format!("{flags}\n"));
            write(&net.join(name).join("type"), &format!("{kind}\n"));
            write(&net.join(name).join("address"), "52:54:00:12:34:56\n");
        }
        symlink(&devices, net.join("eth0/device")).expect("device link");
        symlink(net.join("bond0"), net.join("eth0/master")).expect("master link");
        write(&net.join("bond0/bonding/mode"), "active-backup 1\n");
        write(&net.join("bond0/bonding/miimon"), "100\n");
        write(&net.join("bond0/bonding/primary"), "eth0\n");
        write(&net.join("bond0/bonding/lacp_rate"), "slow 0\n");
        write(&net.join("bond0/bonding/xmit_hash_policy"), "layer2+3 2\n");
        fs::create_dir_all(net.join("vs0/bridge")).expect("bridge");
        write(&net.join("vs0/bridge/vlan_filtering"), "1\n");
        write(&net.join("tap0/tun_flags"), "0x1002\n");
        fs::create_dir_all(net.join("tap0/device")).expect("tap device");
        let vlan = root.path().join("vlan-config");
        write(
            &vlan,
            "VLAN Dev name    | VLAN ID\nName-Type: VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD\nbond0.42       | 42  | bond0\n",
        );

        let seen = observe(&NetPaths {
            class_net: net,
            vlan_config: vlan,
        })
        .expect("observe");
        let names: Vec<&str> = seen.links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["bond0", "bond0.42", "eth0", "lo", "tap0", "vs0"]);
        let eth0 = seen.get("eth0").expect("eth0");
        assert_eq!(
            eth0.kind,
            LinkKind::Physical {
                pci: Some("0000:00:03.0".into())
            }
        );
        assert_eq!(eth0.controller.as_deref(), Some("bond0"));
        assert!(eth0.up);
        assert_eq!(eth0.carrier, None, "no carrier file in the fixture");
        assert_eq!(
            seen.get("bond0").expect("bond0").kind,
            LinkKind::Bond {
                mode: Some(BondMode::ActiveBackup),
                miimon_ms: 100,
                primary: Some("eth0".into()),
                lacp_rate: Some(LacpRate::Slow),
                xmit_hash_policy: Some(XmitHashPolicy::Layer2And3),
            }
        );
        assert_eq!(
            seen.get("bond0.42").expect("vlan").kind,
            LinkKind::Vlan {
                parent: "bond0".into(),
                id: 42
            }
        );
        assert_eq!(
            seen.get("vs0").expect("vs0").kind,
            LinkKind::Bridge {
                vlan_filtering: true
            }
        );
        assert_eq!(seen.get("tap0").expect("tap0").kind, LinkKind::Tap);
        assert!(!seen.get("tap0").expect("tap0").up);
        assert_eq!(seen.get("lo").expect("lo").kind, LinkKind::Loopback);
    }
}

impl NetObserved {
    /// Whether `name` reaches the wire: it is up, and it is a LAN NIC with a carrier, or a
    /// bond or vSwitch with a member that reaches it, or a VLAN whose parent does. A guest's
    /// tap on a vSwitch does not count: the management address must reach the LAN. (A bridge
    /// reports a carrier even with no ports, so its own carrier proves nothing.)
    pub fn reaches_wire(&self, name: &str) -> bool {
        self.reaches_wire_within(name, 8)
    }

    fn reaches_wire_within(&self, name: &str, depth: u8) -> bool {
        let Some(link) = self.get(name) else {
            return false;
        };
        if !link.up || depth == 0 {
            return false;
        }
        match &link.kind {
            LinkKind::Physical { .. } => link.carrier == Some(true),
            LinkKind::Bond { .. } | LinkKind::Bridge { .. } => self
                .links
                .iter()
                .filter(|member| member.controller.as_deref() == Some(name))
                .any(|member| self.reaches_wire_within(&member.name, depth - 1)),
            LinkKind::Vlan { parent, .. } => self.reaches_wire_within(parent, depth - 1),
            LinkKind::Loopback | LinkKind::Tap | LinkKind::Other => false,
        }
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;

    const BRIDGE: LinkKind = LinkKind::Bridge {
        vlan_filtering: true,
    };

    fn link(name: &str, kind: LinkKind, controller: Option<&str>, carrier: bool) -> Link {
        Link {
            name: name.into(),
            kind,
            controller: controller.map(String::from),
            up: true,
            carrier: Some(carrier),
            mac: String::new(),
            permanent_mac: String::new(),
        }
    }

    #[test]
    fn only_a_path_to_a_cabled_port_is_a_link() {
        let bond = LinkKind::Bond {
            mode: Some(BondMode::ActiveBackup),
            miimon_ms: 100,
            primary: None,
            lacp_rate: None,
            xmit_hash_policy: None,
        };
        let seen = NetObserved {
            links: vec![
                link("bond0", bond, Some("vmnet"), true),
                link(
                    "lan1",
                    LinkKind::Physical { pci: None },
                    Some("bond0"),
                    false,
                ),
                link(
                    "lan2",
                    LinkKind::Physical { pci: None },
                    Some("bond0"),
                    true,
                ),
                link("priv", BRIDGE, None, true),
                link("tap0", LinkKind::Tap, Some("priv"), true),
                link("vmnet", BRIDGE, None, true),
                link(
                    "vmnet.5",
                    LinkKind::Vlan {
                        parent: "vmnet".into(),
                        id: 5,
                    },
                    None,
                    true,
                ),
            ],
            l3: Default::default(),
            bridge_vlans: Vec::new(),
        };
        assert!(seen.reaches_wire("vmnet"));
        assert!(seen.reaches_wire("vmnet.5"));
        assert!(!seen.reaches_wire("lan1"), "no cable");
        assert!(!seen.reaches_wire("priv"), "a guest's tap is not the LAN");
        assert!(!seen.reaches_wire("nothing"));
    }
}
