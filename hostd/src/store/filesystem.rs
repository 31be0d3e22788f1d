//! The store's one seam to the disk.
//!
//! Every step whose ordering matters for crash safety — write, fsync of a file, rename, fsync
//! of a directory — is its own call, so a test filesystem can stop the store between any two
//! of them and then decide what a power cut would have kept ([`super::MemoryFs`]). The real
//! implementation, [`OsFilesystem`], is a thin layer over `std::fs`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// What the store does to the disk. Paths are absolute or relative to the process, as given.
pub trait Filesystem {
    /// A file's contents, or `None` when it does not exist.
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>>;
    /// The names of the entries of a directory, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a directory and its parents, durably.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates or truncates a file and writes `bytes` into it, without syncing.
    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Makes a file's contents durable (`fsync`).
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    /// Replaces `to` with `from` atomically (`rename(2)`), both in the same directory.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes a directory's entries durable: creations, renames and removals in it.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
}

/// The real disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFilesystem;

impl Filesystem for OsFilesystem {
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        match fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            // Names that are not UTF-8 are none of the store's files; skip them.
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let existed = dir
            .ancestors()
            .find(|a| a.as_os_str().is_empty() || a.is_dir());
        fs::create_dir_all(dir)?;
        // Each new directory's entry in its parent must survive a power cut too: sync every
        // directory from `dir` up to the first one that already existed.
        for ancestor in dir.ancestors() {
            let path = if ancestor.as_os_str().is_empty() {
                Path::new(".")
            } else {
                ancestor
            };
            self.sync_dir(path)?;
            if Some(ancestor) == existed {
                break;
            }
        }
        Ok(())
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.write_all(bytes)
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        // fsync through any descriptor flushes the inode's data, so reopening is enough.
        OpenOptions::new().write(true).open(path)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
}
