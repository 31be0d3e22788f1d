//! `/proc/net/bonding/<bond>` read into a value, so tests compare the two ends of a link
//! aggregation by field instead of by grepping text.
//!
//! The file is the bonding driver's own report (`drivers/net/bonding/bond_procfs.c`): a
//! bond section, for 802.3ad an "Active Aggregator Info" block, then one block per slave
//! starting at `Slave Interface:`. Only the fields the tests use are kept; lines the parser
//! does not know are skipped, so kernel versions that add fields still parse.

/// One slave (port) of a bond.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlaveStatus {
    pub name: String,
    /// `MII Status: up`.
    pub mii_up: bool,
    pub link_failures: Option<u32>,
    /// 802.3ad: the aggregator this port is in.
    pub aggregator_id: Option<u32>,
    /// 802.3ad: the system MAC in the LACPDUs this port received from its partner
    /// (`details partner lacp pdu:` → `system mac address:`).
    pub partner_system_mac: Option<String>,
    /// 802.3ad: `port state:` in this port's own and its partner's LACPDU details (the
    /// IEEE 802.1AX bits: 0x08 synchronised, 0x10 collecting, 0x20 distributing).
    pub actor_port_state: Option<u8>,
    pub partner_port_state: Option<u8>,
}

/// Synchronised, collecting and distributing: the port carries traffic both ways.
pub const PORT_STATE_IN_USE: u8 = 0x08 | 0x10 | 0x20;

/// The bond as the driver reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BondStatus {
    /// `Bonding Mode:` as printed, e.g. `IEEE 802.3ad Dynamic link aggregation`.
    pub mode: String,
    /// active-backup: `Currently Active Slave:`.
    pub active_slave: Option<String>,
    /// 802.3ad: `System MAC address:` — what the partner sees as this end's system id.
    pub system_mac: Option<String>,
    /// 802.3ad: the active aggregator's id, port count and partner system MAC.
    pub active_aggregator_id: Option<u32>,
    pub active_aggregator_ports: Option<u32>,
    pub active_aggregator_partner_mac: Option<String>,
    pub slaves: Vec<SlaveStatus>,
}

/// Where in the file a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Bond,
    ActiveAggregator,
    Slave,
    SlaveActorPdu,
    SlavePartnerPdu,
}

impl BondStatus {
    /// Reads the text of `/proc/net/bonding/<bond>`. `None` when it holds no
    /// `Bonding Mode:` line (not that file, or an error message instead of it).
    pub fn parse(text: &str) -> Option<Self> {
        let mut status = Self::default();
        let mut section = Section::Bond;
        let mut saw_mode = false;
        for raw in text.lines() {
            let line = raw.trim();
            if line == "Active Aggregator Info:" {
                section = Section::ActiveAggregator;
                continue;
            }
            if line == "details actor lacp pdu:" {
                section = Section::SlaveActorPdu;
                continue;
            }
            if line == "details partner lacp pdu:" {
                section = Section::SlavePartnerPdu;
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            if key == "Slave Interface" {
                section = Section::Slave;
                status.slaves.push(SlaveStatus {
                    name: value.to_owned(),
                    ..SlaveStatus::default()
                });
                continue;
            }
            match (section, key) {
                (Section::Bond, "Bonding Mode") => {
                    status.mode = value.to_owned();
                    saw_mode = true;
                }
                (Section::Bond, "Currently Active Slave") => {
                    status.active_slave = Some(value.to_owned()).filter(|v| v != "None");
                }
                (Section::Bond, "System MAC address") => status.system_mac = Some(mac(value)),
                (Section::ActiveAggregator, "Aggregator ID") => {
                    status.active_aggregator_id = value.parse().ok();
                }
                (Section::ActiveAggregator, "Number of ports") => {
                    status.active_aggregator_ports = value.parse().ok();
                }
                (Section::ActiveAggregator, "Partner Mac Address") => {
                    status.active_aggregator_partner_mac = Some(mac(value));
                }
                (Section::Slave, _)
                | (Section::SlaveActorPdu, _)
                | (Section::SlavePartnerPdu, _) => {
                    let Some(slave) = status.slaves.last_mut() else {
                        continue;
                    };
                    match (section, key) {
                        (Section::Slave, "MII Status") => slave.mii_up = value == "up",
                        (Section::Slave, "Link Failure Count") => {
                            slave.link_failures = value.parse().ok();
                        }
                        (Section::Slave, "Aggregator ID") => {
                            slave.aggregator_id = value.parse().ok();
                        }
                        (Section::SlavePartnerPdu, "system mac address") => {
                            slave.partner_system_mac = Some(mac(value));
                        }
                        (Section::SlaveActorPdu, "port state") => {
                            slave.actor_port_state = value.parse().ok();
                        }
                        (Section::SlavePartnerPdu, "port state") => {
                            slave.partner_port_state = value.parse().ok();
                        }
                        _ => {}
                    }
                }
                (Section::Bond, _) | (Section::ActiveAggregator, _) => {}
            }
        }
        saw_mode.then_some(status)
    }

    pub fn slave(&self, name: &str) -> Option<&SlaveStatus> {
        self.slaves.iter().find(|s| s.name == name)
    }

    /// 802.3ad: every named port is up and in the active aggregator, which holds exactly
    /// those ports and whose partner is `partner_mac` (seen also in each port's LACPDUs),
    /// and both ends of every port are synchronised, collecting and distributing (an
    /// aggregator id is assigned a moment before the ports carry traffic).
    /// `Err` says what is missing, for a failure message.
    pub fn check_aggregated(&self, ports: &[&str], partner_mac: &str) -> Result<u32, String> {
        let partner_mac = mac(partner_mac);
        let id = self
            .active_aggregator_id
            .ok_or("no active aggregator".to_owned())?;
        let count = u32::try_from(ports.len()).unwrap_or(u32::MAX);
        if self.active_aggregator_ports != Some(count) {
            return Err(format!(
                "the active aggregator {id} has {:?} ports, not {count}",
                self.active_aggregator_ports
            ));
        }
        if self.active_aggregator_partner_mac.as_deref() != Some(partner_mac.as_str()) {
            return Err(format!(
                "the active aggregator's partner is {:?}, not {partner_mac}",
                self.active_aggregator_partner_mac
            ));
        }
        for port in ports {
            let slave = self
                .slave(port)
                .ok_or_else(|| format!("{port} is not a slave"))?;
            if !slave.mii_up {
                return Err(format!("{port} is down"));
            }
            if slave.aggregator_id != Some(id) {
                return Err(format!(
                    "{port} is in aggregator {:?}, not the active {id}",
                    slave.aggregator_id
                ));
            }
            if slave.partner_system_mac.as_deref() != Some(partner_mac.as_str()) {
                return Err(format!(
                    "{port}'s partner is {:?}, not {partner_mac}",
                    slave.partner_system_mac
                ));
            }
            for (end, state) in [
                ("actor", slave.actor_port_state),
                ("partner", slave.partner_port_state),
            ] {
                if state.is_none_or(|bits| bits & PORT_STATE_IN_USE != PORT_STATE_IN_USE) {
                    return Err(format!(
                        "{port}'s {end} port state is {state:?}, not synchronised, collecting and distributing"
                    ));
                }
            }
        }
        Ok(id)
    }
}

/// MACs compared in one spelling: lower case.
fn mac(value: &str) -> String {
    value.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Abridged from a Linux 6.12 802.3ad bond of two virtio ports.
    const LACP: &str = "Ethernet Channel Bonding Driver: v6.12.107+deb13-amd64

Bonding Mode: IEEE 802.3ad Dynamic link aggregation
Transmit Hash Policy: layer2 (0)
MII Status: up
MII Polling Interval (ms): 100

802.3ad info
LACP active: on
LACP rate: slow
System priority: 65535
System MAC address: 52:54:00:12:34:56
Active Aggregator Info:
\tAggregator ID: 1
\tNumber of ports: 2
\tActor Key: 15
\tPartner Key: 15
\tPartner Mac Address: 52:54:00:CE:E0:01

Slave Interface: lan1
MII Status: up
Speed: 10000 Mbps
Link Failure Count: 0
Aggregator ID: 1
details actor lacp pdu:
    system priority: 65535
    system mac address: 52:54:00:12:34:56
    port key: 15
    port state: 61
details partner lacp pdu:
    system priority: 65535
    system mac address: 52:54:00:ce:e0:01
    oper key: 15
    port state: 61

Slave Interface: lan2
MII Status: up
Link Failure Count: 1
Aggregator ID: 1
details actor lacp pdu:
    system mac address: 52:54:00:12:34:56
    port state: 61
details partner lacp pdu:
    system mac address: 52:54:00:ce:e0:01
    port state: 61
";

    #[test]
    fn an_aggregated_lacp_bond() {
        let status = BondStatus::parse(LACP).expect("a bond");
        assert_eq!(status.mode, "IEEE 802.3ad Dynamic link aggregation");
        assert_eq!(status.system_mac.as_deref(), Some("52:54:00:12:34:56"));
        assert_eq!(status.active_aggregator_id, Some(1));
        assert_eq!(status.active_aggregator_ports, Some(2));
        let lan2 = status.slave("lan2").expect("lan2");
        assert_eq!(lan2.link_failures, Some(1));
        assert_eq!(
            lan2.partner_system_mac.as_deref(),
            Some("52:54:00:ce:e0:01")
        );
        assert_eq!(
            status.check_aggregated(&["lan1", "lan2"], "52:54:00:CE:E0:01"),
            Ok(1)
        );
    }

    #[test]
    fn a_port_in_its_own_aggregator_is_named() {
        let split = LACP.replacen(
            "Link Failure Count: 1\nAggregator ID: 1",
            "Link Failure Count: 1\nAggregator ID: 2",
            1,
        );
        let status = BondStatus::parse(&split).expect("a bond");
        assert_eq!(
            status.check_aggregated(&["lan1", "lan2"], "52:54:00:ce:e0:01"),
            Err("lan2 is in aggregator Some(2), not the active 1".to_owned())
        );
        // Aggregated but the partner not yet distributing on lan2 (state 0x0f).
        let syncing = format!(
            "{}\n    port state: 15\n",
            LACP.trim_end()
                .trim_end_matches("port state: 61")
                .trim_end()
        );
        let status = BondStatus::parse(&syncing).expect("a bond");
        assert_eq!(
            status.slave("lan2").and_then(|s| s.partner_port_state),
            Some(15)
        );
        assert_eq!(
            status.check_aggregated(&["lan1", "lan2"], "52:54:00:ce:e0:01"),
            Err("lan2's partner port state is Some(15), not synchronised, collecting and distributing".to_owned())
        );
        let lonely = LACP.replace("\tNumber of ports: 2", "\tNumber of ports: 1");
        let status = BondStatus::parse(&lonely).expect("a bond");
        assert!(
            status
                .check_aggregated(&["lan1", "lan2"], "52:54:00:ce:e0:01")
                .is_err()
        );
    }

    #[test]
    fn active_backup_names_its_active_slave() {
        let text = "Bonding Mode: fault-tolerance (active-backup)\nPrimary Slave: p1 (primary_reselect always)\nCurrently Active Slave: p2\nMII Status: up\n\nSlave Interface: p1\nMII Status: down\nLink Failure Count: 3\n\nSlave Interface: p2\nMII Status: up\n";
        let status = BondStatus::parse(text).expect("a bond");
        assert_eq!(status.active_slave.as_deref(), Some("p2"));
        assert_eq!(status.slaves.len(), 2);
        assert!(!status.slaves[0].mii_up);
        assert_eq!(status.slaves[0].link_failures, Some(3));
        let none = text.replace("Currently Active Slave: p2", "Currently Active Slave: None");
        assert_eq!(BondStatus::parse(&none).expect("bond").active_slave, None);
    }

    #[test]
    fn not_a_bond_file() {
        assert_eq!(
            BondStatus::parse("cat: can't open '/proc/net/bonding/bond0': No such file"),
            None
        );
    }
}
