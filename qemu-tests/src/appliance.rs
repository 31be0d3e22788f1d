//! The appliance as the tests see it: boot the image, wait for READY, log in on its serial
//! console, run console commands and shell commands.
//!
//! ttyS0 runs `cairn-console`: on a factory-fresh disk it first asks for a new admin
//! password (twice), then for the password to log in, then shows the `cairn> ` prompt,
//! which takes cairnctl commands, `poweroff`, `reboot`, `logout` and `shell` (the password
//! again, then busybox sh; `exit` returns to the prompt). The harness uses
//! [`TEST_PASSWORD`] for all of it. Everything that knows this lives in this file — how to
//! log in, which command enters a shell, how a command's output is told apart from the
//! echo of its own command line and from init's messages.
//!
//! Output capture: each command is wrapped as
//! `echo CAIRN-''BEGIN-7; <cmd>; echo CAIRN-''END-7:$?`. The shell prints the markers
//! without the quotes, the terminal echo shows them with the quotes, so only real output
//! lies between a `CAIRN-BEGIN-7` line and `CAIRN-END-7:<status>`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regex::Regex;
use thiserror::Error;

use crate::builder::{Accel, BuildError, Disk, NetBackend, Nic, NvmeDrive, QemuBuilder, ScsiDrive};
use crate::console::{Console, ConsoleError};
use crate::contract::{self, ContractError, Ready};
use crate::fscheck::{self, ConfigFs, FsCheckError};
use crate::image::Image;
use crate::ovmf::{Ovmf, OvmfError};
use crate::timeouts;
use crate::vm::{Vm, VmError};
use crate::workdir::{WorkDir, WorkDirError};

/// The kernel command line of a direct-kernel boot of `board` (docs/image-contract.md).
pub fn direct_kernel_append(board: &str) -> String {
    format!("console=ttyS0,115200 cairn.board={board}")
}

/// How long to wait for the prompt after typing Enter before typing it again (the
/// console may still be starting).
const PROMPT_NUDGE: Duration = Duration::from_secs(5);
/// The admin password the harness sets on first boot and logs in with. Long enough for the
/// console's rule (8 characters at least).
pub const TEST_PASSWORD: &str = "cairn-test-passw0rd";

/// How long the first command in a fresh shell may take to echo its marker before it is
/// sent again (in case the console program read ahead and swallowed it).
const SHELL_SYNC: Duration = Duration::from_secs(15);

#[derive(Debug, Error)]
pub enum ApplianceError {
    #[error("Cannot prepare the VM's scratch directory")]
    WorkDir(#[from] WorkDirError),
    #[error("Cannot find the UEFI firmware")]
    Ovmf(#[from] OvmfError),
    #[error("Cannot pick the accelerator")]
    Accel(#[from] BuildError),
    #[error("VM failed")]
    Vm(#[from] VmError),
    #[error("Serial console failed")]
    Console(#[from] ConsoleError),
    #[error("The appliance broke the console contract")]
    Contract(#[from] ContractError),
    #[error("Cannot read or write the initramfs archive {path}")]
    Archive {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Shell command {0:?} spans lines; send one line at a time")]
    MultiLine(String),
    #[error("Shell command {command:?} exited with status {status}; its output:\n{output}")]
    CommandFailed {
        command: String,
        status: i32,
        output: String,
    },
    #[error("The shell did not answer within {0:?} after `shell` and the password")]
    NoShell(Duration),
    #[error("The console did not take the test password: it answered {answer:?}")]
    LoginFailed { answer: String },
}

/// Which firmware path boots the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootMode {
    /// `-kernel vmlinuz -initrd initramfs.img -append …`, with `cairn.img` attached.
    DirectKernel { append: String },
    /// OVMF → systemd-boot → slot A from `cairn.img`, as on the real box.
    Uefi,
}

/// What to launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    name: String,
    boot: BootMode,
    memory_mib: Option<u32>,
    /// `None`: the board's two ports at PCI slots 3 and 4, isolated.
    nics: Option<Vec<Nic>>,
    /// Blank drives in the board's bays.
    bays: Vec<BayDrive>,
    /// Blank NVMe SSDs in the board's M.2 slots.
    m2: Vec<M2Drive>,
    /// Extra newc archives unpacked over the appliance's root (direct-kernel boots only):
    /// test files such as a guest's kernel and initramfs.
    archives: Vec<PathBuf>,
}

/// A blank NVMe SSD the harness creates and puts in M.2 slot `slot` (1 or 2: the
/// qemu-x86_64 board's `m2-1` and `m2-2`, PCI slots 10 and 11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct M2Drive {
    /// The QEMU device id and the file's stem.
    pub id: String,
    pub slot: u8,
    pub serial: String,
    pub size_mib: u64,
}

/// PCI slot of the qemu-x86_64 board's first M.2 slot (`m2-1`); `m2-2` is the next.
const FIRST_M2_PCI_SLOT: u8 = 10;

/// A blank drive the harness creates in the VM's scratch directory and puts in a bay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BayDrive {
    /// The QEMU device id (for `device_del`) and the file's stem.
    pub id: String,
    pub bay: u8,
    pub serial: String,
    pub size_mib: u64,
    pub hdd: bool,
}

impl Launch {
    /// A direct-kernel boot of `board`. `name` labels the VM and its scratch directory.
    pub fn direct_kernel(name: &str, board: &str) -> Self {
        Self::direct_kernel_append(name, &direct_kernel_append(board))
    }

    /// A direct-kernel boot with exactly this kernel command line.
    pub fn direct_kernel_append(name: &str, append: &str) -> Self {
        Self {
            name: name.to_owned(),
            boot: BootMode::DirectKernel {
                append: append.to_owned(),
            },
            memory_mib: None,
            nics: None,
            bays: Vec::new(),
            m2: Vec::new(),
            archives: Vec::new(),
        }
    }

    /// A UEFI boot of the flashable disk image.
    pub fn uefi(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            boot: BootMode::Uefi,
            memory_mib: None,
            nics: None,
            bays: Vec::new(),
            m2: Vec::new(),
            archives: Vec::new(),
        }
    }

    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = Some(mib);
        self
    }

    /// These NICs instead of the default two isolated ones, e.g. cables to a peer VM
    /// ([`crate::peer::Cabling::appliance_nics`]). Give each the PCI slot the board
    /// expects, or hostd will not recognise its ports.
    /// Blank drives in these bays (SCSI targets of the controller at PCI slot 5).
    pub fn bays(mut self, bays: Vec<BayDrive>) -> Self {
        self.bays = bays;
        self
    }

    /// Blank NVMe SSDs in these M.2 slots.
    pub fn m2(mut self, drives: Vec<M2Drive>) -> Self {
        self.m2 = drives;
        self
    }

    pub fn nics(mut self, nics: Vec<Nic>) -> Self {
        self.nics = Some(nics);
        self
    }

    /// A newc archive the kernel unpacks after the image's initramfs (direct-kernel boots).
    pub fn archive(mut self, path: &Path) -> Self {
        self.archives.push(path.to_owned());
        self
    }
}

/// Where the console program is, as far as the harness knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Booting, logged out, or a console command is running: the next prompt has not
    /// been seen.
    Unknown,
    /// The `cairn> ` prompt was seen and nothing typed since.
    Prompt,
    /// A busybox sh started with `shell` is reading commands.
    Shell,
}

/// The result of one shell command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellOutput {
    pub status: i32,
    /// Everything printed between the markers (stdout and stderr), trailing newline removed.
    pub output: String,
}

/// `first`, then each of `rest`, as one initramfs at `to`.
fn concat_archives(first: &Path, rest: &[PathBuf], to: &Path) -> Result<(), ApplianceError> {
    let bytes =
        crate::newc::concatenate(std::iter::once(first).chain(rest.iter().map(PathBuf::as_path)))
            .map_err(|(path, source)| ApplianceError::Archive { path, source })?;
    std::fs::write(to, bytes).map_err(|source| ApplianceError::Archive {
        path: to.to_owned(),
        source,
    })
}

/// A booted (or booting) appliance VM.
#[derive(Debug)]
pub struct Appliance {
    vm: Vm,
    disk: PathBuf,
    mode: Mode,
    next_marker: u64,
}

impl Appliance {
    /// Boots `image` with a private qcow2 overlay of `cairn.img` as its only disk.
    pub fn launch(image: &Image, launch: Launch) -> Result<Self, ApplianceError> {
        Self::launch_from(image, launch, None)
    }

    /// Pulls the plug (SIGKILL) and boots a new QEMU from copies of this one's disk and bay
    /// drives as the kill left them: a power cut and the next power-on. `launch` must name
    /// the same bays.
    pub fn power_cut_and_boot(
        &mut self,
        image: &Image,
        launch: Launch,
    ) -> Result<Self, ApplianceError> {
        self.vm.kill()?;
        let previous = self.vm.dir().path().to_path_buf();
        Self::launch_from(image, launch, Some(&previous))
    }

    fn launch_from(
        image: &Image,
        launch: Launch,
        previous: Option<&Path>,
    ) -> Result<Self, ApplianceError> {
        let dir = WorkDir::new(&launch.name)?;
        let disk = match previous {
            Some(previous) => dir.copy_in(&previous.join("cairn.qcow2"), "cairn.qcow2")?,
            None => dir.overlay(&image.disk, "cairn.qcow2")?,
        };
        let mut builder = QemuBuilder::new()
            .binary(crate::builder::qemu_from_env())
            .accel(Accel::from_env()?);
        if let Some(mib) = launch.memory_mib {
            builder = builder.memory_mib(mib);
        }
        let disk0 = Disk::qcow2("disk0", &disk);
        // By default the qemu-x86_64 board's LAN ports: virtio NICs at PCI slots 3 and 4,
        // reaching nothing (tests that need a peer pass their own with `Launch::nics`).
        let nics = launch.nics.clone().unwrap_or_else(|| {
            [("lan1", 3), ("lan2", 4)]
                .into_iter()
                .map(|(port, slot)| Nic::new(port, NetBackend::Isolated).pci_slot(slot))
                .collect()
        });
        for nic in nics {
            builder = builder.nic(nic);
        }
        for bay in &launch.bays {
            let file = format!("{}.qcow2", bay.id);
            let path = match previous {
                Some(previous) => dir.copy_in(&previous.join(&file), &file)?,
                None => dir.blank_drive(&file, bay.size_mib)?,
            };
            builder = builder.scsi_drive(ScsiDrive {
                id: bay.id.clone(),
                path,
                bay: bay.bay,
                serial: bay.serial.clone(),
                hdd: bay.hdd,
            });
        }
        for drive in &launch.m2 {
            let file = format!("{}.qcow2", drive.id);
            let path = match previous {
                Some(previous) => dir.copy_in(&previous.join(&file), &file)?,
                None => dir.blank_drive(&file, drive.size_mib)?,
            };
            builder = builder.nvme_drive(NvmeDrive {
                id: drive.id.clone(),
                path,
                pci_slot: FIRST_M2_PCI_SLOT + drive.slot.saturating_sub(1),
                serial: drive.serial.clone(),
            });
        }
        builder = match &launch.boot {
            // No bootindex here: QEMU's linuxboot option ROM holds bootindex 0 with -kernel.
            BootMode::DirectKernel { append } => {
                let initramfs = if launch.archives.is_empty() {
                    image.initramfs.clone()
                } else {
                    let path = dir.path().join("initramfs-with-archives.img");
                    concat_archives(&image.initramfs, &launch.archives, &path)?;
                    path
                };
                builder
                    .direct_kernel(&image.kernel, &initramfs, append.as_str())
                    .disk(disk0)
            }
            BootMode::Uefi => {
                let ovmf = Ovmf::locate()?;
                let vars = dir.copy_in(&ovmf.vars_template, "OVMF_VARS.fd")?;
                builder.uefi(&ovmf.code, vars).disk(disk0.boot_index(0))
            }
        };
        let vm = Vm::start(&launch.name, builder, dir)?;
        Ok(Self {
            vm,
            disk,
            mode: Mode::Unknown,
            next_marker: 1,
        })
    }

    pub fn vm(&mut self) -> &mut Vm {
        &mut self.vm
    }

    pub fn console(&mut self) -> &mut Console {
        self.vm.console()
    }

    /// The qcow2 overlay holding everything the guest wrote to its disk.
    pub fn disk_overlay(&self) -> &Path {
        &self.disk
    }

    /// Reads the config partition's ext4 superblock from the disk overlay (converted to
    /// raw in the scratch directory). Only meaningful once QEMU has exited.
    pub fn inspect_config_fs(&self) -> Result<ConfigFs, FsCheckError> {
        fscheck::inspect_config_fs(&self.disk, self.vm.dir().path())
    }

    /// Waits for init's next READY line and parses it.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Ready, ApplianceError> {
        let found = self
            .vm
            .console()
            .wait_for_line(contract::ready_regex(), timeout)?;
        // A new boot: whatever shell or prompt the harness knew of is gone.
        self.mode = Mode::Unknown;
        Ok(Ready::parse(found.line().unwrap_or_default())?)
    }

    /// Makes sure the `cairn> ` prompt is waiting for a command, logging in first (and
    /// setting [`TEST_PASSWORD`] on a first boot) when the console asks for a password.
    pub fn wait_prompt(&mut self) -> Result<(), ApplianceError> {
        match self.mode {
            Mode::Prompt => return Ok(()),
            Mode::Shell => {
                let console = self.vm.console();
                console.send_line("exit")?;
                console.wait_for(contract::PROMPT, timeouts::console())?;
            }
            Mode::Unknown => self.log_in()?,
        }
        self.mode = Mode::Prompt;
        Ok(())
    }

    fn log_in(&mut self) -> Result<(), ApplianceError> {
        log_in(self.vm.console(), TEST_PASSWORD, timeouts::console())
    }

    /// Leaves the shell if one is open and logs out; the console asks for the password
    /// again, and the next command logs in again.
    pub fn logout(&mut self) -> Result<(), ApplianceError> {
        self.wait_prompt()?;
        let console = self.vm.console();
        console.send_line("logout")?;
        console.wait_for(contract::LOGGED_OUT, timeouts::console())?;
        self.mode = Mode::Unknown;
        Ok(())
    }

    /// Tells the harness that a test drove the console itself: the next command finds out
    /// again where the console is (logging in if it must).
    pub fn console_driven_by_test(&mut self) {
        self.mode = Mode::Unknown;
    }

    /// Types one line at the `cairn> ` prompt (`poweroff`, `reboot`, `status`, …),
    /// leaving a shell first if one is open and logging in if needed.
    pub fn console_command(&mut self, command: &str) -> Result<(), ApplianceError> {
        self.wait_prompt()?;
        self.vm.console().send_line(command)?;
        self.mode = Mode::Unknown;
        Ok(())
    }

    /// Runs `command` in the appliance's shell and returns its output; a non-zero exit
    /// status is an error carrying that output.
    pub fn shell(&mut self, command: &str) -> Result<String, ApplianceError> {
        self.shell_within(command, timeouts::console())
    }

    /// Runs `command` in the appliance's shell and returns its status and output.
    pub fn shell_status(&mut self, command: &str) -> Result<ShellOutput, ApplianceError> {
        self.shell_status_within(command, timeouts::console())
    }

    /// [`Appliance::shell`] for a command that runs longer than a console round trip
    /// (a benchmark job): its output within `timeout`, a non-zero status an error.
    pub fn shell_within(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<String, ApplianceError> {
        let result = self.shell_status_within(command, timeout)?;
        if result.status == 0 {
            Ok(result.output)
        } else {
            Err(ApplianceError::CommandFailed {
                command: command.to_owned(),
                status: result.status,
                output: result.output,
            })
        }
    }

    fn shell_status_within(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<ShellOutput, ApplianceError> {
        if command.contains('\n') {
            return Err(ApplianceError::MultiLine(command.to_owned()));
        }
        self.enter_shell()?;
        self.run_marked(command, timeout)
    }

    fn enter_shell(&mut self) -> Result<(), ApplianceError> {
        if self.mode == Mode::Shell {
            return Ok(());
        }
        self.wait_prompt()?;
        let console = self.vm.console();
        console.send_line("shell")?;
        console.wait_for(contract::PASSWORD_PROMPT, timeouts::console())?;
        console.send_line(TEST_PASSWORD)?;
        console.wait_for(contract::ROOT_SHELL, timeouts::console())?;
        self.mode = Mode::Shell;
        // Round trip with a no-op before the real command: re-sent if the first one was
        // read ahead by the console program before the shell started.
        let deadline = Instant::now() + timeouts::console();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ApplianceError::NoShell(timeouts::console()));
            }
            match self.run_marked("true", left.min(SHELL_SYNC)) {
                Ok(_) => return Ok(()),
                Err(ApplianceError::Console(ConsoleError::Timeout { .. })) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn run_marked(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<ShellOutput, ApplianceError> {
        let n = self.next_marker;
        self.next_marker += 1;
        Ok(run_marked(self.vm.console(), n, command, timeout)?)
    }

    /// Marks the test as passed and stops the VM quietly.
    pub fn finish(self) {
        self.vm.finish();
    }
}

/// From whatever the console shows to the `cairn> ` prompt: first-boot password set-up
/// with `password`, login with it, or nothing to do.
pub fn log_in(
    console: &mut Console,
    password: &str,
    timeout: Duration,
) -> Result<(), ApplianceError> {
    let state = contract::console_state_regex();
    let mut shown = nudge_for(console, &state, timeout)?;
    loop {
        match shown.as_str() {
            contract::NEW_PASSWORD_PROMPT => {
                console.send_line(password)?;
                console.wait_for(contract::REPEAT_PASSWORD_PROMPT, timeout)?;
                console.send_line(password)?;
                shown = console.wait_for(&state, timeout)?;
            }
            contract::PASSWORD_PROMPT => {
                console.send_line(password)?;
                let answer = console.wait_for(contract::login_answer_regex(), timeout)?;
                if answer.as_str() != contract::LOGGED_IN {
                    return Err(ApplianceError::LoginFailed {
                        answer: answer.as_str().to_owned(),
                    });
                }
                console.wait_for(contract::PROMPT, timeout)?;
                return Ok(());
            }
            _ => return Ok(()),
        }
    }
}

/// Types Enter and waits for `pattern`, again every [`PROMPT_NUDGE`]: the console's first
/// prompt may have gone by before READY or may not have come yet, and an empty line only
/// makes it ask again (at a password prompt too: an empty password is no guess).
pub fn nudge_for(
    console: &mut Console,
    pattern: &Regex,
    timeout: Duration,
) -> Result<crate::console::Match, ConsoleError> {
    let deadline = Instant::now() + timeout;
    loop {
        console.send_line("")?;
        let left = deadline.saturating_duration_since(Instant::now());
        match console.wait_for(pattern, left.min(PROMPT_NUDGE)) {
            Ok(found) => return Ok(found),
            Err(ConsoleError::Timeout { .. }) if left > PROMPT_NUDGE => {}
            Err(e) => return Err(e),
        }
    }
}

/// Sends `command` wrapped in the markers numbered `n` and collects what the shell printed
/// between them.
pub(crate) fn run_marked(
    console: &mut Console,
    n: u64,
    command: &str,
    timeout: Duration,
) -> Result<ShellOutput, ConsoleError> {
    let begin = format!("CAIRN-BEGIN-{n}");
    let end = format!("CAIRN-END-{n}:");
    console.send_line(&format!(
        "echo CAIRN-''BEGIN-{n}; {command}; echo CAIRN-''END-{n}:$?"
    ))?;
    let begin_regex = Regex::new(&format!(r"\b{begin}$")).expect("marker regex is valid");
    let end_regex = Regex::new(&format!(r"{end}(-?\d+)$")).expect("marker regex is valid");
    let started = console.wait_for_line(begin_regex, timeout)?;
    let finished = console.wait_for_line(end_regex, timeout)?;
    // Output without a final newline shares its last line with the END marker.
    let marker_in_line = finished
        .line()
        .and_then(|line| line.rfind(&end))
        .unwrap_or_default();
    let output = console.slice(started.end(), finished.start() + marker_in_line);
    let status = finished.get(1).and_then(|s| s.parse().ok()).unwrap_or(-1);
    Ok(ShellOutput {
        status,
        output: output.strip_suffix('\n').unwrap_or(&output).to_owned(),
    })
}

/// 16 hex digits from the kernel's random source, for values a test writes and expects
/// to read back (a leftover from an earlier run cannot pass for it).
pub fn random_token() -> String {
    let mut bytes = [0u8; 8];
    let from_kernel = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if from_kernel.is_err() {
        // Still unique per run: nanoseconds since the epoch, mixed with the pid.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
        bytes = mixed.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    use std::process::Command;

    use super::*;

    /// A stand-in for the appliance's console: echoes each line as a terminal would, runs
    /// it with the host's /bin/sh, and sends the output in 3-byte pieces with an init
    /// message cutting in right after the first line (the BEGIN marker).
    fn fake_shell() -> (Console, std::thread::JoinHandle<()>) {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let handle = std::thread::spawn(move || {
            let mut writer = theirs.try_clone().expect("clone");
            for line in BufReader::new(theirs).lines() {
                let Ok(line) = line else { break };
                writer
                    .write_all(format!("~ # {line}\r\n").as_bytes())
                    .expect("echo");
                let out = Command::new("sh")
                    .arg("-c")
                    .arg(&line)
                    .output()
                    .expect("sh");
                let split = out
                    .stdout
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let (first, rest) = out.stdout.split_at(split);
                writer.write_all(first).expect("begin marker");
                writer
                    .write_all(b"cairn-init: service hostd (pid 9) was killed by SIGKILL\r\n")
                    .expect("interleaved");
                for chunk in rest.chunks(3) {
                    writer.write_all(chunk).expect("output");
                }
            }
        });
        (Console::new(ours).expect("console"), handle)
    }

    #[test]
    fn marked_output_excludes_the_echo_and_keeps_the_status() {
        let (mut console, shell) = fake_shell();
        let timeout = Duration::from_secs(10);
        let out = run_marked(&mut console, 1, "echo PID=$((40 + 2))", timeout).expect("run");
        assert_eq!(out.status, 0);
        // Messages from other writers between the markers are part of the output, as on
        // a real console; the echoed command line is not.
        assert_eq!(
            out.output,
            "cairn-init: service hostd (pid 9) was killed by SIGKILL\nPID=42"
        );

        let out = run_marked(&mut console, 2, "printf no-newline; false", timeout).expect("run");
        assert_eq!(out.status, 1);
        assert!(out.output.ends_with("no-newline"), "{:?}", out.output);
        drop(console);
        drop(shell.join());
    }

    /// A stand-in for cairn-console on a fresh disk: first-boot set-up, then login with
    /// `right`. Returns every line it was sent.
    fn fake_login_console(right: &'static str) -> (Console, std::thread::JoinHandle<Vec<String>>) {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let handle = std::thread::spawn(move || {
            let mut writer = theirs.try_clone().expect("clone");
            let mut lines = BufReader::new(theirs).lines();
            let mut seen = Vec::new();
            let mut next = |prompt: &str, seen: &mut Vec<String>| {
                writer.write_all(prompt.as_bytes()).expect("prompt");
                let line = lines.next().and_then(Result::ok).unwrap_or_default();
                seen.push(line.clone());
                line
            };
            // The harness nudges with Enter first; an empty line only asks again.
            let mut line = next("\r\nNew admin password: ", &mut seen);
            while line.is_empty() {
                line = next("\r\nNew admin password: ", &mut seen);
            }
            next("\r\nRepeat the password: ", &mut seen);
            let typed = next(
                "\r\nAdmin password set (hash in /config/console/admin.passwd).\r\nPassword: ",
                &mut seen,
            );
            let answer = if typed == right {
                "\r\nLogged in. `help` lists the commands.\r\ncairn> "
            } else {
                "\r\nWrong password; 2 more tries.\r\nPassword: "
            };
            writer.write_all(answer.as_bytes()).expect("answer");
            seen
        });
        (Console::new(ours).expect("console"), handle)
    }

    #[test]
    fn log_in_sets_the_password_on_first_boot_then_logs_in() {
        let (mut console, fake) = fake_login_console(TEST_PASSWORD);
        log_in(&mut console, TEST_PASSWORD, Duration::from_secs(10)).expect("log in");
        drop(console);
        let seen = fake.join().expect("fake console");
        let typed: Vec<&str> = seen
            .iter()
            .map(String::as_str)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(typed, [TEST_PASSWORD; 3]);
    }

    #[test]
    fn log_in_reports_a_wrong_password() {
        let (mut console, fake) = fake_login_console("something-else");
        let error =
            log_in(&mut console, TEST_PASSWORD, Duration::from_secs(10)).expect_err("must fail");
        assert!(
            matches!(&error, ApplianceError::LoginFailed { answer } if answer == "Wrong password"),
            "{error:?}"
        );
        drop(console);
        drop(fake.join());
    }

    #[test]
    fn append_matches_the_contract() {
        assert_eq!(
            direct_kernel_append("qemu-x86_64"),
            "console=ttyS0,115200 cairn.board=qemu-x86_64"
        );
    }

    #[test]
    fn tokens_are_hex_and_differ() {
        let a = random_token();
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_token());
    }
}
