//! What a drive's first MiB says it holds: nothing, a Btrfs member (hostd's or not), or
//! something else that a volume must not overwrite without `wipe = true`.
//!
//! Pure functions over the bytes; [`read_head`] is the only I/O.

use std::io::{self, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// How much of a drive hostd reads: every signature it looks for lies inside it, and
/// `mkfs.btrfs` zeroes the same first MiB, so a blank head means nothing to lose there.
pub const HEAD_BYTES: usize = 1 << 20;

/// The label prefix of the filesystems hostd makes: `cairn-<volume name>`.
pub const LABEL_PREFIX: &str = "cairn-";

/// The primary Btrfs superblock's offset and the fields hostd needs from it (see the
/// kernel's `struct btrfs_super_block`).
const SUPER_OFFSET: usize = 0x1_0000;
const MAGIC_AT: usize = 0x40;
const MAGIC: &[u8; 8] = b"_BHRfS_M";
const FSID_AT: usize = 0x20;
const NUM_DEVICES_AT: usize = 0x88;
/// `dev_item` starts at 0xc9; its first field is the devid.
const DEVID_AT: usize = 0xc9;
const LABEL_AT: usize = 0x12b;
const LABEL_LEN: usize = 256;

/// The bcache superblock (the kernel's `struct cache_sb_disk`, include/uapi/linux/bcache.h)
/// sits at sector 8 of a backing or cache device.
const BCACHE_SB: usize = 4096;
const BCACHE_VERSION_AT: usize = 16;
const BCACHE_MAGIC_AT: usize = 24;
const BCACHE_MAGIC: [u8; 16] = [
    0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba, 0x6d, 0x81,
];
const BCACHE_SET_UUID_AT: usize = 56;
const BCACHE_DATA_OFFSET_AT: usize = 184;
/// An md 1.2 superblock (`struct mdp_superblock_1`) at 4 KiB: its magic, then the
/// array's UUID at byte 16.
const MD_SB: usize = 4096;
const MD_MAGIC: [u8; 4] = [0xfc, 0x4e, 0x2b, 0xa9];
const MD_UUID_AT: usize = 16;
/// Versions 1, 4 and 6 are backing devices (plain, with a data offset, with features);
/// 0, 3 and 5 cache devices.
const BCACHE_BACKING_VERSIONS: [u64; 3] = [1, 4, 6];
/// Where a version-1 backing device's data starts, in 512-byte sectors
/// (`BDEV_DATA_START_DEFAULT`): 8 KiB.
const BCACHE_DEFAULT_DATA_OFFSET: u64 = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Contents {
    /// Zeroes: safe to take.
    Blank,
    Btrfs(BtrfsMember),
    /// A bcache cache device (a cache's SSD, or the md array under it).
    BcacheCache {
        set_uuid: String,
    },
    /// A bcache backing device with no Btrfs inside (a volume whose creation stopped half-way).
    BcacheBacking,
    /// A member of an md array (metadata 1.2), by the array's UUID.
    MdMember {
        array_uuid: String,
    },
    /// Something hostd recognises by name, or just "data"; never taken without `wipe`.
    Foreign {
        what: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BtrfsMember {
    /// The filesystem's UUID as text.
    pub fsid: String,
    pub label: String,
    pub devid: u64,
    pub num_devices: u64,
    /// Whether the member sits behind a bcache backing superblock (an HDD volume's layer,
    /// which takes a cache), rather than directly on the drive.
    #[serde(default)]
    pub bcache: bool,
}

impl BtrfsMember {
    /// The volume name, when hostd made this filesystem.
    pub fn cairn_volume(&self) -> Option<&str> {
        self.label.strip_prefix(LABEL_PREFIX)
    }
}

pub fn read_head(device: &Path) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(device)?;
    // Btrfs writes its superblocks around the block device's page cache, so a cached head
    // read before a mkfs or a replace would still say "blank": drop it and read afresh.
    nix::fcntl::posix_fadvise(
        &file,
        0,
        HEAD_BYTES as i64,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .map_err(io::Error::from)?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    file.take(HEAD_BYTES as u64).read_to_end(&mut head)?;
    Ok(head)
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let field: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(field))
}

fn uuid_text(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Decides from the head of a drive.
pub fn classify(head: &[u8]) -> Contents {
    if let Some(contents) = bcache(head) {
        return contents;
    }
    if let Some(member) = btrfs_member(head) {
        return Contents::Btrfs(member);
    }
    if head.get(MD_SB..MD_SB + 4) == Some(&MD_MAGIC)
        && let Some(uuid) = head.get(MD_SB + MD_UUID_AT..MD_SB + MD_UUID_AT + 16)
    {
        return Contents::MdMember {
            array_uuid: uuid_text(uuid),
        };
    }
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    let known: [(bool, &str); 6] = [
        (at(512, b"EFI PART"), "a GPT partition table"),
        (at(0x438, &[0x53, 0xef]), "an ext2/3/4 filesystem"),
        (at(0, b"XFSB"), "an XFS filesystem"),
        (at(512 + 24, b"LVM2 001"), "an LVM physical volume"),
        (at(4086, b"SWAPSPACE2"), "swap space"),
        (at(510, &[0x55, 0xaa]), "an MBR partition table"),
    ];
    if let Some((_, what)) = known.iter().find(|(found, _)| *found) {
        return Contents::Foreign {
            what: (*what).to_string(),
        };
    }
    if head.iter().all(|&b| b == 0) {
        Contents::Blank
    } else {
        Contents::Foreign {
            what: "data hostd does not recognise in its first MiB".to_string(),
        }
    }
}

/// A bcache superblock: a cache device, or a backing device and what its data holds.
fn bcache(head: &[u8]) -> Option<Contents> {
    let sb = head.get(BCACHE_SB..BCACHE_SB + 512)?;
    if sb.get(BCACHE_MAGIC_AT..BCACHE_MAGIC_AT + 16)? != BCACHE_MAGIC {
        return None;
    }
    let version = u64_at(sb, BCACHE_VERSION_AT)?;
    if !BCACHE_BACKING_VERSIONS.contains(&version) {
        return Some(Contents::BcacheCache {
            set_uuid: uuid_text(sb.get(BCACHE_SET_UUID_AT..BCACHE_SET_UUID_AT + 16)?),
        });
    }
    let sectors = if version == 1 {
        BCACHE_DEFAULT_DATA_OFFSET
    } else {
        u64_at(sb, BCACHE_DATA_OFFSET_AT)?
    };
    let data = usize::try_from(sectors.checked_mul(512)?).ok()?;
    Some(
        head.get(data..)
            .and_then(btrfs_member)
            .map_or(Contents::BcacheBacking, |member| {
                Contents::Btrfs(BtrfsMember {
                    bcache: true,
                    ..member
                })
            }),
    )
}

fn btrfs_member(head: &[u8]) -> Option<BtrfsMember> {
    let sb = head.get(SUPER_OFFSET..SUPER_OFFSET + LABEL_AT + LABEL_LEN)?;
    if sb.get(MAGIC_AT..MAGIC_AT + 8)? != MAGIC {
        return None;
    }
    let label_bytes = sb.get(LABEL_AT..LABEL_AT + LABEL_LEN)?;
    let end = label_bytes
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(LABEL_LEN);
    Some(BtrfsMember {
        fsid: uuid_text(sb.get(FSID_AT..FSID_AT + 16)?),
        label: String::from_utf8_lossy(&label_bytes[..end]).into_owned(),
        devid: u64_at(sb, DEVID_AT)?,
        num_devices: u64_at(sb, NUM_DEVICES_AT)?,
        bcache: false,
    })
}

#[cfg(test)]
pub(crate) fn fake_btrfs_head(fsid: u8, label: &str, devid: u64, num_devices: u64) -> Vec<u8> {
    let mut head = vec![0u8; HEAD_BYTES];
    let sb = &mut head[SUPER_OFFSET..];
    sb[MAGIC_AT..MAGIC_AT + 8].copy_from_slice(MAGIC);
    sb[FSID_AT..FSID_AT + 16].copy_from_slice(&[fsid; 16]);
    sb[NUM_DEVICES_AT..NUM_DEVICES_AT + 8].copy_from_slice(&num_devices.to_le_bytes());
    sb[DEVID_AT..DEVID_AT + 8].copy_from_slice(&devid.to_le_bytes());
    sb[LABEL_AT..LABEL_AT + label.len()].copy_from_slice(label.as_bytes());
    head
}

/// A Btrfs member behind a version-1 bcache backing superblock, as `make-bcache -B` and
/// `mkfs.btrfs /dev/bcacheN` leave a drive.
#[cfg(test)]
pub(crate) fn fake_bcache_btrfs_head(fsid: u8, label: &str, devid: u64, num: u64) -> Vec<u8> {
    let inner = fake_btrfs_head(fsid, label, devid, num);
    let mut head = vec![0u8; HEAD_BYTES];
    let data = 8192;
    head[data..].copy_from_slice(&inner[..HEAD_BYTES - data]);
    let sb = &mut head[BCACHE_SB..];
    sb[BCACHE_VERSION_AT..BCACHE_VERSION_AT + 8].copy_from_slice(&1u64.to_le_bytes());
    sb[BCACHE_MAGIC_AT..BCACHE_MAGIC_AT + 16].copy_from_slice(&BCACHE_MAGIC);
    head
}

#[cfg(test)]
pub(crate) fn fake_bcache_cache_head(set: u8) -> Vec<u8> {
    let mut head = vec![0u8; HEAD_BYTES];
    let sb = &mut head[BCACHE_SB..];
    sb[BCACHE_VERSION_AT..BCACHE_VERSION_AT + 8].copy_from_slice(&3u64.to_le_bytes());
    sb[BCACHE_MAGIC_AT..BCACHE_MAGIC_AT + 16].copy_from_slice(&BCACHE_MAGIC);
    sb[BCACHE_SET_UUID_AT..BCACHE_SET_UUID_AT + 16].copy_from_slice(&[set; 16]);
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcache_backing_shows_the_btrfs_member_behind_it_and_a_cache_its_set() {
        let Contents::Btrfs(member) = classify(&fake_bcache_btrfs_head(7, "cairn-tank", 1, 2))
        else {
            panic!("not recognised as a Btrfs member behind bcache");
        };
        assert!(member.bcache && member.devid == 1 && member.cairn_volume() == Some("tank"));
        let mut bare = fake_bcache_btrfs_head(7, "cairn-tank", 1, 2);
        bare[8192..].fill(0);
        assert_eq!(classify(&bare), Contents::BcacheBacking);
        assert_eq!(
            classify(&fake_bcache_cache_head(0x11)),
            Contents::BcacheCache {
                set_uuid: "11111111-1111-1111-1111-111111111111".into()
            }
        );
    }

    #[test]
    fn zeroes_are_blank_and_anything_else_is_foreign() {
        assert_eq!(classify(&vec![0; HEAD_BYTES]), Contents::Blank);
        let mut head = vec![0; HEAD_BYTES];
        head[512..520].copy_from_slice(b"EFI PART");
        head[510] = 0x55;
        head[511] = 0xaa;
        assert_eq!(
            classify(&head),
            Contents::Foreign {
                what: "a GPT partition table".into()
            }
        );
        let mut head = vec![0; HEAD_BYTES];
        head[0x438] = 0x53;
        head[0x439] = 0xef;
        assert_eq!(
            classify(&head),
            Contents::Foreign {
                what: "an ext2/3/4 filesystem".into()
            }
        );
        let mut head = vec![0; HEAD_BYTES];
        head[123_456] = 7;
        assert!(matches!(classify(&head), Contents::Foreign { .. }));
    }

    #[test]
    fn a_btrfs_superblock_gives_its_identity() {
        let head = fake_btrfs_head(0xab, "cairn-tank", 2, 3);
        let Contents::Btrfs(member) = classify(&head) else {
            panic!("not recognised as Btrfs");
        };
        assert_eq!(member.fsid, "abababab-abab-abab-abab-abababababab");
        assert_eq!((member.devid, member.num_devices), (2, 3));
        assert_eq!(member.cairn_volume(), Some("tank"));
        let other = fake_btrfs_head(1, "photos", 1, 1);
        let Contents::Btrfs(member) = classify(&other) else {
            panic!("not recognised as Btrfs");
        };
        assert_eq!(member.cairn_volume(), None);
    }
}
