//! Did the guest leave its config filesystem cleanly unmounted? Answered from the disk
//! itself after QEMU is gone: the qcow2 overlay is converted to raw, the GPT partition
//! named `cairn-config` is found, and its ext4 superblock is read.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::disk::{self, DiskError};
use crate::ext4::{self, Ext4Error, Superblock};
use crate::gpt_read::{self, GptError, Partition};

/// GPT partition name of the config filesystem (docs/image-contract.md, "Partitions").
pub const CONFIG_PARTITION: &str = "cairn-config";

#[derive(Debug, Error)]
pub enum FsCheckError {
    #[error("Cannot convert the disk overlay to raw (QEMU must have exited first)")]
    Convert(#[from] DiskError),
    #[error("Cannot find the config partition")]
    Gpt(#[from] GptError),
    #[error("Cannot read the config filesystem's superblock")]
    Ext4(#[from] Ext4Error),
}

/// The config partition and its superblock as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFs {
    pub partition: Partition,
    pub superblock: Superblock,
    /// The raw copy the answer was read from (inside the test's scratch directory).
    pub raw_image: PathBuf,
}

/// Converts `overlay` to `<scratch>/disk.raw` and reads the config filesystem there.
pub fn inspect_config_fs(overlay: &Path, scratch: &Path) -> Result<ConfigFs, FsCheckError> {
    let raw_image = scratch.join("disk.raw");
    disk::convert_to_raw(overlay, &raw_image)?;
    inspect_raw(&raw_image)
}

/// Reads the config filesystem of a raw disk image.
pub fn inspect_raw(raw_image: &Path) -> Result<ConfigFs, FsCheckError> {
    let partition = gpt_read::find_partition(raw_image, CONFIG_PARTITION)?;
    let superblock = ext4::read_superblock(raw_image, partition.byte_offset())?;
    Ok(ConfigFs {
        partition,
        superblock,
        raw_image: raw_image.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;
    use std::process::Command;

    use super::*;
    use crate::gpt_read::tests::synthetic_gpt;

    /// A GPT disk whose second partition, `cairn-config`, holds a real ext4 made by mke2fs.
    #[test]
    fn finds_the_config_filesystem_behind_the_gpt() {
        let dir = tempfile::tempdir().expect("temp dir");
        let raw = dir.path().join("disk.raw");
        // ESP at LBA 2048, config at LBA 6144 (3 MiB), 8 MiB long.
        let config_start: u64 = 6144;
        let gpt = synthetic_gpt(&[
            ("cairn-esp", 2048, 6143),
            (CONFIG_PARTITION, config_start, config_start + 16383),
        ]);
        let file = std::fs::File::create(&raw).expect("create");
        file.set_len(16 << 20).expect("size");
        file.write_all_at(&gpt, 0).expect("gpt");
        let made = Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-E"])
            .arg(format!("offset={}", config_start * 512))
            .arg(&raw)
            .arg("8M")
            .status();
        match made {
            Ok(status) => assert!(status.success(), "mke2fs failed: {status}"),
            Err(e) => {
                eprintln!("skipped: mke2fs is not available ({e}); install e2fsprogs");
                return;
            }
        }
        let found = inspect_raw(&raw).expect("config fs");
        assert_eq!(found.partition.number, 2);
        assert!(found.superblock.cleanly_unmounted());
    }
}
