//! Where a guest's things live, and the names hostd derives for them: pure, so the
//! runtime's paths and the tests' agree.
//!
//! - `/run/cairn/guests/<name>/`: `api.sock` (cloud-hypervisor's REST API), `serial.sock`
//!   (its serial port, relayed by hostd), `console.sock` (where `cairnctl vm console`
//!   attaches), `console.log` (everything the guest printed on its serial port),
//!   `vmm.log` (cloud-hypervisor's own output: why it failed);
//! - `<volume mount>/vm-<name>/`: the guest's own subvolume, holding its disk files.

use crate::state::{GuestSpec, MacAddress};

pub use cairn_api::guests::{RUN_DIR, RunPaths};
/// Where image-builder installs the binaries (docs/image-contract.md).
pub const CLOUD_HYPERVISOR: &str = "/usr/libexec/cairn/cloud-hypervisor";
pub const HYPERVISOR_FW: &str = "/usr/share/cairn/hypervisor-fw";

/// The guest's subvolume on its volume.
pub fn subvolume_name(guest: &str) -> String {
    format!("vm-{guest}")
}

/// FNV-1a: a stable, dependency-free hash for derived names (not for security).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The tap of NIC `index`: `vm-<guest>-<index>` when that fits the kernel's 15 characters,
/// else `vm<8 hex digits of a hash>-<index>`.
pub fn tap_name(guest: &str, index: usize) -> String {
    const IFNAMSIZ_CHARS: usize = 15;
    let plain = format!("vm-{guest}-{index}");
    if plain.len() <= IFNAMSIZ_CHARS {
        plain
    } else {
        format!("vm{:08x}-{index}", fnv1a(guest) & 0xffff_ffff)
    }
}

/// The NIC's MAC: the document's, or a stable locally administered unicast one (first
/// octet 0x02) from the guest's name and the NIC's place.
pub fn mac_address(spec: &GuestSpec, index: usize) -> String {
    if let Some(mac) = spec.nics.get(index).and_then(|nic| nic.mac) {
        return mac.to_string();
    }
    let hash = fnv1a(&format!("{}/{index}", spec.name)).to_be_bytes();
    let derived = format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        hash[0], hash[1], hash[2], hash[3], hash[4]
    );
    MacAddress::try_from(derived.as_str())
        .map(|mac| mac.to_string())
        .unwrap_or(derived)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_names_fit_the_kernel() {
        assert_eq!(tap_name("web", 0), "vm-web-0");
        assert_eq!(tap_name("database-1", 1), "vm-database-1-1");
        let long = tap_name("a-very-long-guest-name", 3);
        assert!(
            long.len() <= 15 && long.starts_with("vm") && long.ends_with("-3"),
            "{long}"
        );
        assert_eq!(long, tap_name("a-very-long-guest-name", 3), "stable");
    }
}
