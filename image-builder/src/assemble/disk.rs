//! The flashable disk: a protective MBR, a GPT, the ESP and a blank config partition.
//!
//! Partitions are found by their GPT names (`cairn-esp`, `cairn-config`), so the layout can
//! grow without init hard-coding numbers. Every GUID is derived from SOURCE_DATE_EPOCH and
//! the partition's role (UUIDv5), so the same inputs give the same bytes.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use gpt::GptConfig;
use gpt::disk::LogicalBlockSize;
use gpt::mbr::ProtectiveMBR;
use uuid::Uuid;

/// Room for two slots of kernel + initramfs plus an update written beside them, with a
/// margin for the initramfs to grow as later issues add tools.
pub const ESP_SIZE_MIB: u64 = 512;
/// Desired-state history, credentials and the logs of recent boots: small text files.
pub const CONFIG_SIZE_MIB: u64 = 256;
/// 1 MiB alignment in front of the first partition and room for the backup GPT at the end.
const ALIGNMENT_SECTORS: u64 = 2048;
const SECTOR: u64 = 512;

pub const ESP_NAME: &str = "cairn-esp";
pub const CONFIG_NAME: &str = "cairn-config";

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot write the disk image {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the partition table of {path}: {message}")]
    Gpt { path: PathBuf, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPlacement {
    pub name: &'static str,
    pub first_byte: u64,
    pub size: u64,
}

fn derived_uuid(epoch: i64, role: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("cairn/{epoch}/{role}").as_bytes(),
    )
}

pub fn total_size() -> u64 {
    (ALIGNMENT_SECTORS * 2) * SECTOR + (ESP_SIZE_MIB + CONFIG_SIZE_MIB) * 1024 * 1024
}

/// Writes the disk image at `path` with the ESP file system image copied into partition 1.
pub fn write_disk(
    path: &Path,
    esp_image: &Path,
    epoch: i64,
) -> Result<Vec<PartitionPlacement>, DiskError> {
    let io = |source| DiskError::Io {
        path: path.to_path_buf(),
        source,
    };
    let gpt_error = |message: String| DiskError::Gpt {
        path: path.to_path_buf(),
        message,
    };
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io)?;
    // A sparse file: the blank config partition costs nothing until it is written.
    file.set_len(total_size()).map_err(io)?;

    let sectors = total_size() / SECTOR;
    let mbr = ProtectiveMBR::with_lb_size(u32::try_from(sectors - 1).unwrap_or(u32::MAX));
    mbr.overwrite_lba0(&mut file)
        .map_err(|error| gpt_error(format!("protective MBR: {error}")))?;

    let mut disk = GptConfig::new()
        .writable(true)
        .logical_block_size(LogicalBlockSize::Lb512)
        .create_from_device(file, Some(derived_uuid(epoch, "disk")))
        .map_err(|error| gpt_error(error.to_string()))?;
    let layout = [
        (ESP_NAME, ESP_SIZE_MIB, gpt::partition_types::EFI),
        (CONFIG_NAME, CONFIG_SIZE_MIB, gpt::partition_types::LINUX_FS),
    ];
    for (name, size_mib, kind) in layout.iter().cloned() {
        disk.add_partition(
            name,
            size_mib * 1024 * 1024,
            kind,
            0,
            Some(ALIGNMENT_SECTORS),
        )
        .map_err(|error| gpt_error(format!("partition {name}: {error}")))?;
    }
    // add_partition draws random partition GUIDs; replace them with derived ones.
    let mut partitions = disk.take_partitions();
    for partition in partitions.values_mut() {
        partition.part_guid = derived_uuid(epoch, &partition.name);
    }
    let placements: Vec<PartitionPlacement> = layout
        .iter()
        .filter_map(|(name, _, _)| {
            partitions
                .values()
                .find(|p| p.name == *name)
                .map(|p| PartitionPlacement {
                    name,
                    first_byte: p.first_lba * SECTOR,
                    size: (p.last_lba + 1 - p.first_lba) * SECTOR,
                })
        })
        .collect();
    disk.update_partitions(partitions)
        .map_err(|error| gpt_error(error.to_string()))?;
    let mut file = disk.write().map_err(|error| gpt_error(error.to_string()))?;

    let esp = placements
        .iter()
        .find(|p| p.name == ESP_NAME)
        .expect("the layout above always has the ESP");
    let mut source = fs::File::open(esp_image).map_err(|source| DiskError::Io {
        path: esp_image.to_path_buf(),
        source,
    })?;
    let esp_len = source
        .metadata()
        .map_err(|source| DiskError::Io {
            path: esp_image.to_path_buf(),
            source,
        })?
        .len();
    if esp_len > esp.size {
        return Err(gpt_error(format!(
            "the ESP image is {esp_len} bytes, larger than its partition ({} bytes)",
            esp.size
        )));
    }
    file.seek(SeekFrom::Start(esp.first_byte)).map_err(io)?;
    copy_sparse(&mut source, &mut file).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(placements)
}

/// Copies, skipping all-zero blocks (seeking over them) so the image stays sparse.
fn copy_sparse(source: &mut fs::File, target: &mut fs::File) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 1024 * 1024];
    loop {
        let read = source.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        let chunk = &buffer[..read];
        if chunk.iter().all(|byte| *byte == 0) {
            target.seek(SeekFrom::Current(read as i64))?;
        } else {
            target.write_all(chunk)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_aligned_and_reproducible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let esp = dir.path().join("esp.img");
        fs::write(&esp, vec![0xAB; 4096]).expect("esp");
        let first = dir.path().join("one.img");
        let second = dir.path().join("two.img");
        let placements = write_disk(&first, &esp, 42).expect("first");
        write_disk(&second, &esp, 42).expect("second");
        assert_eq!(
            fs::read(&first).expect("read"),
            fs::read(&second).expect("read")
        );

        assert_eq!(placements[0].name, ESP_NAME);
        assert_eq!(placements[0].first_byte, 1024 * 1024);
        assert_eq!(placements[0].size, ESP_SIZE_MIB * 1024 * 1024);
        assert_eq!(placements[1].name, CONFIG_NAME);
        assert_eq!(placements[1].first_byte % (1024 * 1024), 0);

        let disk = GptConfig::new().open(&first).expect("reads back");
        let names: Vec<&str> = disk
            .partitions()
            .values()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, [ESP_NAME, CONFIG_NAME]);
        let bytes = fs::read(&first).expect("read");
        let at = placements[0].first_byte as usize;
        assert_eq!(&bytes[at..at + 4], &[0xAB; 4]);
    }

    #[test]
    fn another_epoch_gives_other_guids() {
        assert_ne!(derived_uuid(1, "disk"), derived_uuid(2, "disk"));
        assert_eq!(derived_uuid(1, "disk"), derived_uuid(1, "disk"));
    }
}
