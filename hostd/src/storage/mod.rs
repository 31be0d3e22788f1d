//! Storage: the NAS drives and the Btrfs volumes the desired state's `storage` section asks
//! for, created with `mkfs.btrfs` and mounted at `/volume<N>` on every boot.
//!
//! Four rooms, as in every subsystem, and what pure code may import:
//! - [`observe`]: drives, their contents and the mount table (reads sysfs, the drives'
//!   first MiB and `/proc/mounts`, through [`drives`], [`signature`] and [`bcache`]).
//! - [`action`]: pure: [`StorageAction`], its text and its undo.
//! - [`plan`]: pure: what the document asks that the drives refuse, and the actions (with
//!   the SSD cache's half in `plan/cache.rs`). Imports only `state`, [`observe`],
//!   [`action`] and [`signature`]'s types.
//! - [`execute`]: the room that changes the drives: mkfs.btrfs and mount(2), bcache and
//!   md (`execute/cache.rs`), libbtrfsutil (`execute/subvolumes.rs`) and the live
//!   [`tools::StorageTools`] (`execute/tools.rs`). Outside it only start-up's
//!   [`activate`] acts, with [`bcache`]'s sysfs writes.
//!
//! Beside them:
//! - [`tool`]: running one program, and [`StorageError`].
//! - [`tools`]: the seam the core's on-demand storage jobs act through.
//! - [`maintenance`]: replacing a drive and scrubbing, as jobs (commands through the seam).
//! - [`membership`]: adding a drive to a volume and removing one, as jobs (the same).
//! - [`subvolumes`]: the checks around subvolumes, snapshots and clones (the same).
//! - [`bcache`]: bcache and md in sysfs: the layer under HDD volumes and their caches.
//! - [`activate`]: at start, what udev would do: assemble cache arrays, register bcache.
//! - [`drives`]: whole disks from sysfs, with udev-style stable names (the image has no udev).
//! - [`signature`]: what a drive's first MiB holds: blank, a Btrfs member, something else.
//! - [`scrub_records`]: each volume's last scrub result, and when the schedule wants the next.
//! - [`view`]: `cairnctl storage drives|volume` and the degraded alert in `cairnctl status`.

pub mod action;
pub mod activate;
pub mod bcache;
pub mod drives;
pub mod execute;
pub mod maintenance;
pub mod membership;
pub mod observe;
pub mod plan;
pub mod scrub_records;
pub mod signature;
pub mod subvolumes;
pub mod tool;
pub mod tools;
pub mod view;

use std::time::{Duration, Instant};

pub use action::StorageAction;
pub use drives::DrivePaths;
pub use execute::tools::LiveStorageTools;
pub use observe::{StorageObserved, observe};
pub use tool::StorageError;
pub use tools::StorageTools;

/// At boot the SCSI and NVMe drivers find drives asynchronously after their modules load:
/// a reconcile that looked too early would mount a volume degraded for want of a drive that
/// was a second away. Waits until the list of disks has not changed for `quiet`, at most
/// `limit`.
pub fn wait_for_drives(paths: &DrivePaths, quiet: Duration, limit: Duration) {
    let list = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&paths.sys_block)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let deadline = Instant::now() + limit;
    let mut seen = list();
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = list();
        if now != seen {
            seen = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}
