//! The record of who tried to get in: every failed and successful login and root-shell
//! request, refusals after too many wrong passwords, and password changes.
//!
//! Each event goes two ways: a line appended to the auth log on the config partition
//! (`/config/logs/auth.log`, so it survives reboots; 0600 like the hash), and a line in the
//! kernel log through `/dev/kmsg` (facility auth), so `dmesg` shows it and a console that
//! cannot write its file still leaves a trace. Neither failing stops a login: the console
//! prints what could not be written and goes on.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::attempts::MAX_TRIES;
use crate::utc;

pub const KMSG: &str = "/dev/kmsg";
/// syslog facility `auth` (4), shifted as the `<PRI>` prefix of /dev/kmsg wants it.
const FACILITY_AUTH: u8 = 4 << 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthEvent {
    LoginGranted,
    LoginFailed { failures: u32 },
    LoginRefused,
    ShellGranted,
    ShellRefused,
    PasswordSet { persistent: bool },
    PasswordReset,
    PasswordFileUnusable { why: String },
}

/// syslog severities used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    Warning = 4,
    Notice = 5,
}

impl AuthEvent {
    /// The text after `cairn-console: ` in both logs.
    pub fn message(&self, tty: &str) -> String {
        match self {
            Self::LoginGranted => format!("login as admin on {tty}"),
            Self::LoginFailed { failures } => {
                format!("wrong password on {tty} ({failures} of {MAX_TRIES})")
            }
            Self::LoginRefused => {
                format!("login refused on {tty} after {MAX_TRIES} wrong passwords")
            }
            Self::ShellGranted => format!("root shell opened on {tty}"),
            Self::ShellRefused => format!("root shell refused on {tty}: wrong password"),
            Self::PasswordSet { persistent: true } => format!("admin password set on {tty}"),
            Self::PasswordSet { persistent: false } => {
                format!("admin password set on {tty}, for this boot only (no config partition)")
            }
            Self::PasswordReset => {
                "admin password reset by cairn.console=reset-password".to_owned()
            }
            Self::PasswordFileUnusable { why } => format!("no login possible: {why}"),
        }
    }

    fn severity(&self) -> Severity {
        match self {
            Self::LoginFailed { .. }
            | Self::LoginRefused
            | Self::ShellRefused
            | Self::PasswordReset
            | Self::PasswordFileUnusable { .. } => Severity::Warning,
            Self::LoginGranted | Self::ShellGranted | Self::PasswordSet { .. } => Severity::Notice,
        }
    }
}

/// `2026-11-25T01:44:50Z cairn-console: <message>` for the file.
pub fn file_line(time: SystemTime, message: &str) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    format!("{} cairn-console: {message}\n", utc::rfc3339(seconds))
}

/// `<36>cairn-console: <message>` for /dev/kmsg (the kernel adds its own time).
fn kmsg_line(event: &AuthEvent, message: &str) -> String {
    format!(
        "<{}>cairn-console: {message}\n",
        FACILITY_AUTH + event.severity() as u8
    )
}

#[derive(Debug, Error)]
pub enum AuthLogError {
    #[error("Cannot append to the auth log {}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot write to the kernel log {KMSG}")]
    Kmsg(#[source] io::Error),
}

/// Where events are written.
#[derive(Debug, Clone)]
pub struct AuthLog {
    pub file: PathBuf,
    pub kmsg: PathBuf,
    /// The terminal's name, for the messages (`ttyS0`).
    pub tty: String,
}

impl AuthLog {
    /// Writes `event` to both logs; returns what could not be written.
    pub fn record(&self, event: &AuthEvent) -> Vec<AuthLogError> {
        let message = event.message(&self.tty);
        let mut errors = Vec::new();
        if let Err(source) = append(&self.file, &file_line(SystemTime::now(), &message)) {
            errors.push(AuthLogError::File {
                path: self.file.clone(),
                source,
            });
        }
        let kmsg = OpenOptions::new()
            .write(true)
            .open(&self.kmsg)
            .and_then(|mut kmsg| kmsg.write_all(kmsg_line(event, &message).as_bytes()));
        if let Err(source) = kmsg {
            errors.push(AuthLogError::Kmsg(source));
        }
        errors
    }
}

fn append(path: &Path, line: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(line.as_bytes())?;
    // A refusal just before someone pulls the plug must still be on disk.
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn lines_for_the_file_and_the_kernel() {
        let time = UNIX_EPOCH + Duration::from_secs(1_795_571_090);
        let refused = AuthEvent::LoginRefused;
        let message = refused.message("ttyS0");
        assert_eq!(
            file_line(time, &message),
            "2026-11-25T01:44:50Z cairn-console: login refused on ttyS0 after 3 wrong passwords\n"
        );
        assert_eq!(
            kmsg_line(&refused, &message),
            "<36>cairn-console: login refused on ttyS0 after 3 wrong passwords\n"
        );
        let granted = AuthEvent::LoginGranted;
        assert_eq!(
            kmsg_line(&granted, &granted.message("ttyS0")),
            "<37>cairn-console: login as admin on ttyS0\n"
        );
    }

    #[test]
    fn record_appends_to_the_file_and_reports_a_missing_kmsg() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuthLog {
            file: dir.path().join("logs/auth.log"),
            kmsg: dir.path().join("no-such-dir/kmsg"),
            tty: "ttyS0".into(),
        };
        let errors = log.record(&AuthEvent::LoginFailed { failures: 1 });
        assert!(
            matches!(errors.as_slice(), [AuthLogError::Kmsg(_)]),
            "{errors:?}"
        );
        log.record(&AuthEvent::LoginGranted);
        let text = std::fs::read_to_string(&log.file).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with("cairn-console: wrong password on ttyS0 (1 of 3)"));
        assert!(lines[1].ends_with("cairn-console: login as admin on ttyS0"));
    }
}
