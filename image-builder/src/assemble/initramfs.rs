//! Writing the image root as a compressed cpio (newc) archive the kernel unpacks.
//!
//! Reproducible by construction: entries sorted by path, parents before children, inode
//! numbers assigned in that order, owner root, one timestamp (SOURCE_DATE_EPOCH), modes
//! reduced to 0755/0644, and zstd at a fixed level on one thread.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::progress::ByteProgress;

/// zstd: the Debian kernel decompresses it fastest of the formats it supports, which is
/// boot time on every start; level 15 is a measured sweet spot of size against build time.
pub const DEFAULT_ZSTD_LEVEL: i32 = 15;

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error("cannot read {path} for the initramfs")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the initramfs {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is {size} bytes; cpio newc cannot hold files of 4 GiB or more")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path} is neither a file, a directory nor a symlink; the image root holds only those")]
    UnsupportedType { path: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    File {
        executable: bool,
        size: u64,
    },
    Symlink {
        target: String,
    },
    /// Character device; only /dev/console, which the kernel opens before /init runs.
    CharDevice {
        major: u32,
        minor: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the image root, `/`-separated, no leading slash.
    pub path: String,
    pub kind: EntryKind,
}

/// Lists `root` in archive order (sorted; a directory sorts before its contents).
pub fn list_entries(root: &Path) -> Result<Vec<Entry>, InitramfsError> {
    let mut entries = Vec::new();
    for item in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let item = item.map_err(|error| InitramfsError::Read {
            path: error
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| root.to_path_buf()),
            source: error.into(),
        })?;
        let path = item.path();
        let relative = path
            .strip_prefix(root)
            .expect("walkdir yields paths under its root")
            .to_string_lossy()
            .into_owned();
        let read_error = |source| InitramfsError::Read {
            path: path.to_path_buf(),
            source,
        };
        let metadata = fs::symlink_metadata(path).map_err(read_error)?;
        let kind = if metadata.file_type().is_symlink() {
            let target = fs::read_link(path).map_err(read_error)?;
            EntryKind::Symlink {
                target: target.to_string_lossy().into_owned(),
            }
        } else if metadata.is_dir() {
            EntryKind::Directory
        } else if metadata.is_file() {
            EntryKind::File {
                executable: metadata.permissions().mode() & 0o111 != 0,
                size: metadata.len(),
            }
        } else {
            return Err(InitramfsError::UnsupportedType {
                path: path.to_path_buf(),
            });
        };
        entries.push(Entry {
            path: relative,
            kind,
        });
    }
    // walkdir sorts siblings; a full-path sort keeps a parent before its children too.
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

/// The extra entries no unprivileged build can create on disk.
pub fn device_entries() -> Vec<Entry> {
    vec![Entry {
        path: "dev/console".to_string(),
        kind: EntryKind::CharDevice { major: 5, minor: 1 },
    }]
}

/// Writes the archive (uncompressed) for `entries`, reading file contents from `root`.
pub fn write_cpio<W: Write>(
    root: &Path,
    entries: &[Entry],
    mtime: u32,
    mut out: W,
    progress: &ByteProgress,
) -> Result<W, InitramfsError> {
    let write_error = |source| InitramfsError::Write {
        path: PathBuf::from("<initramfs>"),
        source,
    };
    for (index, entry) in entries.iter().enumerate() {
        let ino = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let builder = cpio::newc::Builder::new(&entry.path)
            .ino(ino)
            .uid(0)
            .gid(0)
            .mtime(mtime);
        match &entry.kind {
            EntryKind::Directory => {
                let writer = builder.mode(0o040755).nlink(2).write(&mut out, 0);
                writer.finish().map_err(write_error)?;
            }
            EntryKind::Symlink { target } => {
                let bytes = target.as_bytes();
                let mut writer = builder.mode(0o120777).write(&mut out, bytes.len() as u32);
                writer.write_all(bytes).map_err(write_error)?;
                writer.finish().map_err(write_error)?;
            }
            EntryKind::CharDevice { major, minor } => {
                let writer = builder
                    .mode(0o020600)
                    .rdev_major(*major)
                    .rdev_minor(*minor)
                    .write(&mut out, 0);
                writer.finish().map_err(write_error)?;
            }
            EntryKind::File { executable, size } => {
                let source = root.join(&entry.path);
                let size32 = u32::try_from(*size).map_err(|_| InitramfsError::TooLarge {
                    path: source.clone(),
                    size: *size,
                })?;
                let mode = if *executable { 0o100755 } else { 0o100644 };
                let mut writer = builder.mode(mode).write(&mut out, size32);
                let mut file =
                    fs::File::open(&source).map_err(|source_error| InitramfsError::Read {
                        path: source.clone(),
                        source: source_error,
                    })?;
                let mut buffer = vec![0u8; 256 * 1024];
                loop {
                    let read = file
                        .read(&mut buffer)
                        .map_err(|error| InitramfsError::Read {
                            path: source.clone(),
                            source: error,
                        })?;
                    if read == 0 {
                        break;
                    }
                    writer.write_all(&buffer[..read]).map_err(write_error)?;
                    progress.advance(read as u64);
                }
                writer.finish().map_err(write_error)?;
            }
        }
    }
    cpio::newc::trailer(&mut out).map_err(write_error)?;
    Ok(out)
}

/// Total bytes of file content, for the progress bar.
pub fn content_size(entries: &[Entry]) -> u64 {
    entries
        .iter()
        .map(|entry| match entry.kind {
            EntryKind::File { size, .. } => size,
            _ => 0,
        })
        .sum()
}

/// Writes `root` as a zstd-compressed newc archive at `output`; returns (uncompressed,
/// compressed) sizes.
pub fn write_initramfs(
    root: &Path,
    output: &Path,
    mtime: u32,
    level: i32,
) -> Result<(u64, u64), InitramfsError> {
    let mut entries = list_entries(root)?;
    entries.extend(device_entries());
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let write_error = |source| InitramfsError::Write {
        path: output.to_path_buf(),
        source,
    };
    let file = fs::File::create(output).map_err(write_error)?;
    let counting = CountingWriter::new(io::BufWriter::new(file));
    let mut encoder = zstd::Encoder::new(counting, level).map_err(write_error)?;
    encoder.include_checksum(true).map_err(write_error)?;
    let progress = ByteProgress::new("compressing initramfs", content_size(&entries));
    let uncompressed = CountingWriter::new(encoder);
    let uncompressed = write_cpio(root, &entries, mtime, uncompressed, &progress)?;
    progress.finish();
    let uncompressed_size = uncompressed.count;
    let counting = uncompressed.inner.finish().map_err(write_error)?;
    let compressed_size = counting.count;
    let mut buffered = counting.inner;
    buffered.flush().map_err(write_error)?;
    Ok((uncompressed_size, compressed_size))
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W> CountingWriter<W> {
    fn new(inner: W) -> Self {
        CountingWriter { inner, count: 0 }
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.count += written as u64;
        Ok(written)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
        fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\n").expect("write");
        fs::set_permissions(root.join("usr/bin/tool"), fs::Permissions::from_mode(0o700))
            .expect("chmod");
        fs::write(root.join("usr/data"), b"data").expect("write");
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).expect("symlink");
        dir
    }

    #[test]
    fn entries_are_sorted_with_parents_first_and_modes_reduced() {
        let root = sample_root();
        let entries = list_entries(root.path()).expect("lists");
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["bin", "usr", "usr/bin", "usr/bin/tool", "usr/data"]);
        assert_eq!(
            entries[3].kind,
            EntryKind::File {
                executable: true,
                size: 10
            }
        );
        assert_eq!(
            entries[0].kind,
            EntryKind::Symlink {
                target: "usr/bin".to_string()
            }
        );
    }

    #[test]
    fn archive_reads_back_with_fixed_owner_time_and_device_node() {
        let root = sample_root();
        let mut entries = list_entries(root.path()).expect("lists");
        entries.extend(device_entries());
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let bytes = write_cpio(
            root.path(),
            &entries,
            1_700_000_000,
            Vec::new(),
            &ByteProgress::hidden(),
        )
        .expect("writes");
        let mut cursor = std::io::Cursor::new(bytes);
        let mut seen = Vec::new();
        loop {
            let reader = cpio::newc::Reader::new(&mut cursor).expect("reads");
            if reader.entry().is_trailer() {
                break;
            }
            let entry = reader.entry();
            assert_eq!(
                (entry.uid(), entry.gid(), entry.mtime()),
                (0, 0, 1_700_000_000)
            );
            seen.push((entry.name().to_string(), entry.mode()));
            reader.finish().expect("skips");
        }
        assert!(seen.contains(&("usr/bin/tool".to_string(), 0o100755)));
        assert!(seen.contains(&("usr/data".to_string(), 0o100644)));
        assert!(seen.contains(&("dev/console".to_string(), 0o020600)));
    }

    #[test]
    fn same_tree_gives_same_compressed_bytes() {
        let root = sample_root();
        let out = tempfile::tempdir().expect("tempdir");
        let first = out.path().join("a.img");
        let second = out.path().join("b.img");
        write_initramfs(root.path(), &first, 1, 3).expect("first");
        // Touch a file's timestamp: archive times come from SOURCE_DATE_EPOCH, not disk.
        let tool = root.path().join("usr/data");
        fs::write(&tool, b"data").expect("rewrite");
        write_initramfs(root.path(), &second, 1, 3).expect("second");
        assert_eq!(
            fs::read(first).expect("read"),
            fs::read(second).expect("read")
        );
    }
}
