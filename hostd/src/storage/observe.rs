//! The box's drives, what each holds, and which Btrfs filesystems are mounted where.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bcache::{self, BcacheObserved};
use super::drives::{self, DrivePaths, SysDrive};
use super::signature::{self, BtrfsMember, Contents};

/// One drive and what its head holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drive {
    #[serde(flatten)]
    pub sys: SysDrive,
    pub contents: Contents,
}

impl Drive {
    pub fn device(&self) -> PathBuf {
        Path::new("/dev").join(&self.sys.kernel_name)
    }

    pub fn btrfs(&self) -> Option<&BtrfsMember> {
        match &self.contents {
            Contents::Btrfs(member) => Some(member),
            Contents::Blank
            | Contents::Foreign { .. }
            | Contents::BcacheCache { .. }
            | Contents::BcacheBacking
            | Contents::MdMember { .. } => None,
        }
    }
}

/// A line of `/proc/mounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountEntry {
    pub source: String,
    pub mount_point: String,
    pub fs_type: String,
    pub options: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageObserved {
    pub drives: Vec<Drive>,
    pub mounts: Vec<MountEntry>,
    /// Registered bcache devices and md arrays.
    #[serde(default)]
    pub bcache: BcacheObserved,
}

/// The cache a volume's members are attached to, as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedCache {
    pub set_uuid: String,
    /// bcache's mode of the first attached member.
    pub mode: String,
    /// The cache device (`sdd`, `md100`); `None` when the set's device is not registered.
    pub device: Option<String>,
    /// Kernel names of the SSDs under it.
    pub ssds: Vec<String>,
    /// Kernel names of the members' drives attached to it.
    pub backing: Vec<String>,
    pub state: String,
    pub dirty_bytes: u64,
    pub hits: u64,
    pub misses: u64,
}

/// A Btrfs filesystem as its present members' superblocks describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem<'a> {
    pub fsid: &'a str,
    pub label: &'a str,
    pub num_devices: u64,
    /// Present members, by devid.
    pub members: BTreeMap<u64, &'a Drive>,
}

impl Filesystem<'_> {
    pub fn missing(&self) -> u64 {
        self.num_devices
            .saturating_sub(u64::try_from(self.members.len()).unwrap_or(u64::MAX))
    }
}

impl StorageObserved {
    pub fn drive_named(&self, path: &str) -> Option<&Drive> {
        self.drives.iter().find(|drive| drive.sys.is_named(path))
    }

    /// Every Btrfs filesystem with at least one member present.
    pub fn filesystems(&self) -> Vec<Filesystem<'_>> {
        let mut by_fsid: BTreeMap<&str, Filesystem<'_>> = BTreeMap::new();
        for drive in &self.drives {
            if let Some(member) = drive.btrfs() {
                let fs = by_fsid
                    .entry(member.fsid.as_str())
                    .or_insert_with(|| Filesystem {
                        fsid: member.fsid.as_str(),
                        label: member.label.as_str(),
                        num_devices: member.num_devices,
                        members: BTreeMap::new(),
                    });
                fs.members.insert(member.devid, drive);
            }
        }
        by_fsid.into_values().collect()
    }

    /// The filesystem hostd made for volume `name`; with several (drives of an old volume of
    /// the same name), the one with the most members present.
    pub fn volume(&self, name: &str) -> Option<Filesystem<'_>> {
        let label = format!("{}{name}", signature::LABEL_PREFIX);
        self.filesystems()
            .into_iter()
            .filter(|fs| fs.label == label)
            .max_by_key(|fs| fs.members.len())
    }

    /// The cache set the filesystem's present members are attached to, if any.
    pub fn volume_cache(&self, fs: &Filesystem<'_>) -> Option<ObservedCache> {
        let attached: Vec<&bcache::Backing> = fs
            .members
            .values()
            .filter_map(|drive| self.bcache.backing_of(&drive.sys.kernel_name))
            .filter(|backing| backing.set_uuid.is_some())
            .collect();
        let first = attached.first()?;
        let set_uuid = first.set_uuid.clone()?;
        let device = self
            .bcache
            .cache_device(&set_uuid)
            .map(|c| c.device.clone());
        let state = if attached.iter().any(|b| b.state == "dirty") {
            "dirty"
        } else {
            first.state.as_str()
        };
        Some(ObservedCache {
            ssds: device
                .as_deref()
                .map(|d| self.bcache.drives_under(d))
                .unwrap_or_default(),
            device,
            mode: first.mode.clone(),
            backing: attached.iter().map(|b| b.drive.clone()).collect(),
            state: state.to_string(),
            dirty_bytes: attached.iter().map(|b| b.dirty_bytes).sum(),
            hits: attached.iter().map(|b| b.hits).sum(),
            misses: attached.iter().map(|b| b.misses).sum(),
            set_uuid,
        })
    }

    pub fn mount_at(&self, mount_point: &str) -> Option<&MountEntry> {
        self.mounts
            .iter()
            .rev()
            .find(|entry| entry.mount_point == mount_point)
    }
}

/// `/proc/mounts` lines, with the kernel's octal escapes (`\040` for a space) left as they
/// are: hostd's own mount points have none.
pub fn parse_mounts(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some(MountEntry {
                source: fields.next()?.to_string(),
                mount_point: fields.next()?.to_string(),
                fs_type: fields.next()?.to_string(),
                options: fields.next()?.to_string(),
            })
        })
        .collect()
}

/// Reads sysfs, each drive's head and the mount table.
pub fn observe(paths: &DrivePaths, proc_mounts: &Path) -> io::Result<StorageObserved> {
    let mut drives = Vec::new();
    for sys in drives::discover(&paths.sys_block)? {
        let device = paths.dev.join(&sys.kernel_name);
        // A drive that cannot be read (a dying disk) is shown as holding something unknown:
        // it is then never taken without `wipe`.
        let contents = match signature::read_head(&device) {
            Ok(head) => signature::classify(&head),
            Err(error) => Contents::Foreign {
                what: format!("something unreadable ({error})"),
            },
        };
        drives.push(Drive { sys, contents });
    }
    let mounts = parse_mounts(&std::fs::read_to_string(proc_mounts)?);
    let bcache = bcache::observe(&paths.sys_block)?;
    Ok(StorageObserved {
        drives,
        mounts,
        bcache,
    })
}
