//! SSD caches in front of HDD volumes, carried out through bcache's sysfs files,
//! `make-bcache` and `mdadm`: attach and detach (planned in `plan/cache.rs`), and a drive
//! joining or leaving a volume on bcache.
//!
//! Why bcache and not dm-cache/dm-writecache: bcache keeps its metadata in superblocks on
//! the devices themselves, so a cache can be attached to and detached from a running
//! volume with one sysfs write, the volume's layout survives reboots by registering the
//! devices (no table to rebuild, no separate metadata device to size), and its detach
//! writes dirty data back before it lets go. The backing superblock in front of the data
//! also means nothing can mount an HDD's Btrfs around the cache.
//!
//! Why md under the cache: bcache has one cache device per set, so two SSDs become one
//! md array: raid1 for a read-write cache (the SSDs hold writes the HDDs lack yet, and
//! losing one SSD must lose nothing), raid0 for a read-only cache (clean copies only:
//! striping adds space, and losing an SSD only empties the cache).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::state::CacheMode;
use crate::storage::action::{CachePlan, bcache_mode};
use crate::storage::bcache::{self, BcacheError, Sysfs};
use crate::storage::tool::{StorageError, run_tool, run_tool_with_input};

/// Time for the kernel to show a device it registered or an array mdadm started.
const APPEAR: Duration = Duration::from_secs(20);
/// A detach whose dirty data has not shrunk for this long is reported as stuck.
const DETACH_STALL: Duration = Duration::from_secs(300);
/// md arrays hostd makes are numbered from here, away from the low numbers anything
/// else (an installer, a rescue system) would use.
const FIRST_MD: u32 = 100;

fn dev(name: &str) -> PathBuf {
    Path::new("/dev").join(name)
}

/// Zeroes the first MiB of a device (every signature hostd and make-bcache look at), so a
/// drive given up with `wipe`, or an SSD a cache lets go of, reads as blank.
pub fn zero_head(device: &Path) -> Result<(), StorageError> {
    use std::io::Write;
    let io = |source| StorageError::Wipe {
        device: device.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(device)
        .map_err(io)?;
    file.write_all(&vec![0u8; crate::storage::signature::HEAD_BYTES])
        .map_err(io)?;
    file.sync_all().map_err(io)
}

fn bcache_error(error: BcacheError) -> StorageError {
    StorageError::Bcache(error)
}

/// Formats `drives` as bcache backing devices and registers them; returns the
/// `/dev/bcacheN` of each, in order.
pub fn make_backing(sysfs: &Sysfs, drives: &[String]) -> Result<Vec<String>, StorageError> {
    for drive in drives {
        zero_head(&dev(drive))?;
    }
    let mut args = vec!["-B".to_string(), "--wipe-bcache".to_string()];
    args.extend(drives.iter().map(|d| dev(d).display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_tool("make-bcache", &args)?;
    let mut devices = Vec::new();
    for drive in drives {
        if !sysfs.registered(drive) {
            sysfs.register(&dev(drive)).map_err(bcache_error)?;
        }
        bcache::wait_for(&format!("/dev/bcacheN for {drive}"), APPEAR, || {
            sysfs.bcache_device(drive).is_some_and(|b| dev(&b).exists())
        })
        .map_err(bcache_error)?;
        let name = sysfs.bcache_device(drive).ok_or_else(|| {
            bcache_error(BcacheError::Timeout {
                what: format!("/dev/bcacheN for {drive}"),
                seconds: 0,
            })
        })?;
        devices.push(dev(&name).display().to_string());
    }
    Ok(devices)
}

/// Makes a blank drive joining a bcache volume (`device`: `/dev/sdX`) a backing device,
/// attached to the volume's cache set in its mode (`cache`: set UUID, bcache mode) like the
/// other members, and returns its `/dev/bcacheN`. `progress(percent, step)`.
pub fn make_member(
    device: &str,
    cache: Option<&(String, String)>,
    progress: &dyn Fn(u32, &str),
) -> Result<String, StorageError> {
    progress(0, "making the new drive a bcache backing device");
    let sysfs = Sysfs::default();
    let drive = device.trim_start_matches("/dev/").to_string();
    let devices = make_backing(&sysfs, std::slice::from_ref(&drive))?;
    if let Some((set, mode)) = cache {
        sysfs.attach(&drive, set).map_err(bcache_error)?;
        sysfs.set_mode(&drive, mode).map_err(bcache_error)?;
    }
    Ok(devices
        .into_iter()
        .next()
        .unwrap_or_else(|| device.to_string()))
}

/// Detaches the bcache backing device on `drive` from its cache, stops it (its
/// `/dev/bcacheN` goes away) and blanks the drive, so that it is offered again as free.
pub fn release_member(
    volume: &str,
    drive: &str,
    report: &dyn Fn(&str),
) -> Result<(), StorageError> {
    let sysfs = Sysfs::default();
    if sysfs.registered(drive) {
        // Detached first, so that the cache keeps no dirty data for a device that is gone.
        let observed =
            bcache::observe(&sysfs.sys_block).map_err(|source| StorageError::Observe { source })?;
        detach_backing(&sysfs, &observed, volume, &[drive.to_string()], report)?;
        sysfs.stop_backing(drive).map_err(bcache_error)?;
        bcache::wait_for(&format!("bcache to let go of {drive}"), APPEAR, || {
            !sysfs.registered(drive) && !held(&sysfs, drive)
        })
        .map_err(bcache_error)?;
    }
    zero_head(&dev(drive))
}

fn held(sysfs: &Sysfs, device: &str) -> bool {
    std::fs::read_dir(sysfs.sys_block.join(device).join("holders"))
        .is_ok_and(|mut holders| holders.next().is_some())
}

fn free_md(sysfs: &Sysfs) -> String {
    (FIRST_MD..)
        .map(|n| format!("md{n}"))
        .find(|name| !sysfs.sys_block.join(name).exists() && !dev(name).exists())
        .expect("an unbounded range has a free md number")
}

/// Creates the cache device (an SSD, or an md array over several), makes it a bcache cache,
/// attaches every backing device to it and sets the mode.
pub fn attach(sysfs: &Sysfs, plan: &CachePlan) -> Result<(), StorageError> {
    for ssd in &plan.ssds {
        zero_head(&dev(ssd))?;
    }
    let device = if plan.ssds.len() > 1 {
        let md = free_md(sysfs);
        let level = match plan.mode {
            CacheMode::ReadWrite => "1",
            CacheMode::ReadOnly => "0",
        };
        let name = format!("--name=cairn-cache-{}", plan.volume);
        let count = format!("--raid-devices={}", plan.ssds.len());
        let md_path = dev(&md).display().to_string();
        let mut args = vec![
            "--create",
            md_path.as_str(),
            "--run",
            "--metadata=1.2",
            &name,
            &count,
        ];
        let level_arg = format!("--level={level}");
        args.push(&level_arg);
        // A write-intent bitmap: after a power cut the mirror resyncs only the regions
        // written just before it, not the whole SSDs (and mdadm does not ask about it).
        if plan.mode == CacheMode::ReadWrite {
            args.push("--bitmap=internal");
        }
        let members: Vec<String> = plan
            .ssds
            .iter()
            .map(|s| dev(s).display().to_string())
            .collect();
        args.extend(members.iter().map(String::as_str));
        // `y`: mdadm asks before it creates a raid1 with metadata at the start of the
        // drives ("may not be suitable as a boot device"); these are never boot devices.
        run_tool_with_input("mdadm", &args, "y\n")?;
        bcache::wait_for(&format!("array {md}"), APPEAR, || {
            sysfs.sys_block.join(&md).join("md").is_dir()
        })
        .map_err(bcache_error)?;
        // The array's data area starts with whatever the SSDs held there.
        zero_head(&dev(&md))?;
        md
    } else {
        plan.ssds
            .first()
            .cloned()
            .ok_or_else(|| StorageError::NoCacheDrive {
                volume: plan.volume.clone(),
            })?
    };
    let device_path = dev(&device).display().to_string();
    run_tool("make-bcache", &["-C", "--wipe-bcache", &device_path])?;
    sysfs.register(&dev(&device)).map_err(bcache_error)?;
    bcache::wait_for(&format!("the cache set on {device}"), APPEAR, || {
        sysfs.set_of(&device).is_some()
    })
    .map_err(bcache_error)?;
    let set = sysfs.set_of(&device).unwrap_or_default();
    for drive in &plan.backing {
        sysfs.attach(drive, &set).map_err(bcache_error)?;
        sysfs
            .set_mode(drive, bcache_mode(plan.mode))
            .map_err(bcache_error)?;
    }
    tracing::info!(
        "volume {}: {} cache attached (set {set}, cache device {device})",
        plan.volume,
        plan.mode
    );
    Ok(())
}

/// Detaches `drives` (backing devices of `volume`) from their cache, waiting while bcache
/// writes their dirty data back (logged and reported every 2 s); an error when that stalls.
fn detach_backing(
    sysfs: &Sysfs,
    observed: &bcache::BcacheObserved,
    volume: &str,
    drives: &[String],
    report: &dyn Fn(&str),
) -> Result<(), StorageError> {
    for drive in drives {
        if observed
            .backing_of(drive)
            .is_some_and(|b| b.set_uuid.is_some())
        {
            sysfs.detach(drive).map_err(bcache_error)?;
        }
    }
    let started = Instant::now();
    let mut last_dirty = u64::MAX;
    let mut last_progress = Instant::now();
    let mut last_log = Instant::now() - Duration::from_secs(10);
    loop {
        let attached: Vec<&String> = drives
            .iter()
            .filter(|d| {
                sysfs
                    .backing_state(d)
                    .is_some_and(|state| state != "no cache")
            })
            .collect();
        if attached.is_empty() {
            break;
        }
        let dirty: u64 = attached.iter().map(|d| sysfs.dirty_bytes(d)).sum();
        if dirty < last_dirty {
            last_dirty = dirty;
            last_progress = Instant::now();
        }
        if last_log.elapsed() >= Duration::from_secs(2) {
            let left = format!(
                "{:.1} MiB of dirty data left to write back",
                dirty as f64 / f64::from(1 << 20)
            );
            tracing::info!("volume {volume}: detaching the cache, {left}");
            report(&left);
            last_log = Instant::now();
        }
        if last_progress.elapsed() > DETACH_STALL {
            return Err(bcache_error(BcacheError::Timeout {
                what: format!("writing back volume {volume}'s dirty data"),
                seconds: DETACH_STALL.as_secs(),
            }));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    tracing::info!(
        "volume {volume}: cache detached from {} after {:.1} s, no dirty data left",
        drives.join(", "),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Detaches every backing device (bcache writes dirty data back first; this waits and logs
/// the progress), closes the cache set, stops the array and blanks the SSDs.
pub fn detach(sysfs: &Sysfs, plan: &CachePlan, report: &dyn Fn(&str)) -> Result<(), StorageError> {
    let observed =
        bcache::observe(&sysfs.sys_block).map_err(|source| StorageError::Observe { source })?;
    let sets: BTreeSet<String> = plan
        .backing
        .iter()
        .filter_map(|d| observed.backing_of(d)?.set_uuid.clone())
        .collect();
    detach_backing(sysfs, &observed, &plan.volume, &plan.backing, report)?;
    for set in &sets {
        let device = observed.cache_device(set).map(|c| c.device.clone());
        if sysfs.set_exists(set) {
            sysfs.unregister_set(set).map_err(bcache_error)?;
            bcache::wait_for(&format!("cache set {set} to close"), APPEAR, || {
                !sysfs.set_exists(set)
            })
            .map_err(bcache_error)?;
        }
        if let Some(device) = device
            && let Some(array) = observed.array(&device)
        {
            let md = dev(&device).display().to_string();
            // The set's close is asynchronous: the array stays busy for a moment.
            let mut stopped = run_tool("mdadm", &["--stop", &md]);
            let deadline = Instant::now() + APPEAR;
            while stopped.is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(250));
                stopped = run_tool("mdadm", &["--stop", &md]);
            }
            stopped?;
            // A member pulled while the array ran has no superblock left to clear here.
            for member in array.members.iter().filter(|m| dev(m).exists()) {
                let path = dev(member).display().to_string();
                run_tool("mdadm", &["--zero-superblock", &path])?;
            }
        }
    }
    for ssd in &plan.ssds {
        // A missing SSD (the reason to detach, perhaps) has nothing to blank.
        if !dev(ssd).exists() {
            continue;
        }
        // bcache and md let go of the drive asynchronously after the set is closed.
        bcache::wait_for(&format!("{ssd} to be let go of"), APPEAR, || {
            !sysfs.registered(ssd) && !held(sysfs, ssd)
        })
        .map_err(bcache_error)?;
        zero_head(&dev(ssd))?;
    }
    Ok(())
}
