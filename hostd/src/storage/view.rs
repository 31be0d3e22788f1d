//! What `cairnctl storage drives` and `cairnctl storage volume` show: the drives with their
//! bay and use, and each volume of the document with its state, space and members;
//! `cairnctl storage cache`: each volume's SSD cache as the kernel runs it.

use board_configs::DriveSlot;
use serde::{Deserialize, Serialize};

use super::observe::{ObservedCache, StorageObserved};
use super::plan::mount_point;
use super::signature::Contents;
use crate::state::StorageSpec;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageView {
    pub drives: Vec<DriveView>,
    pub volumes: Vec<VolumeView>,
    #[serde(default)]
    pub caches: Vec<CacheView>,
}

/// A volume's cache: what the document asks and what bcache runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheView {
    pub volume: String,
    /// The document's mode (`read-only`, `read-write`), `-` when it asks for none.
    pub mode: String,
    /// bcache's mode as the kernel runs it (`writearound`, `writeback`), if attached.
    pub bcache_mode: Option<String>,
    /// `clean`, `dirty` (writes not yet on the HDDs), `not attached`, or `attached but not
    /// in the document`.
    pub state: String,
    /// The SSDs: stable paths when known, else kernel names.
    pub ssds: Vec<String>,
    /// The bcache cache device (`sdd`, `md100`) and, for an array, its level and health.
    pub device: Option<String>,
    pub layout: Option<String>,
    pub dirty_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    /// Hits in percent (rounded down) of all reads and writes bcache looked up, when there
    /// were any.
    pub hit_ratio: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveView {
    /// The name a document uses: by-id when the drive has a serial, else by-path.
    pub path: String,
    pub by_path: Option<String>,
    pub device: String,
    pub slot: Option<String>,
    pub model: String,
    pub serial: String,
    pub size_bytes: u64,
    /// `hdd` or `ssd` (the kernel's rotational flag).
    pub kind: String,
    /// `free`, `volume <name>`, `boot device`, or what it holds.
    pub usage: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeView {
    pub name: String,
    pub mount_point: String,
    /// `mounted`, `degraded`, `not mounted`, `not created`.
    pub state: String,
    pub size_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub data_profile: String,
    pub metadata_profile: String,
    /// `devid: /dev/sdX (path)` or `devid: missing`.
    pub devices: Vec<String>,
    pub missing: u64,
    /// The document's schedule; none: scrubs on demand only.
    #[serde(default)]
    pub scrub_every_days: Option<u16>,
    /// The last scrub's summary ([`super::scrub_records::ScrubRecord::summary`]), filled in
    /// from the kept records by the API.
    #[serde(default)]
    pub last_scrub: Option<String>,
}

/// Space of a mounted filesystem: (size, used) in bytes.
pub type SpaceOf<'a> = &'a dyn Fn(&str) -> Option<(u64, u64)>;

pub fn view(
    spec: &StorageSpec,
    observed: &StorageObserved,
    slots: &[DriveSlot],
    space: SpaceOf<'_>,
) -> StorageView {
    let observed_caches: Vec<(String, ObservedCache)> = spec
        .volumes
        .iter()
        .filter_map(|volume| {
            let fs = observed.volume(volume.name.as_str())?;
            Some((volume.name.to_string(), observed.volume_cache(&fs)?))
        })
        .collect();
    let drives = observed
        .drives
        .iter()
        .map(|drive| {
            let cache_of = observed_caches
                .iter()
                .find(|(_, cache)| cache.ssds.contains(&drive.sys.kernel_name));
            let usage = if drive.sys.is_boot_device() {
                "boot device".to_string()
            } else if let Some((volume, _)) = cache_of {
                format!("cache of {volume}")
            } else {
                match &drive.contents {
                    Contents::Blank => "free".to_string(),
                    Contents::Btrfs(member) => match member.cairn_volume() {
                        Some(name) => format!("volume {name}"),
                        None => format!("Btrfs {:?}", member.label),
                    },
                    Contents::BcacheCache { .. } => "bcache cache".to_string(),
                    Contents::BcacheBacking => "bcache backing device".to_string(),
                    Contents::MdMember { .. } => "md RAID member".to_string(),
                    Contents::Foreign { what } => what.clone(),
                }
            };
            DriveView {
                path: drive
                    .sys
                    .by_id
                    .clone()
                    .or_else(|| drive.sys.by_path.clone())
                    .unwrap_or_else(|| drive.device().display().to_string()),
                by_path: drive.sys.by_path.clone(),
                device: drive.device().display().to_string(),
                slot: drive.sys.slot(slots).map(str::to_string),
                model: drive.sys.model.clone(),
                serial: drive.sys.serial.clone(),
                size_bytes: drive.sys.size_bytes,
                kind: if drive.sys.rotational { "hdd" } else { "ssd" }.to_string(),
                usage,
            }
        })
        .collect();
    let volumes = spec
        .volumes
        .iter()
        .enumerate()
        .map(|(index, volume)| {
            let mount_point = mount_point(index);
            let fs = observed.volume(volume.name.as_str());
            let mount = observed
                .mount_at(&mount_point)
                .filter(|entry| entry.fs_type == "btrfs");
            let missing = fs.as_ref().map_or(0, |fs| fs.missing());
            let state = match (&fs, mount) {
                (None, None) => "not created",
                (_, Some(_)) if missing > 0 => "degraded",
                (_, Some(_)) => "mounted",
                (Some(_), None) => "not mounted",
            };
            let mut devices = Vec::new();
            if let Some(fs) = &fs {
                for devid in 1..=fs
                    .num_devices
                    .max(fs.members.keys().max().copied().unwrap_or(0))
                {
                    match fs.members.get(&devid) {
                        Some(drive) => devices.push(format!(
                            "{devid}: {} ({})",
                            drive.device().display(),
                            drive
                                .sys
                                .by_id
                                .as_deref()
                                .or(drive.sys.by_path.as_deref())
                                .unwrap_or("no stable name")
                        )),
                        None if u64::try_from(fs.members.len()).unwrap_or(0) < fs.num_devices => {
                            devices.push(format!("{devid}: missing"));
                        }
                        // A devid left free by a removed or replaced drive.
                        None => {}
                    }
                }
            }
            let (size_bytes, used_bytes) = match mount.and_then(|_| space(&mount_point)) {
                Some((size, used)) => (Some(size), Some(used)),
                None => (None, None),
            };
            VolumeView {
                name: volume.name.to_string(),
                mount_point,
                state: state.to_string(),
                size_bytes,
                used_bytes,
                data_profile: volume.data_profile.to_string(),
                metadata_profile: volume.metadata_profile.to_string(),
                devices,
                missing,
                scrub_every_days: volume.scrub_every_days,
                last_scrub: None,
            }
        })
        .collect();
    let caches = caches(spec, observed, &observed_caches);
    StorageView {
        drives,
        volumes,
        caches,
    }
}

fn caches(
    spec: &StorageSpec,
    observed: &StorageObserved,
    observed_caches: &[(String, ObservedCache)],
) -> Vec<CacheView> {
    let path_of = |kernel_name: &str| -> String {
        observed
            .drives
            .iter()
            .find(|d| d.sys.kernel_name == kernel_name)
            .and_then(|d| d.sys.by_id.clone().or_else(|| d.sys.by_path.clone()))
            .unwrap_or_else(|| kernel_name.to_string())
    };
    spec.volumes
        .iter()
        .filter_map(|volume| {
            let current = observed_caches
                .iter()
                .find(|(name, _)| name == volume.name.as_str())
                .map(|(_, cache)| cache);
            if volume.cache.is_none() && current.is_none() {
                return None;
            }
            let mode = volume
                .cache
                .as_ref()
                .map_or("-".to_string(), |c| c.mode.to_string());
            let Some(current) = current else {
                return Some(CacheView {
                    volume: volume.name.to_string(),
                    mode,
                    bcache_mode: None,
                    state: "not attached".into(),
                    ssds: volume
                        .cache
                        .iter()
                        .flat_map(|c| c.drives.iter().map(|d| d.to_string()))
                        .collect(),
                    device: None,
                    layout: None,
                    dirty_bytes: 0,
                    hits: 0,
                    misses: 0,
                    hit_ratio: None,
                });
            };
            let layout =
                current
                    .device
                    .as_deref()
                    .map(|device| match observed.bcache.array(device) {
                        Some(array) if array.degraded > 0 => format!(
                            "md {} DEGRADED ({} SSD missing)",
                            array.level, array.degraded
                        ),
                        Some(array)
                            if array.sync_action != "idle" && !array.sync_action.is_empty() =>
                        {
                            format!("md {} ({})", array.level, array.sync_action)
                        }
                        Some(array) => format!("md {}", array.level),
                        None => "one SSD".to_string(),
                    });
            let total = current.hits.saturating_add(current.misses);
            Some(CacheView {
                volume: volume.name.to_string(),
                mode,
                bcache_mode: Some(current.mode.clone()),
                state: if volume.cache.is_some() {
                    current.state.clone()
                } else {
                    format!("{}, attached but not in the document", current.state)
                },
                ssds: current.ssds.iter().map(|s| path_of(s)).collect(),
                device: current.device.clone(),
                layout,
                dirty_bytes: current.dirty_bytes,
                hits: current.hits,
                misses: current.misses,
                hit_ratio: (total > 0).then(|| current.hits.saturating_mul(100) / total),
            })
        })
        .collect()
}

/// The alerts `cairnctl status` shows for storage: one line per degraded volume or cache.
pub fn alerts(view: &StorageView) -> Vec<String> {
    let volumes = view
        .volumes
        .iter()
        .filter(|volume| volume.missing > 0)
        .map(|volume| {
            format!(
                "volume {} is DEGRADED: {} drive(s) missing; its data has less redundancy until a drive is replaced (`cairnctl storage replace`)",
                volume.name, volume.missing
            )
        });
    let caches = view
        .caches
        .iter()
        .filter(|cache| cache.layout.as_deref().is_some_and(|l| l.contains("DEGRADED")))
        .map(|cache| {
            format!(
                "the cache of volume {} is DEGRADED: its mirror lost an SSD, and the dirty data it holds has one copy left; detach the cache (remove it from the document) or attach it anew on two SSDs",
                cache.volume
            )
        });
    volumes.chain(caches).collect()
}

fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

impl StorageView {
    pub fn render_drives(&self) -> String {
        if self.drives.is_empty() {
            return "no drives".to_string();
        }
        let mut text = format!(
            "{:<6} {:<8} {:<4} {:>10}  {:<20} {:<16} {:<24} path",
            "slot", "device", "kind", "size", "model", "serial", "use"
        );
        for drive in &self.drives {
            text.push_str(&format!(
                "\n{:<6} {:<8} {:<4} {:>10}  {:<20} {:<16} {:<24} {}",
                drive.slot.as_deref().unwrap_or("-"),
                drive.device.trim_start_matches("/dev/"),
                drive.kind,
                size_text(drive.size_bytes),
                drive.model,
                drive.serial,
                drive.usage,
                drive.path
            ));
        }
        text
    }

    pub fn render_caches(&self) -> String {
        if self.caches.is_empty() {
            return "no caches".to_string();
        }
        let mut text = format!(
            "{:<12} {:<10} {:<12} {:>10} {:>6}  {:<22} ssds",
            "volume", "mode", "state", "dirty", "hits", "device"
        );
        for cache in &self.caches {
            let device = match (&cache.device, &cache.layout) {
                (Some(device), Some(layout)) => format!("{device} ({layout})"),
                (Some(device), None) => device.clone(),
                (None, _) => "-".to_string(),
            };
            text.push_str(&format!(
                "\n{:<12} {:<10} {:<12} {:>10} {:>6}  {:<22} {}",
                cache.volume,
                cache.mode,
                cache.state,
                size_text(cache.dirty_bytes),
                cache
                    .hit_ratio
                    .map_or("-".to_string(), |ratio| format!("{ratio}%")),
                device,
                cache.ssds.join(", ")
            ));
        }
        text
    }

    pub fn render_volumes(&self) -> String {
        if self.volumes.is_empty() {
            return "no volumes in the document".to_string();
        }
        let mut text = String::new();
        for volume in &self.volumes {
            let space = match (volume.size_bytes, volume.used_bytes) {
                (Some(size), Some(used)) => {
                    format!("{} used of {}", size_text(used), size_text(size))
                }
                _ => "-".to_string(),
            };
            text.push_str(&format!(
                "{} at {}: {}\n  profiles: {} data, {} metadata\n  space: {space}\n  devices:\n",
                volume.name,
                volume.mount_point,
                volume.state,
                volume.data_profile,
                volume.metadata_profile
            ));
            for device in &volume.devices {
                text.push_str(&format!("    {device}\n"));
            }
            let schedule = match volume.scrub_every_days {
                Some(days) => format!("every {days} day{}", if days == 1 { "" } else { "s" }),
                None => "on demand".to_string(),
            };
            text.push_str(&format!(
                "  scrub: {schedule}; last: {}\n",
                volume.last_scrub.as_deref().unwrap_or("never")
            ));
        }
        text.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::DesiredState;
    use crate::storage::drives::SysDrive;
    use crate::storage::observe::{Drive, MountEntry};
    use crate::storage::signature::{classify, fake_btrfs_head};

    #[test]
    fn a_mounted_volume_missing_a_member_is_degraded_with_an_alert() {
        let spec = DesiredState::from_toml(
            "version = 1\n[[storage.volumes]]\nname = \"tank\"\ndrives = [\"/dev/disk/by-id/virtio-A\", \"/dev/disk/by-id/virtio-B\"]\ndata_profile = \"raid1\"\nmetadata_profile = \"raid1\"\n",
        )
        .expect("a valid document")
        .storage;
        let observed = StorageObserved {
            drives: vec![Drive {
                sys: SysDrive {
                    kernel_name: "vdb".into(),
                    by_id: Some("/dev/disk/by-id/virtio-A".into()),
                    by_path: Some("/dev/disk/by-path/pci-0000:00:0a.0".into()),
                    model: "virtio disk".into(),
                    serial: "A".into(),
                    size_bytes: 1 << 30,
                    rotational: false,
                    partitions: Vec::new(),
                    held: false,
                },
                contents: classify(&fake_btrfs_head(3, "cairn-tank", 1, 2)),
            }],
            mounts: vec![MountEntry {
                source: "/dev/vdb".into(),
                mount_point: "/volume1".into(),
                fs_type: "btrfs".into(),
                options: "rw,noatime,degraded".into(),
            }],
            bcache: Default::default(),
        };
        let slots = vec![DriveSlot {
            name: "m2-1".into(),
            by_path: "pci-0000:00:0a.0".into(),
        }];
        let shown = view(&spec, &observed, &slots, &|_| Some((100, 40)));
        assert_eq!(shown.drives[0].slot.as_deref(), Some("m2-1"));
        assert_eq!(shown.drives[0].usage, "volume tank");
        assert_eq!(shown.drives[0].kind, "ssd");
        let volume = &shown.volumes[0];
        assert_eq!(volume.state, "degraded");
        assert_eq!(
            volume.devices,
            [
                "1: /dev/vdb (/dev/disk/by-id/virtio-A)".to_string(),
                "2: missing".to_string()
            ]
        );
        assert_eq!(
            (volume.size_bytes, volume.used_bytes),
            (Some(100), Some(40))
        );
        assert_eq!(
            alerts(&shown),
            [
                "volume tank is DEGRADED: 1 drive(s) missing; its data has less redundancy until a drive is replaced (`cairnctl storage replace`)"
            ]
        );
    }
}
