//! A recording double of the storage tools for the core's tests: it holds the drives the
//! double box observes and logs every storage effect asked of it, one line each, so a
//! test asserts the exact commands a job ran.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output};
use std::sync::{Mutex, PoisonError};

use crate::storage::signature::Contents;
use crate::storage::subvolumes::{SubvolumeEntry, SubvolumeError};
use crate::storage::tool::tool_output;
use crate::storage::{StorageError, StorageObserved, StorageTools};

/// What the double's box holds and every storage effect asked of it, one line each:
/// `btrfs <args>`, `zero <device>`, `bcache backing <device>`, `bcache release <drive> of
/// <volume>`, `subvolume create|delete <path>`, `subvolume snapshot <from> <to> <kind>`.
#[derive(Debug, Default)]
pub(crate) struct FakeTools {
    inner: Mutex<ToolsInner>,
}

#[derive(Debug, Default)]
pub(crate) struct ToolsInner {
    pub(crate) observed: StorageObserved,
    pub(crate) ran: Vec<String>,
    /// A command's exit code, stdout and stderr; a command with none succeeds silently.
    pub(crate) answers: BTreeMap<String, (i32, String, String)>,
    /// What a command does to a drive (kernel name → its contents afterwards), as `btrfs
    /// device add` makes a blank drive a member.
    pub(crate) effects: BTreeMap<String, (String, Contents)>,
    pub(crate) subvolumes: BTreeSet<PathBuf>,
    pub(crate) space: BTreeMap<String, (u64, u64)>,
}

impl FakeTools {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ToolsInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn observed(&self) -> StorageObserved {
        self.lock().observed.clone()
    }

    pub(crate) fn ran(&self) -> Vec<String> {
        self.lock().ran.clone()
    }

    pub(crate) fn answer(&self, command: &str, code: i32, stdout: &str, stderr: &str) {
        self.lock()
            .answers
            .insert(command.into(), (code, stdout.into(), stderr.into()));
    }

    pub(crate) fn effect(&self, command: &str, drive: &str, contents: Contents) {
        self.lock()
            .effects
            .insert(command.into(), (drive.into(), contents));
    }

    /// Records `command`, changes the drives as scripted, and answers.
    fn run(&self, command: String) -> Output {
        let mut inner = self.lock();
        if let Some((drive, contents)) = inner.effects.get(&command).cloned()
            && let Some(found) = inner
                .observed
                .drives
                .iter_mut()
                .find(|d| d.sys.kernel_name == drive)
        {
            found.contents = contents;
        }
        let (code, stdout, stderr) = inner.answers.get(&command).cloned().unwrap_or_default();
        inner.ran.push(command);
        Output {
            // A wait status holds the exit code in its second byte.
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
        }
    }

    fn record(&self, line: String) {
        self.lock().ran.push(line);
    }
}

impl StorageTools for FakeTools {
    fn btrfs_output(&self, args: &[&str]) -> Result<Output, StorageError> {
        Ok(self.run(format!("btrfs {}", args.join(" "))))
    }

    /// Asks for progress once while the command "runs".
    fn btrfs_watched(&self, args: &[&str], poll: &mut dyn FnMut()) -> Result<String, StorageError> {
        let output = self.run(format!("btrfs {}", args.join(" ")));
        poll();
        tool_output("btrfs", &output)
    }

    fn make_bcache_member(
        &self,
        device: &str,
        _cache: Option<&(String, String)>,
        progress: &dyn Fn(u32, &str),
    ) -> Result<String, StorageError> {
        progress(0, "making the new drive a bcache backing device");
        self.record(format!("bcache backing {device}"));
        Ok("/dev/bcache9".into())
    }

    fn release_bcache_member(
        &self,
        volume: &str,
        drive: &str,
        _report: &dyn Fn(&str),
    ) -> Result<(), StorageError> {
        self.record(format!("bcache release {drive} of {volume}"));
        Ok(())
    }

    fn zero_head(&self, device: &Path) -> Result<(), StorageError> {
        self.record(format!("zero {}", device.display()));
        Ok(())
    }

    fn is_subvolume(&self, path: &Path) -> bool {
        self.lock().subvolumes.contains(path)
    }

    fn occupied(&self, path: &Path) -> bool {
        self.is_subvolume(path)
    }

    fn exists(&self, path: &Path) -> bool {
        self.is_subvolume(path)
    }

    fn create_subvolume(&self, path: &Path) -> Result<(), SubvolumeError> {
        self.record(format!("subvolume create {}", path.display()));
        self.lock().subvolumes.insert(path.to_path_buf());
        Ok(())
    }

    fn snapshot_subvolume(
        &self,
        from: &Path,
        to: &Path,
        writable: bool,
    ) -> Result<(), SubvolumeError> {
        let kind = if writable { "writable" } else { "read-only" };
        self.record(format!(
            "subvolume snapshot {} {} {kind}",
            from.display(),
            to.display()
        ));
        self.lock().subvolumes.insert(to.to_path_buf());
        Ok(())
    }

    fn delete_subvolume(&self, path: &Path) -> Result<(), SubvolumeError> {
        self.record(format!("subvolume delete {}", path.display()));
        self.lock().subvolumes.remove(path);
        Ok(())
    }

    fn list_subvolumes(&self, mount_point: &Path) -> Result<Vec<SubvolumeEntry>, SubvolumeError> {
        Ok(self
            .lock()
            .subvolumes
            .iter()
            .filter_map(|path| path.strip_prefix(mount_point).ok())
            .zip(256..)
            .map(|(name, id)| SubvolumeEntry {
                name: name.display().to_string(),
                id,
                read_only: false,
                origin: None,
                created: 0,
                bytes: 0,
            })
            .collect())
    }

    fn space(&self, path: &str) -> Option<(u64, u64)> {
        self.lock().space.get(path).copied()
    }
}
