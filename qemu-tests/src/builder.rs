//! The QEMU command line as a value.
//!
//! `QemuBuilder` only collects settings and renders them into an argument vector with
//! [`QemuBuilder::args`]; it never starts anything. That keeps every flag the harness
//! passes visible in one place and table-testable without QEMU (the same split as
//! cloud-hypervisor's `GuestCommand`). [`crate::vm::Vm`] is the one place that executes it.
//!
//! Paths go into QEMU's `key=value,…` option syntax, where a comma ends the value; they
//! are escaped by doubling commas, and non-UTF-8 paths are refused instead of mangled.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use thiserror::Error;

/// Environment variable that picks the accelerator: `tcg` (default) or `kvm`.
pub const ACCEL_ENV: &str = "CAIRN_QEMU_ACCEL";

/// The emulator the appliance runs on.
pub const DEFAULT_QEMU: &str = "qemu-system-x86_64";

/// Environment variable naming another emulator binary (a wrapper script works), so the
/// boot soak can measure one QEMU against another on the same image.
pub const QEMU_ENV: &str = "CAIRN_QEMU";

/// `CAIRN_QEMU`, or [`DEFAULT_QEMU`] on `PATH` when it is unset or empty.
pub fn qemu_from_env() -> PathBuf {
    std::env::var_os(QEMU_ENV)
        .filter(|value| !value.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_QEMU), PathBuf::from)
}

/// Why a command line could not be rendered.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("No boot method chosen: call direct_kernel() or uefi() on the QemuBuilder")]
    NoBoot,
    #[error(
        "Path {0:?} is not UTF-8; QEMU options need it as text (move the file to a UTF-8 path)"
    )]
    NonUtf8Path(PathBuf),
    #[error(
        "Invalid QEMU id {0:?}: ids start with a letter and hold only letters, digits, '-', '_' and '.'"
    )]
    InvalidId(String),
    #[error("QEMU id {0:?} is used twice; every disk and NIC needs its own id")]
    DuplicateId(String),
    #[error("Invalid MAC address {0:?}: expected six hex pairs separated by ':'")]
    InvalidMac(String),
    #[error("Unknown accelerator {0:?} in {ACCEL_ENV}: use \"tcg\" or \"kvm\"")]
    InvalidAccel(String),
    #[error("{name} must be at least 1, got 0")]
    Zero { name: &'static str },
}

/// The accelerator and the CPU model that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation. `-cpu max` exposes AMD SVM, so the appliance gets a nested
    /// `/dev/kvm` for its own guests (LAB-FACTS: `kvm-amd` loads inside).
    Tcg,
    /// Hardware virtualisation, for hosts where `/dev/kvm` runs normal guests (not these:
    /// there `-accel kvm` hangs).
    Kvm,
}

impl Accel {
    /// `CAIRN_QEMU_ACCEL`, or TCG when it is unset.
    pub fn from_env() -> Result<Self, BuildError> {
        match std::env::var(ACCEL_ENV) {
            Ok(value) => value.parse(),
            Err(std::env::VarError::NotPresent) => Ok(Self::Tcg),
            Err(std::env::VarError::NotUnicode(value)) => Err(BuildError::InvalidAccel(
                value.to_string_lossy().into_owned(),
            )),
        }
    }

    fn args(self) -> [&'static str; 4] {
        match self {
            Self::Tcg => ["-accel", "tcg", "-cpu", "max"],
            Self::Kvm => ["-accel", "kvm", "-cpu", "host"],
        }
    }
}

impl FromStr for Accel {
    type Err = BuildError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim() {
            "tcg" => Ok(Self::Tcg),
            "kvm" => Ok(Self::Kvm),
            other => Err(BuildError::InvalidAccel(other.to_owned())),
        }
    }
}

/// How the guest starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// QEMU loads the kernel and initramfs itself (`-kernel -initrd -append`).
    DirectKernel {
        kernel: PathBuf,
        initrd: PathBuf,
        append: String,
    },
    /// OVMF firmware from pflash; `vars` must be a per-test copy because the firmware
    /// writes boot entries into it.
    Uefi { code: PathBuf, vars: PathBuf },
}

/// Image format of a disk file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    Qcow2,
    Raw,
}

impl fmt::Display for DiskFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Qcow2 => "qcow2",
            Self::Raw => "raw",
        })
    }
}

/// A virtio-blk disk. `id` names the device, so QMP `device_del <id>` unplugs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    id: String,
    path: PathBuf,
    format: DiskFormat,
    serial: Option<String>,
    read_only: bool,
    boot_index: Option<u32>,
}

impl Disk {
    pub fn new(id: impl Into<String>, path: impl Into<PathBuf>, format: DiskFormat) -> Self {
        Self {
            id: id.into(),
            path: path.into(),
            format,
            serial: None,
            read_only: false,
            boot_index: None,
        }
    }

    pub fn qcow2(id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self::new(id, path, DiskFormat::Qcow2)
    }

    pub fn raw(id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self::new(id, path, DiskFormat::Raw)
    }

    /// The serial number the guest sees (`/dev/disk/by-id/virtio-<serial>`).
    pub fn serial(mut self, serial: impl Into<String>) -> Self {
        self.serial = Some(serial.into());
        self
    }

    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Firmware boot order; only UEFI boots look at it.
    pub fn boot_index(mut self, index: u32) -> Self {
        self.boot_index = Some(index);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Where the virtio-scsi controller of [`ScsiDrive`]s sits: PCI slot 5, as the qemu-x86_64
/// board's `storage.slots` expect (`pci-0000:00:05.0-scsi-0:0:<bay>:0`).
pub const SCSI_PCI_SLOT: u8 = 5;

/// A hard disk of the kind QEMU's HDDs and SSDs are: sequential transfer and seeks per
/// second of a 7200 rpm SATA drive (about 150 MB/s and 150 to 200 IOPS).
const HDD_IOPS: u32 = 200;
const HDD_BPS: u64 = 150 * 1024 * 1024;

/// A drive in one of the board's bays: a `scsi-hd` at SCSI target `bay` of the
/// virtio-scsi controller. SCSI, not virtio-blk, so that QMP `device_del` can pull it (q35's
/// root PCI bus has no hot-unplug).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiDrive {
    pub id: String,
    pub path: PathBuf,
    pub bay: u8,
    pub serial: String,
    /// A spinning drive: throttled to HDD figures and reported rotational. An SSD is
    /// unthrottled and reports rotation rate 1 (non-rotational).
    pub hdd: bool,
}

/// An NVMe SSD in one of the board's M.2 slots: an `nvme` controller on the root bus at PCI
/// slot `pci_slot` (10 and 11 on the qemu-x86_64 board), namespace 1, unthrottled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmeDrive {
    pub id: String,
    pub path: PathBuf,
    pub pci_slot: u8,
    pub serial: String,
}

/// Where a NIC's packets go on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetBackend {
    /// An existing tap device (created by the test, see LAB-FACTS "wiring that works").
    Tap { ifname: String },
    /// QEMU's socket netdev listening on `host:port`: a second QEMU connects to it.
    SocketListen { addr: String },
    /// QEMU's socket netdev connecting to another QEMU's `SocketListen`.
    SocketConnect { addr: String },
    /// QEMU's user-mode network with `restrict=on`: a link with carrier that reaches
    /// nothing outside the guest, for tests that need NICs but no peer.
    Isolated,
}

/// A virtio-net NIC. `id` names the device (for `device_del`); QMP `set_link` takes the
/// netdev id, which is `net-<id>` (see [`Nic::netdev_id`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    id: String,
    backend: NetBackend,
    mac: Option<String>,
    /// PCI slot on the root bus (`addr=0x3`), so the guest sees a fixed PCI address.
    pci_slot: Option<u8>,
}

impl Nic {
    pub fn new(id: impl Into<String>, backend: NetBackend) -> Self {
        Self {
            id: id.into(),
            backend,
            mac: None,
            pci_slot: None,
        }
    }

    /// Puts the NIC at `0000:00:<slot>.0`, as board configs with `pci-path` ports expect.
    pub fn pci_slot(mut self, slot: u8) -> Self {
        self.pci_slot = Some(slot);
        self
    }

    pub fn mac(mut self, mac: impl Into<String>) -> Self {
        self.mac = Some(mac.into());
        self
    }

    pub fn netdev_id(&self) -> String {
        format!("net-{}", self.id)
    }
}

/// Builder for one QEMU invocation. Defaults: q35, TCG with `-cpu max`, 2 GiB, 2 vCPUs,
/// no display, no default devices, no NIC.
#[derive(Debug, Clone)]
pub struct QemuBuilder {
    binary: PathBuf,
    name: Option<String>,
    accel: Accel,
    memory_mib: u32,
    smp: u32,
    boot: Option<Boot>,
    disks: Vec<Disk>,
    scsi_drives: Vec<ScsiDrive>,
    nvme_drives: Vec<NvmeDrive>,
    nics: Vec<Nic>,
    serial: Option<(PathBuf, PathBuf)>,
    qmp: Option<PathBuf>,
    paused: bool,
    extra: Vec<OsString>,
}

impl Default for QemuBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl QemuBuilder {
    pub fn new() -> Self {
        Self {
            binary: PathBuf::from(DEFAULT_QEMU),
            name: None,
            accel: Accel::Tcg,
            // 2 GiB, as `make run`: the whole appliance root lives in RAM (no switch_root),
            // and later tests start nested guests. TCG only touches what the guest uses.
            memory_mib: 2048,
            // 2 vCPUs: the appliance runs services in parallel and these hosts have 2 cores.
            smp: 2,
            boot: None,
            disks: Vec::new(),
            scsi_drives: Vec::new(),
            nvme_drives: Vec::new(),
            nics: Vec::new(),
            serial: None,
            qmp: None,
            paused: false,
            extra: Vec::new(),
        }
    }

    pub fn binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = binary.into();
        self
    }

    pub fn binary_path(&self) -> &Path {
        &self.binary
    }

    /// Shown in `ps` and QMP; handy when two VMs run at once.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn accel(mut self, accel: Accel) -> Self {
        self.accel = accel;
        self
    }

    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    pub fn smp(mut self, cpus: u32) -> Self {
        self.smp = cpus;
        self
    }

    pub fn direct_kernel(
        mut self,
        kernel: impl Into<PathBuf>,
        initrd: impl Into<PathBuf>,
        append: impl Into<String>,
    ) -> Self {
        self.boot = Some(Boot::DirectKernel {
            kernel: kernel.into(),
            initrd: initrd.into(),
            append: append.into(),
        });
        self
    }

    pub fn uefi(mut self, code: impl Into<PathBuf>, vars: impl Into<PathBuf>) -> Self {
        self.boot = Some(Boot::Uefi {
            code: code.into(),
            vars: vars.into(),
        });
        self
    }

    pub fn disk(mut self, disk: Disk) -> Self {
        self.disks.push(disk);
        self
    }

    pub fn scsi_drive(mut self, drive: ScsiDrive) -> Self {
        self.scsi_drives.push(drive);
        self
    }

    pub fn nvme_drive(mut self, drive: NvmeDrive) -> Self {
        self.nvme_drives.push(drive);
        self
    }

    pub fn nic(mut self, nic: Nic) -> Self {
        self.nics.push(nic);
        self
    }

    /// Serial port 0 on a unix socket QEMU listens on; `logfile` records every byte the
    /// guest sends, whether or not a client is connected.
    pub fn serial_socket(
        mut self,
        socket: impl Into<PathBuf>,
        logfile: impl Into<PathBuf>,
    ) -> Self {
        self.serial = Some((socket.into(), logfile.into()));
        self
    }

    pub fn qmp_socket(mut self, socket: impl Into<PathBuf>) -> Self {
        self.qmp = Some(socket.into());
        self
    }

    /// Start with the CPUs stopped (`-S`) until QMP `cont`, so the console client is
    /// attached before the guest prints its first byte.
    pub fn start_paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }

    /// Anything the builder has no method for yet; appended last.
    pub fn extra_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// Renders the argument vector (without the binary).
    pub fn args(&self) -> Result<Vec<OsString>, BuildError> {
        if self.memory_mib == 0 {
            return Err(BuildError::Zero { name: "memory_mib" });
        }
        if self.smp == 0 {
            return Err(BuildError::Zero { name: "smp" });
        }
        let boot = self.boot.as_ref().ok_or(BuildError::NoBoot)?;
        self.check_ids()?;

        let mut args: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(|s| (*s).to_owned()));
        if let Some(name) = &self.name {
            push(&["-name", name]);
        }
        push(&["-machine", "q35"]);
        push(&self.accel.args());
        push(&["-m", &self.memory_mib.to_string()]);
        push(&["-smp", &self.smp.to_string()]);
        // `-display none` rather than `-nographic`: -nographic also routes any serial or
        // monitor left unconfigured to stdio, which would mix guest output into the test's.
        push(&["-display", "none"]);
        // Only the devices listed here: no host config file, no default NIC, VGA or CD-ROM.
        push(&["-no-user-config", "-nodefaults"]);
        if self.paused {
            push(&["-S"]);
        }

        match boot {
            Boot::DirectKernel {
                kernel,
                initrd,
                append,
            } => {
                push(&["-kernel", utf8(kernel)?]);
                push(&["-initrd", utf8(initrd)?]);
                push(&["-append", append]);
            }
            Boot::Uefi { code, vars } => {
                let code = format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    escape(utf8(code)?)
                );
                let vars = format!("if=pflash,format=raw,unit=1,file={}", escape(utf8(vars)?));
                push(&["-drive", &code, "-drive", &vars]);
            }
        }

        for disk in &self.disks {
            let mut drive = format!(
                "if=none,id=drive-{},format={},file={}",
                disk.id,
                disk.format,
                escape(utf8(&disk.path)?)
            );
            if disk.read_only {
                drive.push_str(",readonly=on");
            }
            let mut device = format!("virtio-blk-pci,drive=drive-{},id={}", disk.id, disk.id);
            if let Some(serial) = &disk.serial {
                device.push_str(&format!(",serial={}", escape(serial)));
            }
            if let Some(index) = disk.boot_index {
                device.push_str(&format!(",bootindex={index}"));
            }
            push(&["-drive", &drive, "-device", &device]);
        }

        if !self.scsi_drives.is_empty() {
            let controller = format!("virtio-scsi-pci,id=scsi0,bus=pcie.0,addr={SCSI_PCI_SLOT:#x}");
            push(&["-device", &controller]);
        }
        for drive in &self.scsi_drives {
            let mut backend = format!(
                "if=none,id=drive-{},format=qcow2,file={}",
                drive.id,
                escape(utf8(&drive.path)?)
            );
            if drive.hdd {
                backend.push_str(&format!(
                    ",throttling.iops-total={HDD_IOPS},throttling.bps-total={HDD_BPS}"
                ));
            }
            let device = format!(
                "scsi-hd,bus=scsi0.0,channel=0,scsi-id={},lun=0,drive=drive-{},id={},serial={},rotation_rate={}",
                drive.bay,
                drive.id,
                drive.id,
                escape(&drive.serial),
                if drive.hdd { 7200 } else { 1 }
            );
            push(&["-drive", &backend, "-device", &device]);
        }
        for drive in &self.nvme_drives {
            let backend = format!(
                "if=none,id=drive-{},format=qcow2,file={}",
                drive.id,
                escape(utf8(&drive.path)?)
            );
            let device = format!(
                "nvme,bus=pcie.0,addr={:#x},drive=drive-{},id={},serial={}",
                drive.pci_slot,
                drive.id,
                drive.id,
                escape(&drive.serial)
            );
            push(&["-drive", &backend, "-device", &device]);
        }

        if self.nics.is_empty() {
            push(&["-nic", "none"]);
        }
        for nic in &self.nics {
            let netdev = match &nic.backend {
                NetBackend::Tap { ifname } => format!(
                    "tap,id={},ifname={},script=no,downscript=no",
                    nic.netdev_id(),
                    escape(ifname)
                ),
                NetBackend::SocketListen { addr } => {
                    format!("socket,id={},listen={}", nic.netdev_id(), escape(addr))
                }
                NetBackend::SocketConnect { addr } => {
                    format!("socket,id={},connect={}", nic.netdev_id(), escape(addr))
                }
                NetBackend::Isolated => format!("user,id={},restrict=on", nic.netdev_id()),
            };
            // speed/duplex: without them an 802.3ad bond keeps its slaves down (LAB-FACTS).
            let mut device = format!(
                "virtio-net-pci,netdev={},id={},speed=10000,duplex=full",
                nic.netdev_id(),
                nic.id
            );
            if let Some(mac) = &nic.mac {
                check_mac(mac)?;
                device.push_str(&format!(",mac={mac}"));
            }
            if let Some(slot) = nic.pci_slot {
                device.push_str(&format!(",addr={slot:#x}"));
            }
            push(&["-netdev", &netdev, "-device", &device]);
        }

        if let Some((socket, logfile)) = &self.serial {
            let chardev = format!(
                "socket,id=ser0,path={},server=on,wait=off,logfile={}",
                escape(utf8(socket)?),
                escape(utf8(logfile)?)
            );
            push(&["-chardev", &chardev, "-serial", "chardev:ser0"]);
        }
        if let Some(socket) = &self.qmp {
            let chardev = format!(
                "socket,id=qmp0,path={},server=on,wait=off",
                escape(utf8(socket)?)
            );
            push(&["-chardev", &chardev, "-mon", "chardev=qmp0,mode=control"]);
        }

        let mut out: Vec<OsString> = args.into_iter().map(OsString::from).collect();
        out.extend(self.extra.iter().cloned());
        Ok(out)
    }

    fn check_ids(&self) -> Result<(), BuildError> {
        let mut seen = std::collections::BTreeSet::new();
        let ids = self
            .disks
            .iter()
            .map(|d| &d.id)
            .chain(self.nics.iter().map(|n| &n.id));
        for id in ids {
            check_id(id)?;
            if !seen.insert(id.as_str()) {
                return Err(BuildError::DuplicateId(id.clone()));
            }
        }
        Ok(())
    }
}

fn utf8(path: &Path) -> Result<&str, BuildError> {
    path.to_str()
        .ok_or_else(|| BuildError::NonUtf8Path(path.to_owned()))
}

/// QEMU's option parser ends a value at a comma; `,,` stands for a literal one.
fn escape(value: &str) -> String {
    value.replace(',', ",,")
}

/// QEMU's own rule for ids (`id_wellformed`).
fn check_id(id: &str) -> Result<(), BuildError> {
    let mut chars = id.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if starts_with_letter && rest_ok {
        Ok(())
    } else {
        Err(BuildError::InvalidId(id.to_owned()))
    }
}

fn check_mac(mac: &str) -> Result<(), BuildError> {
    let parts: Vec<&str> = mac.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(BuildError::InvalidMac(mac.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(builder: &QemuBuilder) -> Vec<String> {
        builder
            .args()
            .expect("valid builder")
            .into_iter()
            .map(|a| a.into_string().expect("utf-8 in tests"))
            .collect()
    }

    #[test]
    fn direct_kernel_command_line_is_complete_and_ordered() {
        let builder = QemuBuilder::new()
            .name("boot")
            .direct_kernel(
                "/img/vmlinuz",
                "/img/initramfs.img",
                "console=ttyS0,115200 cairn.board=qemu-x86_64",
            )
            .disk(Disk::qcow2("disk0", "/t/cairn.qcow2").boot_index(0))
            .serial_socket("/t/console.sock", "/t/console.log")
            .qmp_socket("/t/qmp.sock")
            .start_paused(true);
        let expected = [
            "-name",
            "boot",
            "-machine",
            "q35",
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "2048",
            "-smp",
            "2",
            "-display",
            "none",
            "-no-user-config",
            "-nodefaults",
            "-S",
            "-kernel",
            "/img/vmlinuz",
            "-initrd",
            "/img/initramfs.img",
            "-append",
            "console=ttyS0,115200 cairn.board=qemu-x86_64",
            "-drive",
            "if=none,id=drive-disk0,format=qcow2,file=/t/cairn.qcow2",
            "-device",
            "virtio-blk-pci,drive=drive-disk0,id=disk0,bootindex=0",
            "-nic",
            "none",
            "-chardev",
            "socket,id=ser0,path=/t/console.sock,server=on,wait=off,logfile=/t/console.log",
            "-serial",
            "chardev:ser0",
            "-chardev",
            "socket,id=qmp0,path=/t/qmp.sock,server=on,wait=off",
            "-mon",
            "chardev=qmp0,mode=control",
        ];
        assert_eq!(rendered(&builder), expected);
    }

    #[test]
    fn uefi_uses_read_only_code_and_writable_vars_pflash() {
        let builder = QemuBuilder::new()
            .accel(Accel::Kvm)
            .memory_mib(512)
            .uefi("/usr/share/OVMF/OVMF_CODE_4M.fd", "/t/vars.fd");
        let args = rendered(&builder);
        let joined = args.join(" ");
        assert!(joined.contains("-accel kvm -cpu host"), "{joined}");
        assert!(joined.contains("-m 512"), "{joined}");
        assert!(joined.contains(
            "-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
        ));
        assert!(joined.contains("-drive if=pflash,format=raw,unit=1,file=/t/vars.fd"));
        assert!(!joined.contains("-kernel"));
    }

    #[test]
    fn commas_in_paths_are_escaped_for_qemu() {
        let builder = QemuBuilder::new()
            .direct_kernel("/k", "/i", "a,b")
            .disk(Disk::raw("d", "/x,y/disk.img").read_only().serial("S1"));
        let args = rendered(&builder);
        assert!(
            args.contains(
                &"if=none,id=drive-d,format=raw,file=/x,,y/disk.img,readonly=on".to_owned()
            )
        );
        assert!(args.contains(&"virtio-blk-pci,drive=drive-d,id=d,serial=S1".to_owned()));
        // -append is its own argument, not an option list: no escaping there.
        assert!(args.contains(&"a,b".to_owned()));
    }

    #[test]
    fn an_m2_drive_is_an_nvme_controller_at_its_pci_slot() {
        let builder = QemuBuilder::new()
            .direct_kernel("/k", "/i", "")
            .nvme_drive(NvmeDrive {
                id: "ssd1".into(),
                path: "/t/ssd1.qcow2".into(),
                pci_slot: 10,
                serial: "SSD1".into(),
            });
        let args = rendered(&builder);
        let at = args
            .iter()
            .position(|a| a == "if=none,id=drive-ssd1,format=qcow2,file=/t/ssd1.qcow2")
            .expect("the drive's backend");
        assert_eq!(
            args[at + 2],
            "nvme,bus=pcie.0,addr=0xa,drive=drive-ssd1,id=ssd1,serial=SSD1"
        );
    }

    #[test]
    fn nics_render_netdev_and_virtio_net_device() {
        let builder = QemuBuilder::new()
            .direct_kernel("/k", "/i", "")
            .nic(
                Nic::new(
                    "lan0",
                    NetBackend::Tap {
                        ifname: "tap-a".into(),
                    },
                )
                .mac("52:54:00:12:34:56"),
            )
            .nic(Nic::new(
                "lan1",
                NetBackend::SocketConnect {
                    addr: "127.0.0.1:4000".into(),
                },
            ));
        let args = rendered(&builder);
        let joined = args.join(" ");
        assert!(!joined.contains("-nic none"));
        assert!(joined.contains("-netdev tap,id=net-lan0,ifname=tap-a,script=no,downscript=no"));
        assert!(joined.contains(
            "-device virtio-net-pci,netdev=net-lan0,id=lan0,speed=10000,duplex=full,mac=52:54:00:12:34:56"
        ));
        assert!(joined.contains("-netdev socket,id=net-lan1,connect=127.0.0.1:4000"));
    }

    #[test]
    fn extra_args_come_last() {
        let builder = QemuBuilder::new()
            .direct_kernel("/k", "/i", "")
            .extra_args(["-device", "virtio-rng-pci"]);
        let args = rendered(&builder);
        assert_eq!(&args[args.len() - 2..], ["-device", "virtio-rng-pci"]);
    }

    #[test]
    fn refuses_what_qemu_would_reject_later() {
        assert_eq!(QemuBuilder::new().args(), Err(BuildError::NoBoot));
        let base = QemuBuilder::new().direct_kernel("/k", "/i", "");
        assert_eq!(
            base.clone().disk(Disk::raw("0bad", "/d")).args(),
            Err(BuildError::InvalidId("0bad".into()))
        );
        assert_eq!(
            base.clone()
                .disk(Disk::raw("d", "/d"))
                .nic(Nic::new("d", NetBackend::Tap { ifname: "t".into() }))
                .args(),
            Err(BuildError::DuplicateId("d".into()))
        );
        assert_eq!(
            base.clone()
                .nic(Nic::new("n", NetBackend::Tap { ifname: "t".into() }).mac("52:54:00"))
                .args(),
            Err(BuildError::InvalidMac("52:54:00".into()))
        );
        assert_eq!(base.smp(0).args(), Err(BuildError::Zero { name: "smp" }));
    }

    #[test]
    fn accel_parses_the_environment_values() {
        assert_eq!("tcg".parse(), Ok(Accel::Tcg));
        assert_eq!(" kvm\n".parse(), Ok(Accel::Kvm));
        assert_eq!(
            "hvf".parse::<Accel>(),
            Err(BuildError::InvalidAccel("hvf".into()))
        );
    }
}
