//! Carries out [`StorageAction`]s: `mkfs.btrfs` from btrfs-progs (no library makes a
//! multi-device Btrfs filesystem: libbtrfsutil covers subvolumes only, and the kernel has no
//! mkfs), and mount(2) for the rest.
//!
//! What changes the drives is here or below: [`cache`] (bcache and md), [`subvolumes`]
//! (libbtrfsutil), [`tools`] (the live [`StorageTools`] the core's storage jobs run on) and
//! `watched` (long btrfs commands). Two neighbours act too, and say so: `activate.rs`
//! (start-up, what udev would do) and the sysfs writes of `bcache.rs`, which this module
//! and `activate.rs` share.
//!
//! [`StorageTools`]: crate::storage::tools::StorageTools

pub mod cache;
pub mod subvolumes;
pub mod tools;
mod watched;

use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

use super::action::{MountVolume, StorageAction};
use super::bcache::Sysfs;
use super::signature::LABEL_PREFIX;
use super::tool::{StorageError, run_tool};

/// Btrfs mount options for every volume, chosen for VM disk images (see README "Storage"):
/// - copy-on-write stays on (no `nodatacow`): without it Btrfs keeps no checksums for the
///   data and raid1 cannot tell the good copy from the bad one, and snapshots would CoW
///   anyway;
/// - `noatime` (a mount flag, [`MOUNT_FLAGS`]: the kernel's Btrfs parser does not take it
///   as an option string): a read would otherwise write metadata, and on CoW that costs
///   space in every snapshot;
/// - `compress=zstd:1`: cheapest zstd level; Btrfs gives up on extents that do not shrink,
///   so incompressible guest data costs little CPU;
/// - `discard=async`: frees SSD blocks in batches in the background instead of on every
///   delete (the kernel ignores it on drives without discard);
/// - `space_cache=v2`: the free-space tree (the default since btrfs-progs 5.15, named so
///   that older filesystems are converted).
pub const MOUNT_OPTIONS: &str = "compress=zstd:1,discard=async,space_cache=v2";
pub const MOUNT_FLAGS: MsFlags = MsFlags::MS_NOATIME;

/// What Btrfs is mounted from: a drive's `/dev/bcacheN` when it is a bcache backing device,
/// else the drive itself.
pub fn mount_devices(sysfs: &Sysfs, mount: &MountVolume) -> Result<Vec<String>, StorageError> {
    mount
        .devices
        .iter()
        .map(|device| {
            let name = device.trim_start_matches("/dev/");
            if !sysfs.registered(name) {
                return Ok(device.clone());
            }
            sysfs
                .bcache_device(name)
                .map(|bcache| format!("/dev/{bcache}"))
                .ok_or_else(|| StorageError::NotRunning {
                    volume: mount.name.clone(),
                    drive: device.clone(),
                })
        })
        .collect()
}

/// The `-o` string for a mount: the members by name (the image has no udev to run `btrfs
/// device scan` on hotplug), the common options, and `degraded` when members are missing.
pub fn mount_data(mount: &MountVolume) -> String {
    let mut options: Vec<String> = mount
        .devices
        .iter()
        .map(|device| format!("device={device}"))
        .collect();
    options.push(MOUNT_OPTIONS.to_string());
    if mount.missing > 0 {
        options.push("degraded".to_string());
    }
    options.join(",")
}

/// Runs one action; `report` hears how a long one (a cache detach writing dirty data
/// back) is getting on.
pub fn execute(action: &StorageAction, report: &dyn Fn(&str)) -> Result<(), StorageError> {
    let sysfs = Sysfs::default();
    match action {
        StorageAction::CreateVolume {
            name,
            devices,
            data,
            metadata,
            bcache,
        } => {
            let devices = if *bcache {
                let drives: Vec<String> = devices
                    .iter()
                    .map(|d| d.trim_start_matches("/dev/").to_string())
                    .collect();
                cache::make_backing(&sysfs, &drives)?
            } else {
                devices.clone()
            };
            if data.is_parity() {
                tracing::warn!(
                    "volume {name} gets {data} data because the document forces it: {}; keep a backup and scrub after every unclean shutdown",
                    crate::state::PARITY_RISK
                );
            }
            let label = format!("{LABEL_PREFIX}{name}");
            // -f: hostd has already refused drives holding anything it was not told to wipe.
            let mut args = vec![
                "-f",
                "-L",
                &label,
                "-d",
                data.as_str(),
                "-m",
                metadata.as_str(),
            ];
            args.extend(devices.iter().map(String::as_str));
            run_tool("mkfs.btrfs", &args)?;
            Ok(())
        }
        StorageAction::AttachCache(plan) => cache::attach(&sysfs, plan),
        StorageAction::DetachCache(plan) => cache::detach(&sysfs, plan, report),
        StorageAction::Mount(mount) => {
            let mount = &MountVolume {
                devices: mount_devices(&sysfs, mount)?,
                ..mount.clone()
            };
            std::fs::create_dir_all(&mount.mount_point).map_err(|source| {
                StorageError::MountPoint {
                    path: mount.mount_point.clone(),
                    source,
                }
            })?;
            let data = mount_data(mount);
            let first = mount.devices.first().map(String::as_str);
            nix::mount::mount(
                first,
                Path::new(&mount.mount_point),
                Some("btrfs"),
                MOUNT_FLAGS,
                Some(data.as_str()),
            )
            .map_err(|source| StorageError::Mount {
                name: mount.name.clone(),
                path: mount.mount_point.clone(),
                options: data.clone(),
                source,
            })?;
            if mount.missing > 0 {
                tracing::error!(
                    "volume {} is mounted DEGRADED at {}: {} drive(s) missing; replace them (`cairnctl storage replace`)",
                    mount.name,
                    mount.mount_point,
                    mount.missing
                );
            }
            Ok(())
        }
        StorageAction::Unmount(mount) => {
            nix::mount::umount2(Path::new(&mount.mount_point), MntFlags::empty()).map_err(
                |source| StorageError::Unmount {
                    path: mount.mount_point.clone(),
                    source,
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degraded_is_added_only_when_members_are_missing() {
        let mut mount = MountVolume {
            name: "tank".into(),
            mount_point: "/volume1".into(),
            devices: vec!["/dev/sdb".into(), "/dev/sdc".into()],
            missing: 0,
        };
        assert_eq!(
            mount_data(&mount),
            "device=/dev/sdb,device=/dev/sdc,compress=zstd:1,discard=async,space_cache=v2"
        );
        mount.missing = 1;
        assert!(mount_data(&mount).ends_with(",degraded"));
    }
}
