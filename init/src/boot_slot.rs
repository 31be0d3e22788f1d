//! Boot counting, the appliance's half of it.
//!
//! systemd-boot counts tries in the entry's file name: it boots `cairn-a+3.conf` after
//! renaming it `cairn-a+2-1.conf` (2 tries left, 1 done), and stops preferring an entry whose
//! tries reach zero, so a slot that cannot boot falls back to the other one. Once the
//! appliance is READY the slot has proven itself: its entry loses the counter
//! (`cairn-a.conf`), as systemd-bless-boot does on a systemd system.

use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount, umount};

use crate::config_partition::find_partition;

/// GPT partition name of the EFI system partition (docs/image-contract.md).
pub const ESP_PARTITION: &str = "cairn-esp";
const MOUNT_POINT: &str = "/run/cairn/esp";

/// The name an entry gets once its slot is good, or `None` when `file_name` is not a
/// counting entry of `slot` (already good, another slot, not an entry at all).
pub fn blessed_name(file_name: &str, slot: &str) -> Option<String> {
    let stem = file_name.strip_suffix(".conf")?;
    let (base, counter) = stem.rsplit_once('+')?;
    if base != format!("cairn-{slot}") {
        return None;
    }
    let mut parts = counter.splitn(2, '-');
    let left = parts.next()?;
    let done = parts.next();
    let is_number = |text: &str| !text.is_empty() && text.chars().all(|c| c.is_ascii_digit());
    if !is_number(left) || done.is_some_and(|done| !is_number(done)) {
        return None;
    }
    Some(format!("{base}.conf"))
}

#[derive(Debug, thiserror::Error)]
pub enum BlessError {
    #[error("no partition labelled {ESP_PARTITION}")]
    NoEsp,
    #[error("cannot mount the EFI system partition /dev/{device}")]
    Mount {
        device: String,
        #[source]
        source: nix::Error,
    },
    #[error("cannot rename the boot entry {from}")]
    Rename {
        from: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Renames the slot's counting entry in `entries_dir`; returns (old, new) names if it did.
pub fn bless_in(entries_dir: &Path, slot: &str) -> Result<Option<(String, String)>, BlessError> {
    let read_error = |source| BlessError::Read {
        path: entries_dir.to_path_buf(),
        source,
    };
    let mut names: Vec<String> = std::fs::read_dir(entries_dir)
        .map_err(read_error)?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    for name in names {
        if let Some(good) = blessed_name(&name, slot) {
            let from = entries_dir.join(&name);
            std::fs::rename(&from, entries_dir.join(&good))
                .map_err(|source| BlessError::Rename { from, source })?;
            return Ok(Some((name, good)));
        }
    }
    Ok(None)
}

/// Mounts the ESP, blesses `slot`'s entry, syncs and unmounts. Failure only costs the
/// boot counter: it is logged, never fatal.
pub fn mark_slot_good(slot: &str) {
    match mount_and_bless(Path::new("/sys"), slot) {
        Ok(Some((from, to))) => tracing::info!("boot slot {slot} marked good ({from} -> {to})"),
        Ok(None) => tracing::debug!("boot slot {slot} was already marked good"),
        Err(err) => tracing::warn!(
            "could not mark boot slot {slot} good: {}",
            crate::error::Chain(&err)
        ),
    }
}

fn mount_and_bless(sys_root: &Path, slot: &str) -> Result<Option<(String, String)>, BlessError> {
    let device =
        find_partition(&sys_root.join("class/block"), ESP_PARTITION).ok_or(BlessError::NoEsp)?;
    let target = Path::new(MOUNT_POINT);
    let _ = std::fs::create_dir_all(target);
    mount(
        Some(&Path::new("/dev").join(&device)),
        target,
        Some("vfat"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|source| BlessError::Mount {
        device: device.clone(),
        source,
    })?;
    let result = bless_in(&target.join("loader/entries"), slot);
    nix::unistd::sync();
    if let Err(err) = umount(target) {
        tracing::warn!("could not unmount the EFI system partition: {err}");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_entries_of_the_slot_lose_their_counter() {
        assert_eq!(
            blessed_name("cairn-a+3.conf", "a").as_deref(),
            Some("cairn-a.conf")
        );
        assert_eq!(
            blessed_name("cairn-a+2-1.conf", "a").as_deref(),
            Some("cairn-a.conf")
        );
        assert_eq!(
            blessed_name("cairn-a+0-3.conf", "a").as_deref(),
            Some("cairn-a.conf")
        );
    }

    #[test]
    fn other_names_are_left_alone() {
        for (name, slot) in [
            ("cairn-a.conf", "a"),
            ("cairn-b+2-1.conf", "a"),
            ("cairn-a+x.conf", "a"),
            ("cairn-a+2-.conf", "a"),
            ("loader.conf", "a"),
            ("cairn-a+3.txt", "a"),
        ] {
            assert_eq!(blessed_name(name, slot), None, "{name}");
        }
    }

    #[test]
    fn bless_renames_only_the_booted_slot() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["cairn-a+2-1.conf", "cairn-b+3.conf"] {
            std::fs::write(dir.path().join(name), "title x\n").expect("write");
        }
        let renamed = bless_in(dir.path(), "a").expect("blesses");
        assert_eq!(
            renamed,
            Some(("cairn-a+2-1.conf".to_owned(), "cairn-a.conf".to_owned()))
        );
        assert!(dir.path().join("cairn-a.conf").exists());
        assert!(dir.path().join("cairn-b+3.conf").exists());
        assert_eq!(bless_in(dir.path(), "a").expect("second time"), None);
    }
}
