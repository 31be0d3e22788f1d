//! Where the admin password's hash lives and how it is read and replaced.
//!
//! On the config partition when it is mounted (`/config/console/admin.passwd`, mode 0600 in
//! a 0700 directory), so it survives reboots and updates; otherwise under the `/run` tmpfs,
//! where it lasts until the next boot (the console says so when it is set). The file holds
//! one line: the `$6$` hash. No file means the password was never set (first boot) or was
//! reset by removing it.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::atomic_file::{self, AtomicWriteError};
use crate::password::{HashError, PasswordHash};

/// Where init mounts the config partition.
const CONFIG_MOUNT: &str = "/config";
pub const PERSISTENT_DIR: &str = "/config/console";
pub const VOLATILE_DIR: &str = "/run/cairn/console";
pub const FILE_NAME: &str = "admin.passwd";
pub const PERSISTENT_AUTH_LOG: &str = "/config/logs/auth.log";
pub const VOLATILE_AUTH_LOG: &str = "/run/cairn/logs/auth.log";
/// Only root reads the hash: a hash can be attacked offline.
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// Where this boot keeps the console's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    pub password: PathBuf,
    pub auth_log: PathBuf,
    /// Whether they are on the config partition (and so survive a reboot).
    pub persistent: bool,
}

impl Locations {
    /// From the text of `/proc/mounts`: the config partition when `/config` is mounted.
    pub fn from_mounts(mounts: &str) -> Self {
        let persistent = config_is_mounted(mounts);
        if persistent {
            Self {
                password: Path::new(PERSISTENT_DIR).join(FILE_NAME),
                auth_log: PathBuf::from(PERSISTENT_AUTH_LOG),
                persistent,
            }
        } else {
            Self {
                password: Path::new(VOLATILE_DIR).join(FILE_NAME),
                auth_log: PathBuf::from(VOLATILE_AUTH_LOG),
                persistent,
            }
        }
    }
}

/// Whether `/proc/mounts` text lists a filesystem mounted exactly at `/config`, where init
/// mounts the config partition (hostd's `mounts::is_mounted` asks the same of the same file).
fn config_is_mounted(mounts: &str) -> bool {
    mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .any(|mount_point| Path::new(mount_point) == Path::new(CONFIG_MOUNT))
}

/// What the password file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// No file: no password was ever set, or it was reset.
    Missing,
    Hash(PasswordHash),
}

#[derive(Debug, Error)]
pub enum PasswordFileError {
    #[error("Cannot read the admin password file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("The admin password file {} does not hold a usable hash", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: HashError,
    },
    #[error("Cannot store the admin password")]
    Write(#[source] AtomicWriteError),
}

/// Reads the stored hash.
pub fn load(path: &Path) -> Result<Stored, PasswordFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Stored::Missing),
        Err(source) => {
            return Err(PasswordFileError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    PasswordHash::parse(&text)
        .map(Stored::Hash)
        .map_err(|source| PasswordFileError::Corrupt {
            path: path.to_owned(),
            source,
        })
}

/// Replaces the stored hash atomically.
pub fn store(path: &Path, hash: &PasswordHash) -> Result<(), PasswordFileError> {
    let line = format!("{}\n", hash.as_str());
    atomic_file::write(path, line.as_bytes(), FILE_MODE, DIR_MODE).map_err(PasswordFileError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_partition_when_mounted() {
        let mounts = "proc /proc proc rw 0 0\n/dev/vda2 /config ext4 rw,relatime 0 0\n";
        let here = Locations::from_mounts(mounts);
        assert!(here.persistent);
        assert_eq!(here.password, Path::new("/config/console/admin.passwd"));
        assert_eq!(here.auth_log, Path::new("/config/logs/auth.log"));
        for mounts in [
            "proc /proc proc rw 0 0\n",
            "/dev/vda2 /config/x ext4 rw 0 0\n",
            "",
        ] {
            let here = Locations::from_mounts(mounts);
            assert!(!here.persistent, "{mounts:?}");
            assert_eq!(here.password, Path::new("/run/cairn/console/admin.passwd"));
        }
    }

    #[test]
    fn missing_stored_and_loaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("console/admin.passwd");
        assert_eq!(load(&path).expect("load"), Stored::Missing);
        let hash = PasswordHash::with_salt("longenough", b"salt-bytes-12").expect("hash");
        store(&path, &hash).expect("store");
        assert_eq!(load(&path).expect("load"), Stored::Hash(hash));
    }

    #[test]
    fn corrupt_file_is_an_error_that_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin.passwd");
        std::fs::write(&path, "hunter2\n").expect("write");
        let error = load(&path).expect_err("corrupt");
        assert!(
            matches!(
                &error,
                PasswordFileError::Corrupt {
                    source: HashError::NotSha512,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn unreadable_file_is_a_read_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory where the file should be: reading fails with something other than
        // "not found", which must not count as "no password set".
        let path = dir.path().join("admin.passwd");
        std::fs::create_dir(&path).expect("mkdir");
        assert!(matches!(load(&path), Err(PasswordFileError::Read { .. })));
    }
}
