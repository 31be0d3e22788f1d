//! The appliance's API filesystems, as a table, and taking every mount down at shutdown.
//!
//! The root filesystem is the initramfs itself (no switch_root), so these are all the
//! mounts a boot needs before the config partition. Shutdown does not use the table: it
//! unmounts whatever /proc/self/mounts lists, newest first, so mounts made later by
//! hostd (volumes, the ESP) are taken down too.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use crate::error::MountError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountSpec {
    pub source: &'static str,
    pub target: &'static str,
    pub fstype: &'static str,
    pub flags: MsFlags,
    pub data: Option<&'static str>,
    /// Without it init cannot go on (no devices, no /proc, no /sys): emergency path.
    pub essential: bool,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);
const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);

/// In mount order: a parent before anything mounted beneath it.
pub const EARLY_MOUNTS: &[MountSpec] = &[
    MountSpec {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
        essential: true,
    },
    MountSpec {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
        essential: true,
    },
    MountSpec {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID,
        data: Some("mode=0755"),
        essential: true,
    },
    MountSpec {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        // No `gid=5`: the image has no tty group; ptmxmode makes /dev/pts/ptmx usable
        // for hostd's guest consoles without a separate /dev/ptmx node.
        data: Some("mode=0620,ptmxmode=0666"),
        essential: false,
    },
    MountSpec {
        source: "tmpfs",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: Some("mode=1777"),
        essential: false,
    },
    MountSpec {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: Some("mode=0755"),
        essential: false,
    },
    MountSpec {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: Some("mode=1777"),
        essential: false,
    },
    MountSpec {
        source: "cgroup2",
        target: "/sys/fs/cgroup",
        fstype: "cgroup2",
        flags: NOSUID_NODEV_NOEXEC,
        // Lets hostd hand sub-trees to guests' helpers without them escaping upwards.
        data: Some("nsdelegate"),
        essential: false,
    },
];

/// The system calls behind mounting, so tests can record them.
pub trait Mounter {
    fn is_mount_point(&self, path: &Path) -> bool;
    fn create_dir(&mut self, path: &Path) -> io::Result<()>;
    fn mount(&mut self, spec: &MountSpec) -> Result<(), Errno>;
}

pub struct SystemMounter;

impl Mounter for SystemMounter {
    /// A directory whose device differs from its parent's is a mount point; /proc is
    /// not mounted yet, so this is the check that works this early.
    fn is_mount_point(&self, path: &Path) -> bool {
        let parent = path.parent().unwrap_or(Path::new("/"));
        match (std::fs::metadata(path), std::fs::metadata(parent)) {
            (Ok(dir), Ok(parent)) => dir.dev() != parent.dev(),
            _ => false,
        }
    }

    fn create_dir(&mut self, path: &Path) -> io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
    }

    fn mount(&mut self, spec: &MountSpec) -> Result<(), Errno> {
        nix::mount::mount(
            Some(spec.source),
            spec.target,
            Some(spec.fstype),
            spec.flags,
            spec.data,
        )
    }
}

/// Mounts the table in order. Already-mounted targets are fine; a failed essential
/// mount stops here, a failed optional one is logged and skipped.
pub fn mount_all(mounter: &mut impl Mounter, table: &[MountSpec]) -> Result<(), MountError> {
    for spec in table {
        match mount_one(mounter, spec) {
            Ok(()) => {}
            Err(err) if spec.essential => return Err(err),
            Err(err) => tracing::warn!("{}", crate::error::Chain(&err)),
        }
    }
    Ok(())
}

fn mount_one(mounter: &mut impl Mounter, spec: &MountSpec) -> Result<(), MountError> {
    let target = Path::new(spec.target);
    if mounter.is_mount_point(target) {
        tracing::debug!("{} is already mounted", spec.target);
        return Ok(());
    }
    mounter
        .create_dir(target)
        .map_err(|source| MountError::CreateMountPoint {
            path: target.to_owned(),
            source,
        })?;
    match mounter.mount(spec) {
        // EBUSY: the same filesystem is already there (e.g. a kernel that mounts
        // devtmpfs itself); nothing to do.
        Ok(()) | Err(Errno::EBUSY) => Ok(()),
        Err(source) => Err(MountError::Mount {
            fstype: spec.fstype.to_owned(),
            target: target.to_owned(),
            source,
        }),
    }
}

/// One line of /proc/self/mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub source: String,
    pub target: PathBuf,
    pub fstype: String,
}

impl MountEntry {
    /// Backed by a block device: data can be lost if it is not unmounted cleanly.
    pub fn is_block(&self) -> bool {
        self.source.starts_with("/dev/")
    }
}

pub fn read_mounts(proc_root: &Path) -> io::Result<Vec<MountEntry>> {
    Ok(parse_mounts(&std::fs::read_to_string(
        proc_root.join("self/mounts"),
    )?))
}

pub fn parse_mounts(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let source = fields.next()?;
            let target = fields.next()?;
            let fstype = fields.next()?;
            Some(MountEntry {
                source: unescape(source),
                target: PathBuf::from(unescape(target)),
                fstype: unescape(fstype),
            })
        })
        .collect()
}

/// The kernel writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(octal) = bytes.get(i + 1..i + 4)
            && octal.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let value = octal
                .iter()
                .fold(0u32, |acc, digit| acc * 8 + u32::from(digit - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Newest first (a mount on top of another comes later in the list), without the root
/// filesystem: the initramfs cannot be unmounted and holds nothing to lose.
pub fn unmount_order(entries: &[MountEntry]) -> Vec<MountEntry> {
    entries
        .iter()
        .rev()
        .filter(|entry| entry.target != Path::new("/"))
        .cloned()
        .collect()
}

pub trait Unmounter {
    fn unmount(&mut self, target: &Path, flags: MntFlags) -> Result<(), Errno>;
    fn remount_read_only(&mut self, target: &Path) -> Result<(), Errno>;
}

pub struct SystemUnmounter;

impl Unmounter for SystemUnmounter {
    fn unmount(&mut self, target: &Path, flags: MntFlags) -> Result<(), Errno> {
        nix::mount::umount2(target, flags)
    }

    fn remount_read_only(&mut self, target: &Path) -> Result<(), Errno> {
        nix::mount::mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct UnmountReport {
    /// Block filesystems that stayed busy: remounted read-only (if that worked) and
    /// detached, so their data is on disk but they were not cleanly unmounted.
    pub busy_block: Vec<PathBuf>,
}

impl UnmountReport {
    pub fn all_clean(&self) -> bool {
        self.busy_block.is_empty()
    }
}

/// Unmounts `entries` in the given order (see [`unmount_order`]).
pub fn unmount_all(entries: &[MountEntry], unmounter: &mut impl Unmounter) -> UnmountReport {
    let mut report = UnmountReport::default();
    for entry in entries {
        let target = entry.target.as_path();
        match unmounter.unmount(target, MntFlags::empty()) {
            Ok(()) => {
                if entry.is_block() {
                    tracing::info!("unmounted {}", target.display());
                }
            }
            // Already gone: a parent was detached with everything beneath it.
            Err(Errno::EINVAL | Errno::ENOENT) => {}
            Err(err) => {
                if entry.is_block() {
                    // Read-only first: a detached but writable filesystem could still
                    // be written to after the reboot has been decided.
                    if let Err(ro_err) = unmounter.remount_read_only(target) {
                        tracing::warn!(
                            "could not remount {} read-only: {ro_err}",
                            target.display()
                        );
                    }
                    report.busy_block.push(target.to_owned());
                    tracing::warn!(
                        "{} is busy ({err}); remounted read-only and detached",
                        target.display()
                    );
                }
                if let Err(detach_err) = unmounter.unmount(target, MntFlags::MNT_DETACH) {
                    tracing::debug!("could not detach {}: {detach_err}", target.display());
                }
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        mounted: Vec<&'static str>,
        dirs: Vec<PathBuf>,
        already: Vec<&'static str>,
        fail: Vec<(&'static str, Errno)>,
    }

    impl Mounter for Recorder {
        fn is_mount_point(&self, path: &Path) -> bool {
            self.already.iter().any(|p| Path::new(p) == path)
        }
        fn create_dir(&mut self, path: &Path) -> io::Result<()> {
            self.dirs.push(path.to_owned());
            Ok(())
        }
        fn mount(&mut self, spec: &MountSpec) -> Result<(), Errno> {
            if let Some((_, errno)) = self.fail.iter().find(|(t, _)| *t == spec.target) {
                return Err(*errno);
            }
            self.mounted.push(spec.target);
            Ok(())
        }
    }

    #[test]
    fn table_mounts_parents_first_and_has_what_the_issue_lists() {
        let targets: Vec<&str> = EARLY_MOUNTS.iter().map(|m| m.target).collect();
        assert_eq!(
            targets,
            [
                "/proc",
                "/sys",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/run",
                "/tmp",
                "/sys/fs/cgroup"
            ]
        );
        for (i, spec) in EARLY_MOUNTS.iter().enumerate() {
            for earlier in &EARLY_MOUNTS[i + 1..] {
                assert!(
                    !Path::new(spec.target).starts_with(earlier.target),
                    "{} is mounted before its parent {}",
                    spec.target,
                    earlier.target
                );
            }
        }
        let dev = EARLY_MOUNTS.iter().find(|m| m.target == "/dev");
        assert_eq!(dev.map(|m| m.fstype), Some("devtmpfs"));
        let cgroup = EARLY_MOUNTS.iter().find(|m| m.target == "/sys/fs/cgroup");
        assert_eq!(cgroup.map(|m| m.fstype), Some("cgroup2"));
    }

    #[test]
    fn mounts_everything_creating_mount_points() {
        let mut rec = Recorder::default();
        mount_all(&mut rec, EARLY_MOUNTS).expect("all mounts succeed");
        assert_eq!(rec.mounted.len(), EARLY_MOUNTS.len());
        assert_eq!(rec.dirs.len(), EARLY_MOUNTS.len());
    }

    #[test]
    fn tolerates_already_mounted_and_ebusy() {
        let mut rec = Recorder {
            already: vec!["/proc"],
            fail: vec![("/dev", Errno::EBUSY)],
            ..Recorder::default()
        };
        mount_all(&mut rec, EARLY_MOUNTS).expect("EBUSY is not an error");
        assert!(!rec.mounted.contains(&"/proc"));
        assert!(!rec.dirs.contains(&PathBuf::from("/proc")));
    }

    #[test]
    fn optional_failure_goes_on_essential_failure_stops() {
        let mut rec = Recorder {
            fail: vec![("/dev/shm", Errno::ENODEV)],
            ..Recorder::default()
        };
        mount_all(&mut rec, EARLY_MOUNTS).expect("/dev/shm is optional");
        assert!(rec.mounted.contains(&"/tmp"));

        let mut rec = Recorder {
            fail: vec![("/sys", Errno::ENODEV)],
            ..Recorder::default()
        };
        let err = mount_all(&mut rec, EARLY_MOUNTS).expect_err("/sys is essential");
        assert!(matches!(
            err,
            MountError::Mount {
                source: Errno::ENODEV,
                ..
            }
        ));
        assert_eq!(rec.mounted, ["/proc"]);
    }

    const PROC_MOUNTS: &str = "\
rootfs / rootfs rw,size=1004648k,nr_inodes=251162 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
devtmpfs /dev devtmpfs rw,nosuid,size=1004652k,nr_inodes=251163,mode=755 0 0
tmpfs /run tmpfs rw,nosuid,nodev,mode=755 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
/dev/vda2 /config ext4 rw,relatime 0 0
/dev/sdb1 /volumes/my\\040share btrfs rw 0 0
";

    #[test]
    fn parses_proc_mounts_with_escapes() {
        let entries = parse_mounts(PROC_MOUNTS);
        assert_eq!(entries.len(), 8);
        assert_eq!(
            entries[6],
            MountEntry {
                source: "/dev/vda2".into(),
                target: "/config".into(),
                fstype: "ext4".into(),
            }
        );
        assert_eq!(entries[7].target, Path::new("/volumes/my share"));
        assert!(entries[7].is_block());
        assert!(!entries[3].is_block());
    }

    #[test]
    fn unescape_handles_edge_cases() {
        assert_eq!(unescape("a\\134b"), "a\\b");
        assert_eq!(unescape("tab\\011x"), "tab\tx");
        assert_eq!(unescape("short\\04"), "short\\04");
        assert_eq!(unescape("bad\\089"), "bad\\089");
        assert_eq!(unescape("big\\777"), "big\\777");
    }

    #[test]
    fn unmounts_newest_first_and_never_the_root() {
        let order: Vec<PathBuf> = unmount_order(&parse_mounts(PROC_MOUNTS))
            .into_iter()
            .map(|e| e.target)
            .collect();
        let want: Vec<PathBuf> = [
            "/volumes/my share",
            "/config",
            "/sys/fs/cgroup",
            "/run",
            "/dev",
            "/sys",
            "/proc",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(order, want);
    }

    #[derive(Default)]
    struct FakeUnmounter {
        busy: Vec<&'static str>,
        calls: Vec<String>,
    }

    impl Unmounter for FakeUnmounter {
        fn unmount(&mut self, target: &Path, flags: MntFlags) -> Result<(), Errno> {
            let detach = flags.contains(MntFlags::MNT_DETACH);
            self.calls.push(format!(
                "{} {}",
                if detach { "detach" } else { "umount" },
                target.display()
            ));
            if !detach && self.busy.iter().any(|b| Path::new(b) == target) {
                return Err(Errno::EBUSY);
            }
            Ok(())
        }
        fn remount_read_only(&mut self, target: &Path) -> Result<(), Errno> {
            self.calls.push(format!("ro {}", target.display()));
            Ok(())
        }
    }

    #[test]
    fn busy_block_filesystem_is_remounted_read_only_then_detached() {
        let mut fake = FakeUnmounter {
            busy: vec!["/config", "/dev"],
            ..FakeUnmounter::default()
        };
        let report = unmount_all(&unmount_order(&parse_mounts(PROC_MOUNTS)), &mut fake);
        assert_eq!(report.busy_block, [PathBuf::from("/config")]);
        assert!(!report.all_clean());
        assert_eq!(
            fake.calls,
            [
                "umount /volumes/my share",
                "umount /config",
                "ro /config",
                "detach /config",
                "umount /sys/fs/cgroup",
                "umount /run",
                "umount /dev",
                "detach /dev",
                "umount /sys",
                "umount /proc",
            ]
        );
    }

    #[test]
    fn clean_run_reports_clean() {
        let mut fake = FakeUnmounter::default();
        let report = unmount_all(&unmount_order(&parse_mounts(PROC_MOUNTS)), &mut fake);
        assert!(report.all_clean());
    }

    #[test]
    fn reads_mounts_from_a_fixture_tree() {
        let dir = crate::test_support::TempDir::new("mounts");
        dir.write("self/mounts", PROC_MOUNTS);
        let entries = read_mounts(dir.path()).expect("fixture readable");
        assert_eq!(entries.len(), 8);
    }
}
