//! A writer for the cpio "newc" format (the one the kernel unpacks as an initramfs), small
//! enough to read in one go.
//!
//! Why our own: the peer VM needs one extra file (`/peer-init`) appended to the appliance's
//! initramfs, and the kernel unpacks concatenated archives in order. Writing a regular
//! file and the trailer is about forty lines; a dependency for that would be more to audit
//! than the code.
//!
//! Format (`Documentation/driver-api/early-userspace/buffer-format.rst`): for each entry
//! the magic `070701`, thirteen 8-digit hex fields, the NUL-terminated name padded so the
//! data starts on a 4-byte boundary, then the data padded to 4 bytes; the archive ends
//! with an entry named `TRAILER!!!`.

use std::path::{Path, PathBuf};

use thiserror::Error;

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
/// Inode numbers of the entries written here start high, so they never coincide with
/// those of an archive they are appended to (the kernel pairs entries by inode number
/// only for hard links, which these are not, but a reader listing both should not see
/// two files with one inode).
const FIRST_INODE: u32 = 0x7000_0000;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NewcError {
    #[error("Invalid archive path {0:?}: use a relative path without NUL, '.' or '..' parts")]
    InvalidName(String),
    #[error("{name} is {len} bytes; newc sizes are 32-bit")]
    TooLarge { name: String, len: usize },
    #[error("Invalid mode {0:#o} for a regular file: give permission bits only (at most 0o7777)")]
    InvalidMode(u32),
}

/// An archive being written in memory.
#[derive(Debug, Clone)]
pub struct NewcWriter {
    bytes: Vec<u8>,
    next_inode: u32,
}

impl Default for NewcWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl NewcWriter {
    pub fn new() -> Self {
        Self {
            bytes: Vec::new(),
            next_inode: FIRST_INODE,
        }
    }

    /// Adds a regular file owned by root. `permissions` are the low 12 mode bits
    /// (`0o755` for a script the kernel runs). Parent directories must exist already
    /// (in an archive unpacked before this one) or be added first.
    pub fn file(&mut self, name: &str, permissions: u32, data: &[u8]) -> Result<(), NewcError> {
        if permissions > 0o7777 {
            return Err(NewcError::InvalidMode(permissions));
        }
        check_name(name)?;
        let len = u32::try_from(data.len()).map_err(|_| NewcError::TooLarge {
            name: name.to_owned(),
            len: data.len(),
        })?;
        let inode = self.next_inode;
        self.next_inode += 1;
        self.entry(name, inode, S_IFREG | permissions, 1, len);
        self.bytes.extend_from_slice(data);
        self.pad();
        Ok(())
    }

    /// Adds a directory owned by root, mode 0755 (for files of this archive to go in).
    pub fn dir(&mut self, name: &str) -> Result<(), NewcError> {
        check_name(name)?;
        let inode = self.next_inode;
        self.next_inode += 1;
        self.entry(name, inode, S_IFDIR | 0o755, 2, 0);
        Ok(())
    }

    /// Ends the archive with its trailer and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry(TRAILER, 0, 0, 1, 0);
        self.bytes
    }

    fn entry(&mut self, name: &str, inode: u32, mode: u32, nlink: u32, size: u32) {
        // +1: the name's length counts its terminating NUL. Names were checked to be short.
        let name_len = u32::try_from(name.len() + 1).expect("names are checked to be short");
        // ino, mode, uid, gid, nlink, mtime (0: reproducible), filesize, devmajor,
        // devminor, rdevmajor, rdevminor, namesize, check (0: no checksum in 070701).
        let fields = [inode, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, name_len, 0];
        self.bytes.extend_from_slice(MAGIC.as_bytes());
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
}

fn check_name(name: &str) -> Result<(), NewcError> {
    let bad = name.is_empty()
        || name.len() > 4096
        || name.starts_with('/')
        || name.contains('\0')
        || name == TRAILER
        || name.split('/').any(|part| matches!(part, "" | "." | ".."));
    if bad {
        Err(NewcError::InvalidName(name.to_owned()))
    } else {
        Ok(())
    }
}

/// The archives at `paths` read one after the other into one initramfs, each starting on a
/// 4-byte boundary (where the kernel looks for the next archive's magic). An error names
/// the file that could not be read.
pub fn concatenate<'a>(
    paths: impl IntoIterator<Item = &'a Path>,
) -> Result<Vec<u8>, (PathBuf, std::io::Error)> {
    let mut bytes = Vec::new();
    for path in paths {
        let archive = std::fs::read(path).map_err(|source| (path.to_owned(), source))?;
        bytes.extend_from_slice(&archive);
        while !bytes.len().is_multiple_of(4) {
            bytes.push(0);
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 6 bytes of magic and 13 fields of 8 hex digits.
    const HEADER_LEN: usize = 110;

    fn field(header: &[u8], index: usize) -> u32 {
        let start = 6 + index * 8;
        let text = std::str::from_utf8(&header[start..start + 8]).expect("hex is ASCII");
        u32::from_str_radix(text, 16).expect("hex field")
    }

    #[test]
    fn one_file_then_the_trailer_with_four_byte_alignment() {
        let mut writer = NewcWriter::new();
        writer
            .file("peer-init", 0o755, b"#!/bin/sh\n")
            .expect("file");
        let bytes = writer.finish();
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(field(&bytes, 0), FIRST_INODE);
        assert_eq!(field(&bytes, 1), 0o100_755);
        assert_eq!(field(&bytes, 4), 1, "nlink");
        assert_eq!(field(&bytes, 6), 10, "file size");
        assert_eq!(field(&bytes, 11), 10, "name size with its NUL");
        // Header (110) + "peer-init\0" (10) = 120, already aligned; the data follows.
        assert_eq!(&bytes[110..120], b"peer-init\0");
        assert_eq!(&bytes[120..130], b"#!/bin/sh\n");
        // Data padded from 130 to 132; then the trailer's header.
        assert_eq!(&bytes[130..132], b"\0\0");
        let trailer = &bytes[132..];
        assert_eq!(&trailer[..6], b"070701");
        assert_eq!(field(trailer, 11), 11);
        assert_eq!(&trailer[HEADER_LEN..HEADER_LEN + 11], b"TRAILER!!!\0");
    }

    #[test]
    fn the_host_cpio_lists_and_extracts_what_we_write() {
        // The same reader family as the kernel's.
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut writer = NewcWriter::new();
        writer.file("a", 0o644, b"x").expect("a");
        writer
            .file("peer-init", 0o755, b"echo hi\n")
            .expect("peer-init");
        let archive = dir.path().join("t.cpio");
        std::fs::write(&archive, writer.finish()).expect("write");
        // `make deps` installs cpio: a missing one is a failure, not a silent pass.
        let out = std::process::Command::new("cpio")
            .args(["-i", "--quiet", "-F"])
            .arg(&archive)
            .current_dir(dir.path())
            .output()
            .expect("cpio runs (Debian's cpio package; make deps installs it)");
        assert!(out.status.success(), "{out:?}");
        let script = std::fs::read(dir.path().join("peer-init")).expect("extracted");
        assert_eq!(script, b"echo hi\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("peer-init"))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn refuses_names_and_modes_it_cannot_write() {
        let mut writer = NewcWriter::new();
        for name in ["", "/abs", "a/../b", "./a", "a//b", "TRAILER!!!", "a\0b"] {
            assert_eq!(
                writer.file(name, 0o644, b""),
                Err(NewcError::InvalidName(name.to_owned())),
                "{name:?}"
            );
        }
        assert_eq!(
            writer.file("f", 0o100_644, b""),
            Err(NewcError::InvalidMode(0o100_644))
        );
    }

    #[test]
    fn concatenated_archives_start_on_four_byte_boundaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"12345").expect("written");
        std::fs::write(&b, b"6789").expect("written");
        let bytes = concatenate([a.as_path(), b.as_path()]).expect("read");
        assert_eq!(bytes, b"12345\x00\x00\x006789");
        let missing = dir.path().join("missing");
        let (path, _) = concatenate([missing.as_path()]).expect_err("no such file");
        assert_eq!(path, missing);
    }
}
