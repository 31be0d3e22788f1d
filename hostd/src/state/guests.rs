//! The guests part of the desired state: virtual machines run by cloud-hypervisor.
//!
//! Kept to what validation needs today (name, size, where its disks live, its NICs); the
//! guests issue adds boot sources and disks. Whether the board has room for a guest is
//! admission, a separate pure check against the board config, not a document rule.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Declared;
use super::document;
use super::error::{Errors, expected_one_of};
use super::values::{InterfaceName, MacAddress, MemoryMib, ObjectName, VcpuCount};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestSpec {
    pub name: ObjectName,
    pub vcpus: VcpuCount,
    pub memory_mib: MemoryMib,
    /// The volume whose subvolume holds the guest's disks; absent for a guest that boots from
    /// a kernel and initramfs alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<ObjectName>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<GuestNic>,
}

/// A virtio-net NIC on a tap attached to a vSwitch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestNic {
    pub vswitch: InterfaceName,
    /// Absent: hostd picks a stable locally administered address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddress>,
}

/// Converts every value of the document's guests; returns those that converted and their
/// positions in the document.
pub(super) fn convert(
    doc: &[document::Guest],
    errors: &mut Errors,
) -> (Vec<GuestSpec>, Vec<usize>) {
    let mut guests = Vec::new();
    let mut positions = Vec::new();
    for (i, guest) in doc.iter().enumerate() {
        let path = format!("guests[{i}]");
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
        let nics: Vec<Option<GuestNic>> = guest
            .nics
            .iter()
            .enumerate()
            .map(|(j, nic)| {
                let nic_path = format!("{path}.nics[{j}]");
                let vswitch = errors.check(
                    format!("{nic_path}.vswitch"),
                    InterfaceName::try_from(nic.vswitch.as_str()),
                );
                let mac = errors.check_optional(
                    format!("{nic_path}.mac"),
                    nic.mac.as_deref().map(MacAddress::try_from),
                );
                Some(GuestNic {
                    vswitch: vswitch?,
                    mac: mac?,
                })
            })
            .collect();
        let nics: Option<Vec<GuestNic>> = nics.into_iter().collect();
        if let (Some(name), Some(vcpus), Some(memory_mib), Some(volume), Some(nics)) =
            (name, vcpus, memory_mib, volume, nics)
        {
            guests.push(GuestSpec {
                name,
                vcpus,
                memory_mib,
                volume,
                nics,
            });
            positions.push(i);
        }
    }
    (guests, positions)
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
