//! Pure: the storage section against the drives the box has — what is refused, and the
//! actions that create and mount the volumes.
//!
//! A volume is found again by its filesystem label, `cairn-<name>`, which hostd writes at
//! creation; it is mounted at `/volume<N>`, N its position in the document counted from 1
//! (what the admin sees in the document is what the path says).

mod cache;
#[cfg(test)]
mod tests;

use super::action::{MountVolume, StorageAction};
use super::observe::{Drive, StorageObserved};
use super::signature::Contents;
use crate::state::{FieldError, StorageSpec, Volume};

pub fn mount_point(index: usize) -> String {
    format!("/volume{}", index + 1)
}

/// What the document asks that the drives cannot give: unknown drives, the boot device,
/// drives in use. One path-level error each; an empty list lets the apply go on.
pub fn check(spec: &StorageSpec, observed: &StorageObserved) -> Vec<FieldError> {
    let mut errors = Vec::new();
    // Sorted: kernel names follow probe order, which the admin cannot see.
    let mut offered: Vec<String> = observed
        .drives
        .iter()
        .filter(|drive| !drive.sys.is_boot_device())
        .filter_map(|drive| {
            drive
                .sys
                .by_id
                .clone()
                .or_else(|| drive.sys.by_path.clone())
        })
        .collect();
    offered.sort();
    for (v, volume) in spec.volumes.iter().enumerate() {
        let existing = observed.volume(volume.name.as_str());
        for (d, path) in volume.drives.iter().enumerate() {
            let field = format!("storage.volumes[{v}].drives[{d}]");
            let Some(drive) = observed.drive_named(path.as_str()) else {
                // A member of an existing volume may be gone: the volume mounts degraded.
                if existing.is_none() {
                    let expected = if offered.is_empty() {
                        "this box offers no drive".to_string()
                    } else {
                        format!("expected one of: {}", offered.join(", "))
                    };
                    errors.push(FieldError::new(
                        field,
                        format!("{path} is not a drive on this box ({expected}; `cairnctl storage drives` lists them)"),
                    ));
                }
                continue;
            };
            if let Some(why) = refusal(spec, volume, drive, existing.is_some()) {
                errors.push(FieldError::new(field, format!("{path} {why}")));
            }
        }
        if volume.cache.is_some() {
            cache::check(v, volume, observed, &offered, &mut errors);
        }
    }
    errors
}

/// What a drive's head holds, in words.
pub fn describe(contents: &Contents) -> String {
    match contents {
        Contents::Blank => "nothing".into(),
        Contents::Btrfs(member) => match member.cairn_volume() {
            Some(name) => format!("the Cairn volume {name}"),
            None => format!("a Btrfs filesystem labelled {:?}", member.label),
        },
        Contents::BcacheCache { .. } => "a bcache cache".into(),
        Contents::BcacheBacking => "a bcache backing device without a filesystem".into(),
        Contents::MdMember { .. } => "an md RAID member".into(),
        Contents::Foreign { what } => what.clone(),
    }
}

/// Whether a new volume on these drives goes on bcache: any HDD among them. SSD-only
/// volumes stay directly on the drives (a cache would not speed them up).
pub fn needs_cache_layer(drives: &[&Drive]) -> bool {
    drives.iter().any(|drive| drive.sys.rotational)
}

/// Why `drive` cannot be a drive of `volume`, if it cannot.
fn refusal(
    spec: &StorageSpec,
    volume: &Volume,
    drive: &Drive,
    volume_exists: bool,
) -> Option<String> {
    if drive.sys.is_boot_device() {
        return Some(
            "is the boot device (it holds /config and the boot partitions; it is never offered)"
                .into(),
        );
    }
    // A member of this volume is held by its own bcache device.
    if drive
        .btrfs()
        .is_some_and(|member| member.cairn_volume() == Some(volume.name.as_str()))
    {
        return None;
    }
    if drive.sys.held {
        return Some(
            "is in use by bcache, device-mapper or md (expected a drive nothing stacks on)".into(),
        );
    }
    let wipe_hint = "add wipe = true to this volume to erase it";
    let not_member = || {
        format!(
            "is not a drive of the existing volume {name} (a drive joins a volume with `cairnctl storage add {name} <drive>`, which rebalances the data onto it as a job)",
            name = volume.name
        )
    };
    match &drive.contents {
        Contents::Btrfs(member) => {
            let owner = member.cairn_volume();
            if owner == Some(volume.name.as_str()) {
                return None;
            }
            if let Some(other) = owner
                && spec.volumes.iter().any(|v| v.name.as_str() == other)
            {
                return Some(format!(
                    "is a drive of volume {other} (expected a drive no volume uses)"
                ));
            }
            if !volume.wipe {
                return Some(match owner {
                    Some(other) => format!(
                        "holds the Cairn volume {other}, which is not in this document ({wipe_hint})"
                    ),
                    None => format!(
                        "holds a Btrfs filesystem labelled {:?} that hostd did not create ({wipe_hint})",
                        member.label
                    ),
                });
            }
            volume_exists.then(not_member)
        }
        Contents::Foreign { .. }
        | Contents::BcacheCache { .. }
        | Contents::BcacheBacking
        | Contents::MdMember { .. }
            if !volume.wipe =>
        {
            Some(format!("holds {} ({wipe_hint})", describe(&drive.contents)))
        }
        Contents::Blank
        | Contents::Foreign { .. }
        | Contents::BcacheCache { .. }
        | Contents::BcacheBacking
        | Contents::MdMember { .. } => volume_exists.then(not_member),
    }
}

/// The actions that take the drives to the document. Assumes [`check`] found nothing:
/// drives it would refuse are skipped.
pub fn plan(spec: &StorageSpec, observed: &StorageObserved) -> Vec<StorageAction> {
    let mut actions = Vec::new();
    for (v, volume) in spec.volumes.iter().enumerate() {
        let mount_point = mount_point(v);
        let mounted = observed
            .mount_at(&mount_point)
            .is_some_and(|entry| entry.fs_type == "btrfs");
        match observed.volume(volume.name.as_str()) {
            Some(fs) => {
                if !mounted {
                    actions.push(StorageAction::Mount(MountVolume {
                        name: volume.name.to_string(),
                        mount_point,
                        devices: fs
                            .members
                            .values()
                            .map(|drive| drive.device().display().to_string())
                            .collect(),
                        missing: fs.missing(),
                    }));
                }
                let backing: Vec<String> = fs
                    .members
                    .values()
                    .map(|drive| drive.sys.kernel_name.clone())
                    .collect();
                let on_bcache = fs
                    .members
                    .values()
                    .all(|drive| drive.btrfs().is_some_and(|m| m.bcache));
                let current = observed.volume_cache(&fs);
                actions.extend(cache::plan(
                    volume,
                    current.as_ref(),
                    backing,
                    on_bcache,
                    observed,
                ));
            }
            None => {
                let drives: Vec<&Drive> = volume
                    .drives
                    .iter()
                    .filter_map(|path| observed.drive_named(path.as_str()))
                    .collect();
                if drives.len() != volume.drives.len() {
                    continue;
                }
                let devices: Vec<String> = drives
                    .iter()
                    .map(|drive| drive.device().display().to_string())
                    .collect();
                let bcache = needs_cache_layer(&drives);
                actions.push(StorageAction::CreateVolume {
                    name: volume.name.to_string(),
                    devices: devices.clone(),
                    data: volume.data_profile,
                    metadata: volume.metadata_profile,
                    bcache,
                });
                actions.push(StorageAction::Mount(MountVolume {
                    name: volume.name.to_string(),
                    mount_point,
                    devices,
                    missing: 0,
                }));
                let backing = drives.iter().map(|d| d.sys.kernel_name.clone()).collect();
                actions.extend(cache::plan(volume, None, backing, bcache, observed));
            }
        }
    }
    actions
}
