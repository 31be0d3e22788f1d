//! What udev would do at boot, done by hostd before its first reconcile (the image has no
//! udev): assemble the md arrays under caches, register every bcache superblock (caches
//! first, so backing devices find their set), and run a backing device whose cache is gone
//! when that loses nothing (no dirty data in it). A backing device whose missing cache holds
//! dirty data is left stopped, loudly: running it would serve stale blocks.

use std::collections::BTreeMap;

use super::bcache::{self, Sysfs};
use super::drives::DrivePaths;
use super::signature::{self, Contents};
use super::tool::run_tool;

pub fn activate(paths: &DrivePaths, sysfs: &Sysfs) {
    let observed = match super::observe(paths, std::path::Path::new("/proc/mounts")) {
        Ok(observed) => observed,
        Err(error) => {
            tracing::error!("cannot look at the drives to activate bcache and md: {error}");
            return;
        }
    };
    // md arrays: members by array UUID, those nothing holds yet.
    let mut arrays: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for drive in &observed.drives {
        if let Contents::MdMember { array_uuid } = &drive.contents
            && !drive.sys.held
        {
            arrays
                .entry(array_uuid.as_str())
                .or_default()
                .push(drive.device().display().to_string());
        }
    }
    let mut next = 100u32;
    let mut cache_devices: Vec<String> = Vec::new();
    for (uuid, members) in &arrays {
        let md = loop {
            let name = format!("md{next}");
            next += 1;
            if !sysfs.sys_block.join(&name).exists() {
                break name;
            }
        };
        let path = format!("/dev/{md}");
        let mut args = vec!["--assemble", "--run", path.as_str()];
        args.extend(members.iter().map(String::as_str));
        match run_tool("mdadm", &args) {
            Ok(_) => {
                tracing::info!(
                    "assembled md array {uuid} as {md} from {}",
                    members.join(", ")
                );
                cache_devices.push(md);
            }
            Err(error) => tracing::error!("cannot assemble md array {uuid}: {error}"),
        }
    }
    for drive in &observed.drives {
        if matches!(drive.contents, Contents::BcacheCache { .. }) {
            cache_devices.push(drive.sys.kernel_name.clone());
        }
    }
    for device in &cache_devices {
        let path = std::path::Path::new("/dev").join(device);
        let is_cache = signature::read_head(&path)
            .map(|head| matches!(signature::classify(&head), Contents::BcacheCache { .. }))
            .unwrap_or(false);
        if is_cache && !sysfs.registered(device) {
            match sysfs.register(&path) {
                Ok(()) => tracing::info!("registered bcache cache {device}"),
                Err(error) => tracing::error!("cannot register bcache cache {device}: {error}"),
            }
        }
    }
    for drive in &observed.drives {
        let backing = match &drive.contents {
            Contents::Btrfs(member) => member.bcache,
            Contents::BcacheBacking => true,
            Contents::Blank
            | Contents::Foreign { .. }
            | Contents::BcacheCache { .. }
            | Contents::MdMember { .. } => false,
        };
        let name = &drive.sys.kernel_name;
        if backing
            && !sysfs.registered(name)
            && let Err(error) = sysfs.register(&drive.device())
        {
            tracing::error!("cannot register bcache backing device {name}: {error}");
        }
    }
    // A backing device attached to a set that did not come runs only once told to.
    let Ok(now) = bcache::observe(&sysfs.sys_block) else {
        return;
    };
    for backing in now.backing.iter().filter(|b| b.device.is_none()) {
        let drive = &backing.drive;
        match sysfs.backing_state(drive).as_deref() {
            Some("dirty") => tracing::error!(
                "bcache backing device {drive} waits for its read-write cache, which holds data it lacks; its volume cannot mount until the cache's SSDs are back"
            ),
            _ => match sysfs.run_without_cache(drive) {
                Ok(()) => tracing::warn!(
                    "the cache of bcache backing device {drive} is missing; running without it (it held no dirty data)"
                ),
                Err(error) => tracing::error!("cannot run {drive} without its cache: {error}"),
            },
        }
    }
}
