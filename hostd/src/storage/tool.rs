//! Running one program of btrfs-progs, bcache-tools or mdadm, and what a failure of any
//! storage step is ([`StorageError`]). The executor and the live tools
//! (`execute/tools.rs`) run programs through here; nothing pure imports it but the error.

use std::process::Command;

use super::bcache::BcacheError;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("Cannot run {program}")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Tool {
        program: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("Cannot create the mount point {path}")]
    MountPoint {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot mount volume {name} at {path} (options {options})")]
    Mount {
        name: String,
        path: String,
        options: String,
        #[source]
        source: nix::Error,
    },
    #[error("Cannot unmount {path}")]
    Unmount {
        path: String,
        #[source]
        source: nix::Error,
    },
    #[error("Cannot blank the first MiB of {device}")]
    Wipe {
        device: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bcache refused")]
    Bcache(#[source] BcacheError),
    #[error("The cache of volume {volume} names no SSD")]
    NoCacheDrive { volume: String },
    #[error("Cannot read bcache's state in sysfs")]
    Observe {
        #[source]
        source: std::io::Error,
    },
    #[error(
        "Drive {drive} of volume {volume} is a bcache backing device that does not run (its read-write cache, holding data the drive lacks, is missing: put its SSDs back)"
    )]
    NotRunning { volume: String, drive: String },
}

/// Runs a btrfs-progs tool and turns a failure into its stderr.
pub fn run_tool(program: &'static str, args: &[&str]) -> Result<String, StorageError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| StorageError::Spawn { program, source })?;
    tool_output(program, &output)
}

/// A finished tool's standard output, or its failure with what it said on stderr.
pub fn tool_output(
    program: &'static str,
    output: &std::process::Output,
) -> Result<String, StorageError> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(StorageError::Tool {
            program,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Runs a tool with `input` on its standard input (for a question it asks).
pub fn run_tool_with_input(
    program: &'static str,
    args: &[&str],
    input: &str,
) -> Result<String, StorageError> {
    use std::io::Write;
    let spawn = |source| StorageError::Spawn { program, source };
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A tool that asks nothing closes its end: that is not an error.
        let _ = stdin.write_all(input.as_bytes());
    }
    let output = child.wait_with_output().map_err(spawn)?;
    tool_output(program, &output)
}
