//! What `cairnctl storage drives` and `cairnctl storage volume` show: the drives with their
//! bay and use, and each volume of the document with its state, space and members;
//! `cairnctl storage cache`: each volume's SSD cache as the kernel runs it.

use board_configs::DriveSlot;

use super::observe::{ObservedCache, StorageObserved};
use super::plan::mount_point;
use super::signature::Contents;
use crate::state::StorageSpec;

pub use cairn_api::storage::{CacheView, DriveView, StorageView, VolumeView};

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
