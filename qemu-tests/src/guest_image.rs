//! What the guest tests need inside the appliance: a guest kernel and a tiny initramfs.
//!
//! The guest kernel is the appliance's own (`build/image/vmlinuz`, a bzImage
//! cloud-hypervisor boots directly). Its initramfs is built here: busybox (from Debian's
//! `busybox-static`) and the six modules a guest needs that are not built into Debian's
//! kernel — `failover`, `net_failover`, `virtio_net` (its NIC), `virtio_blk` (its disks),
//! `button` (the ACPI power button) and `evdev` (to read it) — taken from the very kernel package the image was
//! built from, in image-builder's download cache. Its `/init` ([`guest_init_script`])
//! brings up `eth0` with the address on the kernel command line (`guest.addr=`), prints
//! `CAIRN-GUEST-UP <guest.token>` on the serial console, and powers off when the power
//! button is pressed.
//!
//! Both files reach the appliance as one more newc archive after its initramfs
//! (`Launch::archive`), under `/guest/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use crate::image::Image;
use crate::newc::{NewcError, NewcWriter};

/// Where the files are inside the appliance.
pub const GUEST_KERNEL: &str = "/guest/vmlinuz";
pub const GUEST_INITRAMFS: &str = "/guest/initramfs.img";
/// Modules in load order (dependencies first).
const GUEST_MODULES: [(&str, &str); 6] = [
    ("failover", "kernel/net/core/failover.ko.xz"),
    ("net_failover", "kernel/drivers/net/net_failover.ko.xz"),
    ("virtio_net", "kernel/drivers/net/virtio_net.ko.xz"),
    ("virtio_blk", "kernel/drivers/block/virtio_blk.ko.xz"),
    ("button", "kernel/drivers/acpi/button.ko.xz"),
    ("evdev", "kernel/drivers/input/evdev.ko.xz"),
];

#[derive(Debug, Error)]
pub enum GuestImageError {
    #[error("{0}")]
    Missing(String),
    #[error("Cannot run {command}")]
    Run {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("Cannot read or write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot write the archive")]
    Newc(#[from] NewcError),
}

/// Says on the test process's own stderr that `test` did not run and why. Written past the
/// test harness's output capture (which takes only the `print!` family), so the line shows
/// in `make test` and CI even though the test returns as passed.
pub fn report_skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test}: {why}");
}

/// Whether the image under test has cloud-hypervisor (and the firmware) inside, from its
/// `manifest.json`: `Err` names what is missing, for the test's SKIPPED line.
pub fn hypervisor_in_image(image: &Image, need_firmware: bool) -> Result<(), String> {
    let manifest_path = image
        .kernel
        .parent()
        .map(|dir| dir.join("manifest.json"))
        .unwrap_or_default();
    let manifest: serde_json::Value = std::fs::read_to_string(&manifest_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .ok_or_else(|| format!("no readable {}", manifest_path.display()))?;
    if manifest["cloud_hypervisor"] != true {
        return Err(
            "the image has no cloud-hypervisor (set CAIRN_CLOUD_HYPERVISOR=/path/to/static/cloud-hypervisor and run make image)"
                .into(),
        );
    }
    if need_firmware && manifest["hypervisor_fw"] != true {
        return Err(
            "the image has no hypervisor-fw (set CAIRN_HYPERVISOR_FW=/path/to/hypervisor-fw and run make image)"
                .into(),
        );
    }
    Ok(())
}

fn kernel_version(image: &Image) -> Result<String, GuestImageError> {
    let path = image
        .kernel
        .parent()
        .map(|dir| dir.join("manifest.json"))
        .unwrap_or_default();
    let text = std::fs::read_to_string(&path).map_err(|source| GuestImageError::Io {
        path: path.clone(),
        source,
    })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|_| GuestImageError::Missing(format!("{} is not JSON", path.display())))?;
    value["kernel_version"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| GuestImageError::Missing(format!("no kernel_version in {}", path.display())))
}

/// image-builder's download cache (the same rule as its `--cache` default).
fn deb_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("build/cache"))
        .join("cairn/debs")
}

fn find_deb(prefix: &str) -> Result<PathBuf, GuestImageError> {
    let cache = deb_cache();
    let entries = std::fs::read_dir(&cache).map_err(|source| GuestImageError::Io {
        path: cache.clone(),
        source,
    })?;
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".deb"))
        })
        .ok_or_else(|| {
            GuestImageError::Missing(format!(
                "no {prefix}*.deb in {} (run make image first)",
                cache.display()
            ))
        })
}

fn run(command: &mut Command) -> Result<Vec<u8>, GuestImageError> {
    let text = format!("{command:?}");
    let output = command.output().map_err(|source| GuestImageError::Run {
        command: text.clone(),
        source,
    })?;
    if !output.status.success() {
        return Err(GuestImageError::Failed {
            command: text,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(output.stdout)
}

/// Extracts `members` (paths as the package's tar names them) of a .deb into `dir`.
fn extract(deb: &Path, members: &[String], dir: &Path) -> Result<(), GuestImageError> {
    let tar = dir.join("data.tar");
    let data = run(Command::new("dpkg-deb").arg("--fsys-tarfile").arg(deb))?;
    std::fs::write(&tar, data).map_err(|source| GuestImageError::Io {
        path: tar.clone(),
        source,
    })?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(dir)
        .args(members))?;
    Ok(())
}

/// The guest's `/init`.
pub fn guest_init_script() -> String {
    let modules: Vec<&str> = GUEST_MODULES.iter().map(|(name, _)| *name).collect();
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in {modules}; do insmod /m/$m.ko; done
addr=; token=; trim=; go=
for word in $(cat /proc/cmdline); do
  case "$word" in
    guest.addr=*) addr=${{word#guest.addr=}};;
    guest.token=*) token=${{word#guest.token=}};;
    guest.trim=*) trim=${{word#guest.trim=}};;
    guest.go=*) go=${{word#guest.go=}};;
  esac
done
ip link set lo up
[ -n "$addr" ] && ip addr add "$addr" dev eth0
ip link set eth0 up
power=
for d in /sys/class/input/event*; do
  grep -q "Power Button" "$d/device/name" 2>/dev/null && power=/dev/input/${{d##*/}}
done
# One input event (24 bytes on x86-64) from the power button: power off. A failed read
# must never look like a press.
if [ -c "$power" ]; then
  (while [ "$(dd if="$power" bs=24 count=1 2>/dev/null | wc -c)" != 24 ]; do sleep 1; done
   echo "CAIRN-GUEST-POWEROFF $token"; poweroff -f) &
else
  echo "CAIRN-GUEST-NO-POWER-BUTTON"
fi
echo "CAIRN-GUEST-UP $token"
# Space reclamation (guest.trim=DISK guest.go=DISK): fill the first disk, wait until the
# host writes "go" at the start of the second (read past the page cache), discard the first.
if [ -b "$trim" ] && [ -b "$go" ]; then
  (dd if=/dev/urandom of="$trim" bs=1M count=48 conv=fsync 2>/dev/null && echo "CAIRN-GUEST-FILLED $token"
   until [ "$(dd if="$go" bs=4096 count=1 iflag=direct 2>/dev/null | head -c 2)" = go ]; do sleep 1; done
   if blkdiscard "$trim"; then echo "CAIRN-GUEST-TRIMMED $token"; else echo "CAIRN-GUEST-TRIM-FAILED $token"; fi) &
fi
while true; do sleep 3600; done
"#,
        modules = modules.join(" ")
    )
}

/// A raw GPT disk in the appliance whose ESP boots the same guest through the firmware,
/// with this kernel command line.
pub const GUEST_DISK: &str = "/guest/disk.img";
pub const GUEST_DISK_OPTIONS: &str =
    "console=ttyS0 quiet guest.addr=10.99.0.3/24 guest.token=from-disk";

/// The newc archive for the appliance: `/guest/vmlinuz` and `/guest/initramfs.img`, and
/// with `with_disk` also [`GUEST_DISK`]. Written into `dir`.
pub fn appliance_archive(
    image: &Image,
    dir: &Path,
    with_disk: bool,
) -> Result<PathBuf, GuestImageError> {
    let work = dir.join("guest-image");
    std::fs::create_dir_all(&work).map_err(|source| GuestImageError::Io {
        path: work.clone(),
        source,
    })?;
    let version = kernel_version(image)?;
    let module_dir = format!("./usr/lib/modules/{version}");
    let members: Vec<String> = GUEST_MODULES
        .iter()
        .map(|(_, path)| format!("{module_dir}/{path}"))
        .collect();
    extract(
        &find_deb(&format!("linux-image-{version}"))?,
        &members,
        &work,
    )?;
    extract(
        &find_deb("busybox-static_")?,
        &["./usr/bin/busybox".to_string()],
        &work,
    )?;

    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| GuestImageError::Io {
            path: path.to_owned(),
            source,
        })
    };
    let mut guest = NewcWriter::new();
    guest.dir("bin")?;
    guest.dir("m")?;
    guest.file("bin/busybox", 0o755, &read(&work.join("usr/bin/busybox"))?)?;
    for ((name, _), member) in GUEST_MODULES.iter().zip(&members) {
        let compressed = work.join(member.trim_start_matches("./"));
        let module = run(Command::new("xz").arg("-dc").arg(&compressed))?;
        guest.file(&format!("m/{name}.ko"), 0o644, &module)?;
    }
    guest.file("init", 0o755, guest_init_script().as_bytes())?;

    let guest = guest.finish();
    let mut appliance = NewcWriter::new();
    appliance.dir("guest")?;
    appliance.file("guest/vmlinuz", 0o644, &read(&image.kernel)?)?;
    appliance.file("guest/initramfs.img", 0o644, &guest)?;
    if with_disk {
        // 32 MiB of FAT16: the kernel (about 12 MiB) and this initramfs fit twice.
        let disk =
            crate::guest_disk::boot_disk(&work, &image.kernel, &guest, GUEST_DISK_OPTIONS, 32)
                .map_err(|error| GuestImageError::Missing(format!("{error}")))?;
        appliance.file("guest/disk.img", 0o644, &read(&disk)?)?;
    }
    let path = dir.join("guest-files.cpio");
    std::fs::write(&path, appliance.finish()).map_err(|source| GuestImageError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with_manifest(dir: &Path, manifest: &str) -> Image {
        std::fs::write(dir.join("manifest.json"), manifest).expect("writes");
        Image {
            dir: dir.to_owned(),
            kernel: dir.join("vmlinuz"),
            initramfs: dir.join("initramfs.img"),
            disk: dir.join("cairn.img"),
        }
    }

    #[test]
    fn the_skip_reason_names_the_variable_to_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let without = image_with_manifest(
            dir.path(),
            r#"{"cloud_hypervisor": false, "hypervisor_fw": false}"#,
        );
        let why = hypervisor_in_image(&without, false).expect_err("no hypervisor");
        assert!(why.contains("CAIRN_CLOUD_HYPERVISOR="), "{why}");
        let no_fw = image_with_manifest(
            dir.path(),
            r#"{"cloud_hypervisor": true, "hypervisor_fw": false}"#,
        );
        assert_eq!(hypervisor_in_image(&no_fw, false), Ok(()));
        assert!(
            hypervisor_in_image(&no_fw, true)
                .is_err_and(|why| why.contains("CAIRN_HYPERVISOR_FW="))
        );
    }

    #[test]
    fn the_guest_init_reads_its_address_and_token_from_the_command_line() {
        let script = guest_init_script();
        assert!(script.starts_with("#!/bin/busybox sh\n"));
        assert!(
            script.contains("for m in failover net_failover virtio_net virtio_blk button evdev;")
        );
        assert!(script.contains(r#"echo "CAIRN-GUEST-UP $token""#));
    }
}
