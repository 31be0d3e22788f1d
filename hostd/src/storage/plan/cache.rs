//! Pure: a volume's SSD cache against the drives — what they refuse, and the detach and
//! attach actions that take the kernel's cache to the document's. Carried out by
//! `execute/cache.rs`, which also says why the cache is bcache over md.

use std::collections::BTreeSet;

use super::describe;
use crate::state::{Cache, CacheMode, FieldError, Volume};
use crate::storage::action::{CachePlan, StorageAction, cache_mode};
use crate::storage::observe::{ObservedCache, StorageObserved};
use crate::storage::signature::Contents;

/// What the drives refuse of a volume's cache: one path-level error each.
pub fn check(
    v: usize,
    volume: &Volume,
    observed: &StorageObserved,
    offered: &[String],
    errors: &mut Vec<FieldError>,
) {
    let Some(cache) = &volume.cache else {
        return;
    };
    let path = format!("storage.volumes[{v}].cache");
    let members: Vec<_> = volume
        .drives
        .iter()
        .filter_map(|d| observed.drive_named(d.as_str()))
        .collect();
    let existing = observed.volume(volume.name.as_str());
    match &existing {
        Some(fs) => {
            if fs
                .members
                .values()
                .any(|d| d.btrfs().is_some_and(|m| !m.bcache))
            {
                errors.push(FieldError::new(
                    &path,
                    format!(
                        "volume {} lies directly on its drives, not on the bcache layer a cache needs (only HDD volumes are created on it; remove the cache)",
                        volume.name
                    ),
                ));
                return;
            }
        }
        None => {
            if !members.is_empty()
                && members.len() == volume.drives.len()
                && !super::needs_cache_layer(&members)
            {
                errors.push(FieldError::new(
                    &path,
                    format!(
                        "volume {} is on SSDs only, and a cache speeds up HDDs (expected a volume with HDDs; remove the cache)",
                        volume.name
                    ),
                ));
                return;
            }
        }
    }
    let current: BTreeSet<String> = existing
        .as_ref()
        .and_then(|fs| observed.volume_cache(fs))
        .map(|c| c.ssds.into_iter().collect())
        .unwrap_or_default();
    for (d, ssd) in cache.drives.iter().enumerate() {
        let field = format!("{path}.drives[{d}]");
        let Some(drive) = observed.drive_named(ssd.as_str()) else {
            errors.push(FieldError::new(
                field,
                format!(
                    "{ssd} is not a drive on this box (expected one of: {}; `cairnctl storage drives` lists them)",
                    offered.join(", ")
                ),
            ));
            continue;
        };
        let why = if drive.sys.is_boot_device() {
            Some("is the boot device (it holds /config and the boot partitions; it is never offered)".to_string())
        } else if drive.sys.rotational {
            Some("is a hard disk (expected an SSD)".to_string())
        } else if current.contains(&drive.sys.kernel_name) {
            None
        } else if drive.sys.held {
            Some(
                "is in use by bcache, device-mapper or md (expected a drive nothing stacks on)"
                    .to_string(),
            )
        } else {
            match &drive.contents {
                Contents::Blank => None,
                Contents::Btrfs(member) if member.cairn_volume().is_some() => Some(format!(
                    "holds {} (expected an SSD no volume uses)",
                    describe(&drive.contents)
                )),
                contents if !volume.wipe => Some(format!(
                    "holds {} (add wipe = true to this volume to erase it)",
                    describe(contents)
                )),
                _ => None,
            }
        };
        if let Some(why) = why {
            errors.push(FieldError::new(field, format!("{ssd} {why}")));
        }
    }
}

/// The cache actions for one volume: none when the kernel already has what the document
/// says; a changed cache (mode or SSDs) is detached and attached anew, since a read-only
/// cache's striped array cannot become a read-write cache's mirror in place.
pub fn plan(
    volume: &Volume,
    current: Option<&ObservedCache>,
    backing: Vec<String>,
    on_bcache: bool,
    observed: &StorageObserved,
) -> Vec<StorageAction> {
    let desired = match &volume.cache {
        None => None,
        Some(cache) => match desired_plan(volume, cache, &backing, observed) {
            Some(plan) => Some(plan),
            // An SSD of the cache is gone (pulled, dead): the cache runs as it can (a
            // mirror degraded) and the alert says so; detaching it is the admin's call.
            None => return Vec::new(),
        },
    };
    let current = current.map(|c| CachePlan {
        volume: volume.name.to_string(),
        // A mode hostd does not set (writethrough, none) is treated as read-only: detaching
        // it writes back whatever is dirty either way.
        mode: cache_mode(&c.mode).unwrap_or(CacheMode::ReadOnly),
        ssds: c.ssds.clone(),
        backing: c.backing.clone(),
    });
    let same = |a: &CachePlan, b: &CachePlan| {
        let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
        a.mode == b.mode && set(&a.ssds) == set(&b.ssds) && set(&a.backing) == set(&b.backing)
    };
    let mut actions = Vec::new();
    match (current, desired) {
        (Some(current), Some(desired)) if same(&current, &desired) => {}
        (current, desired) => {
            if let Some(current) = current {
                actions.push(StorageAction::DetachCache(current));
            }
            if let Some(desired) = desired
                && on_bcache
            {
                actions.push(StorageAction::AttachCache(desired));
            }
        }
    }
    actions
}

fn desired_plan(
    volume: &Volume,
    cache: &Cache,
    backing: &[String],
    observed: &StorageObserved,
) -> Option<CachePlan> {
    let ssds: Option<Vec<String>> = cache
        .drives
        .iter()
        .map(|d| {
            observed
                .drive_named(d.as_str())
                .map(|drive| drive.sys.kernel_name.clone())
        })
        .collect();
    Some(CachePlan {
        volume: volume.name.to_string(),
        mode: cache.mode,
        ssds: ssds?,
        backing: backing.to_vec(),
    })
}

#[cfg(test)]
mod tests;
