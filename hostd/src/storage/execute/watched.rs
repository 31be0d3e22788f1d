//! Long btrfs-progs commands (replace, balance, device remove) that run for minutes and say
//! nothing until they end: started in the background while a second, cheap command asks
//! the kernel how far they got (`StorageTools::btrfs_status`).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::storage::tool::StorageError;

/// How often a running operation is asked for its progress: it moves a few percent a
/// second on small drives, and each question is a cheap ioctl.
pub const POLL: Duration = Duration::from_millis(500);

/// Runs `btrfs args…` to its end, calling `poll` every [`POLL`] meanwhile; returns what it
/// printed, and its failure carries what it said on stderr.
pub fn run_btrfs_watched(args: &[&str], mut poll: impl FnMut()) -> Result<String, StorageError> {
    let spawn = |source| StorageError::Spawn {
        program: "btrfs",
        source,
    };
    let mut child = Command::new("btrfs")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(spawn)? {
            break status;
        }
        poll();
        std::thread::sleep(POLL);
    };
    if status.success() {
        let mut stdout = String::new();
        if let Some(mut pipe) = child.stdout.take() {
            pipe.read_to_string(&mut stdout).map_err(spawn)?;
        }
        return Ok(stdout);
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        // What it said is a courtesy: an unreadable pipe still leaves the status.
        let _ = pipe.read_to_string(&mut stderr);
    }
    Err(StorageError::Tool {
        program: "btrfs",
        status,
        stderr: stderr.trim().to_string(),
    })
}
