//! A bootable guest disk for the firmware test: a raw GPT disk whose one partition is an
//! EFI system partition holding a Boot Loader Specification entry (`/loader/entries/`,
//! keys `linux`, `initrd`, `options`), which rust-hypervisor-firmware reads and boots
//! (LAB-FACTS).
//!
//! The FAT is made by dosfstools' `mkfs.vfat` and filled by mtools, as image-builder does
//! for the appliance's own ESP; the GPT around it is written here (protective MBR, both
//! headers and entry arrays), about as much code as a dependency's glue would be.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::gpt_read::crc32;

const SECTOR: u64 = 512;
/// The partition starts at 1 MiB, as partitioning tools align it.
const FIRST_LBA: u64 = 2048;
const ENTRIES: u64 = 128;
const ENTRY_SIZE: u64 = 128;
/// EFI System Partition type GUID C12A7328-F81F-11D2-BA4B-00A0C93EC93B, in GPT's mixed-endian
/// byte order.
const ESP_TYPE: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];

#[derive(Debug, thiserror::Error)]
pub enum GuestDiskError {
    #[error("Cannot run {command}: {message}")]
    Tool { command: String, message: String },
    #[error("Cannot read or write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn run(command: &mut Command) -> Result<(), GuestDiskError> {
    let text = format!("{command:?}");
    let output = command.output().map_err(|error| GuestDiskError::Tool {
        command: text.clone(),
        message: error.to_string(),
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(GuestDiskError::Tool {
            command: text,
            message: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// Writes `<dir>/guest-disk.img`: an ESP of `esp_mib` with `vmlinuz`, `initrd.img` and one
/// loader entry booting them with `options`.
pub fn boot_disk(
    dir: &Path,
    kernel: &Path,
    initramfs: &[u8],
    options: &str,
    esp_mib: u64,
) -> Result<PathBuf, GuestDiskError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| GuestDiskError::Io { path, source }
    };
    let esp = dir.join("esp.img");
    let _ = std::fs::remove_file(&esp);
    run(Command::new("mkfs.vfat")
        .args(["-F", "16", "-n", "GUESTESP", "-C"])
        .arg(&esp)
        .arg((esp_mib * 1024).to_string()))?;
    let initrd = dir.join("initrd.img");
    std::fs::write(&initrd, initramfs).map_err(io(&initrd))?;
    let loader = dir.join("loader.conf");
    std::fs::write(&loader, "default guest.conf\ntimeout 0\n").map_err(io(&loader))?;
    let entry = dir.join("guest.conf");
    std::fs::write(
        &entry,
        format!("title guest\nlinux /vmlinuz\ninitrd /initrd.img\noptions {options}\n"),
    )
    .map_err(io(&entry))?;
    let image = |args: &[&std::ffi::OsStr]| {
        let mut command = Command::new(args[0]);
        command.arg("-i").arg(&esp).args(&args[1..]);
        run(&mut command)
    };
    image(&[
        "mmd".as_ref(),
        "::/loader".as_ref(),
        "::/loader/entries".as_ref(),
    ])?;
    image(&["mcopy".as_ref(), kernel.as_os_str(), "::/vmlinuz".as_ref()])?;
    image(&[
        "mcopy".as_ref(),
        initrd.as_os_str(),
        "::/initrd.img".as_ref(),
    ])?;
    image(&[
        "mcopy".as_ref(),
        loader.as_os_str(),
        "::/loader/loader.conf".as_ref(),
    ])?;
    image(&[
        "mcopy".as_ref(),
        entry.as_os_str(),
        "::/loader/entries/guest.conf".as_ref(),
    ])?;

    let fat = std::fs::read(&esp).map_err(io(&esp))?;
    let disk = dir.join("guest-disk.img");
    std::fs::write(&disk, gpt_disk(&fat)).map_err(io(&disk))?;
    Ok(disk)
}

/// A whole disk: protective MBR, GPT, `partition` at LBA 2048, backup GPT.
fn gpt_disk(partition: &[u8]) -> Vec<u8> {
    let part_sectors = (partition.len() as u64).div_ceil(SECTOR);
    let entry_sectors = ENTRIES * ENTRY_SIZE / SECTOR;
    let last_usable = FIRST_LBA + part_sectors + 2047;
    let total = last_usable + 1 + entry_sectors + 1;
    let mut disk = vec![0u8; (total * SECTOR) as usize];

    // Protective MBR: one partition of type 0xEE over the disk.
    let mbr = &mut disk[446..462];
    mbr[1..4].copy_from_slice(&[0, 2, 0]);
    mbr[4] = 0xee;
    mbr[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    mbr[8..12].copy_from_slice(&1u32.to_le_bytes());
    mbr[12..16].copy_from_slice(&u32::try_from(total - 1).unwrap_or(u32::MAX).to_le_bytes());
    disk[510] = 0x55;
    disk[511] = 0xaa;

    let mut entries = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
    entries[0..16].copy_from_slice(&ESP_TYPE);
    entries[16..32].copy_from_slice(&[0x5a; 16]); // a fixed unique GUID: one disk per test
    entries[32..40].copy_from_slice(&FIRST_LBA.to_le_bytes());
    entries[40..48].copy_from_slice(&(FIRST_LBA + part_sectors - 1).to_le_bytes());
    for (i, unit) in "ESP".encode_utf16().enumerate() {
        entries[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
    }
    let entries_crc = crc32(&entries);

    let header = |current: u64, backup: u64, entries_lba: u64| {
        let mut h = vec![0u8; 92];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&current.to_le_bytes());
        h[32..40].copy_from_slice(&backup.to_le_bytes());
        h[40..48].copy_from_slice(&(2 + entry_sectors).to_le_bytes());
        h[48..56].copy_from_slice(&last_usable.to_le_bytes());
        h[56..72].copy_from_slice(&[0xa5; 16]);
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&u32::try_from(ENTRIES).unwrap_or(0).to_le_bytes());
        h[84..88].copy_from_slice(&u32::try_from(ENTRY_SIZE).unwrap_or(0).to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32(&h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let at = |lba: u64| (lba * SECTOR) as usize;
    let primary = header(1, total - 1, 2);
    disk[at(1)..at(1) + 92].copy_from_slice(&primary);
    disk[at(2)..at(2) + entries.len()].copy_from_slice(&entries);
    let backup_entries = last_usable + 1;
    disk[at(backup_entries)..at(backup_entries) + entries.len()].copy_from_slice(&entries);
    let backup = header(total - 1, 1, backup_entries);
    disk[at(total - 1)..at(total - 1) + 92].copy_from_slice(&backup);
    disk[at(FIRST_LBA)..at(FIRST_LBA) + partition.len()].copy_from_slice(partition);
    disk
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gpt_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.img");
        std::fs::write(&path, gpt_disk(&vec![0xab; 4 * 1024 * 1024])).expect("writes");
        let partition = crate::gpt_read::find_partition(&path, "ESP").expect("found");
        assert_eq!(partition.byte_offset(), FIRST_LBA * SECTOR);
        assert_eq!(partition.byte_len(), 4 * 1024 * 1024);
    }
}
