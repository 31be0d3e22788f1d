//! Drives as the kernel shows them in sysfs, and the stable names hostd gives them.
//!
//! The image has no udev, so `/dev/disk/by-id` and `/dev/disk/by-path` do not exist on the
//! box: hostd derives the same kind of names from sysfs itself and the desired state names
//! drives by them. Every function takes the sysfs root, so tests feed a fixture tree.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use board_configs::DriveSlot;
use serde::{Deserialize, Serialize};

/// Where hostd reads block devices and opens them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrivePaths {
    /// `/sys/block`: one entry per whole disk.
    pub sys_block: PathBuf,
    /// `/dev`: where the device nodes are.
    pub dev: PathBuf,
}

impl Default for DrivePaths {
    fn default() -> Self {
        Self {
            sys_block: PathBuf::from("/sys/block"),
            dev: PathBuf::from("/dev"),
        }
    }
}

/// One whole disk, as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysDrive {
    /// Kernel name: `sdb`, `vdc`, `nvme0n1`.
    pub kernel_name: String,
    /// `/dev/disk/by-id/…` as udev would name it, when the drive reports a serial.
    pub by_id: Option<String>,
    /// `/dev/disk/by-path/…`: the controller port, which is what a bay is wired to.
    pub by_path: Option<String>,
    pub model: String,
    pub serial: String,
    pub size_bytes: u64,
    pub rotational: bool,
    /// Partitions' GPT names (empty string for an unnamed partition).
    pub partitions: Vec<String>,
    /// Whether something stacks on the drive (device-mapper, md): `holders/` is not empty.
    pub held: bool,
}

impl SysDrive {
    /// The partition names Cairn's own disk carries (image contract, "Partitions").
    pub fn is_boot_device(&self) -> bool {
        self.partitions
            .iter()
            .any(|name| name == "cairn-config" || name == "cairn-esp")
    }

    /// Whether `path` (a desired-state drive path) names this drive.
    pub fn is_named(&self, path: &str) -> bool {
        self.by_id.as_deref() == Some(path) || self.by_path.as_deref() == Some(path)
    }

    /// The bay or slot the board wires this drive's port to.
    pub fn slot<'a>(&self, slots: &'a [DriveSlot]) -> Option<&'a str> {
        let by_path = self.by_path.as_deref()?.strip_prefix(BY_PATH)?;
        slots
            .iter()
            .find(|slot| slot.by_path == by_path)
            .map(|slot| slot.name.as_str())
    }
}

pub const BY_ID: &str = "/dev/disk/by-id/";
pub const BY_PATH: &str = "/dev/disk/by-path/";

/// Kernel names that are never NAS drives: loops, RAM disks, optical drives and stacked
/// devices (their members are the drives).
fn is_candidate(name: &str) -> bool {
    ![
        "loop", "ram", "zram", "sr", "dm-", "md", "nbd", "fd", "bcache",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}

/// Every whole disk under `sys_block`, sorted by kernel name. A drive whose attributes
/// cannot be read is skipped with a warning rather than failing the whole list.
pub fn discover(sys_block: &Path) -> io::Result<Vec<SysDrive>> {
    let mut drives = Vec::new();
    for entry in fs::read_dir(sys_block)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_candidate(&name) {
            continue;
        }
        // The paths of a multipathed NVMe namespace (`nvme0c0n1`) are hidden: no /dev node,
        // and the namespace's head (`nvme0n1`) stands for them.
        if read_trimmed(&entry.path().join("hidden")).as_deref() == Some("1") {
            continue;
        }
        match read_drive(&entry.path(), &name) {
            Ok(drive) => drives.push(drive),
            Err(error) => tracing::warn!("skipping drive {name}: {error}"),
        }
    }
    drives.sort_by(|a, b| a.kernel_name.cmp(&b.kernel_name));
    Ok(drives)
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
}

fn read_drive(dir: &Path, name: &str) -> io::Result<SysDrive> {
    let sectors: u64 = read_trimmed(&dir.join("size"))
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| io::Error::other("no readable size"))?;
    // sysfs counts 512-byte sectors whatever the drive's own sector size.
    let size_bytes = sectors.saturating_mul(512);
    let rotational = read_trimmed(&dir.join("queue/rotational")).as_deref() == Some("1");
    let vendor = read_trimmed(&dir.join("device/vendor")).unwrap_or_default();
    let model = read_trimmed(&dir.join("device/model")).unwrap_or_default();
    let serial = read_trimmed(&dir.join("serial"))
        .or_else(|| read_trimmed(&dir.join("device/serial")))
        .or_else(|| {
            fs::read(dir.join("device/vpd_pg80"))
                .ok()
                .and_then(|page| serial_from_vpd80(&page))
        })
        .unwrap_or_default();
    let device_path = located_path(dir, fs::canonicalize(dir)?);
    let bus = bus_of(&device_path, name);
    let display_model = match (vendor.as_str(), model.as_str(), bus) {
        (_, "", Bus::Virtio) => "virtio disk".to_string(),
        ("", model, _) => model.to_string(),
        ("ATA", model, _) => model.to_string(),
        (vendor, model, _) => format!("{vendor} {model}"),
    };
    let mut partitions = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.path().join("partition").exists() {
            let uevent = fs::read_to_string(entry.path().join("uevent")).unwrap_or_default();
            partitions.push(partition_name(&uevent));
        }
    }
    partitions.sort();
    let held = fs::read_dir(dir.join("holders"))
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    Ok(SysDrive {
        kernel_name: name.to_string(),
        by_id: by_id(bus, &vendor, &model, &serial),
        by_path: by_path(&device_path, bus),
        model: display_model,
        serial,
        size_bytes,
        rotational,
        partitions,
        held,
    })
}

/// Where the drive sits on the buses, for its by-path name and its slot. Under native NVMe
/// multipath the namespace's block device (`nvme0n1`) is a virtual head under
/// `nvme-subsystem/`, and its paths (`nvme0c0n1`) sit under the controllers: the head takes
/// its first path's place. (QEMU 10's NVMe controller reports multipath capability, QEMU
/// 7.2's did not; real dual-port NVMe drives do too.)
fn located_path(dir: &Path, device_path: PathBuf) -> PathBuf {
    // Newer kernels link the head to its paths (`multipath/nvme0c0n1`); 6.12 does not, but
    // the subsystem links each of its controllers (`nvme-subsys0/nvme0` → the PCI
    // function's `nvme/nvme0`), under which the path sits as `nvme0c0n1`.
    let sorted_first = |dir: PathBuf, keep: fn(&str) -> bool| {
        let mut found: Vec<PathBuf> = fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .filter(|entry| keep(&entry.file_name().to_string_lossy()))
            .map(|entry| entry.path())
            .collect();
        found.sort();
        found.into_iter().next()
    };
    if let Some(path) =
        sorted_first(dir.join("multipath"), |_| true).and_then(|path| fs::canonicalize(path).ok())
    {
        return path;
    }
    let in_subsystem = device_path
        .parent()
        .filter(|parent| parent.to_string_lossy().contains("/nvme-subsystem/"));
    let controller = in_subsystem
        .and_then(|subsystem| sorted_first(subsystem.to_path_buf(), is_nvme_controller))
        .and_then(|link| fs::canonicalize(link).ok());
    match (controller, device_path.file_name()) {
        (Some(controller), Some(name)) => controller.join(name),
        _ => device_path,
    }
}

/// `nvme0`, `nvme12`: a controller's name (a namespace's has an `n` after the digits).
fn is_nvme_controller(name: &str) -> bool {
    name.strip_prefix("nvme")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// How the drive is attached, which decides its udev-style names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bus {
    Virtio,
    Nvme,
    Ata,
    Scsi,
    Other,
}

fn bus_of(device_path: &Path, name: &str) -> Bus {
    let path = device_path.to_string_lossy();
    if name.starts_with("nvme") {
        Bus::Nvme
    } else if name.starts_with("vd") {
        Bus::Virtio
    } else if path.split('/').any(is_ata_port) {
        Bus::Ata
    } else if path.split('/').any(is_scsi_address) {
        Bus::Scsi
    } else {
        Bus::Other
    }
}

fn is_ata_port(part: &str) -> bool {
    part.strip_prefix("ata")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// `host:channel:target:lun`, four decimal numbers.
fn is_scsi_address(part: &str) -> bool {
    let fields: Vec<&str> = part.split(':').collect();
    fields.len() == 4
        && fields
            .iter()
            .all(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
}

/// `0000:00:1f.2`.
fn is_pci_address(part: &str) -> bool {
    board_configs::is_pci_address(part)
}

/// udev's `by-path` name for the drive: the PCI function of its controller, then the port
/// on it. For SCSI the host number is left out (it depends on probe order; udev does the
/// same by counting from the controller's first host).
fn by_path(device_path: &Path, bus_hint: Bus) -> Option<String> {
    let parts: Vec<String> = device_path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let pci = parts.iter().rev().find(|part| is_pci_address(part))?;
    let tail = match bus_hint {
        Bus::Virtio | Bus::Other => String::new(),
        Bus::Nvme => {
            let namespace = parts
                .last()
                .and_then(|name| name.rsplit_once('n'))
                .map(|(_, nsid)| nsid.to_string())?;
            format!("-nvme-{namespace}")
        }
        Bus::Ata => {
            let port = parts.iter().find(|part| is_ata_port(part))?;
            format!("-ata-{}", port.trim_start_matches("ata"))
        }
        Bus::Scsi => {
            let address = parts.iter().rev().find(|part| is_scsi_address(part))?;
            let (_host, rest) = address.split_once(':')?;
            format!("-scsi-0:{rest}")
        }
    };
    Some(format!("{BY_PATH}pci-{pci}{tail}"))
}

/// udev's `by-id` name: bus, model and serial with blanks as `_`.
fn by_id(bus: Bus, vendor: &str, model: &str, serial: &str) -> Option<String> {
    if serial.is_empty() {
        return None;
    }
    let clean = |text: &str| -> String {
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join("_")
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != '/')
            .collect()
    };
    let name = match bus {
        Bus::Virtio => format!("virtio-{}", clean(serial)),
        Bus::Nvme => format!("nvme-{}_{}", clean(model), clean(serial)),
        Bus::Ata => format!("ata-{}_{}", clean(model), clean(serial)),
        // scsi_id's "0" prefix: an identifier built from vendor, model and serial.
        Bus::Scsi | Bus::Other => {
            format!("scsi-0{}_{}_{}", clean(vendor), clean(model), clean(serial))
        }
    };
    Some(format!("{BY_ID}{name}"))
}

/// The unit serial number page (SCSI VPD 0x80): 4 header bytes, the length at byte 3.
pub fn serial_from_vpd80(page: &[u8]) -> Option<String> {
    let length = usize::from(*page.get(3)?);
    let serial = page.get(4..4 + length)?;
    let text = String::from_utf8_lossy(serial).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// `PARTNAME=` from a partition's uevent.
fn partition_name(uevent: &str) -> String {
    uevent
        .lines()
        .find_map(|line| line.strip_prefix("PARTNAME="))
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A multipathed NVMe namespace as sysfs shows it: the head `nvme0n1` under
    /// `nvme-subsystem/`, its hidden path `nvme0c0n1` under the controller's PCI function.
    #[test]
    fn a_multipathed_nvme_namespace_is_one_drive_at_its_controllers_place() {
        let sys = tempfile::tempdir().expect("a temporary directory");
        let root = sys.path();
        let path_dev = root.join("devices/pci0000:00/0000:00:0a.0/nvme/nvme0/nvme0c0n1");
        let head = root.join("devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1");
        for (dir, hidden) in [(&path_dev, true), (&head, false)] {
            fs::create_dir_all(dir.join("queue")).expect("mkdir");
            fs::write(dir.join("size"), "2097152\n").expect("size");
            fs::write(dir.join("queue/rotational"), "0\n").expect("rotational");
            fs::write(dir.join("serial"), "SSD1\n").expect("serial");
            if hidden {
                fs::write(dir.join("hidden"), "1\n").expect("hidden");
            }
        }
        fs::create_dir_all(head.join("multipath")).expect("mkdir");
        std::os::unix::fs::symlink(&path_dev, head.join("multipath/nvme0c0n1")).expect("link");
        let block = root.join("block");
        fs::create_dir_all(&block).expect("mkdir");
        std::os::unix::fs::symlink(&head, block.join("nvme0n1")).expect("link");
        std::os::unix::fs::symlink(&path_dev, block.join("nvme0c0n1")).expect("link");

        let drives = discover(&block).expect("discover");
        let names: Vec<&str> = drives.iter().map(|d| d.kernel_name.as_str()).collect();
        assert_eq!(names, ["nvme0n1"]);
        assert_eq!(
            drives[0].by_path.as_deref(),
            Some("/dev/disk/by-path/pci-0000:00:0a.0-nvme-1")
        );

        // Linux 6.12 has no `multipath/` links: the subsystem's link to its controller
        // locates the head instead.
        fs::remove_dir_all(head.join("multipath")).expect("rm");
        let controller = root.join("devices/pci0000:00/0000:00:0a.0/nvme/nvme0");
        std::os::unix::fs::symlink(&controller, head.parent().expect("subsystem").join("nvme0"))
            .expect("link");
        let drives = discover(&block).expect("discover");
        let names: Vec<&str> = drives.iter().map(|d| d.kernel_name.as_str()).collect();
        assert_eq!(names, ["nvme0n1"]);
        assert_eq!(
            drives[0].by_path.as_deref(),
            Some("/dev/disk/by-path/pci-0000:00:0a.0-nvme-1")
        );
        assert_eq!(drives[0].size_bytes, 1 << 30);
    }

    #[test]
    fn scsi_drive_on_virtio_scsi_gets_port_and_serial_names() {
        let path = Path::new(
            "/sys/devices/pci0000:00/0000:00:05.0/virtio2/host2/target2:0:1/2:0:1:0/block/sdb",
        );
        assert_eq!(bus_of(path, "sdb"), Bus::Scsi);
        assert_eq!(
            by_path(path, Bus::Scsi).as_deref(),
            Some("/dev/disk/by-path/pci-0000:00:05.0-scsi-0:0:1:0")
        );
        assert_eq!(
            by_id(Bus::Scsi, "QEMU", "QEMU HARDDISK", "HDD1").as_deref(),
            Some("/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_HDD1")
        );
    }

    #[test]
    fn ata_virtio_and_nvme_names() {
        let ata = Path::new(
            "/sys/devices/pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/block/sdc",
        );
        assert_eq!(bus_of(ata, "sdc"), Bus::Ata);
        assert_eq!(
            by_path(ata, Bus::Ata).as_deref(),
            Some("/dev/disk/by-path/pci-0000:00:1f.2-ata-3")
        );
        let virtio = Path::new("/sys/devices/pci0000:00/0000:00:0a.0/virtio4/block/vdb");
        assert_eq!(
            by_path(virtio, Bus::Virtio).as_deref(),
            Some("/dev/disk/by-path/pci-0000:00:0a.0")
        );
        assert_eq!(
            by_id(Bus::Virtio, "", "", "SSD 1").as_deref(),
            Some("/dev/disk/by-id/virtio-SSD_1")
        );
        let nvme =
            Path::new("/sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1");
        assert_eq!(
            by_path(nvme, Bus::Nvme).as_deref(),
            Some("/dev/disk/by-path/pci-0000:3d:00.0-nvme-1")
        );
        assert_eq!(by_id(Bus::Ata, "ATA", "WDC X", ""), None);
    }

    #[test]
    fn vpd_serial_and_partition_names() {
        assert_eq!(
            serial_from_vpd80(b"\x00\x80\x00\x04HDD1").as_deref(),
            Some("HDD1")
        );
        assert_eq!(serial_from_vpd80(b"\x00\x80\x00\x09HDD1"), None);
        assert_eq!(
            partition_name("MAJOR=8\nDEVNAME=sda2\nPARTNAME=cairn-config\n"),
            "cairn-config"
        );
        assert!(is_candidate("sdb") && is_candidate("vda") && !is_candidate("loop0"));
    }

    #[test]
    fn discover_reads_a_fixture_tree() {
        let root = tempfile::tempdir().expect("a temporary directory");
        let devices = root
            .path()
            .join("devices/pci0000:00/0000:00:05.0/virtio2/host2/target2:0:1/2:0:1:0/block/sdb");
        fs::create_dir_all(devices.join("queue")).expect("fixture");
        fs::create_dir_all(devices.join("device")).expect("fixture");
        fs::create_dir_all(devices.join("holders")).expect("fixture");
        fs::write(devices.join("size"), "2097152\n").expect("fixture");
        fs::write(devices.join("queue/rotational"), "1\n").expect("fixture");
        fs::write(devices.join("device/vendor"), "QEMU    \n").expect("fixture");
        fs::write(devices.join("device/model"), "QEMU HARDDISK   \n").expect("fixture");
        fs::write(devices.join("device/vpd_pg80"), b"\x00\x80\x00\x04HDD1").expect("fixture");
        let block = root.path().join("block");
        fs::create_dir_all(&block).expect("fixture");
        std::os::unix::fs::symlink(&devices, block.join("sdb")).expect("fixture");
        std::os::unix::fs::symlink(&devices, block.join("loop0")).expect("fixture");
        let drives = discover(&block).expect("fixture tree reads");
        assert_eq!(drives.len(), 1);
        let drive = &drives[0];
        assert_eq!(drive.size_bytes, 1 << 30);
        assert!(drive.rotational && !drive.held && !drive.is_boot_device());
        assert_eq!(drive.model, "QEMU QEMU HARDDISK");
        assert!(drive.is_named("/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_HDD1"));
        let slots = vec![DriveSlot {
            name: "bay1".into(),
            by_path: "pci-0000:00:05.0-scsi-0:0:1:0".into(),
        }];
        assert_eq!(drive.slot(&slots), Some("bay1"));
    }
}
