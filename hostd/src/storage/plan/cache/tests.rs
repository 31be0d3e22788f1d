use super::*;
use crate::state::DesiredState;
use crate::storage::bcache::{Backing, BcacheObserved, CacheDevice, MdArray};
use crate::storage::drives::SysDrive;
use crate::storage::observe::Drive;
use crate::storage::plan::{check as check_all, plan as plan_all};
use crate::storage::signature::{self, classify};

fn drive(name: &str, serial: &str, rotational: bool, head: &[u8]) -> Drive {
    Drive {
        sys: SysDrive {
            kernel_name: name.into(),
            by_id: Some(format!("/dev/disk/by-id/virtio-{serial}")),
            by_path: None,
            model: "virtio disk".into(),
            serial: serial.into(),
            size_bytes: 1 << 30,
            rotational,
            partitions: Vec::new(),
            held: false,
        },
        contents: classify(head),
    }
}

fn blank() -> Vec<u8> {
    vec![0; signature::HEAD_BYTES]
}

fn doc(cache: &str) -> Result<DesiredState, String> {
    DesiredState::from_toml(&format!(
        "version = 1\n[[storage.volumes]]\nname = \"tank\"\ndrives = [\"/dev/disk/by-id/virtio-A\", \"/dev/disk/by-id/virtio-B\"]\ndata_profile = \"raid1\"\nmetadata_profile = \"raid1\"\n{cache}"
    ))
    .map_err(|error| error.to_string())
}

const READ_ONLY: &str =
    "cache = { mode = \"read-only\", drives = [\"/dev/disk/by-id/virtio-S1\"] }\n";
const READ_WRITE: &str = "cache = { mode = \"read-write\", drives = [\"/dev/disk/by-id/virtio-S1\", \"/dev/disk/by-id/virtio-S2\"] }\n";

fn hdds_and_ssds() -> Vec<Drive> {
    vec![
        drive("sdb", "A", true, &blank()),
        drive("sdc", "B", true, &blank()),
        drive("vdb", "S1", false, &blank()),
        drive("vdc", "S2", false, &blank()),
    ]
}

fn texts(actions: &[StorageAction]) -> Vec<String> {
    actions.iter().map(ToString::to_string).collect()
}

/// The volume created over sdb and sdc, on bcache, with `cache` attached (or not).
fn existing(cache: Option<(&str, &str, Vec<&str>)>) -> StorageObserved {
    let mut drives = hdds_and_ssds();
    drives[0] = drive(
        "sdb",
        "A",
        true,
        &signature::fake_bcache_btrfs_head(7, "cairn-tank", 1, 2),
    );
    drives[1] = drive(
        "sdc",
        "B",
        true,
        &signature::fake_bcache_btrfs_head(7, "cairn-tank", 2, 2),
    );
    let mut bcache = BcacheObserved::default();
    for (i, name) in ["sdb", "sdc"].into_iter().enumerate() {
        bcache.backing.push(Backing {
            drive: name.into(),
            device: Some(format!("bcache{i}")),
            set_uuid: cache.as_ref().map(|_| "set-1".to_string()),
            mode: cache.as_ref().map_or("writethrough", |c| c.0).into(),
            state: if cache.is_some() { "clean" } else { "no cache" }.into(),
            dirty_bytes: 0,
            hits: 3,
            misses: 1,
        });
    }
    if let Some((_, device, members)) = cache {
        for drive in drives.iter_mut() {
            if members.contains(&drive.sys.kernel_name.as_str()) {
                drive.sys.held = true;
                drive.contents = classify(&signature::fake_bcache_cache_head(1));
            }
        }
        bcache.caches.push(CacheDevice {
            device: device.into(),
            set_uuid: "set-1".into(),
        });
        if device.starts_with("md") {
            bcache.arrays.push(MdArray {
                device: device.into(),
                level: "raid1".into(),
                members: members.iter().map(|m| m.to_string()).collect(),
                sync_action: "idle".into(),
                degraded: 0,
            });
        }
    }
    StorageObserved {
        drives,
        mounts: vec![crate::storage::observe::MountEntry {
            source: "/dev/bcache0".into(),
            mount_point: "/volume1".into(),
            fs_type: "btrfs".into(),
            options: "rw".into(),
        }],
        bcache,
    }
}

#[test]
fn a_read_write_cache_on_one_ssd_is_refused_naming_the_field() {
    let error =
        doc("cache = { mode = \"read-write\", drives = [\"/dev/disk/by-id/virtio-S1\"] }\n")
            .expect_err("one SSD is not enough for a read-write cache");
    assert!(
        error.contains("storage.volumes[0].cache.drives: 1 SSD is too few for a read-write cache (expected 2, mirrored"),
        "{error}"
    );
    let error = doc("cache = { mode = \"fast\", drives = [\"/dev/disk/by-id/virtio-S1\"] }\n")
        .expect_err("unknown mode");
    assert!(
        error.contains("storage.volumes[0].cache.mode: unknown cache mode \"fast\" (expected one of: read-only, read-write)"),
        "{error}"
    );
    let error = doc("cache = { mode = \"read-only\", drives = [\"/dev/disk/by-id/virtio-A\"] }\n")
        .expect_err("a member as its own cache");
    assert!(
        error.contains(
            "storage.volumes[0].cache.drives[0]: /dev/disk/by-id/virtio-A is a drive of this volume"
        ),
        "{error}"
    );
}

#[test]
fn a_cache_on_an_ssd_volume_and_an_hdd_as_cache_are_refused() {
    let state = doc(READ_ONLY).expect("valid");
    let ssd_only = StorageObserved {
        drives: vec![
            drive("vdd", "A", false, &blank()),
            drive("vde", "B", false, &blank()),
            drive("vdb", "S1", false, &blank()),
        ],
        ..Default::default()
    };
    let errors: Vec<String> = check_all(&state.storage, &ssd_only)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "storage.volumes[0].cache: volume tank is on SSDs only, and a cache speeds up HDDs (expected a volume with HDDs; remove the cache)"
        ]
    );
    let mut hdd_cache = hdds_and_ssds();
    hdd_cache[2].sys.rotational = true;
    let observed = StorageObserved {
        drives: hdd_cache,
        ..Default::default()
    };
    let errors: Vec<String> = check_all(&state.storage, &observed)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "storage.volumes[0].cache.drives[0]: /dev/disk/by-id/virtio-S1 is a hard disk (expected an SSD)"
        ]
    );
}

#[test]
fn a_new_hdd_volume_is_made_on_bcache_and_gets_its_cache() {
    let state = doc(READ_WRITE).expect("valid");
    let observed = StorageObserved {
        drives: hdds_and_ssds(),
        ..Default::default()
    };
    assert!(check_all(&state.storage, &observed).is_empty());
    assert_eq!(
        texts(&plan_all(&state.storage, &observed)),
        [
            "create Btrfs volume tank (raid1 data, raid1 metadata) on /dev/sdb, /dev/sdc (as bcache backing devices, ready for a cache)",
            "mount volume tank at /volume1",
            "attach a read-write cache on /dev/vdb, /dev/vdc mirrored (md raid1) to volume tank",
        ]
    );
}

#[test]
fn attach_change_and_detach_of_an_existing_volume() {
    // No cache yet: attach one.
    let state = doc(READ_ONLY).expect("valid");
    let bare = existing(None);
    assert!(
        check_all(&state.storage, &bare).is_empty(),
        "{:?}",
        check_all(&state.storage, &bare)
    );
    let actions = plan_all(&state.storage, &bare);
    assert_eq!(
        actions,
        [StorageAction::AttachCache(CachePlan {
            volume: "tank".into(),
            mode: CacheMode::ReadOnly,
            ssds: vec!["vdb".into()],
            backing: vec!["sdb".into(), "sdc".into()],
        })]
    );
    // Its undo is the detach.
    assert!(matches!(
        crate::plan::Action::undo(&actions[0]),
        crate::plan::Undo::Run(StorageAction::DetachCache(_))
    ));

    // Attached as asked: nothing to do; its SSD is not refused as "in use".
    let attached = existing(Some(("writearound", "vdb", vec!["vdb"])));
    assert!(check_all(&state.storage, &attached).is_empty());
    assert!(plan_all(&state.storage, &attached).is_empty());

    // Read-only to read-write on two SSDs: detach, then attach the mirrored cache.
    let rw = doc(READ_WRITE).expect("valid");
    assert!(check_all(&rw.storage, &attached).is_empty());
    assert_eq!(
        texts(&plan_all(&rw.storage, &attached)),
        [
            "detach the read-only cache on /dev/vdb from volume tank (dirty data is written back first)",
            "attach a read-write cache on /dev/vdb, /dev/vdc mirrored (md raid1) to volume tank",
        ]
    );

    // The cache gone from the document: detach.
    let none = doc("").expect("valid");
    let mirrored = existing(Some(("writeback", "md100", vec!["vdb", "vdc"])));
    assert_eq!(
        texts(&plan_all(&none.storage, &mirrored)),
        [
            "detach the read-write cache on /dev/vdb, /dev/vdc mirrored (md raid1) from volume tank (dirty data is written back first)"
        ]
    );
}

#[test]
fn an_ssd_holding_something_else_needs_wipe() {
    let state = doc(READ_ONLY).expect("valid");
    let mut drives = hdds_and_ssds();
    let mut head = blank();
    head[0x438] = 0x53;
    head[0x439] = 0xef;
    drives[2] = drive("vdb", "S1", false, &head);
    let observed = StorageObserved {
        drives,
        ..Default::default()
    };
    let errors: Vec<String> = check_all(&state.storage, &observed)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "storage.volumes[0].cache.drives[0]: /dev/disk/by-id/virtio-S1 holds an ext2/3/4 filesystem (add wipe = true to this volume to erase it)"
        ]
    );
}

#[test]
fn a_cache_whose_ssd_is_gone_is_left_running() {
    let state = doc(READ_WRITE).expect("valid");
    let mut pulled = existing(Some(("writeback", "md100", vec!["vdb", "vdc"])));
    pulled.drives.retain(|d| d.sys.kernel_name != "vdc");
    assert!(plan_all(&state.storage, &pulled).is_empty());
}
