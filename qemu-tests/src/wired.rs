//! The appliance and a peer VM cabled port to port, with the steps the bonding tests and
//! `make bench` share: bond both ends, wait until the ends agree, pull a cable under a
//! steady stream and measure the gap, push bulk data through the bond.
//!
//! Addresses live only inside the two guests (10.42.0.0/24 on the bonds). The stream is
//! busybox `ping -i 0.01` from the peer: 100 echo requests a second from a timer, so each
//! unanswered one is 10 ms without traffic ([`crate::ping_log`]). Which cable carries it
//! is read from the appliance ports' receive counters, not assumed: with 802.3ad the
//! peer's transmit hash picks the port.

use std::time::{Duration, Instant};

use thiserror::Error;

use crate::appliance::{Appliance, ApplianceError, Launch, direct_kernel_append};
use crate::bond_status::BondStatus;
use crate::image::Image;
use crate::peer::{Cable, Cabling, Peer, PeerError, PeerLaunch};
use crate::ping_log::PingLog;
use crate::qmp::QmpError;
use crate::timeouts;
use crate::vm::VmError;

pub const BOARD: &str = "qemu-x86_64";
pub const APPLIANCE_ADDR: &str = "10.42.0.1";
pub const PEER_ADDR: &str = "10.42.0.2";
/// The stream's interval: fine enough to see a 100 ms miimon failover, coarse enough for
/// a TCG guest to keep up.
pub const STREAM_INTERVAL_MS: f64 = 10.0;
/// Echo requests per failover sample: 8 s of stream, so a pull a few console round
/// trips after the start still has seconds of stream after it.
const STREAM_COUNT: u32 = 800;
/// Packets a port must have received before the stream counts as flowing on it.
const STREAM_FLOWING: u64 = 50;
/// How often the harness looks again while waiting for the guests to agree.
const POLL: Duration = Duration::from_millis(500);
/// The MII polling interval both ends use: the Cairn document's `miimon_ms`.
pub const MIIMON_MS: u32 = 100;
/// Bulk transfer for the throughput figure: large against the socket and pipe buffers
/// (a few MB) that dd's clock does not see drain.
const BULK_MIB: u32 = 64;
const BULK_PORT: u16 = 5001;
/// Launches with freshly picked cable ports before giving up (see [`WiredPair::boot`]).
const PORT_TRIES: u32 = 3;

#[derive(Debug, Error)]
pub enum WiredError {
    #[error("Appliance failed")]
    Appliance(#[from] ApplianceError),
    #[error("Peer failed")]
    Peer(#[from] PeerError),
    #[error("Cannot pull or plug a cable")]
    Qmp(#[from] QmpError),
    #[error("Timed out after {waited:?} waiting for {what}; last seen:\n{last}")]
    Timeout {
        what: String,
        waited: Duration,
        last: String,
    },
    #[error("Unexpected output of {what}: {output:?}")]
    Parse { what: &'static str, output: String },
}

/// The bond modes the tests run on both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BondMode {
    Lacp,
    ActiveBackup,
}

impl BondMode {
    /// The name both Cairn's document and the bonding driver's sysfs take.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lacp => "802.3ad",
            Self::ActiveBackup => "active-backup",
        }
    }
}

/// The appliance's desired-state document for a bond of both ports in `mode`, with no
/// address (the test puts one on inside the guest). Active-backup prefers lan1, as the
/// peer prefers p1: with no preference the two ends may pick different cables, and an
/// active-backup bond drops what arrives on its backup port.
pub fn bond_document(mode: BondMode) -> Vec<String> {
    let mut lines = vec![
        "version = 1".to_owned(),
        "[[network.bonds]]".to_owned(),
        "name = \"bond0\"".to_owned(),
        format!("mode = \"{}\"", mode.name()),
        "members = [\"lan1\", \"lan2\"]".to_owned(),
        format!("miimon_ms = {MIIMON_MS}"),
    ];
    if mode == BondMode::ActiveBackup {
        lines.push("primary = \"lan1\"".to_owned());
    }
    lines
}

/// The peer's bond0 in `mode` over p1 and p2 through sysfs (busybox `ip` cannot create
/// bonds), from whatever state it was in. A subshell with `set -e`: the first failure
/// stops it without ending the console's shell.
pub fn peer_bond_command(mode: BondMode) -> String {
    let b = "/sys/class/net/bond0/bonding";
    let primary = match mode {
        BondMode::ActiveBackup => format!(" echo p1 > {b}/primary;"),
        BondMode::Lacp => String::new(),
    };
    format!(
        "(set -e; ip addr flush dev bond0; ip link set bond0 down; \
         for s in $(cat {b}/slaves); do echo -$s > {b}/slaves; done; \
         echo {mode} > {b}/mode; echo {MIIMON_MS} > {b}/miimon; \
         for p in p1 p2; do ip link set $p down; echo +$p > {b}/slaves; done;{primary} \
         ip link set bond0 up; ip addr add {PEER_ADDR}/24 dev bond0)",
        mode = mode.name(),
    )
}

/// Writes `lines` to `path` in the appliance with one `printf`.
pub fn write_document(
    app: &mut Appliance,
    path: &str,
    lines: &[String],
) -> Result<(), ApplianceError> {
    let quoted: Vec<String> = lines.iter().map(|line| format!("'{line}'")).collect();
    app.shell(&format!("printf '%s\\n' {} > {path}", quoted.join(" ")))?;
    Ok(())
}

/// Which cable [`WiredPair::failover_pulling`] pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    /// The one the peer's stream arrives on (the active port in active-backup).
    Busiest,
    /// The cable at this index in [`Cabling::cables`]: with 802.3ad both ports are
    /// active, and the gap differs by port.
    Cable(usize),
}

/// One cable pull under the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverSample {
    pub mode: BondMode,
    /// The appliance port whose cable was pulled: the one the stream arrived on.
    pub pulled: String,
    /// Echo requests in a row without an answer.
    pub lost: u32,
    pub gap_ms: f64,
    /// Answers after the outage: the stream went on.
    pub answered_after: usize,
    /// Packets the other appliance port received between the pull and the stream's end.
    pub other_port_rx: u64,
    pub transmitted: Option<u32>,
    pub received: Option<u32>,
}

/// The appliance and the peer, cabled.
#[derive(Debug)]
pub struct WiredPair {
    pub appliance: Appliance,
    pub peer: Peer,
    pub cabling: Cabling,
}

impl WiredPair {
    /// Boots the appliance (its ports listening) and then the peer (connecting), and waits
    /// for both. `name` labels both VMs.
    pub fn boot(image: &Image, name: &str) -> Result<Self, WiredError> {
        Self::boot_with_archives(image, name, &[])
    }

    /// [`WiredPair::boot`] with extra newc archives in the peer's root (test tools).
    pub fn boot_with_archives(
        image: &Image,
        name: &str,
        peer_archives: &[std::path::PathBuf],
    ) -> Result<Self, WiredError> {
        let mut tries = 1;
        let (mut appliance, cabling) = loop {
            let cabling = Cabling::qemu_x86_64()?;
            let launch = Launch::direct_kernel_append(name, &direct_kernel_append(BOARD))
                .nics(cabling.appliance_nics());
            match Appliance::launch(image, launch) {
                Ok(appliance) => break (appliance, cabling),
                // Another process took a port between our pick and QEMU's bind: QEMU
                // exits at once, so picking again costs nothing.
                Err(e) if tries < PORT_TRIES && port_taken(&e) => tries += 1,
                Err(e) => return Err(e.into()),
            }
        };
        let launch = peer_archives.iter().fold(
            PeerLaunch::new(&format!("{name}-peer"), &cabling),
            |launch, archive| launch.archive(archive),
        );
        let mut peer = Peer::launch(image, launch)?;
        peer.wait_ready(timeouts::peer_ready())?;
        appliance.wait_ready(timeouts::ready_direct())?;
        // Kernel messages (bonding's link changes) on ttyS0 would land inside command
        // output; the kernel log still has them (`dmesg`).
        appliance.shell("dmesg -n 1")?;
        Ok(Self {
            appliance,
            peer,
            cabling,
        })
    }

    /// Both ends bonded in `mode` with their addresses, and agreeing (see
    /// [`WiredPair::wait_healthy`]).
    pub fn bond_both(&mut self, mode: BondMode) -> Result<(BondStatus, BondStatus), WiredError> {
        self.bond_both_with(mode, &[])
    }

    /// [`WiredPair::bond_both`] with more lines in the appliance's document (a VLAN on
    /// the bond, say).
    pub fn bond_both_with(
        &mut self,
        mode: BondMode,
        extra_document_lines: &[&str],
    ) -> Result<(BondStatus, BondStatus), WiredError> {
        let mut document = bond_document(mode);
        document.extend(extra_document_lines.iter().map(|line| (*line).to_owned()));
        write_document(&mut self.appliance, "/tmp/bond.toml", &document)?;
        self.appliance
            .shell("cairnctl config apply /tmp/bond.toml")?;
        self.appliance.shell(&format!(
            "busybox ip addr flush dev bond0 && busybox ip addr add {APPLIANCE_ADDR}/24 dev bond0"
        ))?;
        self.peer.shell(&peer_bond_command(mode))?;
        self.wait_healthy(mode)
    }

    /// Both bonds' `/proc/net/bonding/bond0`.
    pub fn bond_status(&mut self) -> Result<(BondStatus, BondStatus), WiredError> {
        let command = "cat /proc/net/bonding/bond0";
        let app_text = self.appliance.shell(command)?;
        let appliance = BondStatus::parse(&app_text).ok_or(WiredError::Parse {
            what: "the appliance's /proc/net/bonding/bond0",
            output: app_text,
        })?;
        let peer_text = self.peer.shell(command)?;
        let peer = BondStatus::parse(&peer_text).ok_or(WiredError::Parse {
            what: "the peer's /proc/net/bonding/bond0",
            output: peer_text,
        })?;
        Ok((appliance, peer))
    }

    /// Waits until the two bonds agree: for 802.3ad one aggregator of both ports on each
    /// side with the other side as partner; for active-backup every port up and both ends
    /// on the first cable.
    pub fn wait_healthy(&mut self, mode: BondMode) -> Result<(BondStatus, BondStatus), WiredError> {
        let timeout = timeouts::lacp_aggregation();
        let started = Instant::now();
        loop {
            let (appliance, peer) = self.bond_status()?;
            let verdict = match mode {
                BondMode::Lacp => check_lacp_pair(&appliance, &peer),
                BondMode::ActiveBackup => check_active_backup_pair(&appliance, &peer),
            };
            match verdict {
                Ok(()) => return Ok((appliance, peer)),
                Err(why) if started.elapsed() >= timeout => {
                    return Err(WiredError::Timeout {
                        what: format!("both {} bonds to agree ({why})", mode.name()),
                        waited: started.elapsed(),
                        last: format!("appliance: {appliance:#?}\npeer: {peer:#?}"),
                    });
                }
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// Pulls or plugs `cable` at both ends.
    pub fn set_link(&mut self, cable: &Cable, up: bool) -> Result<(), WiredError> {
        Cabling::set_link(cable, self.appliance.vm(), self.peer.vm(), up)?;
        Ok(())
    }

    /// `rx_packets` of the appliance's ports, in cable order.
    pub fn appliance_rx(&mut self) -> Result<Vec<u64>, WiredError> {
        let ports: Vec<String> = self
            .cabling
            .cables()
            .iter()
            .map(|c| format!("/sys/class/net/{}/statistics/rx_packets", c.appliance_port))
            .collect();
        let text = self.appliance.shell(&format!("cat {}", ports.join(" ")))?;
        parse_counters(&text, ports.len()).ok_or(WiredError::Parse {
            what: "the appliance ports' rx_packets",
            output: text,
        })
    }

    /// Starts the stream from the peer, pulls the cable it arrives on, waits for the stream
    /// to end, plugs the cable back and waits for both bonds to agree again.
    pub fn failover(&mut self, mode: BondMode) -> Result<FailoverSample, WiredError> {
        self.failover_pulling(mode, Pull::Busiest)
    }

    /// [`WiredPair::failover`], pulling the cable `pull` names.
    pub fn failover_pulling(
        &mut self,
        mode: BondMode,
        pull: Pull,
    ) -> Result<FailoverSample, WiredError> {
        let before = self.appliance_rx()?;
        self.peer.shell(&format!(
            "rm -f /tmp/stream.log; (ping -i 0.01 -c {STREAM_COUNT} -W 5 {APPLIANCE_ADDR} > /tmp/stream.log 2>&1 &)"
        ))?;
        let started = Instant::now();
        let (active, at_pull) = loop {
            let now = self.appliance_rx()?;
            let deltas: Vec<u64> = now
                .iter()
                .zip(&before)
                .map(|(n, b)| n.saturating_sub(*b))
                .collect();
            let busiest = deltas
                .iter()
                .enumerate()
                .max_by_key(|(_, d)| **d)
                .map(|(i, d)| (i, *d));
            if let Some((index, delta)) = busiest
                && delta >= STREAM_FLOWING
            {
                let index = match pull {
                    Pull::Busiest => index,
                    Pull::Cable(chosen) => chosen,
                };
                break (index, now);
            }
            if started.elapsed() >= timeouts::console() {
                return Err(WiredError::Timeout {
                    what: "the peer's stream to reach the appliance".to_owned(),
                    waited: started.elapsed(),
                    last: format!("rx_packets before {before:?}, now {now:?}"),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let cable = self
            .cabling
            .cables()
            .get(active)
            .cloned()
            .ok_or(WiredError::Parse {
                what: "the cable to pull (no such cable)",
                output: format!("{pull:?} of {:?}", self.cabling),
            })?;
        self.set_link(&cable, false)?;

        let stream_end = timeouts::scaled(Duration::from_secs(60));
        let waited = Instant::now();
        while self.peer.shell_status("pidof ping")?.status == 0 {
            if waited.elapsed() >= stream_end {
                self.set_link(&cable, true)?;
                return Err(WiredError::Timeout {
                    what: "the peer's ping stream to end".to_owned(),
                    waited: waited.elapsed(),
                    last: self.peer.shell("tail -3 /tmp/stream.log")?,
                });
            }
            std::thread::sleep(POLL);
        }
        let after = self.appliance_rx()?;
        let text = self.peer.shell(
            "grep -o 'seq=[0-9]*' /tmp/stream.log | tr '\\n' ' '; echo; grep 'packets transmitted' /tmp/stream.log",
        )?;
        self.set_link(&cable, true)?;
        self.wait_healthy(mode)?;

        let log = PingLog::parse(&text);
        let other_port_rx = after
            .iter()
            .zip(&at_pull)
            .enumerate()
            .filter(|(i, _)| *i != active)
            .map(|(_, (a, p))| a.saturating_sub(*p))
            .sum();
        let (lost, answered_after) = match log.longest_outage() {
            Some(outage) => (outage.lost, log.answered_after(outage.after_seq)),
            // Nothing lost between the first and the last answer.
            None => (0, log.answered.len()),
        };
        Ok(FailoverSample {
            mode,
            pulled: cable.appliance_port.clone(),
            lost,
            gap_ms: f64::from(lost) * STREAM_INTERVAL_MS,
            answered_after,
            other_port_rx,
            transmitted: log.transmitted,
            received: log.received,
        })
    }

    /// One TCP stream of [`BULK_MIB`] MiB from the peer to the appliance over the bonds,
    /// in Mbit/s: the bytes the appliance counted over the seconds the peer's sender ran
    /// (`/proc/uptime`, 10 ms steps; busybox `dd` here prints no timing line).
    ///
    /// Busybox `nc` closes the connection when its stdin ends, on both ends: the sender's
    /// stdin ending is the end of the data, but the listener's must stay open (`sleep |`)
    /// or it hangs up after the first few kilobytes.
    pub fn throughput_mbit_s(&mut self) -> Result<f64, WiredError> {
        self.appliance.shell(&format!(
            "rm -f /tmp/bulk.count; (sleep 600 | busybox nc -l -p {BULK_PORT} | busybox wc -c > /tmp/bulk.count &)"
        ))?;
        self.poll_appliance(
            &format!("busybox netstat -ltn | grep -q ':{BULK_PORT} '"),
            &format!("nc to listen on port {BULK_PORT} in the appliance"),
            timeouts::console(),
        )?;
        self.peer.shell(&format!(
            "rm -f /tmp/bulk.time; ( (s=$(cut -d' ' -f1 /proc/uptime); \
             dd if=/dev/zero bs=1M count={BULK_MIB} 2>/dev/null | nc {APPLIANCE_ADDR} {BULK_PORT}; \
             echo \"$s $(cut -d' ' -f1 /proc/uptime)\" > /tmp/bulk.time) > /dev/null 2>&1 &)"
        ))?;
        let bulk_deadline = timeouts::scaled(Duration::from_secs(300));
        let started = Instant::now();
        while self.peer.shell_status("test -s /tmp/bulk.time")?.status != 0 {
            if started.elapsed() >= bulk_deadline {
                return Err(WiredError::Timeout {
                    what: "the peer to send the bulk data".to_owned(),
                    waited: started.elapsed(),
                    last: self.peer.shell("ps")?,
                });
            }
            std::thread::sleep(POLL);
        }
        let times = self.peer.shell("cat /tmp/bulk.time")?;
        self.poll_appliance(
            "test -s /tmp/bulk.count",
            "the appliance to count the bulk data",
            timeouts::console(),
        )?;
        let count = self.appliance.shell("cat /tmp/bulk.count")?;
        let bytes: u64 = count.trim().parse().map_err(|_| WiredError::Parse {
            what: "the appliance's byte count",
            output: count.clone(),
        })?;
        let expected = u64::from(BULK_MIB) << 20;
        if bytes != expected {
            return Err(WiredError::Parse {
                what: "the appliance's byte count (not every byte arrived)",
                output: format!("{bytes} of {expected}"),
            });
        }
        bulk_rate_mbit_s(bytes, &times).ok_or(WiredError::Parse {
            what: "the sender's start and end times",
            output: times,
        })
    }

    /// Runs `command` in the appliance until it exits 0, up to `timeout`.
    fn poll_appliance(
        &mut self,
        command: &str,
        what: &str,
        timeout: Duration,
    ) -> Result<(), WiredError> {
        let started = Instant::now();
        loop {
            let result = self.appliance.shell_status(command)?;
            if result.status == 0 {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(WiredError::Timeout {
                    what: what.to_owned(),
                    waited: started.elapsed(),
                    last: result.output,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// [`WiredPair::throughput_mbit_s`] with only the first cable plugged: one port's
    /// worth, to compare with the bond's. Plugs the second cable back and waits for both
    /// bonds to agree again.
    pub fn throughput_one_port_mbit_s(&mut self, mode: BondMode) -> Result<f64, WiredError> {
        let cable = self
            .cabling
            .cables()
            .get(1)
            .cloned()
            .ok_or(WiredError::Parse {
                what: "the cabling (a second cable)",
                output: format!("{:?}", self.cabling),
            })?;
        self.set_link(&cable, false)?;
        let started = Instant::now();
        loop {
            let (appliance, peer) = self.bond_status()?;
            let down =
                |status: &BondStatus, port: &str| status.slave(port).is_some_and(|s| !s.mii_up);
            if down(&appliance, &cable.appliance_port) && down(&peer, &cable.peer_port) {
                break;
            }
            if started.elapsed() >= timeouts::console() {
                self.set_link(&cable, true)?;
                return Err(WiredError::Timeout {
                    what: format!("both bonds to see {}'s cable pulled", cable.appliance_port),
                    waited: started.elapsed(),
                    last: format!("appliance: {appliance:#?}\npeer: {peer:#?}"),
                });
            }
            std::thread::sleep(POLL);
        }
        let measured = self.throughput_mbit_s();
        self.set_link(&cable, true)?;
        let rate = measured?;
        self.wait_healthy(mode)?;
        Ok(rate)
    }

    /// Marks the test as passed; both VMs stop quietly.
    pub fn finish(self) {
        self.appliance.finish();
        self.peer.finish();
    }
}

/// Whether QEMU refused to start because a cable's TCP port was taken.
fn port_taken(error: &ApplianceError) -> bool {
    matches!(
        error,
        ApplianceError::Vm(VmError::ExitedEarly { stderr, .. }) if stderr.contains("Address already in use")
    )
}

/// 802.3ad: each end has one aggregator of both its ports, whose partner is the other
/// end's system MAC.
pub fn check_lacp_pair(appliance: &BondStatus, peer: &BondStatus) -> Result<(), String> {
    let app_mac = appliance
        .system_mac
        .as_deref()
        .ok_or("the appliance shows no system MAC")?;
    let peer_mac = peer
        .system_mac
        .as_deref()
        .ok_or("the peer shows no system MAC")?;
    appliance
        .check_aggregated(&["lan1", "lan2"], peer_mac)
        .map_err(|e| format!("appliance: {e}"))?;
    peer.check_aggregated(&["p1", "p2"], app_mac)
        .map_err(|e| format!("peer: {e}"))?;
    Ok(())
}

/// Active-backup: every port up, both ends on the preferred first cable.
pub fn check_active_backup_pair(appliance: &BondStatus, peer: &BondStatus) -> Result<(), String> {
    for (side, status, first) in [("appliance", appliance, "lan1"), ("peer", peer, "p1")] {
        if let Some(down) = status.slaves.iter().find(|s| !s.mii_up) {
            return Err(format!("{side}: {} is down", down.name));
        }
        if status.slaves.len() != 2 {
            return Err(format!("{side}: {} ports, not 2", status.slaves.len()));
        }
        if status.active_slave.as_deref() != Some(first) {
            return Err(format!(
                "{side}: active port {:?}, not {first}",
                status.active_slave
            ));
        }
    }
    Ok(())
}

/// `count` whitespace-separated counters.
fn parse_counters(text: &str, count: usize) -> Option<Vec<u64>> {
    let values: Vec<u64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    (values.len() == count).then_some(values)
}

/// Mbit/s for `bytes` sent between the two `/proc/uptime` readings in `times` (`"s e"`).
pub fn bulk_rate_mbit_s(bytes: u64, times: &str) -> Option<f64> {
    let mut words = times.split_whitespace().map(str::parse::<f64>);
    let (start, end) = (words.next()?.ok()?, words.next()?.ok()?);
    let seconds = end - start;
    // u64 → f64 loses nothing below 2^53 bytes.
    (seconds > 0.0).then(|| bytes as f64 * 8.0 / seconds / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_peer_commands_per_mode() {
        let lacp = bond_document(BondMode::Lacp).join("\n");
        assert!(lacp.contains("mode = \"802.3ad\""), "{lacp}");
        assert!(!lacp.contains("primary"), "{lacp}");
        let ab = bond_document(BondMode::ActiveBackup).join("\n");
        assert!(ab.contains("primary = \"lan1\""), "{ab}");
        assert!(ab.contains("miimon_ms = 100"), "{ab}");
        let peer = peer_bond_command(BondMode::ActiveBackup);
        assert!(peer.contains("echo active-backup > /sys/class/net/bond0/bonding/mode"));
        assert!(peer.contains("echo p1 > /sys/class/net/bond0/bonding/primary"));
        assert!(!peer.contains('\n'));
        assert!(!peer_bond_command(BondMode::Lacp).contains("primary"));
    }

    #[test]
    fn counters_and_dd_reports() {
        assert_eq!(parse_counters("12\n34\n", 2), Some(vec![12, 34]));
        assert_eq!(parse_counters("12\n", 2), None);
        assert_eq!(parse_counters("cat: no such file\n", 1), None);
        let rate = bulk_rate_mbit_s(67_108_864, "100.50 102.50\n").expect("a rate");
        assert!((rate - 268.435_456).abs() < 1e-6, "{rate}");
        assert_eq!(bulk_rate_mbit_s(1, "100.5 100.5"), None);
        assert_eq!(bulk_rate_mbit_s(1, "cat: no such file"), None);
    }

    #[test]
    fn active_backup_pair_wants_both_on_the_first_cable() {
        let status = |active: &str, first: &str, second: &str| {
            BondStatus::parse(&format!(
                "Bonding Mode: fault-tolerance (active-backup)\nCurrently Active Slave: {active}\n\nSlave Interface: {first}\nMII Status: up\n\nSlave Interface: {second}\nMII Status: up\n"
            ))
            .expect("a bond")
        };
        let app = status("lan1", "lan1", "lan2");
        assert_eq!(
            check_active_backup_pair(&app, &status("p1", "p1", "p2")),
            Ok(())
        );
        assert_eq!(
            check_active_backup_pair(&app, &status("p2", "p1", "p2")),
            Err("peer: active port Some(\"p2\"), not p1".to_owned())
        );
    }
}
