//! Carries out [`StorageAction`]s: `mkfs.btrfs` from btrfs-progs (no library makes a
//! multi-device Btrfs filesystem: libbtrfsutil covers subvolumes only, and the kernel has no
//! mkfs), and mount(2) for the rest.

use std::path::Path;
use std::process::Command;

use nix::mount::MntFlags;

use super::bcache::{BcacheError, Sysfs};
use super::plan::{MOUNT_FLAGS, MOUNT_OPTIONS, MountVolume, StorageAction};
use super::signature::LABEL_PREFIX;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("Cannot run {program}")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Tool {
        program: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("Cannot create the mount point {path}")]
    MountPoint {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot mount volume {name} at {path} (options {options})")]
    Mount {
        name: String,
        path: String,
        options: String,
        #[source]
        source: nix::Error,
    },
    #[error("Cannot unmount {path}")]
    Unmount {
        path: String,
        #[source]
        source: nix::Error,
    },
    #[error("Cannot blank the first MiB of {device}")]
    Wipe {
        device: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bcache refused")]
    Bcache(#[source] BcacheError),
    #[error("The cache of volume {volume} names no SSD")]
    NoCacheDrive { volume: String },
    #[error("Cannot read bcache's state in sysfs")]
    Observe {
        #[source]
        source: std::io::Error,
    },
    #[error(
        "Drive {drive} of volume {volume} is a bcache backing device that does not run (its read-write cache, holding data the drive lacks, is missing: put its SSDs back)"
    )]
    NotRunning { volume: String, drive: String },
}

/// Runs a btrfs-progs tool and turns a failure into its stderr.
pub fn run_tool(program: &'static str, args: &[&str]) -> Result<String, StorageError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| StorageError::Spawn { program, source })?;
    tool_output(program, &output)
}

/// A finished tool's standard output, or its failure with what it said on stderr.
fn tool_output(
    program: &'static str,
    output: &std::process::Output,
) -> Result<String, StorageError> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(StorageError::Tool {
            program,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Runs a tool with `input` on its standard input (for a question it asks).
pub fn run_tool_with_input(
    program: &'static str,
    args: &[&str],
    input: &str,
) -> Result<String, StorageError> {
    use std::io::Write;
    let spawn = |source| StorageError::Spawn { program, source };
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A tool that asks nothing closes its end: that is not an error.
        let _ = stdin.write_all(input.as_bytes());
    }
    let output = child.wait_with_output().map_err(spawn)?;
    tool_output(program, &output)
}

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
                super::cache::make_backing(&sysfs, &drives)?
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
        StorageAction::AttachCache(plan) => super::cache::attach(&sysfs, plan),
        StorageAction::DetachCache(plan) => super::cache::detach(&sysfs, plan, report),
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
