//! Replacing a drive and scrubbing a volume: long kernel operations started and watched
//! through btrfs-progs (`btrfs replace`, `btrfs balance`, `btrfs scrub`). There is no
//! library for them: libbtrfsutil covers subvolumes only, and the ioctls' argument structs
//! (and their progress reporting) are what btrfs-progs exists to wrap.
//!
//! The sequence of commands is decided here; they run through [`StorageTools`], so a test
//! double sees each one with its arguments.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::tool::StorageError;
use super::tools::StorageTools;
use crate::state::Profile;

/// What a replace needs, resolved by the core from the document and the observed drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    pub volume: String,
    pub mount_point: String,
    /// The member being replaced, by devid (works for a missing member too).
    pub devid: u64,
    pub new_device: String,
    pub data: Profile,
    pub metadata: Profile,
    /// The volume sits on bcache: the new drive becomes a backing device first.
    pub bcache: bool,
    /// The cache set and bcache mode the other members use, to attach the new one too.
    pub cache: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replaced {
    pub volume: String,
    pub devid: u64,
    pub new_device: String,
    pub seconds: f64,
    /// The generation committed with the new drive in the document.
    #[serde(default)]
    pub generation: u64,
}

/// `"12.3% done, 0 write errs, 0 uncorr. read errs"` → 12 (the status line of
/// `btrfs replace status -1`). `None` once it no longer says "% done" (finished, never
/// started).
pub fn replace_percent(status: &str) -> Option<u32> {
    let (number, _) = status.trim().split_once("% done")?;
    let value: f64 = number.trim().parse().ok()?;
    // A percentage, 0 to 100, fits u32 after flooring.
    Some(value.clamp(0.0, 100.0) as u32)
}

/// Runs the replace, then converts chunks written while degraded back to the volume's
/// profiles (a degraded raid1 writes `single` chunks). `progress(percent, step)`.
pub fn replace(
    tools: &dyn StorageTools,
    plan: &Replacement,
    progress: &dyn Fn(u32, &str),
) -> Result<Replaced, StorageError> {
    let started = std::time::Instant::now();
    let devid = plan.devid.to_string();
    let target = joining_device(
        tools,
        &plan.new_device,
        plan.bcache,
        plan.cache.as_ref(),
        progress,
    )?;
    progress(0, "starting btrfs replace");
    // -B keeps the command until the copy ends; -f because hostd has checked the new drive
    // is blank.
    tools
        .btrfs_watched(
            &[
                "replace",
                "start",
                "-B",
                "-f",
                &devid,
                &target,
                &plan.mount_point,
            ],
            &mut || {
                if let Some(percent) = tools
                    .btrfs_status(&["replace", "status", "-1", &plan.mount_point])
                    .and_then(|text| replace_percent(&text))
                {
                    // Up to 90: the rest is the balance after it.
                    progress(percent * 9 / 10, "copying onto the new drive");
                }
            },
        )
        .map(drop)?;
    progress(90, "converting chunks written while degraded");
    let data = format!("-dconvert={},soft", plan.data);
    let metadata = format!("-mconvert={},soft", plan.metadata);
    tools.btrfs(&["balance", "start", &data, &metadata, &plan.mount_point])?;
    Ok(Replaced {
        volume: plan.volume.clone(),
        devid: plan.devid,
        new_device: plan.new_device.clone(),
        seconds: started.elapsed().as_secs_f64(),
        generation: 0,
    })
}

/// What Btrfs takes for a blank drive joining a volume (`device`: `/dev/sdX`): on a
/// bcache volume the drive becomes a backing device attached like the other members
/// (`cache`: set UUID, bcache mode), otherwise the drive itself.
pub fn joining_device(
    tools: &dyn StorageTools,
    device: &str,
    bcache: bool,
    cache: Option<&(String, String)>,
    progress: &dyn Fn(u32, &str),
) -> Result<String, StorageError> {
    if bcache {
        tools.make_bcache_member(device, cache, progress)
    } else {
        Ok(device.to_string())
    }
}

/// A finished scrub's counters (`btrfs scrub start -B -R`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrubResult {
    pub volume: String,
    pub bytes_scrubbed: u64,
    pub read_errors: u64,
    pub csum_errors: u64,
    pub verify_errors: u64,
    pub corrected_errors: u64,
    pub uncorrectable_errors: u64,
    pub seconds: f64,
}

/// The `name: number` lines of a raw scrub report.
pub fn parse_scrub(volume: &str, report: &str, seconds: f64) -> ScrubResult {
    let fields: BTreeMap<&str, u64> = report
        .lines()
        .filter_map(|line| {
            let (name, value) = line.trim().split_once(':')?;
            Some((name.trim(), value.trim().parse().ok()?))
        })
        .collect();
    let get = |name: &str| fields.get(name).copied().unwrap_or(0);
    ScrubResult {
        volume: volume.to_string(),
        bytes_scrubbed: get("data_bytes_scrubbed").saturating_add(get("tree_bytes_scrubbed")),
        read_errors: get("read_errors"),
        csum_errors: get("csum_errors"),
        verify_errors: get("verify_errors"),
        corrected_errors: get("corrected_errors"),
        uncorrectable_errors: get("uncorrectable_errors"),
        seconds,
    }
}

/// Reads every copy of every block and repairs what a good copy can repair. The exit
/// status is 3 when errors remain; the counters say which, so that is not a failure here.
pub fn scrub(
    tools: &dyn StorageTools,
    volume: &str,
    mount_point: &str,
) -> Result<ScrubResult, StorageError> {
    let started = std::time::Instant::now();
    let output = tools.btrfs_output(&["scrub", "start", "-B", "-R", mount_point])?;
    let report = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() && !report.contains("uncorrectable_errors") {
        return Err(StorageError::Tool {
            program: "btrfs",
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(parse_scrub(
        volume,
        &report,
        started.elapsed().as_secs_f64(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_status_lines() {
        assert_eq!(
            replace_percent("12.3% done, 0 write errs, 0 uncorr. read errs\n"),
            Some(12)
        );
        assert_eq!(
            replace_percent(
                "Started on 25.Nov 04:40:01, finished on 25.Nov 04:40:09, 0 write errs, 0 uncorr. read errs"
            ),
            None
        );
        assert_eq!(replace_percent("Never started"), None);
    }

    #[test]
    fn raw_scrub_report() {
        let report = "scrub done for 0b6a\nScrub started:    Wed Nov 25 04:40:01 2026\nStatus:           finished\nDuration:         0:00:02\n\tdata_extents_scrubbed: 200\n\tdata_bytes_scrubbed: 50331648\n\ttree_bytes_scrubbed: 262144\n\tread_errors: 0\n\tcsum_errors: 2\n\tverify_errors: 0\n\tcorrected_errors: 2\n\tuncorrectable_errors: 0\n";
        let result = parse_scrub("tank", report, 2.5);
        assert_eq!(result.bytes_scrubbed, 50_331_648 + 262_144);
        assert_eq!((result.csum_errors, result.corrected_errors), (2, 2));
        assert_eq!(result.uncorrectable_errors, 0);
    }
}
