//! The far side of the appliance's links: a second, small QEMU guest running the same
//! Debian kernel, and the cables between the two.
//!
//! Why a VM: this host's kernel has neither bonding nor 802.1Q and cannot load modules
//! (LAB-FACTS "A real network peer"), so an LACP partner or a VLAN trunk has to be a guest.
//! Nothing is built for it: the peer boots `build/image/vmlinuz` with the appliance's own
//! `initramfs.img` followed by a tiny newc archive holding `/peer-init` (the kernel unpacks
//! concatenated archives in order), started with `rdinit=/peer-init` instead of cairn-init.
//! The script ([`peer_init_script`]) mounts proc/sys/dev, loads the modules it is given
//! with their dependencies (busybox `modprobe` does not follow the image's `modules.dep`,
//! which lists direct dependencies only), names its NICs after their PCI slots, prints
//! `peer-init: READY` and runs a busybox shell on the serial console. The harness drives
//! that shell with the same BEGIN/END markers as the appliance's.
//!
//! Cables: QEMU's socket netdev. Each appliance port listens on a loopback TCP port and
//! the peer's NIC connects to it: a direct layer-2 pipe between the two QEMUs that needs no
//! root, no taps and no namespaces, and carries LACP frames (a Linux bridge would not).
//! A cable pull is QMP `set_link` on both QEMUs: one side alone does not change the
//! carrier the other sees.

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use regex::Regex;
use thiserror::Error;

use crate::appliance::{ShellOutput, run_marked};
use crate::builder::{Accel, BuildError, NetBackend, Nic, QemuBuilder};
use crate::console::{Console, ConsoleError};
use crate::image::Image;
use crate::newc::{NewcError, NewcWriter};
use crate::qmp::QmpError;
use crate::timeouts;
use crate::vm::{Vm, VmError};
use crate::workdir::{WorkDir, WorkDirError};

/// The peer's kernel command line. `rdinit` runs our script instead of cairn-init;
/// `loglevel=3` keeps the bonding driver's link messages out of command output on the
/// console (errors still show).
pub const PEER_APPEND: &str = "console=ttyS0,115200 rdinit=/peer-init quiet loglevel=3";
/// Enough for the unpacked appliance root (about 70 MB) plus the compressed archive the
/// kernel reads it from, with room for the modules and a ping log.
pub const PEER_MEMORY_MIB: u32 = 512;
/// The modules a bonding and VLAN peer needs; `peer-init` loads their dependencies first.
pub const PEER_MODULES: &[&str] = &["virtio_net", "bonding", "8021q"];
/// How long one try of the first shell command may take before it is sent again: ash
/// may still be starting when the harness types it.
const SHELL_SYNC: Duration = Duration::from_secs(5);
/// The first port cabled to the appliance has MAC `…:01`, the second `…:02`. Explicit
/// because QEMU gives every process the same default MACs, and two ends of an
/// aggregation (or an IPv4 subnet) with one MAC do not work.
const PEER_MAC_PREFIX: &str = "52:54:00:ce:e0";

#[derive(Debug, Error)]
pub enum PeerError {
    #[error("Cannot prepare the peer's scratch directory")]
    WorkDir(#[from] WorkDirError),
    #[error("Cannot pick the accelerator")]
    Accel(#[from] BuildError),
    #[error("Cannot write the peer's init archive")]
    Newc(#[from] NewcError),
    #[error("Cannot read the initramfs archive {path}")]
    ReadInitramfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot write the peer initramfs {path}")]
    WriteInitramfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Peer VM failed")]
    Vm(#[from] VmError),
    #[error("Peer serial console failed")]
    Console(#[from] ConsoleError),
    #[error("peer-init could not set the peer up: {message}; console's last lines:\n{tail}")]
    Init { message: String, tail: String },
    #[error("The peer's shell did not answer within {0:?} after peer-init was ready")]
    NoShell(Duration),
    #[error("Peer command {0:?} spans lines; send one line at a time")]
    MultiLine(String),
    #[error("Peer command {command:?} exited with status {status}; its output:\n{output}")]
    CommandFailed {
        command: String,
        status: i32,
        output: String,
    },
    #[error("Cannot find a free loopback TCP port for a cable")]
    Port(#[source] io::Error),
}

/// One of the peer's NICs: where it sits on the PCI bus and the name `peer-init` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPort {
    pub slot: u8,
    pub name: String,
}

/// A cable from an appliance port to a peer port, over one loopback TCP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cable {
    /// The appliance's NIC id and port name (`lan1`).
    pub appliance_port: String,
    /// The peer's NIC id and interface name (`p1`).
    pub peer_port: String,
    /// The PCI slot both ends use (the board's slot for `appliance_port`).
    pub slot: u8,
    pub peer_mac: String,
    pub tcp_port: u16,
}

impl Cable {
    fn listen_addr(&self) -> String {
        format!("127.0.0.1:{}", self.tcp_port)
    }

    pub fn appliance_nic(&self) -> Nic {
        Nic::new(
            &self.appliance_port,
            NetBackend::SocketListen {
                addr: self.listen_addr(),
            },
        )
        .pci_slot(self.slot)
    }

    pub fn peer_nic(&self) -> Nic {
        Nic::new(
            &self.peer_port,
            NetBackend::SocketConnect {
                addr: self.listen_addr(),
            },
        )
        .pci_slot(self.slot)
        .mac(&self.peer_mac)
    }
}

/// The cables between the appliance and the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cabling {
    cables: Vec<Cable>,
}

impl Cabling {
    /// The qemu-x86_64 board's two LAN ports (PCI slots 3 and 4), lan1 to p1 and lan2 to
    /// p2, each over a free loopback port.
    pub fn qemu_x86_64() -> Result<Self, PeerError> {
        Self::with_ports(&[("lan1", 3), ("lan2", 4)])
    }

    /// One cable per `(appliance port, PCI slot)`; the peer's ports are `p1`, `p2`, … in
    /// that order.
    pub fn with_ports(ports: &[(&str, u8)]) -> Result<Self, PeerError> {
        let tcp_ports = free_tcp_ports(ports.len()).map_err(PeerError::Port)?;
        Ok(Self::from_parts(ports, &tcp_ports))
    }

    fn from_parts(ports: &[(&str, u8)], tcp_ports: &[u16]) -> Self {
        let cables = ports
            .iter()
            .zip(tcp_ports)
            .enumerate()
            .map(|(i, ((port, slot), tcp_port))| Cable {
                appliance_port: (*port).to_owned(),
                peer_port: format!("p{}", i + 1),
                slot: *slot,
                peer_mac: format!("{PEER_MAC_PREFIX}:{:02x}", i + 1),
                tcp_port: *tcp_port,
            })
            .collect();
        Self { cables }
    }

    pub fn cables(&self) -> &[Cable] {
        &self.cables
    }

    /// The cable plugged into appliance port `port`.
    pub fn by_appliance_port(&self, port: &str) -> Option<&Cable> {
        self.cables.iter().find(|c| c.appliance_port == port)
    }

    /// The cable plugged into peer port `port`.
    pub fn by_peer_port(&self, port: &str) -> Option<&Cable> {
        self.cables.iter().find(|c| c.peer_port == port)
    }

    /// The appliance's NICs, for [`crate::Launch::nics`]. The appliance must start first:
    /// its QEMU listens, the peer's connects.
    pub fn appliance_nics(&self) -> Vec<Nic> {
        self.cables.iter().map(Cable::appliance_nic).collect()
    }

    pub fn peer_nics(&self) -> Vec<Nic> {
        self.cables.iter().map(Cable::peer_nic).collect()
    }

    pub fn peer_ports(&self) -> Vec<PeerPort> {
        self.cables
            .iter()
            .map(|c| PeerPort {
                slot: c.slot,
                name: c.peer_port.clone(),
            })
            .collect()
    }

    /// Pulls (`up = false`) or plugs `cable` at both ends, appliance first. QMP answers
    /// in milliseconds, so the two ends change within a few ms of each other.
    pub fn set_link(
        cable: &Cable,
        appliance: &mut Vm,
        peer: &mut Vm,
        up: bool,
    ) -> Result<(), QmpError> {
        appliance
            .qmp()
            .set_link(&cable.appliance_nic().netdev_id(), up)?;
        peer.qmp().set_link(&cable.peer_nic().netdev_id(), up)
    }
}

/// `count` distinct loopback TCP ports that were free a moment ago: the kernel picks each
/// by binding port 0, and all stay bound until every one is picked so none repeats. QEMU
/// binds them again right after; another process taking one in between makes QEMU exit
/// with "Address already in use", which the caller can retry.
pub fn free_tcp_ports(count: usize) -> io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// The `/peer-init` script: mount, load `modules` with their dependencies, rename the
/// NICs at `ports` and hand the console to a shell.
pub fn peer_init_script(modules: &[&str], ports: &[PeerPort]) -> String {
    let mut script = String::from(
        r#"#!/usr/bin/busybox sh
# Written by qemu-tests (peer.rs): a bonding and VLAN peer on the appliance's kernel.
/usr/bin/busybox mkdir -p /peer/bin
/usr/bin/busybox --install -s /peer/bin
export PATH=/peer/bin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "peer-init: FAILED $*"; exec setsid cttyhack sh; }
M=/lib/modules/$(uname -r)
LOADED=
# modules.dep lists direct dependencies only: load them depth-first.
load() {
  case " $LOADED " in *" $1 "*) return 0;; esac
  for d in $(grep "^$1:" "$M/modules.dep" | cut -d: -f2); do load "$d" || return 1; done
  insmod "$M/$1" || return 1
  LOADED="$LOADED $1"
}
for m in"#,
    );
    for module in modules {
        script.push(' ');
        script.push_str(module);
    }
    script.push_str(
        r#"; do
  p=$(grep -o "^[^:]*/$m\.ko:" "$M/modules.dep" | tr -d :)
  [ -n "$p" ] || fail "module $m is not in $M/modules.dep"
  load "$p" || fail "cannot load module $m"
done
"#,
    );
    for port in ports {
        script.push_str(&format!(
            "n=$(ls /sys/bus/pci/devices/0000:00:{slot:02x}.0/virtio*/net/ 2>/dev/null)\n\
             [ -n \"$n\" ] || fail \"no NIC at PCI slot {slot}\"\n\
             ip link set \"$n\" name {name} || fail \"cannot rename $n to {name}\"\n",
            slot = port.slot,
            name = port.name,
        ));
    }
    script.push_str(
        r#"echo "peer-init: READY kernel=$(uname -r)"
exec setsid cttyhack sh
"#,
    );
    script
}

/// What to launch as the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLaunch {
    name: String,
    nics: Vec<Nic>,
    ports: Vec<PeerPort>,
    /// newc archives unpacked over the appliance's root before `/peer-init`'s.
    archives: Vec<PathBuf>,
}

impl PeerLaunch {
    /// A peer named `name` (VM and scratch directory) on the far end of `cabling`.
    pub fn new(name: &str, cabling: &Cabling) -> Self {
        Self {
            name: name.to_owned(),
            nics: cabling.peer_nics(),
            ports: cabling.peer_ports(),
            archives: Vec::new(),
        }
    }

    /// Adds an uncompressed newc archive to the peer's root: test tools the appliance does
    /// not carry (`Image::test_tools`, dnsmasq).
    pub fn archive(mut self, path: &std::path::Path) -> Self {
        self.archives.push(path.to_owned());
        self
    }
}

/// A running peer VM with a shell on its console.
#[derive(Debug)]
pub struct Peer {
    vm: Vm,
    next_marker: u64,
    ready: bool,
}

impl Peer {
    /// Starts the peer; it boots in the background (see [`Peer::wait_ready`]).
    pub fn launch(image: &Image, launch: PeerLaunch) -> Result<Self, PeerError> {
        let dir = WorkDir::new(&launch.name)?;
        let initramfs = dir.join("peer-initramfs.img");
        write_initramfs(image, &launch.ports, &launch.archives, &initramfs)?;
        let mut builder = QemuBuilder::new()
            .binary(crate::builder::qemu_from_env())
            .accel(Accel::from_env()?)
            .memory_mib(PEER_MEMORY_MIB)
            // One vCPU: the peer only moves packets, and the host has 2 cores for both VMs.
            .smp(1)
            .direct_kernel(&image.kernel, &initramfs, PEER_APPEND);
        for nic in launch.nics {
            builder = builder.nic(nic);
        }
        let vm = Vm::start(&launch.name, builder, dir)?;
        Ok(Self {
            vm,
            next_marker: 1,
            ready: false,
        })
    }

    /// Waits for `peer-init: READY` and for the shell to answer.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), PeerError> {
        let deadline = Instant::now() + timeout;
        let outcome = Regex::new(r"^peer-init: (READY|FAILED) ?(.*)$").expect("valid regex");
        let found = self.vm.console().wait_for_line(outcome, timeout)?;
        if found.get(1) == Some("FAILED") {
            return Err(PeerError::Init {
                message: found.get(2).unwrap_or_default().to_owned(),
                tail: self.vm.console().tail(crate::console::TAIL_LINES),
            });
        }
        // Round trips with a no-op until one answers: ash may still be starting, and a
        // line typed before it reads the terminal can be lost.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(PeerError::NoShell(timeout));
            }
            match self.run_marked("true", left.min(SHELL_SYNC)) {
                Ok(_) => break,
                Err(ConsoleError::Timeout { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.ready = true;
        Ok(())
    }

    pub fn vm(&mut self) -> &mut Vm {
        &mut self.vm
    }

    pub fn console(&mut self) -> &mut Console {
        self.vm.console()
    }

    /// Runs `command` in the peer's shell; a non-zero status is an error with the output.
    pub fn shell(&mut self, command: &str) -> Result<String, PeerError> {
        let result = self.shell_status(command)?;
        if result.status == 0 {
            Ok(result.output)
        } else {
            Err(PeerError::CommandFailed {
                command: command.to_owned(),
                status: result.status,
                output: result.output,
            })
        }
    }

    pub fn shell_status(&mut self, command: &str) -> Result<ShellOutput, PeerError> {
        if command.contains('\n') {
            return Err(PeerError::MultiLine(command.to_owned()));
        }
        if !self.ready {
            self.wait_ready(timeouts::peer_ready())?;
        }
        Ok(self.run_marked(command, timeouts::console())?)
    }

    fn run_marked(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<ShellOutput, ConsoleError> {
        let n = self.next_marker;
        self.next_marker += 1;
        run_marked(self.vm.console(), n, command, timeout)
    }

    /// Marks the test as passed and stops the VM quietly.
    pub fn finish(self) {
        self.vm.finish();
    }
}

/// The appliance's initramfs, then the extra `archives`, then the archive holding
/// `/peer-init`.
fn write_initramfs(
    image: &Image,
    ports: &[PeerPort],
    archives: &[PathBuf],
    to: &std::path::Path,
) -> Result<(), PeerError> {
    let mut bytes = crate::newc::concatenate(
        std::iter::once(image.initramfs.as_path()).chain(archives.iter().map(PathBuf::as_path)),
    )
    .map_err(|(path, source)| PeerError::ReadInitramfs { path, source })?;
    let mut archive = NewcWriter::new();
    archive.file(
        "peer-init",
        0o755,
        peer_init_script(PEER_MODULES, ports).as_bytes(),
    )?;
    bytes.extend_from_slice(&archive.finish());
    std::fs::write(to, bytes).map_err(|source| PeerError::WriteInitramfs {
        path: to.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cables_pair_ports_slots_macs_and_tcp_ports() {
        let cabling = Cabling::from_parts(&[("lan1", 3), ("lan2", 4)], &[40001, 40002]);
        let second = cabling.by_appliance_port("lan2").expect("lan2");
        assert_eq!(second.peer_port, "p2");
        assert_eq!(second.peer_mac, "52:54:00:ce:e0:02");
        assert_eq!(cabling.by_peer_port("p1").map(|c| c.slot), Some(3));
        let builder = QemuBuilder::new().direct_kernel("/k", "/i", "");
        let appliance = cabling
            .appliance_nics()
            .into_iter()
            .fold(builder.clone(), QemuBuilder::nic)
            .args()
            .expect("renders");
        let peer = cabling
            .peer_nics()
            .into_iter()
            .fold(builder, QemuBuilder::nic)
            .args()
            .expect("renders");
        let appliance: Vec<String> = appliance
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let peer: Vec<String> = peer
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(appliance.contains(&"socket,id=net-lan1,listen=127.0.0.1:40001".to_owned()));
        assert!(appliance.contains(
            &"virtio-net-pci,netdev=net-lan2,id=lan2,speed=10000,duplex=full,addr=0x4".to_owned()
        ));
        assert!(peer.contains(&"socket,id=net-p2,connect=127.0.0.1:40002".to_owned()));
        assert!(peer.contains(
            &"virtio-net-pci,netdev=net-p1,id=p1,speed=10000,duplex=full,mac=52:54:00:ce:e0:01,addr=0x3"
                .to_owned()
        ));
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_tcp_ports(4).expect("loopback");
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 4, "{ports:?}");
        assert!(ports.iter().all(|&p| p != 0));
    }

    #[test]
    fn the_script_loads_modules_and_renames_ports_by_slot() {
        let script = peer_init_script(
            &["virtio_net", "bonding"],
            &[PeerPort {
                slot: 11,
                name: "p1".into(),
            }],
        );
        assert!(script.starts_with("#!/usr/bin/busybox sh\n"));
        assert!(script.contains("for m in virtio_net bonding; do"));
        assert!(script.contains("/sys/bus/pci/devices/0000:00:0b.0/virtio*/net/"));
        assert!(script.contains("ip link set \"$n\" name p1"));
        // READY only after every module and port, then the shell.
        let ready = script.find("peer-init: READY").expect("READY line");
        assert!(ready > script.find("name p1").expect("rename"));
        assert!(script.trim_end().ends_with("exec setsid cttyhack sh"));
    }
}
