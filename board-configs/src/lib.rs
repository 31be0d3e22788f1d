//! Hardware models Cairn runs on.
//!
//! Each model is a TOML file in `board-configs/boards/`, checked at build time (see
//! `build.rs`) and embedded, so init, hostd and the image builder all see the same,
//! already-valid boards without reading files at run time.

mod schema;

use std::sync::OnceLock;

pub use schema::Board;
pub use schema::{
    BOND_MODES, BoardError, Console, Cpu, DriveSlot, GuestRules, Lan, LanDiscovery, LanPort,
    Memory, SCHEMA_VERSION, Storage, is_pci_address, parse_board,
};

include!(concat!(env!("OUT_DIR"), "/boards.rs"));

/// The board every unknown or undetected machine falls back to.
pub const GENERIC_ID: &str = "generic";

/// Every embedded board, sorted by id.
pub fn all() -> &'static [Board] {
    static BOARDS: OnceLock<Vec<Board>> = OnceLock::new();
    BOARDS.get_or_init(|| {
        let mut boards: Vec<Board> = BOARD_FILES
            .iter()
            .map(|(file, text)| {
                parse_board(file, text).expect("build.rs validated every embedded board file")
            })
            .collect();
        boards.sort_by(|a, b| a.id.cmp(&b.id));
        boards
    })
}

pub fn by_id(id: &str) -> Option<&'static Board> {
    all().iter().find(|board| board.id == id)
}

/// Matches DMI's product name, ignoring surrounding white space and case (firmware pads it).
pub fn by_dmi_product_name(product: &str) -> Option<&'static Board> {
    let product = product.trim();
    if product.is_empty() {
        return None;
    }
    all().iter().find(|board| {
        board
            .dmi_product_names
            .iter()
            .any(|name| name.eq_ignore_ascii_case(product))
    })
}

pub fn generic() -> &'static Board {
    by_id(GENERIC_ID).expect("build.rs refuses to build without boards/generic.toml")
}

/// Modules every board loads at boot, each for a subsystem that has no device to trigger
/// coldplug.
pub const APPLIANCE_MODULES: &[&str] = &[
    "ext4",      // the config partition
    "vfat",      // the EFI system partition, for boot-slot bookkeeping
    "nls_cp437", // vfat's default codepage
    "nls_ascii", // vfat's default iocharset on Debian kernels
    "btrfs",     // NAS volumes
    "dm_mod",    // SSD cache (dm-cache, dm-writecache)
    "dm_cache",
    "dm_writecache",
    "bcache",  // the cache-capable layer under HDD volumes, and their SSD caches
    "md_mod",  // md arrays under a cache's SSDs:
    "raid1",   // mirrored for a read-write cache,
    "raid0",   // striped for a read-only cache on several SSDs
    "bonding", // link aggregation
    "8021q",   // VLANs
    "bridge",  // vSwitches
    "tun",     // guest taps
];

/// Modules every image carries for coldplug on any board: they load only where the
/// hardware matches (the CPU's virtualisation extension picks one of them).
pub const APPLIANCE_DRIVERS: &[&str] = &["kvm_amd", "kvm_intel"];

/// Module names compare with '-' and '_' as the same character, as the kernel does.
pub fn normalize_module_name(name: &str) -> String {
    name.replace('-', "_")
}

impl Board {
    /// What init loads on this board regardless of the hardware it sees.
    pub fn modules_to_load(&self) -> Vec<String> {
        let mut modules: Vec<String> = APPLIANCE_MODULES
            .iter()
            .map(|m| normalize_module_name(m))
            .chain(self.kernel_modules.iter().map(|m| normalize_module_name(m)))
            .collect();
        dedup_keep_order(&mut modules);
        modules
    }
}

/// Every module the image must carry (before dependencies): the appliance's own, every
/// board's explicit list and every board's coldplug drivers. Sorted.
pub fn all_image_modules() -> Vec<String> {
    let mut modules: Vec<String> = APPLIANCE_MODULES
        .iter()
        .chain(APPLIANCE_DRIVERS)
        .map(|m| normalize_module_name(m))
        .chain(all().iter().flat_map(|board| {
            board
                .kernel_modules
                .iter()
                .chain(board.drivers.iter())
                .map(|m| normalize_module_name(m))
        }))
        .collect();
    modules.sort();
    modules.dedup();
    modules
}

fn dedup_keep_order(items: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    items.retain(|item| seen.insert(item.clone()));
}

#[cfg(test)]
mod tests;
