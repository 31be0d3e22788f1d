//! The guests part of the desired state: virtual machines run by cloud-hypervisor.
//!
//! A guest is its size (vCPUs, memory), where its disks are (raw files in its own subvolume
//! on a volume, or absolute paths: a whole block device or a raw file), its NICs (a tap on a
//! vSwitch, with a MAC and an optional VLAN), how it boots (a kernel with an initramfs, or
//! the firmware from its first disk), whether and when it starts at boot, reserved CPU
//! threads, a CPU weight and what happens when it crashes. Whether the board has room for
//! it is admission (`guests::admission`), a pure check against the board config made when
//! it starts, not a document rule; whether its files exist is checked at start too.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Declared;
use super::document;
use super::error::{Errors, FieldError, Invalid, expected_one_of};
use super::values::{
    AutostartDelaySeconds, AutostartOrder, CpuWeight, DiskSizeMib, GuestFile, InterfaceName,
    MacAddress, MemoryMib, ObjectName, ThreadIndex, VcpuCount, VlanId,
};

/// Virtual disks per guest: the white paper's limit ("a maximum of eight virtual hard disks
/// per machine"); a board may lower it (`guests.max_disks_per_guest`), never raise it here.
pub const MAX_DISKS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestSpec {
    pub name: ObjectName,
    pub vcpus: VcpuCount,
    pub memory_mib: MemoryMib,
    /// The volume whose subvolume (`vm-<name>`) holds the guest's files; absent for a guest
    /// whose files all have absolute paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<ObjectName>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<GuestNic>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<GuestDisk>,
    #[serde(skip_serializing_if = "GuestBoot::is_firmware")]
    pub boot: GuestBoot,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autostart: Option<Autostart>,
    /// Hardware threads only this guest's vCPUs run on while it runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reserved_threads: Vec<ThreadIndex>,
    /// cgroup v2 `cpu.weight`; absent: the kernel's default (100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<CpuWeight>,
    #[serde(skip_serializing_if = "RestartPolicy::is_default")]
    pub restart: RestartPolicy,
}

/// A virtio-net NIC on a tap attached to a vSwitch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestNic {
    pub vswitch: InterfaceName,
    /// Absent: hostd picks a stable locally administered address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddress>,
    /// The VLAN the guest's port sits on (untagged towards the guest); absent: the native.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<VlanId>,
}

/// A virtio-blk disk. Always opened as a raw image (never probed: see LAB-FACTS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestDisk {
    #[serde(flatten)]
    pub source: DiskSource,
    /// For a file in the guest's subvolume: created sparse with this size when missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_mib: Option<DiskSizeMib>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskSource {
    /// A file name in the guest's subvolume.
    File(GuestFile),
    /// An absolute path: a whole block device or a raw file elsewhere.
    Path(GuestFile),
}

/// How a guest boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum GuestBoot {
    /// rust-hypervisor-firmware boots the first disk (its EFI system partition).
    Firmware,
    /// Direct kernel boot.
    Kernel {
        kernel: GuestFile,
        #[serde(skip_serializing_if = "Option::is_none")]
        initramfs: Option<GuestFile>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cmdline: Option<String>,
    },
}

impl GuestBoot {
    fn is_firmware(&self) -> bool {
        matches!(self, Self::Firmware)
    }
}

/// Started when hostd starts (at boot), by ascending `order`, waiting `delay_s` after each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Autostart {
    pub order: AutostartOrder,
    pub delay_s: AutostartDelaySeconds,
}

pub use cairn_api::guests::RestartPolicy;

/// The cmdline cloud-hypervisor passes to the kernel is read into a fixed buffer by the
/// kernel (COMMAND_LINE_SIZE, 2048 on x86).
const CMDLINE_MAX: usize = 2047;

/// Converts every value of the document's guests; returns those that converted and their
/// positions in the document.
impl GuestSpec {
    /// One guest from the keys of its `[[guests]]` table, as guest number `index` of a
    /// document (for the paths in its errors): its shape and values checked. How it relates
    /// to the rest of the document (its vSwitches, its volume, its name being free) is the
    /// document's to check once it holds the guest.
    pub fn from_toml(text: &str, index: usize) -> Result<Self, Invalid> {
        let guest = document::read_guest(text, index).map_err(|error| Invalid {
            errors: vec![error],
        })?;
        let mut errors = Errors::default();
        let spec = convert_one(&format!("guests[{index}]"), &guest, &mut errors);
        errors.into_result()?;
        // convert_one gives up only on a field it recorded an error for.
        spec.ok_or_else(|| Invalid {
            errors: vec![FieldError::new(format!("guests[{index}]"), "not a guest")],
        })
    }
}

pub(super) fn convert(
    doc: &[document::Guest],
    errors: &mut Errors,
) -> (Vec<GuestSpec>, Vec<usize>) {
    let mut guests = Vec::new();
    let mut positions = Vec::new();
    for (i, guest) in doc.iter().enumerate() {
        if let Some(spec) = convert_one(&format!("guests[{i}]"), guest, errors) {
            guests.push(spec);
            positions.push(i);
        }
    }
    (guests, positions)
}

fn convert_one(path: &str, guest: &document::Guest, errors: &mut Errors) -> Option<GuestSpec> {
    let name = errors.check(
        format!("{path}.name"),
        ObjectName::try_from(guest.name.as_str()),
    );
    let vcpus = errors.check(format!("{path}.vcpus"), VcpuCount::try_from(guest.vcpus));
    let memory_mib = errors.check(
        format!("{path}.memory_mib"),
        MemoryMib::try_from(guest.memory_mib),
    );
    let volume = errors.check_optional(
        format!("{path}.volume"),
        guest.volume.as_deref().map(ObjectName::try_from),
    );
    let nics: Option<Vec<GuestNic>> = guest
        .nics
        .iter()
        .enumerate()
        .map(|(j, nic)| convert_nic(&format!("{path}.nics[{j}]"), nic, errors))
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    let disks = convert_disks(path, guest, errors);
    let boot = convert_boot(path, guest.boot.as_ref(), errors);
    let autostart = match &guest.autostart {
        None => Some(None),
        Some(autostart) => {
            let order = errors.check(
                format!("{path}.autostart.order"),
                AutostartOrder::try_from(autostart.order),
            );
            let delay_s = errors.check(
                format!("{path}.autostart.delay_s"),
                AutostartDelaySeconds::try_from(autostart.delay_s),
            );
            order
                .zip(delay_s)
                .map(|(order, delay_s)| Some(Autostart { order, delay_s }))
        }
    };
    let reserved_threads = convert_threads(path, &guest.reserved_threads, errors);
    let cpu_weight = errors.check_optional(
        format!("{path}.cpu_weight"),
        guest.cpu_weight.map(CpuWeight::try_from),
    );
    let restart = match guest.restart.as_deref() {
        None => Some(RestartPolicy::default()),
        Some(text) => {
            let parsed = RestartPolicy::parse(text);
            if parsed.is_none() {
                errors.push(
                    format!("{path}.restart"),
                    format!(
                        "unknown policy {text:?} ({})",
                        expected_one_of(RestartPolicy::NAMES, "policy")
                    ),
                );
            }
            parsed
        }
    };
    Some(GuestSpec {
        name: name?,
        vcpus: vcpus?,
        memory_mib: memory_mib?,
        volume: volume?,
        nics: nics?,
        disks: disks?,
        boot: boot?,
        autostart: autostart?,
        reserved_threads: reserved_threads?,
        cpu_weight: cpu_weight?,
        restart: restart?,
    })
}

fn convert_nic(path: &str, nic: &document::Nic, errors: &mut Errors) -> Option<GuestNic> {
    let vswitch = errors.check(
        format!("{path}.vswitch"),
        InterfaceName::try_from(nic.vswitch.as_str()),
    );
    let mac = errors.check_optional(
        format!("{path}.mac"),
        nic.mac.as_deref().map(MacAddress::try_from),
    );
    let vlan = errors.check_optional(format!("{path}.vlan"), nic.vlan.map(VlanId::try_from));
    Some(GuestNic {
        vswitch: vswitch?,
        mac: mac?,
        vlan: vlan?,
    })
}

fn convert_disks(
    path: &str,
    guest: &document::Guest,
    errors: &mut Errors,
) -> Option<Vec<GuestDisk>> {
    if guest.disks.len() > MAX_DISKS {
        errors.push(
            format!("{path}.disks"),
            format!(
                "{} disks (expected at most {MAX_DISKS}, the most virtual disks a guest may have)",
                guest.disks.len()
            ),
        );
        return None;
    }
    let disks: Vec<Option<GuestDisk>> = guest
        .disks
        .iter()
        .enumerate()
        .map(|(j, disk)| {
            let disk_path = format!("{path}.disks[{j}]");
            let source = match (&disk.file, &disk.path) {
                (Some(file), None) => {
                    let file = errors.check(
                        format!("{disk_path}.file"),
                        GuestFile::try_from(file.as_str()),
                    )?;
                    if file.as_str().starts_with('/') {
                        errors.push(
                            format!("{disk_path}.file"),
                            format!(
                                "{:?} is a path (expected a file name in the guest's subvolume; use path = … for an absolute path)",
                                file.as_str()
                            ),
                        );
                        return None;
                    }
                    if guest.volume.is_none() {
                        errors.push(
                            format!("{disk_path}.file"),
                            format!(
                                "{:?} is a file in the guest's subvolume, but the guest has no volume (expected volume = \"…\", or path = an absolute path)",
                                file.as_str()
                            ),
                        );
                        return None;
                    }
                    DiskSource::File(file)
                }
                (None, Some(absolute)) => {
                    let absolute = errors.check(
                        format!("{disk_path}.path"),
                        GuestFile::try_from(absolute.as_str()),
                    )?;
                    if !absolute.as_str().starts_with('/') {
                        errors.push(
                            format!("{disk_path}.path"),
                            format!(
                                "{:?} is not an absolute path (expected /dev/disk/by-id/… or /volume1/…; use file = … for a file in the guest's subvolume)",
                                absolute.as_str()
                            ),
                        );
                        return None;
                    }
                    DiskSource::Path(absolute)
                }
                (Some(_), Some(_)) => {
                    errors.push(
                        disk_path,
                        "both file and path (expected one of them)".to_string(),
                    );
                    return None;
                }
                (None, None) => {
                    errors.push(
                        disk_path,
                        "neither file nor path (expected file = a name in the guest's subvolume, or path = an absolute path)".to_string(),
                    );
                    return None;
                }
            };
            let size_mib = errors.check_optional(
                format!("{disk_path}.size_mib"),
                disk.size_mib.map(DiskSizeMib::try_from),
            )?;
            if size_mib.is_some() && matches!(source, DiskSource::Path(_)) {
                errors.push(
                    format!("{disk_path}.size_mib"),
                    "only a file in the guest's subvolume is created by hostd (expected no size_mib beside path)".to_string(),
                );
                return None;
            }
            Some(GuestDisk {
                source,
                size_mib,
                readonly: disk.readonly,
            })
        })
        .collect();
    disks.into_iter().collect()
}

fn convert_boot(
    path: &str,
    boot: Option<&document::Boot>,
    errors: &mut Errors,
) -> Option<GuestBoot> {
    let Some(boot) = boot else {
        return Some(GuestBoot::Firmware);
    };
    let file = |field: &str, value: &Option<String>, errors: &mut Errors| {
        errors.check_optional(
            format!("{path}.boot.{field}"),
            value.as_deref().map(GuestFile::try_from),
        )
    };
    let kernel = file("kernel", &boot.kernel, errors);
    let initramfs = file("initramfs", &boot.initramfs, errors);
    let cmdline = match &boot.cmdline {
        Some(text) if text.len() > CMDLINE_MAX || text.contains(['\n', '\0']) => {
            errors.push(
                format!("{path}.boot.cmdline"),
                format!(
                    "{} characters or a line break (expected one line of at most {CMDLINE_MAX} characters)",
                    text.len()
                ),
            );
            None
        }
        other => Some(other.clone()),
    };
    match (kernel?, initramfs?, cmdline?) {
        (Some(kernel), initramfs, cmdline) => Some(GuestBoot::Kernel {
            kernel,
            initramfs,
            cmdline,
        }),
        (None, None, None) => Some(GuestBoot::Firmware),
        (None, _, _) => {
            errors.push(
                format!("{path}.boot.kernel"),
                "missing (initramfs and cmdline need a kernel; leave boot out to boot the first disk through the firmware)".to_string(),
            );
            None
        }
    }
}

fn convert_threads(path: &str, threads: &[i64], errors: &mut Errors) -> Option<Vec<ThreadIndex>> {
    let field = format!("{path}.reserved_threads");
    let converted = errors.check_all(&field, threads.iter().map(|t| ThreadIndex::try_from(*t)))?;
    let mut seen = BTreeSet::new();
    for (j, thread) in converted.iter().enumerate() {
        if !seen.insert(*thread) {
            errors.push(
                format!("{field}[{j}]"),
                format!("thread {thread} is listed twice (expected each thread once)"),
            );
            return None;
        }
    }
    Some(converted)
}

/// Names unique, volumes and vSwitches that exist, MAC addresses used once.
pub(super) fn check_relations(
    guests: &[(usize, &GuestSpec)],
    declared: &Declared,
    errors: &mut Errors,
) {
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut macs: BTreeMap<MacAddress, String> = BTreeMap::new();
    for &(i, guest) in guests {
        let path = format!("guests[{i}]");
        if let Some(first) = names.get(guest.name.as_str()) {
            errors.push(
                format!("{path}.name"),
                format!(
                    "{:?} is already the name of guests[{first}] (expected a name of its own)",
                    guest.name.as_str()
                ),
            );
        } else {
            names.insert(guest.name.as_str(), i);
        }
        if let Some(volume) = &guest.volume
            && !declared.volumes.contains(volume.as_str())
        {
            errors.push(
                format!("{path}.volume"),
                format!(
                    "no volume named {:?} ({})",
                    volume.as_str(),
                    expected_one_of(&declared.volumes, "volume")
                ),
            );
        }
        for (j, nic) in guest.nics.iter().enumerate() {
            let nic_path = format!("{path}.nics[{j}]");
            if !declared.vswitches.contains(nic.vswitch.as_str()) {
                errors.push(
                    format!("{nic_path}.vswitch"),
                    format!(
                        "no vswitch named {:?} ({})",
                        nic.vswitch.as_str(),
                        expected_one_of(&declared.vswitches, "vswitch")
                    ),
                );
            }
            if let Some(mac) = nic.mac {
                if let Some(first) = macs.get(&mac) {
                    errors.push(
                        format!("{nic_path}.mac"),
                        format!(
                            "{mac} is already the address of {first} (expected an address of its own)"
                        ),
                    );
                } else {
                    macs.insert(mac, nic_path);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "guests_tests.rs"]
mod tests;
