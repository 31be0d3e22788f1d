//! Read-only GPT parsing: enough to find a partition by its GPT name in a raw disk file.
//!
//! Written here rather than taken from the `gpt` crate because the harness only needs to
//! read, and this way it parses plain byte slices (unit-testable without files) and checks
//! both CRCs, so a half-written or misaligned table is reported rather than trusted.
//! Only the primary header is read: the image is built by us, and a damaged primary
//! table is itself a failure worth reporting.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use thiserror::Error;

const SIGNATURE: &[u8; 8] = b"EFI PART";
/// Sector sizes an image file may use; the header sits at LBA 1 of either.
const SECTOR_SIZES: [u64; 2] = [512, 4096];
/// Entries are at least this long (UEFI spec); longer ones carry vendor data we skip.
const MIN_ENTRY_SIZE: usize = 128;
/// Sanity bound on the entry array (the spec's default is 128 × 128 bytes).
const MAX_ENTRIES_BYTES: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum GptError {
    #[error("Cannot read the partition table of {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} has no GPT header (no \"EFI PART\" at LBA 1 for 512- or 4096-byte sectors)")]
    NoHeader { path: PathBuf },
    #[error("GPT header is corrupt: {0}")]
    Corrupt(String),
    #[error("No partition named {name:?} in {path} (found: {found})")]
    NotFound {
        name: String,
        path: PathBuf,
        found: String,
    },
}

/// One used partition entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// 1-based, as Linux numbers them (`vda2`).
    pub number: u32,
    pub name: String,
    pub first_lba: u64,
    pub last_lba: u64,
    pub sector_size: u64,
}

impl Partition {
    pub fn byte_offset(&self) -> u64 {
        self.first_lba * self.sector_size
    }

    pub fn byte_len(&self) -> u64 {
        (self.last_lba + 1 - self.first_lba) * self.sector_size
    }
}

/// The header fields the reader uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    entries_lba: u64,
    entry_count: u32,
    entry_size: u32,
    entries_crc: u32,
}

/// Reads the partitions of a raw disk image.
pub fn read_partitions(path: &Path) -> Result<Vec<Partition>, GptError> {
    let io_err = |source| GptError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    for sector_size in SECTOR_SIZES {
        let mut block = vec![0u8; 512];
        file.seek(SeekFrom::Start(sector_size)).map_err(io_err)?;
        match file.read_exact(&mut block) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => continue,
            Err(e) => return Err(io_err(e)),
        }
        if &block[..8] != SIGNATURE {
            continue;
        }
        let header = parse_header(&block)?;
        let len = header.entry_count as usize * header.entry_size as usize;
        let mut entries = vec![0u8; len];
        file.seek(SeekFrom::Start(header.entries_lba * sector_size))
            .map_err(io_err)?;
        file.read_exact(&mut entries).map_err(io_err)?;
        return parse_entries(&header, &entries, sector_size);
    }
    Err(GptError::NoHeader {
        path: path.to_owned(),
    })
}

/// Finds the partition whose GPT name is `name`.
pub fn find_partition(path: &Path, name: &str) -> Result<Partition, GptError> {
    let partitions = read_partitions(path)?;
    partitions
        .iter()
        .find(|p| p.name == name)
        .cloned()
        .ok_or_else(|| GptError::NotFound {
            name: name.to_owned(),
            path: path.to_owned(),
            found: partitions
                .iter()
                .map(|p| format!("{}:{:?}", p.number, p.name))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Parses and checks the header in the first 512 bytes of LBA 1.
fn parse_header(block: &[u8]) -> Result<Header, GptError> {
    if block.len() < 92 || &block[..8] != SIGNATURE {
        return Err(GptError::Corrupt("missing \"EFI PART\" signature".into()));
    }
    let header_size = le_u32(block, 12) as usize;
    if !(92..=block.len()).contains(&header_size) {
        return Err(GptError::Corrupt(format!("header size {header_size}")));
    }
    // The header CRC covers header_size bytes with the CRC field itself zeroed.
    let stored_crc = le_u32(block, 16);
    let mut copy = block[..header_size].to_vec();
    copy[16..20].fill(0);
    let computed = crc32(&copy);
    if computed != stored_crc {
        return Err(GptError::Corrupt(format!(
            "header CRC {stored_crc:#010x}, computed {computed:#010x}"
        )));
    }
    let header = Header {
        entries_lba: le_u64(block, 72),
        entry_count: le_u32(block, 80),
        entry_size: le_u32(block, 84),
        entries_crc: le_u32(block, 88),
    };
    let size = header.entry_size as usize;
    if size < MIN_ENTRY_SIZE || !size.is_multiple_of(8) {
        return Err(GptError::Corrupt(format!("entry size {size}")));
    }
    if header.entry_count as usize * size > MAX_ENTRIES_BYTES {
        return Err(GptError::Corrupt(format!(
            "{} entries of {size} bytes",
            header.entry_count
        )));
    }
    Ok(header)
}

/// Parses the entry array, skipping unused (all-zero type GUID) slots.
fn parse_entries(
    header: &Header,
    entries: &[u8],
    sector_size: u64,
) -> Result<Vec<Partition>, GptError> {
    let computed = crc32(entries);
    if computed != header.entries_crc {
        return Err(GptError::Corrupt(format!(
            "partition entries CRC {:#010x}, computed {computed:#010x}",
            header.entries_crc
        )));
    }
    let mut partitions = Vec::new();
    for (index, entry) in entries.chunks_exact(header.entry_size as usize).enumerate() {
        if entry[..16].iter().all(|&b| b == 0) {
            continue;
        }
        let first_lba = le_u64(entry, 32);
        let last_lba = le_u64(entry, 40);
        if last_lba < first_lba {
            return Err(GptError::Corrupt(format!(
                "partition {} ends (LBA {last_lba}) before it starts (LBA {first_lba})",
                index + 1
            )));
        }
        // The name is UTF-16LE, 36 code units, NUL-padded.
        let units: Vec<u16> = entry[56..128]
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .take_while(|&unit| unit != 0)
            .collect();
        partitions.push(Partition {
            number: u32::try_from(index + 1).unwrap_or(u32::MAX),
            name: String::from_utf16_lossy(&units),
            first_lba,
            last_lba,
            sector_size,
        });
    }
    Ok(partitions)
}

/// CRC-32 (IEEE 802.3, reflected), the checksum GPT uses. Bitwise: tables are not worth
/// it for a few kilobytes per test.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;
    use std::process::Command;

    use super::*;

    /// Builds a minimal valid GPT (512-byte sectors, 128 entries) holding `parts`
    /// (name, first LBA, last LBA), for tests here and in other modules.
    pub(crate) fn synthetic_gpt(parts: &[(&str, u64, u64)]) -> Vec<u8> {
        let mut entries = vec![0u8; 128 * 128];
        for (i, (name, first, last)) in parts.iter().enumerate() {
            let e = &mut entries[i * 128..(i + 1) * 128];
            // Linux filesystem data type GUID; any non-zero value marks the slot used.
            e[..16].copy_from_slice(&[
                0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47,
                0x7d, 0xe4,
            ]);
            e[16] = u8::try_from(i + 1).expect("few partitions");
            e[32..40].copy_from_slice(&first.to_le_bytes());
            e[40..48].copy_from_slice(&last.to_le_bytes());
            for (j, unit) in name.encode_utf16().enumerate() {
                e[56 + 2 * j..58 + 2 * j].copy_from_slice(&unit.to_le_bytes());
            }
        }
        let mut header = vec![0u8; 512];
        header[..8].copy_from_slice(SIGNATURE);
        header[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        header[12..16].copy_from_slice(&92u32.to_le_bytes());
        header[24..32].copy_from_slice(&1u64.to_le_bytes());
        header[72..80].copy_from_slice(&2u64.to_le_bytes());
        header[80..84].copy_from_slice(&128u32.to_le_bytes());
        header[84..88].copy_from_slice(&128u32.to_le_bytes());
        header[88..92].copy_from_slice(&crc32(&entries).to_le_bytes());
        let crc = crc32(&header[..92]);
        header[16..20].copy_from_slice(&crc.to_le_bytes());

        let mut disk = vec![0u8; 512];
        disk.extend_from_slice(&header);
        disk.extend_from_slice(&entries);
        disk
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn finds_partitions_by_name_in_a_synthetic_table() {
        let disk = synthetic_gpt(&[("cairn-esp", 2048, 4095), ("cairn-config", 4096, 8191)]);
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(&disk).expect("write");
        let config = find_partition(file.path(), "cairn-config").expect("found");
        assert_eq!(config.number, 2);
        assert_eq!(config.byte_offset(), 4096 * 512);
        assert_eq!(config.byte_len(), 4096 * 512);
        let missing = find_partition(file.path(), "cairn-data").expect_err("absent");
        assert!(
            missing
                .to_string()
                .contains(r#"1:"cairn-esp", 2:"cairn-config""#),
            "{missing}"
        );
    }

    #[test]
    fn a_flipped_byte_is_reported_not_trusted() {
        let disk = synthetic_gpt(&[("cairn-config", 34, 100)]);
        let header = &disk[512..1024];
        let mut bad_header = header.to_vec();
        bad_header[72] ^= 1;
        assert!(matches!(
            parse_header(&bad_header),
            Err(GptError::Corrupt(_))
        ));

        let parsed = parse_header(header).expect("good header");
        let mut entries = disk[1024..].to_vec();
        entries[60] ^= 1;
        assert!(matches!(
            parse_entries(&parsed, &entries, 512),
            Err(GptError::Corrupt(_))
        ));
    }

    #[test]
    fn a_file_without_gpt_says_so() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        file.as_file().set_len(1 << 20).expect("size");
        assert!(matches!(
            read_partitions(file.path()),
            Err(GptError::NoHeader { .. })
        ));
    }

    /// Cross-checks the parser against a table written by util-linux's sfdisk.
    #[test]
    fn reads_a_table_written_by_sfdisk() {
        // `make deps` installs sfdisk: a missing one is a failure, not a silent pass.
        Command::new("sfdisk")
            .arg("--version")
            .output()
            .expect("sfdisk runs (Debian's fdisk package; make deps installs it)");
        let file = tempfile::NamedTempFile::new().expect("temp file");
        file.as_file().set_len(16 << 20).expect("size");
        let script = "label: gpt\n\
                      start=2048, size=8192, type=uefi, name=cairn-esp\n\
                      start=10240, type=linux, name=cairn-config\n";
        let mut child = Command::new("sfdisk")
            .arg("--quiet")
            .arg(file.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn sfdisk");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(script.as_bytes())
            .expect("script");
        assert!(child.wait().expect("sfdisk").success());

        let parts = read_partitions(file.path()).expect("parsed");
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["cairn-esp", "cairn-config"]);
        assert_eq!(parts[1].first_lba, 10240);
        assert_eq!(parts[1].byte_offset(), 10240 * 512);
    }
}
