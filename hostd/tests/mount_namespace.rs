//! The root-only storage tier: hostd's storage executor and its live storage tools
//! (mkfs.btrfs, mount(2), libbtrfsutil, statvfs, btrfs scrub/balance/device) against the
//! real kernel, on loop devices, in a fresh mount namespace so no mount reaches the host.
//!
//! Each test re-runs itself under `unshare --mount --propagation private` (util-linux)
//! with [`INSIDE`] set: its mounts live in the new namespace and go with it. Loop devices
//! are not namespaced, so every one a test attaches is detached by a guard, a failing test
//! included. Not root, or a tool or device missing: one `SKIPPED:` line on stderr naming
//! what is missing, and a pass. `make test` runs as root (CI does), so the tier runs there.
//!
//! The volumes are mounted where the executor is told to: the planner's `/volume1`, under a
//! scratch directory, so that the host's `/` gets no directory of ours.

mod namespace;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use hostd::state::{ObjectName, Profile};
use hostd::storage::action::{MountVolume, StorageAction};
use hostd::storage::execute::execute;
use hostd::storage::maintenance;
use hostd::storage::membership::{self, Addition, Removal};
use hostd::storage::signature::{self, Contents};
use hostd::storage::subvolumes::Volume;
use hostd::storage::{LiveStorageTools, StorageTools};

/// Set in the child that runs inside the fresh namespace.
const INSIDE: &str = "CAIRN_TEST_IN_MOUNTNS";

/// Each loop file: above the 114 MiB Btrfs wants per device of a raid1 (mkfs.btrfs refuses
/// smaller), sparse, so it costs only what is written.
const LOOP_BYTES: u64 = 256 << 20;

/// One test at a time: `losetup --find` picks a free device and attaches it in two steps,
/// and two tests racing for the same free device would fail each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `body` in a fresh mount namespace: directly when this process already is the
/// child, else by re-running this one test under `unshare`.
fn in_fresh_mountns(test: &str, body: impl FnOnce()) {
    if std::env::var_os(INSIDE).is_some() {
        body();
        return;
    }
    if let Some(missing) = missing_for_the_tier() {
        eprintln!("SKIPPED: {test}: {missing}");
        return;
    }
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    namespace::rerun_inside(
        test,
        &["--mount", "--propagation", "private"],
        INSIDE,
        "mount",
    );
}

/// What the tier needs that this machine lacks, in words; `None` when it can run.
fn missing_for_the_tier() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some(
            "needs root for a mount namespace and loop devices (make test runs as root)".into(),
        );
    }
    for (tool, package) in [
        ("unshare", "util-linux"),
        ("losetup", "mount"),
        ("mkfs.btrfs", "btrfs-progs"),
        ("btrfs", "btrfs-progs"),
    ] {
        let found = on_path(tool);
        if !found {
            return Some(format!(
                "{tool} is missing (Debian's {package}; make deps installs it)"
            ));
        }
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("/dev/loop-control is missing (no loop devices in this kernel)".into());
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    // The module may be loadable without being loaded yet; /sys/fs/btrfs appears once it is.
    if !filesystems.contains("btrfs") && !Path::new("/sys/fs/btrfs").exists() {
        return Some("btrfs is missing from this kernel (/proc/filesystems)".into());
    }
    None
}

/// Whether an executable `tool` is in a directory of `PATH`, as the tier's commands are
/// looked up.
fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(tool))
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Loop devices over sparse files in a scratch directory, detached when dropped (the
/// kernel lets go of one still mounted as soon as the mount goes: autoclear).
struct Loops {
    scratch: tempfile::TempDir,
    devices: Vec<String>,
}

impl Loops {
    fn new(count: usize) -> Self {
        let scratch = tempfile::tempdir().expect("a scratch directory");
        let mut loops = Self {
            scratch,
            devices: Vec::new(),
        };
        for n in 0..count {
            let file = loops.scratch.path().join(format!("drive{n}.img"));
            std::fs::File::create(&file)
                .and_then(|f| f.set_len(LOOP_BYTES))
                .expect("a sparse drive file");
            let attached = run(
                "losetup",
                &["--find", "--show", &file.display().to_string()],
            );
            loops.devices.push(attached.trim().to_string());
        }
        loops
    }

    /// The planner's mount point for the first volume, under the scratch directory.
    fn mount_point(&self) -> String {
        let planned = hostd::storage::plan::mount_point(0);
        format!("{}{planned}", self.scratch.path().display())
    }
}

impl Drop for Loops {
    fn drop(&mut self) {
        // Unmounted first (a failed test may have left the volume mounted), so that the
        // devices are free; then Btrfs forgets them, so that a later test that gets the
        // same loop numbers is not taken for a member of this filesystem.
        let _ = nix::mount::umount2(
            Path::new(&self.mount_point()),
            nix::mount::MntFlags::MNT_DETACH,
        );
        for device in &self.devices {
            let _ = Command::new("btrfs")
                .args(["device", "scan", "--forget", device])
                .output();
            let _ = Command::new("losetup").args(["-d", device]).output();
        }
    }
}

/// Runs a tool the test itself needs (not the code under test); its stdout.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The line of `/proc/self/mounts` for `mount_point`: (source, type, options).
fn mounted_at(mount_point: &str) -> Option<(String, String, String)> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("the mount table");
    mounts.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [source, point, kind, options, ..] if *point == mount_point => {
                Some((source.to_string(), kind.to_string(), options.to_string()))
            }
            _ => None,
        }
    })
}

/// Creates volume tank over `devices` through the executor and mounts it.
fn create_and_mount(loops: &Loops, devices: &[String], data: Profile, metadata: Profile) {
    let quiet = |_: &str| {};
    execute(
        &StorageAction::CreateVolume {
            name: "tank".into(),
            devices: devices.to_vec(),
            data,
            metadata,
            bcache: false,
        },
        &quiet,
    )
    .expect("mkfs.btrfs through the executor");
    execute(
        &StorageAction::Mount(MountVolume {
            name: "tank".into(),
            mount_point: loops.mount_point(),
            devices: devices.to_vec(),
            missing: 0,
        }),
        &quiet,
    )
    .expect("mount(2) through the executor");
}

/// Bytes zstd gives up on, so that what Btrfs allocates is what was written (the volumes
/// are mounted with `compress=zstd:1`).
fn random_bytes(count: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; count];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").expect("/dev/urandom"),
        &mut bytes,
    )
    .expect("random bytes");
    bytes
}

fn name(text: &str) -> ObjectName {
    ObjectName::try_from(text).expect("a valid name")
}

/// Proves: the executor's CreateVolume makes a raid1 Btrfs over two drives that hostd's
/// own observer recognises as volume tank, its Mount mounts it with the document's options
/// (noatime, zstd:1, async discard, free-space tree), and its Unmount lets it go.
#[test]
fn the_executor_makes_mounts_and_unmounts_a_raid1_volume() {
    in_fresh_mountns(
        "the_executor_makes_mounts_and_unmounts_a_raid1_volume",
        || {
            let loops = Loops::new(2);
            create_and_mount(&loops, &loops.devices, Profile::Raid1, Profile::Raid1);
            for (devid, device) in (1..).zip(&loops.devices) {
                let head = signature::read_head(Path::new(device)).expect("the drive's head");
                let Contents::Btrfs(member) = signature::classify(&head) else {
                    panic!("{device} is no Btrfs member after mkfs");
                };
                assert_eq!(member.cairn_volume(), Some("tank"));
                assert_eq!((member.devid, member.num_devices), (devid, 2));
            }
            let mount_point = loops.mount_point();
            let (_, kind, options) = mounted_at(&mount_point).expect("mounted");
            assert_eq!(kind, "btrfs");
            for option in [
                "noatime",
                "compress=zstd:1",
                "discard=async",
                "space_cache=v2",
            ] {
                assert!(
                    options.split(',').any(|o| o == option),
                    "{option} missing from {options}"
                );
            }
            let usage = LiveStorageTools
                .btrfs(&["filesystem", "usage", "--raw", &mount_point])
                .expect("btrfs filesystem usage");
            assert!(usage.contains("Data,RAID1"), "{usage}");
            assert!(usage.contains("Metadata,RAID1"), "{usage}");
            execute(
                &StorageAction::Unmount(MountVolume {
                    name: "tank".into(),
                    mount_point: mount_point.clone(),
                    devices: loops.devices.clone(),
                    missing: 0,
                }),
                &|_| {},
            )
            .expect("umount through the executor");
            assert_eq!(mounted_at(&mount_point), None);
        },
    );
}

/// Proves: the live tools create a subvolume, snapshot it read-only, list both (with the
/// snapshot's origin, its read-only flag and the bytes the file holds) and delete them,
/// through libbtrfsutil on a real Btrfs; and the checks around them refuse a taken name.
#[test]
fn subvolumes_are_created_snapshotted_listed_and_deleted_through_libbtrfsutil() {
    in_fresh_mountns(
        "subvolumes_are_created_snapshotted_listed_and_deleted_through_libbtrfsutil",
        || {
            let loops = Loops::new(1);
            create_and_mount(&loops, &loops.devices, Profile::Single, Profile::Dup);
            let mount_point = PathBuf::from(loops.mount_point());
            let volume = Volume {
                name: "tank",
                mount_point: &mount_point,
                tools: &LiveStorageTools,
            };
            volume.create(&name("data")).expect("create");
            assert!(LiveStorageTools.is_subvolume(&mount_point.join("data")));
            std::fs::write(mount_point.join("data/disk.img"), random_bytes(1 << 20))
                .expect("a file");
            run("sync", &[]);
            volume
                .snapshot(&name("data"), &name("data-monday"), false)
                .expect("snapshot");
            let listed = volume.list().expect("list");
            let names: Vec<&str> = listed.iter().map(|e| e.name.as_str()).collect();
            assert_eq!(names, ["data", "data-monday"]);
            let snapshot = &listed[1];
            assert!(snapshot.read_only);
            assert_eq!(snapshot.origin.as_deref(), Some("data"));
            assert!(
                snapshot.bytes >= 1_048_576,
                "the snapshot holds the file: {snapshot:?}"
            );
            assert!(
                volume.create(&name("data")).is_err(),
                "a taken name is refused"
            );
            volume
                .delete(&name("data-monday"))
                .expect("delete snapshot");
            volume.delete(&name("data")).expect("delete");
            assert!(volume.list().expect("list").is_empty());
            assert!(!LiveStorageTools.exists(&mount_point.join("data")));
        },
    );
}

/// Proves: statvfs through the live tools gives the mounted volume's size and use, and a
/// scrub through them reads every copy of a raid1 and reports no error.
#[test]
fn free_space_and_a_scrub_come_from_the_real_volume() {
    in_fresh_mountns("free_space_and_a_scrub_come_from_the_real_volume", || {
        let loops = Loops::new(2);
        create_and_mount(&loops, &loops.devices, Profile::Raid1, Profile::Raid1);
        let mount_point = loops.mount_point();
        std::fs::write(Path::new(&mount_point).join("file"), random_bytes(4 << 20)).expect("data");
        run("sync", &[]);
        let (size, used) = LiveStorageTools.space(&mount_point).expect("statvfs");
        // Two 256 MiB drives in raid1: Btrfs's statfs divides their raw size by the data
        // profile's two copies.
        assert_eq!(size, LOOP_BYTES);
        assert!(
            used >= 4 << 20 && used < size,
            "the 4 MiB written are used: {used} of {size}"
        );
        assert_eq!(LiveStorageTools.space("/no/such/volume"), None);
        let result = maintenance::scrub(&LiveStorageTools, "tank", &mount_point).expect("a scrub");
        assert_eq!(result.volume, "tank");
        assert!(result.bytes_scrubbed > 0, "{result:?}");
        assert_eq!(
            (
                result.read_errors,
                result.csum_errors,
                result.uncorrectable_errors
            ),
            (0, 0, 0)
        );
    });
}

/// Proves: the membership jobs' commands work on a real volume through the live tools:
/// the core's measure (`btrfs filesystem show/usage --raw`) parses, a drive added is
/// balanced onto (the long command watched while it runs), and a drive removed leaves
/// the filesystem and is left blank.
#[test]
fn a_drive_is_added_balanced_onto_and_removed_through_the_live_tools() {
    in_fresh_mountns(
        "a_drive_is_added_balanced_onto_and_removed_through_the_live_tools",
        || {
            let loops = Loops::new(3);
            let (first, third) = (&loops.devices[..2], &loops.devices[2]);
            create_and_mount(&loops, first, Profile::Raid1, Profile::Raid1);
            let mount_point = loops.mount_point();
            std::fs::write(Path::new(&mount_point).join("file"), random_bytes(8 << 20))
                .expect("data");
            run("sync", &[]);
            let added = membership::add(
                &LiveStorageTools,
                &Addition {
                    volume: "tank".into(),
                    mount_point: mount_point.clone(),
                    new_device: third.clone(),
                    bcache: false,
                    cache: None,
                },
                &|_, _| {},
            )
            .expect("add and balance");
            assert!(added.chunks_balanced > 0, "{added:?}");
            let show = LiveStorageTools
                .btrfs(&["filesystem", "show", "--raw", &mount_point])
                .expect("show");
            let devices = membership::parse_device_usage(&show);
            assert_eq!(devices.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
            assert!(devices.values().all(|(size, _)| *size == LOOP_BYTES));
            let usage = LiveStorageTools
                .btrfs(&["filesystem", "usage", "--raw", &mount_point])
                .expect("usage");
            let raw_used = membership::parse_raw_used(&usage).expect("a Used: line");
            assert!(raw_used >= 2 * (8 << 20), "both copies counted: {raw_used}");
            assert_eq!(membership::space_refusal(&devices, raw_used, 3), None);
            let drive = third.trim_start_matches("/dev/").to_string();
            membership::remove(
                &LiveStorageTools,
                &Removal {
                    volume: "tank".into(),
                    mount_point: mount_point.clone(),
                    devid: 3,
                    drive,
                    paths: Vec::new(),
                    bcache: false,
                },
                &|_, _| {},
            )
            .expect("remove");
            let show = LiveStorageTools
                .btrfs(&["filesystem", "show", "--raw", &mount_point])
                .expect("show");
            let left = membership::parse_device_usage(&show);
            assert_eq!(left.keys().copied().collect::<Vec<_>>(), [1, 2]);
            let head = signature::read_head(Path::new(third)).expect("the drive's head");
            assert_eq!(signature::classify(&head), Contents::Blank);
        },
    );
}
