//! bcache and md as sysfs shows them, and the few writes that drive them.
//!
//! HDD volumes sit on bcache from the start: each HDD is a bcache *backing* device (its
//! superblock in the first 8 KiB, the data behind it) and Btrfs lives on `/dev/bcacheN`.
//! A cache is a *cache set* made of one cache device: an SSD, or an md array over several
//! SSDs (raid1 for a read-write cache, raid0 for a read-only one; bcache itself has one
//! cache device per set, see Documentation/admin-guide/bcache.rst). Attaching a cache to a
//! volume attaches every member's backing device to that set and sets its `cache_mode`;
//! both are recorded in the backing superblock, so after a reboot registering the devices
//! is enough.
//!
//! Everything here goes through sysfs (`/sys/block/<dev>/bcache/…`, `/sys/fs/bcache/…`,
//! `/sys/block/md*/…`); every function takes the roots, so tests feed a fixture tree.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A registered backing device, by the drive under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backing {
    /// Kernel name of the drive: `sdb`.
    pub drive: String,
    /// `bcache0` once it runs (a backing device whose cache holds dirty data waits for it).
    pub device: Option<String>,
    /// The cache set it is attached to.
    pub set_uuid: Option<String>,
    /// bcache's own name: writethrough, writeback, writearound, none.
    pub mode: String,
    /// `no cache`, `clean`, `dirty`, `inconsistent`.
    pub state: String,
    pub dirty_bytes: u64,
    pub hits: u64,
    pub misses: u64,
}

/// A registered cache device: an SSD or an md array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheDevice {
    /// Kernel name: `vdb`, `sdd`, `md100`.
    pub device: String,
    pub set_uuid: String,
}

/// An md array, as `/sys/block/mdN` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdArray {
    pub device: String,
    /// `raid1`, `raid0`.
    pub level: String,
    /// Kernel names of the member drives.
    pub members: Vec<String>,
    /// `idle`, `resync`, `recover`… (`md/sync_action`).
    pub sync_action: String,
    /// Members missing from a redundant array (`md/degraded`).
    pub degraded: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BcacheObserved {
    pub backing: Vec<Backing>,
    pub caches: Vec<CacheDevice>,
    pub arrays: Vec<MdArray>,
}

/// `writethrough [writeback] writearound none` → `writeback`.
pub fn selected(choices: &str) -> String {
    choices
        .split_whitespace()
        .find_map(|word| word.strip_prefix('[')?.strip_suffix(']'))
        .unwrap_or(choices.trim())
        .to_string()
}

/// bcache's human sizes (`bch_hprint`: `0`, `512`, `4.0k`, `12.3M`) in bytes.
pub fn parse_human(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last()? {
        (at, c) if c.is_ascii_alphabetic() => (&text[..at], c),
        _ => (text, ' '),
    };
    let power = match unit {
        ' ' => 0,
        'k' | 'K' => 1,
        'M' => 2,
        'G' => 3,
        'T' => 4,
        'P' => 5,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    // Sizes in bytes fit u64 comfortably below the 16 EiB a f64 cast saturates at.
    Some((value * 1024f64.powi(power)) as u64)
}

fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|t| t.trim().to_string())
}

fn link_name(path: &Path) -> Option<String> {
    let target = fs::read_link(path).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// Reads backing devices, cache devices and md arrays under `sys_block`.
pub fn observe(sys_block: &Path) -> io::Result<BcacheObserved> {
    let mut observed = BcacheObserved::default();
    let mut names: Vec<String> = fs::read_dir(sys_block)?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let dir = sys_block.join(&name);
        if name.starts_with("md") && dir.join("md").is_dir() {
            let mut members: Vec<String> = fs::read_dir(dir.join("slaves"))
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            members.sort();
            observed.arrays.push(MdArray {
                device: name.clone(),
                level: read(&dir.join("md/level")).unwrap_or_default(),
                members,
                sync_action: read(&dir.join("md/sync_action")).unwrap_or_default(),
                degraded: read(&dir.join("md/degraded"))
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0),
            });
        }
        // /sys/block/bcacheN/bcache is the same directory as its backing drive's.
        let bcache = dir.join("bcache");
        if name.starts_with("bcache") || !bcache.is_dir() {
            continue;
        }
        if let Some(set_uuid) = link_name(&bcache.join("set")) {
            observed.caches.push(CacheDevice {
                device: name,
                set_uuid,
            });
        } else if bcache.join("cache_mode").exists() {
            let number = |file: &str| {
                read(&bcache.join(file))
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0)
            };
            observed.backing.push(Backing {
                drive: name,
                device: link_name(&bcache.join("dev")),
                set_uuid: link_name(&bcache.join("cache")),
                mode: selected(&read(&bcache.join("cache_mode")).unwrap_or_default()),
                state: read(&bcache.join("state")).unwrap_or_default(),
                dirty_bytes: read(&bcache.join("dirty_data"))
                    .and_then(|t| parse_human(&t))
                    .unwrap_or(0),
                hits: number("stats_total/cache_hits"),
                misses: number("stats_total/cache_misses"),
            });
        }
    }
    Ok(observed)
}

impl BcacheObserved {
    pub fn backing_of(&self, drive: &str) -> Option<&Backing> {
        self.backing.iter().find(|b| b.drive == drive)
    }

    pub fn cache_device(&self, set_uuid: &str) -> Option<&CacheDevice> {
        self.caches.iter().find(|c| c.set_uuid == set_uuid)
    }

    pub fn array(&self, device: &str) -> Option<&MdArray> {
        self.arrays.iter().find(|a| a.device == device)
    }

    /// The drives under a cache device: the array's members, or the SSD itself.
    pub fn drives_under(&self, device: &str) -> Vec<String> {
        self.array(device)
            .map_or_else(|| vec![device.to_string()], |a| a.members.clone())
    }
}

/// Where the writes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysfs {
    pub sys_block: PathBuf,
    pub sys_fs_bcache: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Self {
            sys_block: PathBuf::from("/sys/block"),
            sys_fs_bcache: PathBuf::from("/sys/fs/bcache"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BcacheError {
    #[error("Cannot write {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("{what} did not happen within {seconds} s (see `dmesg` for bcache's messages)")]
    Timeout { what: String, seconds: u64 },
}

impl Sysfs {
    fn write(&self, path: PathBuf, value: &str) -> Result<(), BcacheError> {
        fs::write(&path, value).map_err(|source| BcacheError::Write {
            path,
            value: value.to_string(),
            source,
        })
    }

    /// Makes the kernel read a device's bcache superblock: a backing device gets its
    /// `/dev/bcacheN`, a cache device its set. (udev's `bcache-register` does this on
    /// hotplug; the image has no udev.)
    pub fn register(&self, device: &Path) -> Result<(), BcacheError> {
        self.write(
            self.sys_fs_bcache.join("register"),
            &device.display().to_string(),
        )
    }

    pub fn registered(&self, device: &str) -> bool {
        self.sys_block.join(device).join("bcache").is_dir()
    }

    /// The `bcacheN` of a running backing device.
    pub fn bcache_device(&self, drive: &str) -> Option<String> {
        link_name(&self.sys_block.join(drive).join("bcache/dev"))
    }

    /// The cache set a registered cache device belongs to.
    pub fn set_of(&self, cache_device: &str) -> Option<String> {
        link_name(&self.sys_block.join(cache_device).join("bcache/set"))
    }

    fn backing_file(&self, drive: &str, file: &str) -> PathBuf {
        self.sys_block.join(drive).join("bcache").join(file)
    }

    pub fn attach(&self, drive: &str, set_uuid: &str) -> Result<(), BcacheError> {
        self.write(self.backing_file(drive, "attach"), set_uuid)
    }

    pub fn set_mode(&self, drive: &str, mode: &str) -> Result<(), BcacheError> {
        self.write(self.backing_file(drive, "cache_mode"), mode)
    }

    /// Starts detaching: bcache writes the dirty data back first, then lets go.
    pub fn detach(&self, drive: &str) -> Result<(), BcacheError> {
        self.write(self.backing_file(drive, "detach"), "1")
    }

    /// Stops a backing device: its `/dev/bcacheN` goes and the drive is free again.
    pub fn stop_backing(&self, drive: &str) -> Result<(), BcacheError> {
        self.write(self.backing_file(drive, "stop"), "1")
    }

    /// Runs a backing device whose cache set is absent. Only safe when the cache holds no
    /// dirty data for it (state `clean`): the caller checks.
    pub fn run_without_cache(&self, drive: &str) -> Result<(), BcacheError> {
        self.write(self.backing_file(drive, "running"), "1")
    }

    pub fn backing_state(&self, drive: &str) -> Option<String> {
        read(&self.backing_file(drive, "state"))
    }

    pub fn dirty_bytes(&self, drive: &str) -> u64 {
        read(&self.backing_file(drive, "dirty_data"))
            .and_then(|t| parse_human(&t))
            .unwrap_or(0)
    }

    /// Closes a cache set and its cache device (after every backing device has detached).
    pub fn unregister_set(&self, set_uuid: &str) -> Result<(), BcacheError> {
        self.write(self.sys_fs_bcache.join(set_uuid).join("unregister"), "1")
    }

    pub fn set_exists(&self, set_uuid: &str) -> bool {
        self.sys_fs_bcache.join(set_uuid).is_dir()
    }
}

/// Polls `check` every 100 ms until it holds or `limit` passes.
pub fn wait_for(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<(), BcacheError> {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BcacheError::Timeout {
                what: what.to_string(),
                seconds: limit.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::state::CacheMode;
    use crate::storage::action::cache_mode;

    #[test]
    fn modes_and_sizes_as_sysfs_prints_them() {
        assert_eq!(
            selected("writethrough [writeback] writearound none"),
            "writeback"
        );
        assert_eq!(cache_mode(&selected("writethrough [none]")), None);
        assert_eq!(cache_mode("writearound"), Some(CacheMode::ReadOnly));
        assert_eq!(parse_human("0"), Some(0));
        assert_eq!(parse_human("512"), Some(512));
        assert_eq!(parse_human("4.0k"), Some(4096));
        assert_eq!(parse_human("1.5M\n"), Some(1_572_864));
        assert_eq!(parse_human("x"), None);
    }

    #[test]
    fn observes_backing_cache_and_array_from_a_fixture_tree() {
        let root = tempfile::tempdir().expect("a temporary directory");
        let block = root.path().join("block");
        let fs_bcache = root.path().join("fs/bcache/5bc0");
        fs::create_dir_all(&fs_bcache).expect("fixture");
        let sdb = block.join("sdb/bcache");
        fs::create_dir_all(sdb.join("stats_total")).expect("fixture");
        fs::create_dir_all(block.join("bcache0")).expect("fixture");
        symlink(block.join("bcache0"), sdb.join("dev")).expect("fixture");
        symlink(&fs_bcache, sdb.join("cache")).expect("fixture");
        fs::write(
            sdb.join("cache_mode"),
            "writethrough [writeback] writearound none\n",
        )
        .expect("fixture");
        fs::write(sdb.join("state"), "dirty\n").expect("fixture");
        fs::write(sdb.join("dirty_data"), "2.0M\n").expect("fixture");
        fs::write(sdb.join("stats_total/cache_hits"), "30\n").expect("fixture");
        fs::write(sdb.join("stats_total/cache_misses"), "10\n").expect("fixture");
        let md = block.join("md100");
        fs::create_dir_all(md.join("md")).expect("fixture");
        fs::create_dir_all(md.join("slaves/vdb")).expect("fixture");
        fs::create_dir_all(md.join("slaves/vdc")).expect("fixture");
        fs::create_dir_all(md.join("bcache")).expect("fixture");
        symlink(&fs_bcache, md.join("bcache/set")).expect("fixture");
        fs::write(md.join("md/level"), "raid1\n").expect("fixture");
        fs::write(md.join("md/sync_action"), "idle\n").expect("fixture");
        fs::write(md.join("md/degraded"), "0\n").expect("fixture");

        let observed = observe(&block).expect("fixture reads");
        let backing = observed.backing_of("sdb").expect("sdb is a backing device");
        assert_eq!(backing.device.as_deref(), Some("bcache0"));
        assert_eq!(backing.set_uuid.as_deref(), Some("5bc0"));
        assert_eq!(
            (backing.mode.as_str(), backing.state.as_str()),
            ("writeback", "dirty")
        );
        assert_eq!(
            (backing.dirty_bytes, backing.hits, backing.misses),
            (2 << 20, 30, 10)
        );
        let cache = observed
            .cache_device("5bc0")
            .expect("the set's cache device");
        assert_eq!(cache.device, "md100");
        assert_eq!(observed.drives_under("md100"), ["vdb", "vdc"]);
        assert_eq!(observed.drives_under("sdd"), ["sdd"]);
        assert_eq!(
            observed.array("md100").map(|a| a.level.as_str()),
            Some("raid1")
        );
    }
}
