use super::*;
use crate::state::DesiredState;
use crate::storage::drives::SysDrive;
use crate::storage::observe::{Drive, MountEntry};
use crate::storage::signature::{self, classify};

fn drive(name: &str, serial: &str, head: &[u8]) -> Drive {
    Drive {
        sys: SysDrive {
            kernel_name: name.into(),
            by_id: Some(format!("/dev/disk/by-id/virtio-{serial}")),
            by_path: None,
            model: "virtio disk".into(),
            serial: serial.into(),
            size_bytes: 1 << 30,
            rotational: true,
            partitions: Vec::new(),
            held: false,
        },
        contents: classify(head),
    }
}

fn blank() -> Vec<u8> {
    vec![0; signature::HEAD_BYTES]
}

fn boot_drive() -> Drive {
    let mut boot = drive("vda", "BOOT", &blank());
    boot.sys.partitions = vec!["cairn-config".into(), "cairn-esp".into()];
    boot
}

fn spec(volume: &str) -> StorageSpec {
    DesiredState::from_toml(&format!("version = 1\n[[storage.volumes]]\n{volume}"))
        .expect("a valid document")
        .storage
}

const RAID1: &str = "name = \"tank\"\ndrives = [\"/dev/disk/by-id/virtio-A\", \"/dev/disk/by-id/virtio-B\"]\ndata_profile = \"raid1\"\nmetadata_profile = \"raid1\"\n";

fn messages(errors: &[FieldError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn blank_drives_are_created_then_mounted() {
    let observed = StorageObserved {
        drives: vec![
            boot_drive(),
            drive("vdb", "A", &blank()),
            drive("vdc", "B", &blank()),
        ],
        mounts: Vec::new(),
        bcache: Default::default(),
    };
    let spec = spec(RAID1);
    assert!(check(&spec, &observed).is_empty());
    let texts: Vec<String> = plan(&spec, &observed)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        texts,
        [
            "create Btrfs volume tank (raid1 data, raid1 metadata) on /dev/vdb, /dev/vdc (as bcache backing devices, ready for a cache)",
            "mount volume tank at /volume1"
        ]
    );
}

#[test]
fn an_existing_volume_is_mounted_again_and_degraded_when_a_member_is_gone() {
    let a = signature::fake_btrfs_head(7, "cairn-tank", 1, 2);
    let observed = StorageObserved {
        drives: vec![boot_drive(), drive("vdb", "A", &a)],
        mounts: Vec::new(),
        bcache: Default::default(),
    };
    let spec = spec(RAID1);
    assert!(
        check(&spec, &observed).is_empty(),
        "{:?}",
        check(&spec, &observed)
    );
    let actions = plan(&spec, &observed);
    assert_eq!(
        actions,
        vec![StorageAction::Mount(MountVolume {
            name: "tank".into(),
            mount_point: "/volume1".into(),
            devices: vec!["/dev/vdb".into()],
            missing: 1,
        })]
    );
    assert!(
        actions[0]
            .to_string()
            .contains("DEGRADED (1 of 2 drives missing)")
    );
    let mounted = StorageObserved {
        mounts: vec![MountEntry {
            source: "/dev/vdb".into(),
            mount_point: "/volume1".into(),
            fs_type: "btrfs".into(),
            options: "rw,degraded".into(),
        }],
        ..observed
    };
    assert!(plan(&spec, &mounted).is_empty());
}

#[test]
fn bad_drives_are_refused_with_their_paths() {
    let mut gpt = blank();
    gpt[512..520].copy_from_slice(b"EFI PART");
    let other = signature::fake_btrfs_head(9, "cairn-old", 1, 1);
    let observed = StorageObserved {
        drives: vec![
            boot_drive(),
            drive("vdb", "A", &gpt),
            drive("vdc", "B", &other),
            drive("vdd", "C", &blank()),
        ],
        mounts: Vec::new(),
        bcache: Default::default(),
    };
    let refused = spec(
        "name = \"tank\"\ndrives = [\"/dev/disk/by-id/virtio-BOOT\", \"/dev/disk/by-id/virtio-A\", \"/dev/disk/by-id/virtio-B\", \"/dev/disk/by-id/virtio-X\"]\ndata_profile = \"raid1\"\nmetadata_profile = \"raid1\"\n",
    );
    assert_eq!(
        messages(&check(&refused, &observed)),
        [
            "storage.volumes[0].drives[0]: /dev/disk/by-id/virtio-BOOT is the boot device (it holds /config and the boot partitions; it is never offered)",
            "storage.volumes[0].drives[1]: /dev/disk/by-id/virtio-A holds a GPT partition table (add wipe = true to this volume to erase it)",
            "storage.volumes[0].drives[2]: /dev/disk/by-id/virtio-B holds the Cairn volume old, which is not in this document (add wipe = true to this volume to erase it)",
            "storage.volumes[0].drives[3]: /dev/disk/by-id/virtio-X is not a drive on this box (expected one of: /dev/disk/by-id/virtio-A, /dev/disk/by-id/virtio-B, /dev/disk/by-id/virtio-C; `cairnctl storage drives` lists them)",
        ]
    );
    let wiped = spec(
        "name = \"tank\"\ndrives = [\"/dev/disk/by-id/virtio-A\", \"/dev/disk/by-id/virtio-B\"]\ndata_profile = \"raid1\"\nmetadata_profile = \"raid1\"\nwipe = true\n",
    );
    assert!(check(&wiped, &observed).is_empty());
}

#[test]
fn a_drive_of_another_volume_is_refused_even_with_wipe() {
    let tank = signature::fake_btrfs_head(7, "cairn-tank", 1, 1);
    let observed = StorageObserved {
        drives: vec![
            drive("vdb", "A", &tank),
            drive("vdc", "B", &blank()),
            drive("vdd", "C", &blank()),
        ],
        mounts: Vec::new(),
        bcache: Default::default(),
    };
    let spec = DesiredState::from_toml(
        "version = 1\n[[storage.volumes]]\nname = \"tank\"\ndrives = [\"/dev/disk/by-id/virtio-C\"]\ndata_profile = \"single\"\nmetadata_profile = \"dup\"\n[[storage.volumes]]\nname = \"scratch\"\ndrives = [\"/dev/disk/by-id/virtio-B\", \"/dev/disk/by-id/virtio-A\"]\ndata_profile = \"single\"\nmetadata_profile = \"raid1\"\nwipe = true\n",
    )
    .expect("a valid document")
    .storage;
    assert_eq!(
        messages(&check(&spec, &observed)),
        [
            "storage.volumes[0].drives[0]: /dev/disk/by-id/virtio-C is not a drive of the existing volume tank (a drive joins a volume with `cairnctl storage add tank <drive>`, which rebalances the data onto it as a job)",
            "storage.volumes[1].drives[1]: /dev/disk/by-id/virtio-A is a drive of volume tank (expected a drive no volume uses)",
        ]
    );
}
