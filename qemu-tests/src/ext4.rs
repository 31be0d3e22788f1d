//! The ext4 superblock fields that tell whether a filesystem was unmounted cleanly.
//!
//! A journaled ext4 sets `INCOMPAT_RECOVER` on disk when it is mounted and clears it on a
//! clean unmount, so after QEMU has exited the flag alone says whether the guest
//! unmounted `/config` before power went away. `s_state` is reported too: `VALID_FS`
//! without `ERROR_FS` is what e2fsck calls "clean".
//!
//! Offsets are those of the kernel's `struct ext4_super_block`; the superblock always
//! starts 1024 bytes into the filesystem, whatever its block size.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Bytes from the start of the filesystem to the superblock.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
const SUPERBLOCK_LEN: usize = 1024;
pub const EXT4_MAGIC: u16 = 0xef53;

/// `s_state` bits.
pub const STATE_VALID_FS: u16 = 0x1;
pub const STATE_ERROR_FS: u16 = 0x2;
/// `s_feature_compat`: the filesystem has a journal.
pub const COMPAT_HAS_JOURNAL: u32 = 0x4;
/// `s_feature_incompat`: the journal must be replayed (mounted, or not unmounted cleanly).
pub const INCOMPAT_RECOVER: u32 = 0x4;

#[derive(Debug, Error)]
pub enum Ext4Error {
    #[error("Cannot read an ext4 superblock from {path} at byte {offset}")]
    Io {
        path: PathBuf,
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error(
        "No ext4 filesystem at byte {offset} of {path}: magic {found:#06x}, expected {EXT4_MAGIC:#06x} (never formatted, or the wrong partition)"
    )]
    BadMagic {
        path: PathBuf,
        offset: u64,
        found: u16,
    },
}

/// The superblock fields the checks use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub magic: u16,
    pub state: u16,
    pub feature_compat: u32,
    pub feature_incompat: u32,
    pub feature_ro_compat: u32,
    pub block_size: u64,
    pub blocks_count: u64,
    pub mount_count: u16,
    pub volume_name: String,
}

impl Superblock {
    /// Parses a 1024-byte superblock (as found [`SUPERBLOCK_OFFSET`] bytes into the
    /// filesystem). `None` when the slice is too short.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let raw = raw.get(..SUPERBLOCK_LEN)?;
        let u16_at = |at: usize| u16::from_le_bytes([raw[at], raw[at + 1]]);
        let u32_at =
            |at: usize| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
        let log_block_size = u32_at(0x18);
        // 64bit feature: the high half of the block count lives at 0x150.
        let blocks_hi = if u32_at(0x60) & 0x80 != 0 {
            u64::from(u32_at(0x150))
        } else {
            0
        };
        let name_bytes = &raw[0x78..0x88];
        let name_len = name_bytes.iter().position(|&b| b == 0).unwrap_or(16);
        Some(Self {
            magic: u16_at(0x38),
            state: u16_at(0x3a),
            feature_compat: u32_at(0x5c),
            feature_incompat: u32_at(0x60),
            feature_ro_compat: u32_at(0x64),
            // Block size is 1024 << s_log_block_size; valid values stop well before 32.
            block_size: 1024u64.checked_shl(log_block_size.min(31)).unwrap_or(0),
            blocks_count: (blocks_hi << 32) | u64::from(u32_at(0x4)),
            mount_count: u16_at(0x34),
            volume_name: String::from_utf8_lossy(&name_bytes[..name_len]).into_owned(),
        })
    }

    pub fn has_ext_magic(&self) -> bool {
        self.magic == EXT4_MAGIC
    }

    pub fn has_journal(&self) -> bool {
        self.feature_compat & COMPAT_HAS_JOURNAL != 0
    }

    /// The journal needs replaying: the filesystem is mounted or was not unmounted.
    pub fn needs_recovery(&self) -> bool {
        self.feature_incompat & INCOMPAT_RECOVER != 0
    }

    /// `s_state` says valid and no errors were recorded.
    pub fn state_clean(&self) -> bool {
        self.state & STATE_VALID_FS != 0 && self.state & STATE_ERROR_FS == 0
    }

    /// Unmounted cleanly: clean state and nothing to replay.
    pub fn cleanly_unmounted(&self) -> bool {
        self.state_clean() && !self.needs_recovery()
    }
}

/// Reads the superblock of the ext filesystem starting `fs_offset` bytes into `path`
/// (a raw disk image: pass the partition's byte offset).
pub fn read_superblock(path: &Path, fs_offset: u64) -> Result<Superblock, Ext4Error> {
    let at = fs_offset + SUPERBLOCK_OFFSET;
    let io_err = |source| Ext4Error::Io {
        path: path.to_owned(),
        offset: at,
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    file.seek(SeekFrom::Start(at)).map_err(io_err)?;
    let mut raw = [0u8; SUPERBLOCK_LEN];
    file.read_exact(&mut raw).map_err(io_err)?;
    let superblock = Superblock::parse(&raw).ok_or_else(|| {
        io_err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "short superblock",
        ))
    })?;
    if !superblock.has_ext_magic() {
        return Err(Ext4Error::BadMagic {
            path: path.to_owned(),
            offset: at,
            found: superblock.magic,
        });
    }
    Ok(superblock)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    use std::process::Command;

    use super::*;

    /// A 1 MiB gap before the filesystem, like a partition that does not start at 0.
    const OFFSET: u64 = 1 << 20;

    /// Makes an 8 MiB ext4 filesystem at [`OFFSET`] in a temp file with Debian's mke2fs,
    /// or returns `None` (and says why) when mke2fs is not installed.
    fn mke2fs_image() -> Option<tempfile::NamedTempFile> {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let status = Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-L", "cairn-config"])
            .arg("-E")
            .arg(format!("offset={OFFSET}"))
            .arg(file.path())
            .arg("8M")
            .status();
        match status {
            Ok(status) if status.success() => Some(file),
            Ok(status) => panic!("mke2fs failed: {status}"),
            Err(e) => {
                eprintln!("skipped: mke2fs is not available ({e}); install e2fsprogs");
                None
            }
        }
    }

    #[test]
    fn fresh_mke2fs_filesystem_is_clean_with_a_journal() {
        let Some(image) = mke2fs_image() else { return };
        let sb = read_superblock(image.path(), OFFSET).expect("superblock");
        assert_eq!(sb.magic, EXT4_MAGIC);
        assert!(sb.has_journal());
        assert!(!sb.needs_recovery());
        assert!(sb.state_clean());
        assert!(sb.cleanly_unmounted());
        assert_eq!(sb.volume_name, "cairn-config");
        assert_eq!(sb.block_size * sb.blocks_count, 8 << 20);
    }

    #[test]
    fn recover_flag_and_error_state_are_reported() {
        let Some(image) = mke2fs_image() else { return };
        let file = image.as_file();
        // What a mounted (or crashed) journaled ext4 leaves on disk.
        let incompat_at = OFFSET + SUPERBLOCK_OFFSET + 0x60;
        let mut word = [0u8; 4];
        file.read_exact_at(&mut word, incompat_at).expect("read");
        let flagged = u32::from_le_bytes(word) | INCOMPAT_RECOVER;
        file.write_all_at(&flagged.to_le_bytes(), incompat_at)
            .expect("write");
        let sb = read_superblock(image.path(), OFFSET).expect("superblock");
        assert!(sb.needs_recovery());
        assert!(!sb.cleanly_unmounted());

        let state_at = OFFSET + SUPERBLOCK_OFFSET + 0x3a;
        file.write_all_at(&(STATE_VALID_FS | STATE_ERROR_FS).to_le_bytes(), state_at)
            .expect("write");
        let sb = read_superblock(image.path(), OFFSET).expect("superblock");
        assert!(!sb.state_clean());
    }

    #[test]
    fn the_wrong_offset_is_a_magic_error() {
        let Some(image) = mke2fs_image() else { return };
        let err = read_superblock(image.path(), 0).expect_err("no fs at 0");
        assert!(
            matches!(err, Ext4Error::BadMagic { found: 0, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_short_file_is_an_io_error() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(&[0u8; 1500]).expect("write");
        assert!(matches!(
            read_superblock(file.path(), 0),
            Err(Ext4Error::Io { .. })
        ));
    }

    #[test]
    fn parse_needs_a_whole_superblock() {
        assert!(Superblock::parse(&[0u8; 100]).is_none());
        let sb = Superblock::parse(&[0u8; 1024]).expect("parsed");
        assert!(!sb.has_ext_magic());
    }
}
