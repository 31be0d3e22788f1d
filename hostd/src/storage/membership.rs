//! Growing and shrinking a mounted volume: a drive added (then a full balance spreads the
//! existing chunks over every drive, so the new one carries its share of the redundancy) or
//! a drive removed (Btrfs moves its chunks onto the others before letting it go). Both run
//! as jobs with progress; what may be removed is decided here, purely, before anything runs.
//! The commands run through [`StorageTools`], so a test double sees each one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::maintenance::joining_device;
use super::tool::StorageError;
use super::tools::StorageTools;
use crate::state::Profile;

/// What an addition needs, resolved by the core from the document and the observed drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addition {
    pub volume: String,
    pub mount_point: String,
    /// The blank drive, `/dev/sdX`.
    pub new_device: String,
    /// The volume sits on bcache: the new drive becomes a backing device first.
    pub bcache: bool,
    /// The cache set and bcache mode the other members use, to attach the new one too.
    pub cache: Option<(String, String)>,
}

/// What a removal needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub volume: String,
    pub mount_point: String,
    pub devid: u64,
    /// Kernel name of the drive (`sdb`), under its `/dev/bcacheN` on a bcache volume.
    pub drive: String,
    /// Its stable paths (by-id, by-path): the document may name it by either.
    pub paths: Vec<String>,
    pub bcache: bool,
}

/// A finished addition or removal (the job's result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipChanged {
    pub volume: String,
    /// `added` or `removed`.
    pub change: String,
    pub drive: String,
    /// Chunks the balance after an addition moved (0 for a removal).
    pub chunks_balanced: u64,
    pub seconds: f64,
    /// The generation committed with the drive list changed in the document.
    #[serde(default)]
    pub generation: u64,
}

/// Why a volume of these profiles cannot lose one of its `members` drives, if it cannot.
/// `missing` drives make any removal wait: Btrfs cannot move chunks whose other copy is gone.
pub fn removal_refusal(
    volume: &str,
    data: Profile,
    metadata: Profile,
    members: usize,
    missing: u64,
) -> Option<String> {
    if missing > 0 {
        return Some(format!(
            "volume {volume} is degraded ({missing} drive(s) missing): replace the missing drive first (`cairnctl storage replace {volume} missing <drive>`)"
        ));
    }
    let needed = data.min_drives().max(metadata.min_drives());
    let left = members.saturating_sub(1);
    (left < needed).then(|| {
        format!(
            "volume {volume} has {members} drive(s); without this one {left} would be left, too few for data {data} / metadata {metadata} (expected at least {needed}: add a drive first)"
        )
    })
}

/// Why the volume's data would not fit the drives left, if it would not: `raw_used` (every
/// copy counted) against the other drives' sizes, less a tenth as headroom, since Btrfs
/// writes each chunk elsewhere before it frees the old one. `devices`: devid → (size,
/// allocated) in bytes.
pub fn space_refusal(
    devices: &BTreeMap<u64, (u64, u64)>,
    raw_used: u64,
    removing: u64,
) -> Option<String> {
    let left: u64 = devices
        .iter()
        .filter(|(devid, _)| **devid != removing)
        .map(|(_, (size, _))| size)
        .sum();
    (raw_used > left / 10 * 9).then(|| {
        format!(
            "the volume holds {} MiB (every copy counted) and the other drives hold {} MiB, less the headroom Btrfs needs to move chunks (free space or add a drive first)",
            raw_used >> 20,
            left >> 20
        )
    })
}

/// The bytes used on all drives together, every copy counted: the `Used:` line of the
/// `Overall:` part of `btrfs filesystem usage --raw`.
pub fn parse_raw_used(usage: &str) -> Option<u64> {
    usage.lines().find_map(|line| {
        let value = line.trim().strip_prefix("Used:")?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// `devid → (size, allocated)` from `btrfs filesystem show --raw`, whose member lines read
/// `devid    2 size 1073741824 used 234881024 path /dev/bcache1`.
pub fn parse_device_usage(show: &str) -> BTreeMap<u64, (u64, u64)> {
    show.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["devid", devid, "size", size, "used", used, ..] => Some((
                    devid.parse().ok()?,
                    (size.parse().ok()?, used.parse().ok()?),
                )),
                _ => None,
            }
        })
        .collect()
}

/// `(balanced, about)` from `btrfs balance status`: `3 out of about 10 chunks balanced (4
/// considered),  70% left`.
pub fn parse_balance_status(status: &str) -> Option<(u64, u64)> {
    status.lines().find_map(|line| {
        let (balanced, rest) = line.trim().split_once(" out of about ")?;
        let (about, _) = rest.split_once(" chunks balanced")?;
        Some((balanced.trim().parse().ok()?, about.trim().parse().ok()?))
    })
}

/// The percentage of a job that `part` of `whole` is, scaled into `from..to`.
fn scaled(part: u64, whole: u64, from: u32, to: u32) -> u32 {
    if whole == 0 {
        return from;
    }
    let span = u64::from(to.saturating_sub(from));
    let done = part.min(whole).saturating_mul(span) / whole;
    from + u32::try_from(done).unwrap_or(0)
}

/// Adds the drive, then balances every chunk over all drives. `progress(percent, step)`.
pub fn add(
    tools: &dyn StorageTools,
    plan: &Addition,
    progress: &dyn Fn(u32, &str),
) -> Result<MembershipChanged, StorageError> {
    let started = std::time::Instant::now();
    let target = joining_device(
        tools,
        &plan.new_device,
        plan.bcache,
        plan.cache.as_ref(),
        progress,
    )?;
    progress(5, "adding the drive to the volume");
    // -f: hostd has checked the drive is blank (a bcache superblock is all it holds now).
    tools.btrfs(&["device", "add", "-f", &target, &plan.mount_point])?;
    let chunks = balance(tools, &plan.mount_point, progress)?;
    Ok(MembershipChanged {
        volume: plan.volume.clone(),
        change: "added".into(),
        drive: plan.new_device.clone(),
        chunks_balanced: chunks,
        seconds: started.elapsed().as_secs_f64(),
        generation: 0,
    })
}

/// A full balance (10–99 % of the job), watched through `btrfs balance status`; returns the
/// chunks it moved.
fn balance(
    tools: &dyn StorageTools,
    mount_point: &str,
    progress: &dyn Fn(u32, &str),
) -> Result<u64, StorageError> {
    progress(10, "rebalancing: starting");
    let done = tools.btrfs_watched(
        &["balance", "start", "--full-balance", mount_point],
        &mut || {
            if let Some((balanced, about)) = tools
                .btrfs_status(&["balance", "status", mount_point])
                .and_then(|text| parse_balance_status(&text))
            {
                progress(
                    scaled(balanced, about, 10, 99),
                    &format!("rebalancing: {balanced} of about {about} chunks"),
                );
            }
        },
    )?;
    Ok(parse_balance_done(&done).unwrap_or(0))
}

/// The chunks a finished balance moved: `Done, had to relocate 3 out of 3 chunks`.
pub fn parse_balance_done(output: &str) -> Option<u64> {
    output.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("Done, had to relocate ")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Moves the drive's chunks onto the others and lets it go; on bcache the backing device is
/// stopped too, and the drive is left blank. `progress(percent, step)`.
pub fn remove(
    tools: &dyn StorageTools,
    plan: &Removal,
    progress: &dyn Fn(u32, &str),
) -> Result<MembershipChanged, StorageError> {
    let started = std::time::Instant::now();
    let usage = |mount_point: &str| -> Option<u64> {
        let show = tools
            .btrfs(&["filesystem", "show", "--raw", mount_point])
            .ok()?;
        parse_device_usage(&show)
            .get(&plan.devid)
            .map(|(_, used)| *used)
    };
    let before = usage(&plan.mount_point).unwrap_or(0);
    progress(0, "moving the drive's chunks onto the other drives");
    let devid = plan.devid.to_string();
    tools.btrfs_watched(
        &["device", "remove", &devid, &plan.mount_point],
        &mut || {
            if let Some(now) = usage(&plan.mount_point) {
                progress(
                    scaled(before.saturating_sub(now), before, 0, 95),
                    &format!(
                        "moving the drive's chunks: {} of {} MiB left",
                        now >> 20,
                        before >> 20
                    ),
                );
            }
        },
    )?;
    progress(95, "releasing the drive");
    if plan.bcache {
        tools.release_bcache_member(&plan.volume, &plan.drive, &|left| {
            progress(95, &format!("releasing the drive: {left}"));
        })?;
    } else {
        tools.zero_head(&std::path::Path::new("/dev").join(&plan.drive))?;
    }
    Ok(MembershipChanged {
        volume: plan.volume.clone(),
        change: "removed".into(),
        drive: format!("/dev/{}", plan.drive),
        chunks_balanced: 0,
        seconds: started.elapsed().as_secs_f64(),
        generation: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removal_that_breaks_the_profile_is_refused() {
        let refusal = removal_refusal("tank", Profile::Raid1, Profile::Raid1, 2, 0);
        assert_eq!(
            refusal.as_deref(),
            Some(
                "volume tank has 2 drive(s); without this one 1 would be left, too few for data raid1 / metadata raid1 (expected at least 2: add a drive first)"
            )
        );
        assert_eq!(
            removal_refusal("tank", Profile::Raid1, Profile::Raid1, 3, 0),
            None
        );
        // Metadata counts as much as data.
        assert!(removal_refusal("tank", Profile::Single, Profile::Raid1c3, 3, 0).is_some());
        assert_eq!(
            removal_refusal("tank", Profile::Single, Profile::Single, 2, 0),
            None
        );
    }

    #[test]
    fn a_degraded_volume_loses_no_drive() {
        let refusal = removal_refusal("tank", Profile::Raid1, Profile::Raid1, 3, 1);
        assert!(
            refusal
                .as_deref()
                .is_some_and(|r| r.contains("replace the missing drive first")),
            "{refusal:?}"
        );
    }

    #[test]
    fn data_must_fit_the_drives_left() {
        let gib = 1u64 << 30;
        let devices = BTreeMap::from([(1, (gib, gib)), (2, (gib, gib)), (3, (gib, 0))]);
        // Allocated chunks do not count, used bytes do: 1 GiB used fits on 2 GiB.
        assert_eq!(space_refusal(&devices, gib, 3), None);
        assert_eq!(space_refusal(&devices, gib, 1), None);
        let refusal = space_refusal(&devices, gib * 2, 3);
        assert!(
            refusal.as_deref().is_some_and(|r| r.starts_with(
                "the volume holds 2048 MiB (every copy counted) and the other drives hold 2048 MiB"
            )),
            "{refusal:?}"
        );
    }

    #[test]
    fn filesystem_usage_raw_used() {
        let usage = "Overall:\n    Device size:\t\t\t  3221225472\n    Device allocated:\t\t  1946157056\n    Used:\t\t\t   681574400\n    Free (estimated):\t\t  1269760000\t(min: 1269760000)\n    Data ratio:\t\t\t        2.00\n\nData,RAID1: Size:872415232, Used:335544320 (38.46%)\n";
        assert_eq!(parse_raw_used(usage), Some(681_574_400));
    }

    #[test]
    fn filesystem_show_member_lines() {
        let show = "Label: 'cairn-tank'  uuid: 0b6a\n\tTotal devices 3 FS bytes used 25165824\n\tdevid    1 size 1073741824 used 234881024 path /dev/bcache0\n\tdevid    3 size 1073741824 used 0 path /dev/bcache2\n\n";
        let usage = parse_device_usage(show);
        assert_eq!(usage.get(&1), Some(&(1_073_741_824, 234_881_024)));
        assert_eq!(usage.get(&3), Some(&(1_073_741_824, 0)));
        assert_eq!(usage.len(), 2);
    }

    #[test]
    fn balance_status_lines() {
        let status = "Balance on '/volume1' is running\n3 out of about 10 chunks balanced (4 considered),  70% left\n";
        assert_eq!(parse_balance_status(status), Some((3, 10)));
        assert_eq!(
            parse_balance_status("No balance found on '/volume1'\n"),
            None
        );
    }

    #[test]
    fn progress_is_scaled_into_its_part_of_the_job() {
        assert_eq!(scaled(3, 10, 10, 99), 36);
        assert_eq!(scaled(10, 10, 10, 99), 99);
        assert_eq!(scaled(12, 10, 10, 99), 99);
        assert_eq!(scaled(1, 0, 10, 99), 10);
    }
}
