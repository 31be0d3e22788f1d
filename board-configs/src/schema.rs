//! The board file format and its validation.
//!
//! This file is compiled twice: into the crate, and into `build.rs` (through `#[path]`), so
//! that a board file that does not validate fails the build with the file and field named.
//! It must therefore depend on nothing but serde, toml, thiserror and std.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The only board file format this code understands; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// One hardware model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    pub schema_version: u32,
    /// What `cairn.board=` names; also the file's stem.
    pub id: String,
    /// The model's marketing name, shown to people.
    pub name: String,
    /// DMI product names (`/sys/class/dmi/id/product_name`) that identify this model.
    #[serde(default)]
    pub dmi_product_names: Vec<String>,
    pub cpu: Cpu,
    pub memory: Memory,
    pub lan: Lan,
    pub storage: Storage,
    pub console: Console,
    /// Modules loaded on this model at every boot, whatever coldplug finds.
    #[serde(default)]
    pub kernel_modules: Vec<String>,
    /// Driver modules kept in the image so that coldplug can load them when the hardware
    /// is present; loaded only on a matching device.
    #[serde(default)]
    pub drivers: Vec<String>,
    #[serde(default)]
    pub guests: GuestRules,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    pub model: String,
    pub sockets: u32,
    /// Physical cores over all sockets.
    pub cores: u32,
    /// Hardware threads over all sockets; what vCPU overcommit is counted against.
    pub threads: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// RAM as shipped. The running system reads the real figure from the kernel; this is
    /// what capacity planning assumes before the box is seen.
    pub installed_mib: u64,
    pub max_mib: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LanDiscovery {
    /// Ports are the NICs at the listed PCI addresses, in the listed order.
    PciPath,
    /// Ports are the physical NICs in ascending MAC order: stable on models whose
    /// on-board NICs carry consecutive MACs from the factory.
    MacOrder,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lan {
    pub discovery: LanDiscovery,
    pub ports: Vec<LanPort>,
    /// The bond modes the board's NICs and their drivers do well, by the kernel's names;
    /// absent means all Cairn offers ([`BOND_MODES`]). A model whose NIC driver cannot
    /// change its MAC while up, say, leaves out `balance-alb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bond_modes: Option<Vec<String>>,
}

/// Every bond mode Cairn offers, by the bonding driver's names.
pub const BOND_MODES: &[&str] = &["802.3ad", "active-backup", "balance-alb"];

impl Lan {
    /// The bond modes this board offers.
    pub fn offered_bond_modes(&self) -> Vec<&str> {
        match &self.bond_modes {
            Some(modes) => modes.iter().map(String::as_str).collect(),
            None => BOND_MODES.to_vec(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanPort {
    /// Stable name given at boot, `lan1`…`lanN`.
    pub name: String,
    pub speed_mbps: u32,
    /// PCI address (`0000:00:03.0`); required with `pci-path` discovery, refused otherwise.
    #[serde(default)]
    pub pci_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    pub drive_bays: u32,
    /// M.2 or other SSD slots meant for cache.
    #[serde(default)]
    pub m2_slots: u32,
    /// Which drive sits where, by the drive's `/dev/disk/by-path/` name (the controller port
    /// a bay is wired to does not change when a drive is swapped, unlike its serial). Empty:
    /// the board's bays are not told apart and drives show without one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<DriveSlot>,
}

/// One bay or M.2 slot and the port it is wired to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveSlot {
    /// What people see on the box: `bay1`…, `m2-1`….
    pub name: String,
    /// The entry under `/dev/disk/by-path/` of a drive in this slot.
    pub by_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Console {
    /// Device under /dev, e.g. `ttyS0`.
    pub device: String,
    pub baud: u32,
}

/// Memory and vCPU reservation rules; the defaults are the white paper's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuestRules {
    /// vCPUs that may be created per hardware thread (the white paper: 2, or 4 on models
    /// that allow it).
    pub vcpus_per_thread: u32,
    /// Kept for the host when it has `host_reserve_threshold_mib` or less.
    pub host_reserve_small_mib: u64,
    pub host_reserve_threshold_mib: u64,
    /// Kept for the host, in percent of RAM, above the threshold.
    pub host_reserve_large_percent: u32,
    pub per_guest_overhead_mib: u64,
    pub per_vcpu_overhead_mib: u64,
    pub max_disks_per_guest: u32,
}

impl Default for GuestRules {
    fn default() -> Self {
        // "1.5 GB when host memory is 15 GB or smaller, else 10 % of RAM; 250 MB per VM;
        // 80 MB per vCPU; at most 8 virtual disks" (white paper, CPU and Memory
        // Requirements). Its GB are read as GiB, as its own 10 %-of-16-GB example does.
        GuestRules {
            vcpus_per_thread: 2,
            host_reserve_small_mib: 1536,
            host_reserve_threshold_mib: 15 * 1024,
            host_reserve_large_percent: 10,
            per_guest_overhead_mib: 250,
            per_vcpu_overhead_mib: 80,
            max_disks_per_guest: 8,
        }
    }
}

/// A board file that cannot be used, with the field that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoardError {
    #[error("{file}: not a valid board file: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: String,
        field: String,
        message: String,
    },
}

/// Parses and validates one board file; `file` is its name, used in messages.
pub fn parse_board(file: &str, text: &str) -> Result<Board, BoardError> {
    let board: Board = toml::from_str(text).map_err(|error| BoardError::Parse {
        file: file.to_string(),
        message: error.to_string().trim().replace('\n', " "),
    })?;
    board.validate(file)?;
    Ok(board)
}

const BAUD_RATES: [u32; 8] = [9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600];

impl Board {
    /// Checks what serde cannot: ranges, consistency between fields, name formats.
    pub fn validate(&self, file: &str) -> Result<(), BoardError> {
        let invalid = |field: &str, message: String| BoardError::Invalid {
            file: file.to_string(),
            field: field.to_string(),
            message,
        };
        if self.schema_version != SCHEMA_VERSION {
            return Err(invalid(
                "schema_version",
                format!("is {} (expected {SCHEMA_VERSION})", self.schema_version),
            ));
        }
        if !is_identifier(&self.id) {
            return Err(invalid(
                "id",
                format!(
                    "\"{}\" is not a board id (expected lower-case letters, digits, '-' and '_')",
                    self.id
                ),
            ));
        }
        let stem = file
            .rsplit('/')
            .next()
            .unwrap_or(file)
            .trim_end_matches(".toml");
        if stem != self.id && file.ends_with(".toml") {
            return Err(invalid(
                "id",
                format!(
                    "is \"{}\" but the file is named {stem}.toml (they must match)",
                    self.id
                ),
            ));
        }
        if self.name.trim().is_empty() {
            return Err(invalid("name", "is empty".to_string()));
        }
        self.validate_cpu(&invalid)?;
        if self.memory.installed_mib == 0 || self.memory.installed_mib > self.memory.max_mib {
            return Err(invalid(
                "memory.installed_mib",
                format!(
                    "is {} (expected more than 0 and at most memory.max_mib = {})",
                    self.memory.installed_mib, self.memory.max_mib
                ),
            ));
        }
        self.validate_lan(&invalid)?;
        if self.storage.drive_bays == 0 && self.storage.m2_slots == 0 && self.id != "generic" {
            return Err(invalid(
                "storage.drive_bays",
                "is 0 and there are no m2_slots (a NAS needs somewhere to put drives)".to_string(),
            ));
        }
        self.validate_slots(&invalid)?;
        if !is_tty_name(&self.console.device) {
            return Err(invalid(
                "console.device",
                format!(
                    "\"{}\" is not a serial device name (expected e.g. ttyS0)",
                    self.console.device
                ),
            ));
        }
        if !BAUD_RATES.contains(&self.console.baud) {
            return Err(invalid(
                "console.baud",
                format!("is {} (expected one of {BAUD_RATES:?})", self.console.baud),
            ));
        }
        for (list, modules) in [
            ("kernel_modules", &self.kernel_modules),
            ("drivers", &self.drivers),
        ] {
            for (index, module) in modules.iter().enumerate() {
                if !is_module_name(module) {
                    return Err(invalid(
                        &format!("{list}[{index}]"),
                        format!(
                            "\"{module}\" is not a module name (expected letters, digits, '_' and '-')"
                        ),
                    ));
                }
            }
        }
        self.guests.validate(&invalid)
    }

    fn validate_slots(
        &self,
        invalid: &dyn Fn(&str, String) -> BoardError,
    ) -> Result<(), BoardError> {
        let slots = &self.storage.slots;
        let room = self.storage.drive_bays + self.storage.m2_slots;
        if slots.len() > room as usize {
            return Err(invalid(
                "storage.slots",
                format!(
                    "lists {} slots (expected at most drive_bays + m2_slots = {room})",
                    slots.len()
                ),
            ));
        }
        for (index, slot) in slots.iter().enumerate() {
            let earlier = &slots[..index];
            if !is_identifier(&slot.name) || earlier.iter().any(|s| s.name == slot.name) {
                return Err(invalid(
                    &format!("storage.slots[{index}].name"),
                    format!(
                        "\"{}\" is not a new slot name (expected e.g. bay1, unique)",
                        slot.name
                    ),
                ));
            }
            if slot.by_path.is_empty()
                || slot.by_path.contains('/')
                || earlier.iter().any(|s| s.by_path == slot.by_path)
            {
                return Err(invalid(
                    &format!("storage.slots[{index}].by_path"),
                    format!(
                        "\"{}\" is not a new /dev/disk/by-path/ entry name (expected e.g. pci-0000:00:17.0-ata-1, unique)",
                        slot.by_path
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_cpu(&self, invalid: &dyn Fn(&str, String) -> BoardError) -> Result<(), BoardError> {
        let cpu = &self.cpu;
        if cpu.sockets == 0 {
            return Err(invalid(
                "cpu.sockets",
                "is 0 (expected at least 1)".to_string(),
            ));
        }
        if cpu.cores == 0 || !cpu.cores.is_multiple_of(cpu.sockets) {
            return Err(invalid(
                "cpu.cores",
                format!(
                    "is {} (expected a positive multiple of cpu.sockets = {})",
                    cpu.cores, cpu.sockets
                ),
            ));
        }
        if cpu.threads < cpu.cores || !cpu.threads.is_multiple_of(cpu.cores) {
            return Err(invalid(
                "cpu.threads",
                format!(
                    "is {} (expected cpu.cores = {} or a multiple of it, with SMT)",
                    cpu.threads, cpu.cores
                ),
            ));
        }
        Ok(())
    }

    fn validate_lan(&self, invalid: &dyn Fn(&str, String) -> BoardError) -> Result<(), BoardError> {
        for (index, mode) in self.lan.bond_modes.iter().flatten().enumerate() {
            if !BOND_MODES.contains(&mode.as_str()) {
                return Err(invalid(
                    &format!("lan.bond_modes[{index}]"),
                    format!(
                        "\"{mode}\" is not a bond mode Cairn offers (expected some of: {})",
                        BOND_MODES.join(", ")
                    ),
                ));
            }
        }
        let mut names = BTreeSet::new();
        for (index, port) in self.lan.ports.iter().enumerate() {
            let expected = format!("lan{}", index + 1);
            if port.name != expected {
                return Err(invalid(
                    &format!("lan.ports[{index}].name"),
                    format!(
                        "is \"{}\" (expected \"{expected}\": ports are named lan1…lanN in order)",
                        port.name
                    ),
                ));
            }
            names.insert(port.name.as_str());
            if port.speed_mbps == 0 {
                return Err(invalid(
                    &format!("lan.ports[{index}].speed_mbps"),
                    "is 0 (expected the port's link speed, e.g. 1000)".to_string(),
                ));
            }
            match (self.lan.discovery, &port.pci_path) {
                (LanDiscovery::PciPath, None) => {
                    return Err(invalid(
                        &format!("lan.ports[{index}].pci_path"),
                        "is missing (required with discovery = \"pci-path\")".to_string(),
                    ));
                }
                (LanDiscovery::PciPath, Some(path)) if !is_pci_address(path) => {
                    return Err(invalid(
                        &format!("lan.ports[{index}].pci_path"),
                        format!("\"{path}\" is not a PCI address (expected e.g. 0000:00:03.0)"),
                    ));
                }
                (LanDiscovery::MacOrder, Some(_)) => {
                    return Err(invalid(
                        &format!("lan.ports[{index}].pci_path"),
                        "is set but discovery is \"mac-order\" (remove it or use \"pci-path\")"
                            .to_string(),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl GuestRules {
    fn validate(&self, invalid: &dyn Fn(&str, String) -> BoardError) -> Result<(), BoardError> {
        if !(1..=4).contains(&self.vcpus_per_thread) {
            return Err(invalid(
                "guests.vcpus_per_thread",
                format!("is {} (expected 1 to 4)", self.vcpus_per_thread),
            ));
        }
        if !(1..=50).contains(&self.host_reserve_large_percent) {
            return Err(invalid(
                "guests.host_reserve_large_percent",
                format!("is {} (expected 1 to 50)", self.host_reserve_large_percent),
            ));
        }
        if self.host_reserve_small_mib == 0 {
            return Err(invalid(
                "guests.host_reserve_small_mib",
                "is 0 (the host always needs memory of its own)".to_string(),
            ));
        }
        if !(1..=64).contains(&self.max_disks_per_guest) {
            return Err(invalid(
                "guests.max_disks_per_guest",
                format!("is {} (expected 1 to 64)", self.max_disks_per_guest),
            ));
        }
        Ok(())
    }
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn is_module_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_tty_name(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("tty") else {
        return false;
    };
    let letters = rest.trim_end_matches(|c: char| c.is_ascii_digit());
    !letters.is_empty()
        && letters.len() < rest.len()
        && letters.chars().all(|c| c.is_ascii_alphabetic())
}

pub fn is_pci_address(text: &str) -> bool {
    // domain:bus:device.function, all hex: 0000:00:03.0
    let parts: Vec<&str> = text.split([':', '.']).collect();
    let widths = [4, 2, 2, 1];
    parts.len() == widths.len()
        && parts
            .iter()
            .zip(widths)
            .all(|(part, width)| part.len() == width && part.chars().all(|c| c.is_ascii_hexdigit()))
}
