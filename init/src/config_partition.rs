//! The persistent config partition: found by GPT name, formatted only when blank.
//!
//! The one rule that matters: a partition that holds anything is never formatted. Blank
//! means the first MiB is all zeros (the image ships it that way, and every filesystem
//! and partition-table format we could meet writes its magic inside that MiB). If it
//! cannot be read, it is not known to be blank, so it is not formatted either. A
//! filesystem that is there but does not mount is left as it is and the boot goes on
//! without persistence: a person can recover data from it; nobody can from a fresh
//! mkfs.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::mount::MsFlags;

use crate::error::{Chain, ConfigPartitionError};

pub const PARTITION_NAME: &str = "cairn-config";
pub const MOUNT_POINT: &str = "/config";
/// Disks found by coldplug scan their partition tables as they register, but USB and
/// some SAS controllers finish later; 5 s covers them without stalling a box that has
/// no config partition for long.
pub const WAIT: Duration = Duration::from_secs(5);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Covers the GPT/MBR area and every superblock we know (ext4 at 1 KiB, btrfs at 64 KiB,
/// XFS/FAT at 0, LUKS at 0, swap at 4 KiB).
const BLANK_PROBE_BYTES: u64 = 1 << 20;
const MKE2FS: &str = "/usr/sbin/mke2fs";
const E2FSCK: &str = "/usr/sbin/e2fsck";

/// `KEY=VALUE` lines of a sysfs `uevent` file.
pub fn parse_uevent(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// The kernel name (`vda2`) of the partition whose GPT name is `name`, from
/// `/sys/class/block/*/uevent`. Sorted, so two matches resolve the same way every boot.
pub fn find_partition(sys_class_block: &Path, name: &str) -> Option<String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(sys_class_block)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    entries.iter().find_map(|dir| {
        let text = std::fs::read_to_string(dir.join("uevent")).ok()?;
        let uevent = parse_uevent(&text);
        (uevent.get("PARTNAME") == Some(&name))
            .then(|| uevent.get("DEVNAME").map(|d| (*d).to_owned()))
            .flatten()
    })
}

/// Polls for the partition until `deadline`.
pub fn wait_for_partition(sys_class_block: &Path, name: &str, deadline: Instant) -> Option<String> {
    loop {
        if let Some(found) = find_partition(sys_class_block, name) {
            return Some(found);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// All zeros in the first MiB (or in the whole of a smaller device).
pub fn is_blank(reader: impl Read) -> io::Result<bool> {
    let mut limited = reader.take(BLANK_PROBE_BYTES);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match limited.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

/// What e2fsck's exit status means for mounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsckVerdict {
    Clean,
    Corrected,
    /// Corrected, and e2fsck advises a reboot: that advice is for a mounted root; this
    /// filesystem is not mounted yet, so mounting now is safe.
    RebootAdvised,
    /// Errors remain that need a person: mounting could make them worse.
    ErrorsLeft(i32),
    /// e2fsck itself did not work (status 8 and up): the kernel's mount checks decide.
    DidNotRun(i32),
}

pub fn fsck_verdict(status: i32) -> FsckVerdict {
    match status {
        0 => FsckVerdict::Clean,
        1 => FsckVerdict::Corrected,
        2 | 3 => FsckVerdict::RebootAdvised,
        s if s & 4 != 0 => FsckVerdict::ErrorsLeft(s),
        s => FsckVerdict::DidNotRun(s),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Mounted { device: PathBuf },
    FormatFailed { device: PathBuf, why: String },
    LeftUntouched { device: PathBuf, why: String },
    Missing,
}

/// The contract's console lines (docs/image-contract.md).
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Mounted { device } => write!(
                f,
                "config partition {} mounted at {MOUNT_POINT}",
                device.display()
            ),
            Outcome::FormatFailed { device, why } => write!(
                f,
                "config partition {} could not be formatted ({why}); this boot has no persistence",
                device.display()
            ),
            Outcome::LeftUntouched { device, why } => write!(
                f,
                "config partition {} holds a filesystem that did not mount ({why}); \
                 it is left untouched and this boot has no persistence",
                device.display()
            ),
            Outcome::Missing => write!(
                f,
                "no config partition labelled {PARTITION_NAME}; this boot has no persistence"
            ),
        }
    }
}

pub fn formatting_line(device: &Path) -> String {
    format!(
        "config partition {} is blank: formatting ext4",
        device.display()
    )
}

/// The side effects, so tests can check that nothing formats a partition with data.
pub trait Tools {
    fn is_blank(&mut self, device: &Path) -> Result<bool, ConfigPartitionError>;
    fn mkfs(&mut self, device: &Path) -> Result<(), ConfigPartitionError>;
    /// e2fsck's exit status.
    fn fsck(&mut self, device: &Path) -> Result<i32, ConfigPartitionError>;
    fn mount(&mut self, device: &Path, target: &Path) -> Result<(), ConfigPartitionError>;
}

/// Formats a blank partition, checks a used one, and mounts it at [`MOUNT_POINT`].
pub fn prepare(device: &Path, tools: &mut impl Tools) -> Outcome {
    let target = Path::new(MOUNT_POINT);
    let blank = match tools.is_blank(device) {
        Ok(blank) => blank,
        Err(err) => {
            tracing::warn!("{}; it is not formatted", Chain(&err));
            false
        }
    };
    if blank {
        tracing::info!("{}", formatting_line(device));
        if let Err(err) = tools.mkfs(device) {
            return Outcome::FormatFailed {
                device: device.to_owned(),
                why: Chain(&err).to_string(),
            };
        }
    } else {
        match tools.fsck(device).map(fsck_verdict) {
            Ok(FsckVerdict::Clean) => tracing::debug!("e2fsck: {} is clean", device.display()),
            Ok(FsckVerdict::Corrected) => {
                tracing::info!("e2fsck corrected errors on {}", device.display());
            }
            Ok(FsckVerdict::RebootAdvised) => tracing::info!(
                "e2fsck corrected errors on {} and advised a reboot; it is not mounted yet, \
                 so the boot goes on",
                device.display()
            ),
            Ok(FsckVerdict::ErrorsLeft(status)) => {
                return Outcome::LeftUntouched {
                    device: device.to_owned(),
                    why: format!("e2fsck left errors uncorrected, exit status {status}"),
                };
            }
            Ok(FsckVerdict::DidNotRun(status)) => tracing::warn!(
                "e2fsck could not check {} (exit status {status}); trying to mount it anyway",
                device.display()
            ),
            Err(err) => tracing::warn!("{}; trying to mount it anyway", Chain(&err)),
        }
    }
    match tools.mount(device, target) {
        Ok(()) => Outcome::Mounted {
            device: device.to_owned(),
        },
        Err(err) => Outcome::LeftUntouched {
            device: device.to_owned(),
            why: err
                .source_errno()
                .map_or_else(|| Chain(&err).to_string(), |e| e.to_string()),
        },
    }
}

impl ConfigPartitionError {
    fn source_errno(&self) -> Option<nix::errno::Errno> {
        match self {
            ConfigPartitionError::Mount { source, .. } => Some(*source),
            ConfigPartitionError::ReadStart { .. }
            | ConfigPartitionError::RunTool { .. }
            | ConfigPartitionError::ToolFailed { .. }
            | ConfigPartitionError::CreateMountPoint { .. } => None,
        }
    }
}

/// The real tools: Debian's e2fsprogs from the image and mount(2).
pub struct SystemTools;

impl SystemTools {
    fn run(
        tool: &str,
        args: &[&str],
        device: &Path,
    ) -> Result<std::process::Output, ConfigPartitionError> {
        Command::new(tool)
            .args(args)
            .arg(device)
            .stdin(Stdio::null())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin")
            .output()
            .map_err(|source| ConfigPartitionError::RunTool {
                tool: tool.to_owned(),
                source,
            })
    }

    /// Tool output goes to the console with our prefix, so it reads as part of the boot.
    fn log_output(tool: &str, output: &std::process::Output) {
        let name = tool.rsplit('/').next().unwrap_or(tool);
        for text in [&output.stdout, &output.stderr] {
            for line in String::from_utf8_lossy(text)
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                tracing::info!("{name}: {}", line.trim_end());
            }
        }
    }
}

impl Tools for SystemTools {
    fn is_blank(&mut self, device: &Path) -> Result<bool, ConfigPartitionError> {
        std::fs::File::open(device)
            .and_then(is_blank)
            .map_err(|source| ConfigPartitionError::ReadStart {
                device: device.to_owned(),
                source,
            })
    }

    fn mkfs(&mut self, device: &Path) -> Result<(), ConfigPartitionError> {
        let output = Self::run(
            MKE2FS,
            &["-q", "-t", "ext4", "-L", PARTITION_NAME, "-F"],
            device,
        )?;
        if output.status.success() {
            return Ok(());
        }
        Self::log_output(MKE2FS, &output);
        Err(ConfigPartitionError::ToolFailed {
            tool: MKE2FS.to_owned(),
            status: output.status.to_string(),
        })
    }

    fn fsck(&mut self, device: &Path) -> Result<i32, ConfigPartitionError> {
        let output = Self::run(E2FSCK, &["-p"], device)?;
        Self::log_output(E2FSCK, &output);
        output
            .status
            .code()
            .ok_or_else(|| ConfigPartitionError::ToolFailed {
                tool: E2FSCK.to_owned(),
                status: output.status.to_string(),
            })
    }

    fn mount(&mut self, device: &Path, target: &Path) -> Result<(), ConfigPartitionError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(target)
            .map_err(|source| ConfigPartitionError::CreateMountPoint {
                path: target.to_owned(),
                source,
            })?;
        nix::mount::mount(
            Some(device),
            target,
            Some("ext4"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME,
            // A filesystem that goes bad while running stops taking writes instead of
            // spreading the damage.
            Some("errors=remount-ro"),
        )
        .map_err(|source| ConfigPartitionError::Mount {
            device: device.to_owned(),
            target: target.to_owned(),
            source,
        })
    }
}

/// Finds, formats if blank, checks and mounts the config partition; logs the outcome.
pub fn setup(sys_root: &Path, dev_root: &Path, deadline: Instant) -> Outcome {
    let outcome = match wait_for_partition(&sys_root.join("class/block"), PARTITION_NAME, deadline)
    {
        Some(name) => prepare(&dev_root.join(name), &mut SystemTools),
        None => Outcome::Missing,
    };
    match &outcome {
        Outcome::Mounted { .. } => tracing::info!("{outcome}"),
        Outcome::FormatFailed { .. } | Outcome::LeftUntouched { .. } | Outcome::Missing => {
            tracing::warn!("{outcome}");
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;
    use nix::errno::Errno;

    #[test]
    fn uevent_parsing() {
        let uevent = parse_uevent(
            "MAJOR=254\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\nDISKSEQ=9\nPARTN=2\n\
             PARTNAME=cairn-config\n",
        );
        assert_eq!(uevent.get("DEVNAME"), Some(&"vda2"));
        assert_eq!(uevent.get("PARTNAME"), Some(&"cairn-config"));
        assert_eq!(uevent.get("NOPE"), None);
    }

    fn block_tree() -> TempDir {
        let sys = TempDir::new("block");
        sys.write(
            "vda/uevent",
            "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n",
        );
        sys.write(
            "vda1/uevent",
            "DEVNAME=vda1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=cairn-esp\n",
        );
        sys.write(
            "vda2/uevent",
            "DEVNAME=vda2\nDEVTYPE=partition\nPARTN=2\nPARTNAME=cairn-config\n",
        );
        sys.write(
            "vdb1/uevent",
            "DEVNAME=vdb1\nDEVTYPE=partition\nPARTNAME=cairn-config-old\n",
        );
        sys
    }

    #[test]
    fn finds_the_partition_by_gpt_name() {
        let sys = block_tree();
        assert_eq!(
            find_partition(sys.path(), PARTITION_NAME).as_deref(),
            Some("vda2")
        );
        assert_eq!(
            find_partition(sys.path(), "cairn-esp").as_deref(),
            Some("vda1")
        );
        assert_eq!(find_partition(sys.path(), "cairn"), None);
        assert_eq!(
            find_partition(&sys.path().join("missing"), PARTITION_NAME),
            None
        );
    }

    #[test]
    fn waiting_gives_up_at_the_deadline() {
        let sys = TempDir::new("noblock");
        let start = Instant::now();
        let found = wait_for_partition(
            sys.path(),
            PARTITION_NAME,
            start + Duration::from_millis(120),
        );
        assert_eq!(found, None);
        assert!(start.elapsed() >= Duration::from_millis(120));
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn blank_detection_on_files() {
        let dir = TempDir::new("blank");
        let zeros = dir.path().join("zeros");
        std::fs::write(&zeros, vec![0u8; 3 << 20]).expect("write fixture");
        assert!(is_blank(std::fs::File::open(&zeros).expect("open")).expect("read"));

        // Data past the first MiB does not count: only the probe area decides.
        let mut late = vec![0u8; 2 << 20];
        late[(1 << 20) + 5] = 1;
        let late_path = dir.path().join("late");
        std::fs::write(&late_path, late).expect("write fixture");
        assert!(is_blank(std::fs::File::open(&late_path).expect("open")).expect("read"));

        let mut sb = vec![0u8; 2 << 20];
        sb[1024 + 0x38] = 0x53; // ext4's magic lives at 1 KiB + 0x38
        let sb_path = dir.path().join("sb");
        std::fs::write(&sb_path, sb).expect("write fixture");
        assert!(!is_blank(std::fs::File::open(&sb_path).expect("open")).expect("read"));

        let mut last = vec![0u8; 1 << 20];
        last[(1 << 20) - 1] = 0xff;
        assert!(!is_blank(&last[..]).expect("read"));

        assert!(is_blank(&[0u8; 10][..]).expect("small device"));
        assert!(is_blank(&[][..]).expect("empty device"));
    }

    #[derive(Default)]
    struct FakeTools {
        blank: Option<bool>,
        fsck_status: i32,
        mkfs_fails: bool,
        mount_error: Option<Errno>,
        calls: Vec<&'static str>,
    }

    impl Tools for FakeTools {
        fn is_blank(&mut self, device: &Path) -> Result<bool, ConfigPartitionError> {
            self.calls.push("probe");
            self.blank.ok_or_else(|| ConfigPartitionError::ReadStart {
                device: device.to_owned(),
                source: io::Error::from(io::ErrorKind::PermissionDenied),
            })
        }
        fn mkfs(&mut self, _device: &Path) -> Result<(), ConfigPartitionError> {
            self.calls.push("mkfs");
            if self.mkfs_fails {
                return Err(ConfigPartitionError::ToolFailed {
                    tool: MKE2FS.to_owned(),
                    status: "exit status: 1".to_owned(),
                });
            }
            Ok(())
        }
        fn fsck(&mut self, _device: &Path) -> Result<i32, ConfigPartitionError> {
            self.calls.push("fsck");
            Ok(self.fsck_status)
        }
        fn mount(&mut self, device: &Path, target: &Path) -> Result<(), ConfigPartitionError> {
            self.calls.push("mount");
            match self.mount_error {
                Some(source) => Err(ConfigPartitionError::Mount {
                    device: device.to_owned(),
                    target: target.to_owned(),
                    source,
                }),
                None => Ok(()),
            }
        }
    }

    fn dev() -> PathBuf {
        PathBuf::from("/dev/vda2")
    }

    #[test]
    fn blank_partition_is_formatted_then_mounted() {
        let mut tools = FakeTools {
            blank: Some(true),
            ..FakeTools::default()
        };
        assert_eq!(
            prepare(&dev(), &mut tools),
            Outcome::Mounted { device: dev() }
        );
        assert_eq!(tools.calls, ["probe", "mkfs", "mount"]);
    }

    #[test]
    fn used_partition_is_checked_and_mounted_never_formatted() {
        for status in [0, 1, 2, 8] {
            let mut tools = FakeTools {
                blank: Some(false),
                fsck_status: status,
                ..FakeTools::default()
            };
            assert_eq!(
                prepare(&dev(), &mut tools),
                Outcome::Mounted { device: dev() }
            );
            assert_eq!(tools.calls, ["probe", "fsck", "mount"], "status {status}");
        }
    }

    #[test]
    fn used_partition_that_does_not_mount_is_left_untouched() {
        let mut tools = FakeTools {
            blank: Some(false),
            fsck_status: 8,
            mount_error: Some(Errno::EINVAL),
            ..FakeTools::default()
        };
        let outcome = prepare(&dev(), &mut tools);
        assert_eq!(tools.calls, ["probe", "fsck", "mount"]);
        assert_eq!(
            outcome.to_string(),
            "config partition /dev/vda2 holds a filesystem that did not mount \
             (EINVAL: Invalid argument); it is left untouched and this boot has no persistence"
        );
    }

    #[test]
    fn uncorrected_errors_are_not_mounted() {
        let mut tools = FakeTools {
            blank: Some(false),
            fsck_status: 4,
            ..FakeTools::default()
        };
        let outcome = prepare(&dev(), &mut tools);
        assert_eq!(tools.calls, ["probe", "fsck"]);
        assert!(matches!(outcome, Outcome::LeftUntouched { .. }));
    }

    #[test]
    fn unreadable_partition_is_never_formatted() {
        let mut tools = FakeTools {
            blank: None,
            ..FakeTools::default()
        };
        prepare(&dev(), &mut tools);
        assert!(!tools.calls.contains(&"mkfs"));
    }

    #[test]
    fn format_failure_means_no_persistence() {
        let mut tools = FakeTools {
            blank: Some(true),
            mkfs_fails: true,
            ..FakeTools::default()
        };
        let outcome = prepare(&dev(), &mut tools);
        assert_eq!(tools.calls, ["probe", "mkfs"]);
        assert!(matches!(outcome, Outcome::FormatFailed { .. }));
    }

    #[test]
    fn contract_lines() {
        assert_eq!(
            Outcome::Mounted { device: dev() }.to_string(),
            "config partition /dev/vda2 mounted at /config"
        );
        assert_eq!(
            formatting_line(&dev()),
            "config partition /dev/vda2 is blank: formatting ext4"
        );
        assert_eq!(
            Outcome::Missing.to_string(),
            "no config partition labelled cairn-config; this boot has no persistence"
        );
    }

    #[test]
    fn fsck_verdicts() {
        assert_eq!(fsck_verdict(0), FsckVerdict::Clean);
        assert_eq!(fsck_verdict(1), FsckVerdict::Corrected);
        assert_eq!(fsck_verdict(2), FsckVerdict::RebootAdvised);
        assert_eq!(fsck_verdict(3), FsckVerdict::RebootAdvised);
        assert_eq!(fsck_verdict(4), FsckVerdict::ErrorsLeft(4));
        assert_eq!(fsck_verdict(12), FsckVerdict::ErrorsLeft(12));
        assert_eq!(fsck_verdict(8), FsckVerdict::DidNotRun(8));
        assert_eq!(fsck_verdict(16), FsckVerdict::DidNotRun(16));
    }
}
