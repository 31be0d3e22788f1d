//! The EFI system partition: systemd-boot and two boot slots as Boot Loader Specification
//! entries with boot counting.
//!
//! The FAT file system is made by dosfstools' `mkfs.vfat` and filled by mtools on the build
//! host: the fatfs crate writes directory entries that `fsck.fat` flags (see LAB-FACTS), and
//! a firmware's FAT driver is the least forgiving reader there is. `mkfs.vfat --invariant`
//! and mtools' SOURCE_DATE_EPOCH support keep the bytes reproducible; `fsck.fat -n` checks
//! the result before it goes into the disk image.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum EspError {
    #[error(
        "`{tool}` is not installed on the build host; install dosfstools and mtools (`make deps` does it on Debian and Ubuntu)"
    )]
    ToolMissing { tool: String },
    #[error("`{command}` failed: {output}")]
    ToolFailed { command: String, output: String },
    #[error("cannot prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the ESP needs {needed_mib} MiB but the image gives it {size_mib} MiB; raise ESP_SIZE_MIB"
    )]
    TooSmall { needed_mib: u64, size_mib: u64 },
}

/// The two slots; an update writes the slot that did not boot and makes it the default.
pub const SLOTS: [char; 2] = ['a', 'b'];

/// Boot attempts a fresh slot gets before systemd-boot stops choosing it; init marks the
/// slot good (drops the counter) once the appliance is ready.
pub const BOOT_TRIES: u32 = 3;

pub struct EspContents<'a> {
    pub systemd_boot_efi: &'a Path,
    pub kernel: &'a Path,
    pub initramfs: &'a Path,
    pub version: &'a str,
    pub kernel_command_line: &'a str,
}

/// `loader.conf`: boot slot A unless told otherwise, after a short menu timeout so a person
/// at the console can still choose slot B.
pub fn loader_conf() -> String {
    "# Written by the Cairn image builder.\ntimeout 2\ndefault cairn-a*\nconsole-mode keep\neditor no\n"
        .to_string()
}

pub fn entry_file_name(slot: char) -> String {
    format!("cairn-{slot}+{BOOT_TRIES}.conf")
}

pub fn entry_conf(slot: char, version: &str, command_line: &str) -> String {
    let upper = slot.to_ascii_uppercase();
    format!(
        "title Cairn {version} (slot {upper})\nversion {version}\nsort-key cairn-{slot}\nlinux /cairn/{slot}/vmlinuz\ninitrd /cairn/{slot}/initramfs.img\noptions {command_line} cairn.slot={slot}\n"
    )
}

/// Lays out the ESP's files under `staging`, all stamped with `mtime`.
pub fn stage(staging: &Path, contents: &EspContents, mtime: i64) -> Result<Vec<PathBuf>, EspError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EspError::Io { path, source }
    };
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let read = |path: &Path| fs::read(path).map_err(io(path));
    let boot = read(contents.systemd_boot_efi)?;
    files.push(("EFI/BOOT/BOOTX64.EFI".into(), boot.clone()));
    files.push(("EFI/systemd/systemd-bootx64.efi".into(), boot));
    files.push(("loader/loader.conf".into(), loader_conf().into_bytes()));
    let kernel = read(contents.kernel)?;
    let initramfs = read(contents.initramfs)?;
    for slot in SLOTS {
        files.push((format!("cairn/{slot}/vmlinuz").into(), kernel.clone()));
        files.push((
            format!("cairn/{slot}/initramfs.img").into(),
            initramfs.clone(),
        ));
        files.push((
            format!("loader/entries/{}", entry_file_name(slot)).into(),
            entry_conf(slot, contents.version, contents.kernel_command_line).into_bytes(),
        ));
    }
    let mut written = Vec::new();
    for (relative, bytes) in files {
        let path = staging.join(&relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        fs::write(&path, bytes).map_err(io(&path))?;
        let file = fs::File::options()
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime.max(0) as u64);
        file.set_modified(when).map_err(io(&path))?;
        written.push(relative);
    }
    written.sort();
    Ok(written)
}

fn run(command: &mut Command) -> Result<(), EspError> {
    let display = format!("{command:?}");
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => EspError::ToolMissing {
            tool: program.clone(),
        },
        _ => EspError::ToolFailed {
            command: display.clone(),
            output: error.to_string(),
        },
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(EspError::ToolFailed {
            command: display,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

/// Makes a FAT32 image of `size_mib` at `image` holding `staging`'s `files`.
pub fn make_fat_image(
    image: &Path,
    size_mib: u64,
    staging: &Path,
    files: &[PathBuf],
    source_date_epoch: i64,
) -> Result<(), EspError> {
    let needed: u64 = files
        .iter()
        .map(|file| {
            fs::metadata(staging.join(file))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum();
    // FAT32's tables and cluster slack: keep a tenth of the partition free of data.
    let needed_mib = needed / (1024 * 1024) * 11 / 10 + 1;
    if needed_mib > size_mib {
        return Err(EspError::TooSmall {
            needed_mib,
            size_mib,
        });
    }
    let _ = fs::remove_file(image);
    let file = fs::File::create(image).map_err(|source| EspError::Io {
        path: image.to_path_buf(),
        source,
    })?;
    file.set_len(size_mib * 1024 * 1024)
        .map_err(|source| EspError::Io {
            path: image.to_path_buf(),
            source,
        })?;
    drop(file);
    // The volume id is derived from the epoch so it is stable, as --invariant needs.
    let volume_id = format!("{:08x}", (source_date_epoch as u64) & 0xffff_ffff);
    run(Command::new("mkfs.vfat")
        .args([
            "-F",
            "32",
            "-n",
            "CAIRN-ESP",
            "-i",
            &volume_id,
            "--invariant",
        ])
        .arg(image))?;
    let mut directories: Vec<PathBuf> = files
        .iter()
        .flat_map(|file| {
            file.ancestors()
                .skip(1)
                .map(Path::to_path_buf)
                .collect::<Vec<_>>()
        })
        .filter(|dir| !dir.as_os_str().is_empty())
        .collect();
    directories.sort();
    directories.dedup();
    let mtools = |args: &[&str]| {
        let mut command = Command::new(args[0]);
        command
            .args(&args[1..])
            .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string())
            .env("MTOOLS_SKIP_CHECK", "1")
            .env("TZ", "UTC");
        command
    };
    let image_arg = image.to_string_lossy().into_owned();
    for dir in &directories {
        let target = format!("::/{}", dir.display());
        run(&mut mtools(&["mmd", "-i", &image_arg, &target]))?;
    }
    for file in files {
        let source = staging.join(file).to_string_lossy().into_owned();
        let target = format!("::/{}", file.display());
        run(&mut mtools(&[
            "mcopy", "-m", "-i", &image_arg, &source, &target,
        ]))?;
    }
    run(Command::new("fsck.fat").arg("-n").arg(image))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_carry_boot_counting_and_the_slot() {
        assert_eq!(entry_file_name('a'), "cairn-a+3.conf");
        let entry = entry_conf('b', "0.1.0", "console=ttyS0,115200");
        assert!(entry.contains("linux /cairn/b/vmlinuz\n"));
        assert!(entry.contains("initrd /cairn/b/initramfs.img\n"));
        assert!(entry.ends_with("options console=ttyS0,115200 cairn.slot=b\n"));
        assert!(loader_conf().contains("default cairn-a*"));
    }
}
