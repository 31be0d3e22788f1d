//! Scrub results kept per volume, and the schedule that reads them.
//!
//! Each finished scrub, on demand or scheduled, leaves one small JSON file per volume
//! (`/config/storage/scrub/<volume>.json`; under `/run` without a config partition): its
//! counters and when it finished. The file is what `cairnctl storage volume` shows as the
//! last scrub, and what the schedule counts from, so a reboot neither forgets a result nor
//! restarts the count. The file is written whole (temp file, fsync, rename): a power cut
//! leaves the previous record or the new one.
//!
//! The schedule is a volume's `scrub_every_days`: a scrub is due when that long has passed
//! since the last one finished, or at once when the volume has never been scrubbed (a
//! volume whose copies were never compared is the one to check first).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::maintenance::ScrubResult;

const SECONDS_PER_DAY: u64 = 24 * 60 * 60;

/// What started a scrub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    OnDemand,
    Schedule,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrubRecord {
    /// Seconds since the Unix epoch.
    pub finished_unix: u64,
    pub trigger: Trigger,
    pub result: ScrubResult,
}

impl ScrubRecord {
    /// `2026-12-04T19:40:02Z (schedule): 1.2 GiB in 14 s, clean` or the error counts.
    pub fn summary(&self) -> String {
        let result = &self.result;
        let health = if result.uncorrectable_errors > 0 {
            format!(
                "{} UNCORRECTABLE errors, {} corrected",
                result.uncorrectable_errors, result.corrected_errors
            )
        } else if result.corrected_errors > 0 {
            format!(
                "{} errors corrected from good copies",
                result.corrected_errors
            )
        } else {
            "clean".to_string()
        };
        let trigger = match self.trigger {
            Trigger::OnDemand => "on demand",
            Trigger::Schedule => "scheduled",
        };
        format!(
            "{} ({trigger}): {} MiB in {:.0} s, {health}",
            crate::utc::rfc3339(self.finished_unix),
            result.bytes_scrubbed / (1024 * 1024),
            result.seconds
        )
    }
}

/// Pure: whether a volume scrubbed every `every_days` days, last scrubbed at
/// `last_finished_unix` (never: `None`), is due at `now_unix`.
pub fn due(every_days: u16, last_finished_unix: Option<u64>, now_unix: u64) -> bool {
    match last_finished_unix {
        None => true,
        Some(last) => {
            now_unix >= last.saturating_add(u64::from(every_days).saturating_mul(SECONDS_PER_DAY))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("Cannot write the scrub record {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The directory of records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubRecords {
    dir: PathBuf,
}

impl ScrubRecords {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, volume: &str) -> PathBuf {
        self.dir.join(format!("{volume}.json"))
    }

    /// The volume's last record. A missing or unreadable file is "never scrubbed": the
    /// worst it causes is one scrub more.
    pub fn last(&self, volume: &str) -> Option<ScrubRecord> {
        let text = std::fs::read_to_string(self.path(volume)).ok()?;
        match serde_json::from_str(&text) {
            Ok(record) => Some(record),
            Err(error) => {
                tracing::warn!(
                    "ignoring the damaged scrub record {}: {error}",
                    self.path(volume).display()
                );
                None
            }
        }
    }

    pub fn keep(&self, record: &ScrubRecord) -> Result<(), RecordError> {
        let path = self.path(&record.result.volume);
        let write = |path: &Path| -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let temporary = path.with_extension("json.tmp");
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(
                serde_json::to_string_pretty(record)
                    .expect("a record is strings and numbers")
                    .as_bytes(),
            )?;
            file.sync_all()?;
            std::fs::rename(&temporary, path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write(&path).map_err(|source| RecordError::Write { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = SECONDS_PER_DAY;

    fn result(volume: &str, corrected: u64, uncorrectable: u64) -> ScrubResult {
        ScrubResult {
            volume: volume.to_string(),
            bytes_scrubbed: 3 * 1024 * 1024,
            read_errors: 0,
            csum_errors: corrected + uncorrectable,
            verify_errors: 0,
            corrected_errors: corrected,
            uncorrectable_errors: uncorrectable,
            seconds: 2.4,
        }
    }

    #[test]
    fn due_when_never_scrubbed_or_the_interval_has_passed() {
        let last = 1_000 * DAY;
        assert!(due(30, None, last));
        assert!(!due(30, Some(last), last));
        assert!(!due(30, Some(last), last + 30 * DAY - 1));
        assert!(due(30, Some(last), last + 30 * DAY));
        assert!(due(1, Some(last), last + DAY));
        // A clock set back does not make a scrub due, nor wrap around.
        assert!(!due(30, Some(last), last - DAY));
        assert!(!due(u16::MAX, Some(u64::MAX - 5), u64::MAX - 1));
    }

    #[test]
    fn records_are_kept_per_volume_and_read_back() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let records = ScrubRecords::new(dir.path().join("scrub"));
        assert_eq!(records.last("tank"), None);
        let record = ScrubRecord {
            finished_unix: 1_796_000_000,
            trigger: Trigger::Schedule,
            result: result("tank", 0, 0),
        };
        records.keep(&record).expect("kept");
        assert_eq!(records.last("tank"), Some(record.clone()));
        assert_eq!(records.last("other"), None);
        let newer = ScrubRecord {
            finished_unix: record.finished_unix + 10,
            trigger: Trigger::OnDemand,
            result: result("tank", 2, 0),
        };
        records.keep(&newer).expect("kept");
        assert_eq!(records.last("tank"), Some(newer));
        std::fs::write(dir.path().join("scrub/tank.json"), "{ not json").expect("written");
        assert_eq!(
            records.last("tank"),
            None,
            "a damaged record is never scrubbed"
        );
    }

    #[test]
    fn summaries_say_what_was_found() {
        let at = |corrected, uncorrectable| ScrubRecord {
            finished_unix: 0,
            trigger: Trigger::Schedule,
            result: result("tank", corrected, uncorrectable),
        };
        assert_eq!(
            at(0, 0).summary(),
            "1970-01-01T00:00:00Z (scheduled): 3 MiB in 2 s, clean"
        );
        assert!(
            at(2, 0)
                .summary()
                .ends_with("2 errors corrected from good copies")
        );
        assert!(
            at(1, 3)
                .summary()
                .ends_with("3 UNCORRECTABLE errors, 1 corrected")
        );
    }
}
