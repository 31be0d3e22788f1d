//! A storage step as a value: what the executor is asked to do, its text in a plan, and
//! its undo. Pure: the planner builds these, `execute.rs` carries them out.

use std::fmt;

use crate::plan::{Action, Undo};
use crate::state::{CacheMode, Profile};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageAction {
    /// `mkfs.btrfs` over blank (or `wipe`d) drives.
    CreateVolume {
        name: String,
        devices: Vec<String>,
        data: Profile,
        metadata: Profile,
        /// Each drive becomes a bcache backing device first, Btrfs goes on the
        /// `/dev/bcacheN`s: what an HDD volume needs to take a cache later.
        bcache: bool,
    },
    Mount(MountVolume),
    Unmount(MountVolume),
    /// An SSD cache in front of a volume's backing devices.
    AttachCache(CachePlan),
    /// Writes the dirty data back, then lets the SSDs go (blank again).
    DetachCache(CachePlan),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePlan {
    pub volume: String,
    pub mode: CacheMode,
    /// Kernel names of the SSDs.
    pub ssds: Vec<String>,
    /// Kernel names of the members' drives (their bcache backing devices).
    pub backing: Vec<String>,
}

impl CachePlan {
    fn ssd_list(&self) -> String {
        let list: Vec<String> = self.ssds.iter().map(|d| format!("/dev/{d}")).collect();
        let layout = match (self.ssds.len(), self.mode) {
            (1, _) => "",
            (_, CacheMode::ReadWrite) => " mirrored (md raid1)",
            (_, CacheMode::ReadOnly) => " striped (md raid0)",
        };
        format!("{}{layout}", list.join(", "))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountVolume {
    pub name: String,
    pub mount_point: String,
    /// The members present, `/dev/…`.
    pub devices: Vec<String>,
    /// Members the filesystem has that are not present: more than 0 mounts `degraded`.
    pub missing: u64,
}

impl fmt::Display for StorageAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreateVolume {
                name,
                devices,
                data,
                metadata,
                bcache,
            } => write!(
                f,
                "create Btrfs volume {name} ({data} data, {metadata} metadata) on {}{}{}",
                devices.join(", "),
                if *bcache {
                    " (as bcache backing devices, ready for a cache)"
                } else {
                    ""
                },
                if data.is_parity() {
                    " — WARNING: parity RAID, forced (force_parity_raid)"
                } else {
                    ""
                }
            ),
            Self::Mount(mount) if mount.missing > 0 => write!(
                f,
                "mount volume {} at {} DEGRADED ({} of {} drives missing)",
                mount.name,
                mount.mount_point,
                mount.missing,
                mount.missing + mount.devices.len() as u64
            ),
            Self::Mount(mount) => {
                write!(f, "mount volume {} at {}", mount.name, mount.mount_point)
            }
            Self::Unmount(mount) => {
                write!(
                    f,
                    "unmount volume {} from {}",
                    mount.name, mount.mount_point
                )
            }
            Self::AttachCache(cache) => write!(
                f,
                "attach a {} cache on {} to volume {}",
                cache.mode,
                cache.ssd_list(),
                cache.volume
            ),
            Self::DetachCache(cache) => write!(
                f,
                "detach the {} cache on {} from volume {} (dirty data is written back first)",
                cache.mode,
                cache.ssd_list(),
                cache.volume
            ),
        }
    }
}

impl Action for StorageAction {
    fn undo(&self) -> Undo<Self> {
        match self {
            // The new filesystem stays: its drives were blank or given up with `wipe`, and
            // the next apply of the same document finds it by its label and mounts it.
            Self::CreateVolume { .. } => Undo::Nothing,
            Self::Mount(mount) => Undo::Run(Self::Unmount(mount.clone())),
            Self::Unmount(mount) => Undo::Run(Self::Mount(mount.clone())),
            Self::AttachCache(cache) => Undo::Run(Self::DetachCache(cache.clone())),
            Self::DetachCache(cache) => Undo::Run(Self::AttachCache(cache.clone())),
        }
    }
}

/// bcache's mode for a Cairn cache mode.
pub fn bcache_mode(mode: CacheMode) -> &'static str {
    match mode {
        CacheMode::ReadOnly => "writearound",
        CacheMode::ReadWrite => "writeback",
    }
}

/// The Cairn cache mode a bcache mode stands for (others are not hostd's).
pub fn cache_mode(bcache: &str) -> Option<CacheMode> {
    match bcache {
        "writearound" => Some(CacheMode::ReadOnly),
        "writeback" => Some(CacheMode::ReadWrite),
        _ => None,
    }
}
