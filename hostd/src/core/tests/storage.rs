//! The core's storage jobs over a recording double of the storage tools: scrub, replace,
//! add and remove a drive, subvolumes (the API's and a guest's), and the free-space figures
//! of the view. Each test asserts the exact commands the job ran, in order, and what the
//! core committed afterwards (the double is `fake_tools.rs`); the real tools against a real
//! kernel are `tests/mount_namespace.rs`' business.

use std::path::{Path, PathBuf};

use super::fake_tools::FakeTools;
use super::*;
use crate::core::storage_jobs::{self, SubvolumeOp};
use crate::state::ObjectName;
use crate::storage::drives::SysDrive;
use crate::storage::observe::{Drive, MountEntry};
use crate::storage::scrub_records::{ScrubRecords, Trigger};
use crate::storage::signature::{self, Contents, classify};
use crate::storage::subvolumes::SubvolumeError;
use crate::storage::{StorageError, StorageObserved};

const GIB: u64 = 1 << 30;

pub(super) fn drive(kernel_name: &str, id: &str, contents: Contents) -> Drive {
    Drive {
        sys: SysDrive {
            kernel_name: kernel_name.into(),
            by_id: Some(by_id(id)),
            by_path: None,
            model: "WDC".into(),
            serial: id.into(),
            size_bytes: GIB,
            rotational: false,
            partitions: Vec::new(),
            held: false,
        },
        contents,
    }
}

fn by_id(id: &str) -> String {
    format!("/dev/disk/by-id/ata-WDC_{id}")
}

/// A member of the Btrfs volume tank (`bcache`: behind a bcache backing superblock).
fn member(devid: u64, of: u64, bcache: bool) -> Contents {
    if bcache {
        classify(&signature::fake_bcache_btrfs_head(
            7,
            "cairn-tank",
            devid,
            of,
        ))
    } else {
        classify(&signature::fake_btrfs_head(7, "cairn-tank", devid, of))
    }
}

fn mounted_volume1() -> MountEntry {
    MountEntry {
        source: "/dev/sda".into(),
        mount_point: "/volume1".into(),
        fs_type: "btrfs".into(),
        options: "rw".into(),
    }
}

/// The core with `document`'s volumes committed, over a box whose drives are `drives`
/// and whose `/volume1` is a mounted Btrfs; the double's tools to script and read back.
fn storage_core(document: &str, drives: Vec<Drive>) -> (Core<FakeBox, MemoryFs>, Arc<FakeTools>) {
    let (mut core, fake) = core();
    let tools = fake.lock().tools.clone();
    tools.lock().observed = StorageObserved {
        drives,
        mounts: vec![mounted_volume1()],
        bcache: Default::default(),
    };
    core.store.commit(&doc(document)).expect("commit");
    (core, tools)
}

/// tank, raid1 over the drives `ids` (A, B, …).
fn tank(ids: &[&str]) -> String {
    let drives: Vec<String> = ids.iter().map(|id| format!("{:?}", by_id(id))).collect();
    format!(
        "version = 1\n[[storage.volumes]]\nname = \"tank\"\ndrives = [{}]\ndata_profile = \"raid1\"\nmetadata_profile = \"raid1\"\nscrub_every_days = 7\n",
        drives.join(", ")
    )
}

fn tank_drives(core: &Core<FakeBox, MemoryFs>) -> Vec<String> {
    let (_, text) = core.show().expect("show");
    doc(&text).storage.volumes[0]
        .drives
        .iter()
        .map(|d| d.as_str().to_string())
        .collect()
}

fn generation(core: &Core<FakeBox, MemoryFs>) -> u64 {
    core.show().expect("show").0
}

const SCRUB_REPORT: &str = "scrub done for 0b6a\n\tdata_bytes_scrubbed: 1048576\n\ttree_bytes_scrubbed: 16384\n\tread_errors: 0\n\tcsum_errors: 3\n\tverify_errors: 0\n\tcorrected_errors: 2\n\tuncorrectable_errors: 1\n";

#[test]
fn a_scrub_runs_on_the_mount_point_and_keeps_its_counters_even_when_errors_remain() {
    let (mut core, tools) = storage_core(
        &tank(&["A", "B"]),
        vec![
            drive("sda", "A", member(1, 2, false)),
            drive("sdb", "B", member(2, 2, false)),
        ],
    );
    // btrfs exits 3 when errors remain: the counters say which, so it is a result.
    tools.answer("btrfs scrub start -B -R /volume1", 3, SCRUB_REPORT, "");
    let dir = tempfile::tempdir().expect("tempdir");
    let records = ScrubRecords::new(dir.path());
    let job = Job::new(7, "storage scrub");
    let result = storage_jobs::scrub(&mut core, &job, &records, "tank", Trigger::OnDemand)
        .expect("a scrub with uncorrectable errors is still a result");
    assert_eq!(tools.ran(), ["btrfs scrub start -B -R /volume1"]);
    let counters: serde_json::Value = serde_json::from_str(&result).expect("JSON");
    assert_eq!(counters["bytes_scrubbed"], 1_048_576 + 16_384);
    assert_eq!(counters["csum_errors"], 3);
    assert_eq!(counters["uncorrectable_errors"], 1);
    let kept = records.last("tank").expect("the record is kept");
    assert_eq!(kept.result.corrected_errors, 2);
    assert_eq!(job.snapshot().step, "scrubbed");
}

#[test]
fn a_scrub_that_fails_without_counters_is_a_storage_failure_and_keeps_nothing() {
    let (mut core, tools) = storage_core(
        &tank(&["A", "B"]),
        vec![
            drive("sda", "A", member(1, 2, false)),
            drive("sdb", "B", member(2, 2, false)),
        ],
    );
    tools.answer(
        "btrfs scrub start -B -R /volume1",
        1,
        "",
        "ERROR: scrub is already running\n",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let records = ScrubRecords::new(dir.path());
    let error = storage_jobs::scrub(
        &mut core,
        &Job::new(7, "storage scrub"),
        &records,
        "tank",
        Trigger::OnDemand,
    )
    .expect_err("btrfs failed");
    let CoreError::Storage(ByText(StorageError::Tool {
        program, stderr, ..
    })) = &error
    else {
        panic!("expected a tool failure, got {error:?}");
    };
    assert_eq!(
        (*program, stderr.as_str()),
        ("btrfs", "ERROR: scrub is already running")
    );
    assert_eq!(records.last("tank"), None);
}

#[test]
fn a_missing_drive_is_replaced_then_degraded_chunks_are_converted_and_the_document_follows() {
    // Drive B (devid 2) is gone; C is blank.
    let (mut core, tools) = storage_core(
        &tank(&["A", "B"]),
        vec![
            drive("sda", "A", member(1, 2, false)),
            drive("sdc", "C", Contents::Blank),
        ],
    );
    tools.answer(
        "btrfs replace status -1 /volume1",
        0,
        "40.0% done, 0 write errs, 0 uncorr. read errs\n",
        "",
    );
    let job = Job::new(3, "storage replace");
    let before = generation(&core);
    let result =
        storage_jobs::replace(&mut core, &job, "tank", "missing", &by_id("C")).expect("replace");
    assert_eq!(
        tools.ran(),
        [
            "btrfs replace start -B -f 2 /dev/sdc /volume1",
            "btrfs replace status -1 /volume1",
            "btrfs balance start -dconvert=raid1,soft -mconvert=raid1,soft /volume1",
        ]
    );
    // B, not on the box, is the slot C takes.
    assert_eq!(tank_drives(&core), [by_id("A"), by_id("C")]);
    let replaced: serde_json::Value = serde_json::from_str(&result).expect("JSON");
    assert_eq!(replaced["devid"], 2);
    assert_eq!(replaced["new_device"], "/dev/sdc");
    assert_eq!(replaced["generation"], before + 1);
    assert_eq!(generation(&core), before + 1);
    let seen = job.snapshot();
    assert_eq!((seen.done, seen.step.as_str()), (100, "replaced"));
}

#[test]
fn a_replace_onto_a_drive_that_is_not_blank_runs_nothing() {
    let (mut core, tools) = storage_core(
        &tank(&["A", "B"]),
        vec![
            drive("sda", "A", member(1, 2, false)),
            drive("sdb", "B", member(2, 2, false)),
            drive(
                "sdc",
                "C",
                Contents::Foreign {
                    what: "an ext4 filesystem".into(),
                },
            ),
        ],
    );
    let error = storage_jobs::replace(
        &mut core,
        &Job::new(3, "storage replace"),
        "tank",
        &by_id("B"),
        &by_id("C"),
    )
    .expect_err("C holds something");
    assert_eq!(
        error,
        CoreError::NotBlank {
            drive: by_id("C"),
            holds: "an ext4 filesystem".into(),
        }
    );
    assert!(tools.ran().is_empty(), "{:?}", tools.ran());
}

#[test]
fn an_added_drive_is_balanced_over_and_named_in_the_document() {
    let (mut core, tools) = storage_core(
        &tank(&["A", "B"]),
        vec![
            drive("sda", "A", member(1, 2, false)),
            drive("sdb", "B", member(2, 2, false)),
            drive("sdc", "C", Contents::Blank),
        ],
    );
    tools.answer(
        "btrfs balance status /volume1",
        1,
        "Balance on '/volume1' is running\n3 out of about 10 chunks balanced (4 considered),  70% left\n",
        "",
    );
    tools.answer(
        "btrfs balance start --full-balance /volume1",
        0,
        "Done, had to relocate 10 out of 10 chunks\n",
        "",
    );
    let job = Job::new(4, "storage add");
    let result = storage_jobs::add(&mut core, &job, "tank", &by_id("C")).expect("add");
    assert_eq!(
        tools.ran(),
        [
            "btrfs device add -f /dev/sdc /volume1",
            "btrfs balance start --full-balance /volume1",
            "btrfs balance status /volume1",
        ]
    );
    assert_eq!(tank_drives(&core), [by_id("A"), by_id("B"), by_id("C")]);
    let added: serde_json::Value = serde_json::from_str(&result).expect("JSON");
    assert_eq!(added["change"], "added");
    assert_eq!(added["chunks_balanced"], 10);
    assert_eq!(job.snapshot().step, "added");
}

#[test]
fn a_drive_joining_a_bcache_volume_becomes_a_backing_device_first() {
    let (mut core, tools) = storage_core(
        &tank(&["A", "B"]),
        vec![
            drive("sda", "A", member(1, 2, true)),
            drive("sdb", "B", member(2, 2, true)),
            drive("sdc", "C", Contents::Blank),
        ],
    );
    storage_jobs::add(&mut core, &Job::new(4, "storage add"), "tank", &by_id("C")).expect("add");
    assert_eq!(
        tools.ran()[..2],
        [
            "bcache backing /dev/sdc",
            "btrfs device add -f /dev/bcache9 /volume1",
        ]
    );
}

#[test]
fn a_balance_that_fails_after_btrfs_took_the_drive_still_names_it_in_the_document() {
    let (mut core, tools) = storage_core(
        &tank(&["A", "B"]),
        vec![
            drive("sda", "A", member(1, 2, false)),
            drive("sdb", "B", member(2, 2, false)),
            drive("sdc", "C", Contents::Blank),
        ],
    );
    tools.effect(
        "btrfs device add -f /dev/sdc /volume1",
        "sdc",
        member(3, 3, false),
    );
    tools.answer(
        "btrfs balance start --full-balance /volume1",
        1,
        "",
        "ERROR: error during balancing '/volume1': No space left on device",
    );
    let before = generation(&core);
    let error = storage_jobs::add(&mut core, &Job::new(4, "storage add"), "tank", &by_id("C"))
        .expect_err("the balance failed");
    assert!(
        matches!(&error, CoreError::Storage(ByText(StorageError::Tool { stderr, .. })) if stderr.contains("No space left")),
        "{error:?}"
    );
    assert_eq!(tank_drives(&core), [by_id("A"), by_id("B"), by_id("C")]);
    assert_eq!(generation(&core), before + 1);
}

#[test]
fn a_drive_btrfs_refused_is_not_named_in_the_document() {
    let (mut core, tools) = storage_core(
        &tank(&["A", "B"]),
        vec![
            drive("sda", "A", member(1, 2, false)),
            drive("sdb", "B", member(2, 2, false)),
            drive("sdc", "C", Contents::Blank),
        ],
    );
    tools.answer(
        "btrfs device add -f /dev/sdc /volume1",
        1,
        "",
        "ERROR: unable to add device",
    );
    let before = generation(&core);
    storage_jobs::add(&mut core, &Job::new(4, "storage add"), "tank", &by_id("C"))
        .expect_err("the add failed");
    assert_eq!(tools.ran(), ["btrfs device add -f /dev/sdc /volume1"]);
    assert_eq!(tank_drives(&core), [by_id("A"), by_id("B")]);
    assert_eq!(generation(&core), before);
}

/// `btrfs filesystem show --raw` of three 1 GiB members, 256 MiB allocated on each.
const SHOW_THREE: &str = "Label: 'cairn-tank'  uuid: 0b6a\n\tTotal devices 3 FS bytes used 25165824\n\tdevid    1 size 1073741824 used 268435456 path /dev/sda\n\tdevid    2 size 1073741824 used 268435456 path /dev/sdb\n\tdevid    3 size 1073741824 used 268435456 path /dev/sdc\n";

fn usage_used(bytes: u64) -> String {
    format!("Overall:\n    Device size:\t\t  3221225472\n    Used:\t\t\t  {bytes}\n")
}

fn three_drive_tank() -> (Core<FakeBox, MemoryFs>, Arc<FakeTools>) {
    storage_core(
        &tank(&["A", "B", "C"]),
        vec![
            drive("sda", "A", member(1, 3, false)),
            drive("sdb", "B", member(2, 3, false)),
            drive("sdc", "C", member(3, 3, false)),
        ],
    )
}

#[test]
fn a_removed_drive_is_emptied_blanked_and_dropped_from_the_document() {
    let (mut core, tools) = three_drive_tank();
    tools.answer("btrfs filesystem show --raw /volume1", 0, SHOW_THREE, "");
    tools.answer(
        "btrfs filesystem usage --raw /volume1",
        0,
        &usage_used(512 << 20),
        "",
    );
    tools.effect("btrfs device remove 3 /volume1", "sdc", Contents::Blank);
    let job = Job::new(5, "storage remove");
    let result = storage_jobs::remove(&mut core, &job, "tank", &by_id("C")).expect("remove");
    assert_eq!(
        tools.ran(),
        [
            // The core's free-space check, before anything runs…
            "btrfs filesystem show --raw /volume1",
            "btrfs filesystem usage --raw /volume1",
            // …the job's starting point for its progress, the removal and one look at it…
            "btrfs filesystem show --raw /volume1",
            "btrfs device remove 3 /volume1",
            "btrfs filesystem show --raw /volume1",
            // …and the drive left blank.
            "zero /dev/sdc",
        ]
    );
    assert_eq!(tank_drives(&core), [by_id("A"), by_id("B")]);
    let removed: serde_json::Value = serde_json::from_str(&result).expect("JSON");
    assert_eq!(removed["drive"], "/dev/sdc");
    assert_eq!(removed["change"], "removed");
}

#[test]
fn a_removal_whose_data_would_not_fit_is_refused_after_measuring_only() {
    let (mut core, tools) = three_drive_tank();
    tools.answer("btrfs filesystem show --raw /volume1", 0, SHOW_THREE, "");
    // 2 GiB used, every copy counted, against 2 GiB left less the tenth Btrfs needs.
    tools.answer(
        "btrfs filesystem usage --raw /volume1",
        0,
        &usage_used(2 * GIB),
        "",
    );
    let error = storage_jobs::remove(
        &mut core,
        &Job::new(5, "storage remove"),
        "tank",
        &by_id("C"),
    )
    .expect_err("too full");
    assert_eq!(
        error,
        CoreError::CannotRemove {
            drive: by_id("C"),
            why: "the volume holds 2048 MiB (every copy counted) and the other drives hold 2048 MiB, less the headroom Btrfs needs to move chunks (free space or add a drive first)".into(),
        }
    );
    assert_eq!(
        tools.ran(),
        [
            "btrfs filesystem show --raw /volume1",
            "btrfs filesystem usage --raw /volume1",
        ]
    );
    assert_eq!(tank_drives(&core), [by_id("A"), by_id("B"), by_id("C")]);
}

#[test]
fn a_removal_that_cannot_measure_the_volume_is_a_measure_error() {
    let (mut core, tools) = three_drive_tank();
    tools.answer(
        "btrfs filesystem show --raw /volume1",
        1,
        "",
        "ERROR: not a btrfs filesystem",
    );
    let error = storage_jobs::remove(
        &mut core,
        &Job::new(5, "storage remove"),
        "tank",
        &by_id("C"),
    )
    .expect_err("cannot measure");
    assert!(matches!(error, CoreError::Measure(_)), "{error:?}");
    assert_eq!(tools.ran(), ["btrfs filesystem show --raw /volume1"]);
}

#[test]
fn a_bcache_member_is_released_from_bcache_after_btrfs_lets_it_go() {
    let (mut core, tools) = storage_core(
        &tank(&["A", "B", "C"]),
        vec![
            drive("sda", "A", member(1, 3, true)),
            drive("sdb", "B", member(2, 3, true)),
            drive("sdc", "C", member(3, 3, true)),
        ],
    );
    tools.answer("btrfs filesystem show --raw /volume1", 0, SHOW_THREE, "");
    tools.answer(
        "btrfs filesystem usage --raw /volume1",
        0,
        &usage_used(512 << 20),
        "",
    );
    tools.effect(
        "btrfs device remove 3 /volume1",
        "sdc",
        Contents::BcacheBacking,
    );
    storage_jobs::remove(
        &mut core,
        &Job::new(5, "storage remove"),
        "tank",
        &by_id("C"),
    )
    .expect("remove");
    assert_eq!(
        tools.ran().last().map(String::as_str),
        Some("bcache release sdc of tank")
    );
}

fn name(text: &str) -> ObjectName {
    ObjectName::try_from(text).expect("a valid name")
}

#[test]
fn subvolume_jobs_create_snapshot_list_and_delete_inside_the_volume() {
    let (mut core, tools) = storage_core(
        &tank(&["A", "B"]),
        vec![
            drive("sda", "A", member(1, 2, false)),
            drive("sdb", "B", member(2, 2, false)),
        ],
    );
    let job = || Job::new(6, "storage subvolume");
    let run = |core: &mut Core<FakeBox, MemoryFs>, op: SubvolumeOp| {
        storage_jobs::subvolume(core, &job(), "tank", &op)
    };
    assert_eq!(
        run(&mut core, SubvolumeOp::Create { name: name("data") }),
        Ok(r#"{"volume":"tank"}"#.to_string())
    );
    run(
        &mut core,
        SubvolumeOp::Snapshot {
            source: name("data"),
            name: name("data-monday"),
            writable: false,
        },
    )
    .expect("snapshot");
    let listed: Vec<String> = storage_jobs::snapshot_list(&mut core, "tank")
        .expect("list")
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    assert_eq!(listed, ["data", "data-monday"]);
    run(&mut core, SubvolumeOp::Delete { name: name("data") }).expect("delete");
    assert_eq!(
        tools.ran(),
        [
            "subvolume create /volume1/data",
            "subvolume snapshot /volume1/data /volume1/data-monday read-only",
            "subvolume delete /volume1/data",
        ]
    );
}

#[test]
fn a_subvolume_that_exists_or_is_missing_is_refused_as_bad_input_without_acting() {
    let (mut core, tools) = storage_core(
        &tank(&["A", "B"]),
        vec![
            drive("sda", "A", member(1, 2, false)),
            drive("sdb", "B", member(2, 2, false)),
        ],
    );
    tools
        .lock()
        .subvolumes
        .insert(PathBuf::from("/volume1/data"));
    let job = Job::new(6, "storage subvolume");
    let exists = storage_jobs::subvolume(
        &mut core,
        &job,
        "tank",
        &SubvolumeOp::Create { name: name("data") },
    )
    .expect_err("data exists");
    assert_eq!(
        exists,
        CoreError::Subvolume(ByText(SubvolumeError::Exists {
            volume: "tank".into(),
            name: "data".into(),
        }))
    );
    let missing = storage_jobs::subvolume(
        &mut core,
        &job,
        "tank",
        &SubvolumeOp::Snapshot {
            source: name("web"),
            name: name("web-copy"),
            writable: true,
        },
    )
    .expect_err("no web");
    assert_eq!(
        missing,
        CoreError::Subvolume(ByText(SubvolumeError::NotFound {
            volume: "tank".into(),
            name: "web".into(),
        }))
    );
    assert!(tools.ran().is_empty(), "{:?}", tools.ran());
}

#[test]
fn a_guest_subvolume_is_created_once_and_deleted_with_its_disks() {
    let (core, tools) = storage_core(
        &tank(&["A", "B"]),
        vec![
            drive("sda", "A", member(1, 2, false)),
            drive("sdb", "B", member(2, 2, false)),
        ],
    );
    let path = core.guest_subvolume("tank", "web").expect("created");
    assert_eq!(path, Path::new("/volume1/vm-web"));
    // The second start of the guest finds it there.
    assert_eq!(core.guest_subvolume("tank", "web"), Ok(path));
    core.delete_guest_subvolume("tank", "web").expect("deleted");
    // Nothing left to delete: not an error.
    core.delete_guest_subvolume("tank", "web")
        .expect("already gone");
    assert_eq!(
        tools.ran(),
        [
            "subvolume create /volume1/vm-web",
            "subvolume delete /volume1/vm-web",
        ]
    );
}

#[test]
fn the_storage_view_shows_each_mounted_volume_s_space_from_the_tools() {
    let (core, tools) = storage_core(
        &tank(&["A", "B"]),
        vec![
            drive("sda", "A", member(1, 2, false)),
            drive("sdb", "B", member(2, 2, false)),
        ],
    );
    tools
        .lock()
        .space
        .insert("/volume1".into(), (2 * GIB, GIB / 4));
    let view = core.storage_view().expect("view");
    let tank = &view.volumes[0];
    assert_eq!(
        (tank.size_bytes, tank.used_bytes),
        (Some(2 * GIB), Some(GIB / 4))
    );
    // A volume whose filesystem cannot be read shows no figures.
    tools.lock().space.clear();
    let view = core.storage_view().expect("view");
    assert_eq!(
        (view.volumes[0].size_bytes, view.volumes[0].used_bytes),
        (None, None)
    );
}

#[test]
fn a_scheduled_scrub_is_due_for_a_mounted_volume_never_scrubbed() {
    let (core, _) = storage_core(
        &tank(&["A", "B"]),
        vec![
            drive("sda", "A", member(1, 2, false)),
            drive("sdb", "B", member(2, 2, false)),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let records = ScrubRecords::new(dir.path());
    assert_eq!(
        core.due_scrubs(&records, 1_700_000_000),
        Ok(vec!["tank".to_string()])
    );
}
