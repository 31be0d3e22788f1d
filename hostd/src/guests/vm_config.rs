//! From a guest definition to cloud-hypervisor's `VmConfig`: resolving the guest's files
//! (checked to exist before anything starts), then building the request. Pure, with the
//! filesystem behind a function, so the exact request is table-tested.

use std::path::{Path, PathBuf};

use super::chv_api::{
    ConsoleConfig, ConsoleMode, CpuAffinity, CpusConfig, DiskConfig, ImageType, MemoryConfig,
    NetConfig, PayloadConfig, VmConfig,
};
use super::layout::{self, RunPaths};
use crate::state::{DiskSource, GuestBoot, GuestFile, GuestSpec};

/// The guest's files as absolute paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub disks: Vec<PathBuf>,
    /// Disk files to create (sparse) before the start: (path, size in MiB).
    pub create: Vec<(PathBuf, u64)>,
    pub kernel: Option<PathBuf>,
    pub initramfs: Option<PathBuf>,
}

/// What kind of file is at a path (as the filesystem says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Missing,
    File,
    BlockDevice,
    /// A directory, a socket…: not a disk image.
    Other,
}

/// Resolves every file of `spec` against its subvolume directory (when it has a volume),
/// reporting every missing one as `guests.<name>.<field>: …`.
pub fn resolve(
    spec: &GuestSpec,
    subvolume: Option<&Path>,
    file_kind: &dyn Fn(&Path) -> FileKind,
) -> Result<Resolved, Vec<String>> {
    let mut errors = Vec::new();
    let name = spec.name.as_str();
    let mut place = |field: &str, file: &GuestFile| -> Option<PathBuf> {
        if file.as_str().starts_with('/') {
            Some(PathBuf::from(file.as_str()))
        } else if let Some(dir) = subvolume {
            Some(dir.join(file.as_str()))
        } else {
            errors.push(format!(
                "{name}.{field}: {:?} is a file in the guest's subvolume, but the guest has no volume",
                file.as_str()
            ));
            None
        }
    };
    let mut disks = Vec::new();
    let mut create = Vec::new();
    let mut wanted = Vec::new();
    for (i, disk) in spec.disks.iter().enumerate() {
        let field = format!("disks[{i}]");
        let file = match &disk.source {
            DiskSource::File(file) | DiskSource::Path(file) => file,
        };
        if let Some(path) = place(&field, file) {
            wanted.push((field, path.clone(), disk.size_mib.map(|s| s.get())));
            disks.push(path);
        }
    }
    let (kernel, initramfs) = match &spec.boot {
        GuestBoot::Firmware => (None, None),
        GuestBoot::Kernel {
            kernel, initramfs, ..
        } => (
            place("boot.kernel", kernel),
            initramfs
                .as_ref()
                .and_then(|file| place("boot.initramfs", file)),
        ),
    };
    for (field, path, size) in wanted {
        match (file_kind(&path), size) {
            (FileKind::File | FileKind::BlockDevice, _) => {}
            (FileKind::Missing, Some(size)) => create.push((path, size)),
            (FileKind::Missing, None) => errors.push(format!(
                "{name}.{field}: {} does not exist (expected a raw disk image or a block device; give size_mib to have hostd create an empty one)",
                path.display()
            )),
            (FileKind::Other, _) => errors.push(format!(
                "{name}.{field}: {} is not a file or a block device",
                path.display()
            )),
        }
    }
    for (field, path) in [("boot.kernel", &kernel), ("boot.initramfs", &initramfs)] {
        if let Some(path) = path
            && file_kind(path) != FileKind::File
        {
            errors.push(format!("{name}.{field}: {} is not a file", path.display()));
        }
    }
    if matches!(spec.boot, GuestBoot::Firmware) && spec.disks.is_empty() {
        errors.push(format!(
            "{name}: nothing to boot (expected boot.kernel, or a disk for the firmware to boot)"
        ));
    }
    if errors.is_empty() {
        Ok(Resolved {
            disks,
            create,
            kernel,
            initramfs,
        })
    } else {
        Err(errors)
    }
}

/// The `vm.create` request for `spec`.
pub fn vm_config(
    spec: &GuestSpec,
    resolved: &Resolved,
    paths: &RunPaths,
    firmware: &Path,
) -> VmConfig {
    let vcpus = spec.vcpus.get();
    // Reserved threads: vCPU i runs on thread i mod n (the admission allowed at most
    // `vcpus_per_thread` per thread).
    let affinity = if spec.reserved_threads.is_empty() {
        Vec::new()
    } else {
        (0..vcpus)
            .map(|vcpu| CpuAffinity {
                vcpu,
                host_cpus: vec![
                    spec.reserved_threads[vcpu as usize % spec.reserved_threads.len()].get(),
                ],
            })
            .collect()
    };
    let payload = match &spec.boot {
        GuestBoot::Firmware => PayloadConfig {
            firmware: Some(firmware.display().to_string()),
            ..PayloadConfig::default()
        },
        GuestBoot::Kernel { cmdline, .. } => PayloadConfig {
            kernel: resolved.kernel.as_ref().map(|p| p.display().to_string()),
            initramfs: resolved.initramfs.as_ref().map(|p| p.display().to_string()),
            cmdline: cmdline.clone(),
            firmware: None,
        },
    };
    VmConfig {
        cpus: CpusConfig {
            boot_vcpus: vcpus,
            max_vcpus: vcpus,
            affinity,
        },
        memory: MemoryConfig {
            size: spec.memory_mib.get() << 20,
        },
        payload,
        disks: resolved
            .disks
            .iter()
            .zip(&spec.disks)
            .enumerate()
            .map(|(i, (path, disk))| DiskConfig {
                path: path.display().to_string(),
                readonly: disk.readonly,
                image_type: ImageType::Raw,
                id: format!("disk{i}"),
            })
            .collect(),
        net: (0..spec.nics.len())
            .map(|i| NetConfig {
                tap: layout::tap_name(spec.name.as_str(), i),
                mac: layout::mac_address(spec, i),
                id: format!("net{i}"),
            })
            .collect(),
        serial: ConsoleConfig {
            mode: ConsoleMode::Socket,
            socket: Some(paths.serial_socket().display().to_string()),
        },
        console: ConsoleConfig {
            mode: ConsoleMode::Off,
            socket: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::DesiredState;

    fn spec(guest: &str) -> GuestSpec {
        let text = format!(
            "version = 1\n[[network.vswitches]]\nname = \"vmnet\"\n[[storage.volumes]]\nname = \"tank\"\ndrives = [\"/dev/disk/by-id/a\"]\ndata_profile = \"single\"\nmetadata_profile = \"dup\"\n[[guests]]\n{guest}"
        );
        match DesiredState::from_toml(&text) {
            Ok(state) => state.guests[0].clone(),
            Err(invalid) => panic!("{invalid}\n{text}"),
        }
    }

    fn file_kind(path: &Path) -> FileKind {
        match path.to_str() {
            Some("/volume1/vm-web/root.img" | "/k" | "/i") => FileKind::File,
            Some("/dev/disk/by-id/ssd") => FileKind::BlockDevice,
            _ => FileKind::Missing,
        }
    }

    #[test]
    fn a_kernel_guest_with_two_disks_a_nic_and_pinned_vcpus() {
        let spec = spec(
            "name = \"web\"\nvcpus = 2\nmemory_mib = 256\nvolume = \"tank\"\nreserved_threads = [1]\nnics = [{ vswitch = \"vmnet\", mac = \"52:54:00:00:00:01\" }]\ndisks = [{ file = \"root.img\" }, { file = \"data.img\", size_mib = 64 }, { path = \"/dev/disk/by-id/ssd\", readonly = true }]\nboot = { kernel = \"/k\", initramfs = \"/i\", cmdline = \"console=ttyS0\" }\n",
        );
        let resolved =
            resolve(&spec, Some(Path::new("/volume1/vm-web")), &file_kind).expect("resolves");
        assert_eq!(
            resolved.create,
            [(PathBuf::from("/volume1/vm-web/data.img"), 64)]
        );
        let config = vm_config(
            &spec,
            &resolved,
            &RunPaths::new(Path::new("/run/g"), "web"),
            Path::new("/fw"),
        );
        assert_eq!(
            serde_json::to_value(&config).expect("serialises"),
            serde_json::json!({
                "cpus": {"boot_vcpus": 2, "max_vcpus": 2, "affinity": [
                    {"vcpu": 0, "host_cpus": [1]}, {"vcpu": 1, "host_cpus": [1]}]},
                "memory": {"size": 268435456},
                "payload": {"kernel": "/k", "initramfs": "/i", "cmdline": "console=ttyS0"},
                "disks": [
                    {"path": "/volume1/vm-web/root.img", "readonly": false, "image_type": "Raw", "id": "disk0"},
                    {"path": "/volume1/vm-web/data.img", "readonly": false, "image_type": "Raw", "id": "disk1"},
                    {"path": "/dev/disk/by-id/ssd", "readonly": true, "image_type": "Raw", "id": "disk2"}],
                "net": [{"tap": "vm-web-0", "mac": "52:54:00:00:00:01", "id": "net0"}],
                "serial": {"mode": "Socket", "socket": "/run/g/web/serial.sock"},
                "console": {"mode": "Off"}
            })
        );
    }

    #[test]
    fn a_missing_disk_image_is_named() {
        let spec = spec(
            "name = \"web\"\nvcpus = 1\nmemory_mib = 256\nvolume = \"tank\"\ndisks = [{ file = \"gone.img\" }]\n",
        );
        assert_eq!(
            resolve(&spec, Some(Path::new("/volume1/vm-web")), &file_kind),
            Err(vec!["web.disks[0]: /volume1/vm-web/gone.img does not exist (expected a raw disk image or a block device; give size_mib to have hostd create an empty one)".to_string()])
        );
    }

    #[test]
    fn firmware_boots_the_first_disk() {
        let spec = spec(
            "name = \"web\"\nvcpus = 1\nmemory_mib = 256\ndisks = [{ path = \"/dev/disk/by-id/ssd\" }]\n",
        );
        let resolved = resolve(&spec, None, &file_kind).expect("resolves");
        let config = vm_config(
            &spec,
            &resolved,
            &RunPaths::new(Path::new("/r"), "web"),
            Path::new("/fw"),
        );
        assert_eq!(config.payload.firmware.as_deref(), Some("/fw"));
        assert_eq!(config.payload.kernel, None);
        let nothing = spec_without_disks();
        assert_eq!(
            resolve(&nothing, None, &file_kind),
            Err(vec![
                "web: nothing to boot (expected boot.kernel, or a disk for the firmware to boot)"
                    .to_string()
            ])
        );
    }

    fn spec_without_disks() -> GuestSpec {
        spec("name = \"web\"\nvcpus = 1\nmemory_mib = 256\n")
    }
}
