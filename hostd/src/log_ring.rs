//! The newest log records, kept in memory for the API.
//!
//! An admin asking "what did hostd just do?" over `cairnctl` should not need a file system:
//! the config partition may be missing (a boot without persistence) and the console has no
//! pager. So hostd keeps its last records in a bounded ring, fed by a `tracing` layer beside
//! the one that writes the log file. The ring never grows past its capacity: the oldest record
//! falls out and a counter says how many did. Every record gets a sequence number, so a client
//! following the log asks for "everything after n" and notices a gap.

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// Records kept by default: at a few hundred bytes each, well under a MiB, and more than a
/// console screen of history for every subsystem's last reconcile.
pub const DEFAULT_CAPACITY: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// 0 for the first record, one more for each record after it.
    pub sequence: u64,
    pub time: SystemTime,
    pub level: Level,
    /// The module that logged it (`hostd::store`).
    pub target: String,
    /// The message, then the event's other fields as ` key=value`.
    pub message: String,
}

/// A handle to one ring; clones share it.
#[derive(Debug, Clone)]
pub struct LogRing {
    inner: Arc<Mutex<Ring>>,
}

#[derive(Debug)]
struct Ring {
    records: VecDeque<LogRecord>,
    capacity: usize,
    next_sequence: u64,
}

impl LogRing {
    /// A ring keeping the newest `capacity` records (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Arc::new(Mutex::new(Ring {
                records: VecDeque::with_capacity(capacity),
                capacity,
                next_sequence: 0,
            })),
        }
    }

    /// The `tracing` layer that feeds this ring.
    pub fn layer(&self) -> LogRingLayer {
        LogRingLayer { ring: self.clone() }
    }

    /// Adds a record, dropping the oldest when full; returns its sequence number.
    pub fn push(
        &self,
        time: SystemTime,
        level: Level,
        target: impl Into<String>,
        message: impl Into<String>,
    ) -> u64 {
        let mut ring = self.lock();
        let sequence = ring.next_sequence;
        ring.next_sequence += 1;
        if ring.records.len() == ring.capacity {
            ring.records.pop_front();
        }
        ring.records.push_back(LogRecord {
            sequence,
            time,
            level,
            target: target.into(),
            message: message.into(),
        });
        sequence
    }

    /// Every record kept, oldest first.
    pub fn records(&self) -> Vec<LogRecord> {
        self.lock().records.iter().cloned().collect()
    }

    /// The records numbered `sequence` and later that are still kept, oldest first. If the
    /// first one returned is numbered higher than asked, the ones between were dropped.
    pub fn since(&self, sequence: u64) -> Vec<LogRecord> {
        self.lock()
            .records
            .iter()
            .filter(|record| record.sequence >= sequence)
            .cloned()
            .collect()
    }

    /// How many records fell out of the ring so far.
    pub fn dropped(&self) -> u64 {
        let ring = self.lock();
        ring.next_sequence - ring.records.len() as u64
    }

    pub fn capacity(&self) -> usize {
        self.lock().capacity
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring half-updated in a way that
        // matters (at worst one record is missing), and logging must keep working after it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Feeds a [`LogRing`] from `tracing` events.
#[derive(Debug, Clone)]
pub struct LogRingLayer {
    ring: LogRing,
}

impl<S: Subscriber> Layer<S> for LogRingLayer {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        let metadata = event.metadata();
        self.ring.push(
            SystemTime::now(),
            *metadata.level(),
            metadata.target(),
            visitor.finish(),
        );
    }
}

/// Renders an event's fields as `message key=value key=value`.
#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl MessageVisitor {
    fn finish(self) -> String {
        if self.message.is_empty() {
            self.fields.trim_start().to_string()
        } else {
            self.message + &self.fields
        }
    }
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            // Writing to a String cannot fail.
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn the_ring_keeps_the_newest_records_and_counts_the_dropped() {
        let ring = LogRing::new(3);
        for n in 0..5u64 {
            assert_eq!(ring.push(at(n), Level::INFO, "t", format!("record {n}")), n);
        }
        let kept: Vec<(u64, String)> = ring
            .records()
            .into_iter()
            .map(|r| (r.sequence, r.message))
            .collect();
        assert_eq!(
            kept,
            vec![
                (2, "record 2".to_string()),
                (3, "record 3".to_string()),
                (4, "record 4".to_string())
            ]
        );
        assert_eq!(ring.dropped(), 2);
        assert_eq!(ring.capacity(), 3);
    }

    #[test]
    fn since_returns_what_is_left_after_a_sequence_number() {
        let ring = LogRing::new(2);
        for n in 0..4u64 {
            ring.push(at(n), Level::WARN, "t", "x");
        }
        let sequences = |records: Vec<LogRecord>| -> Vec<u64> {
            records.into_iter().map(|r| r.sequence).collect()
        };
        assert_eq!(sequences(ring.since(0)), vec![2, 3]); // 0 and 1 were dropped: a gap
        assert_eq!(sequences(ring.since(3)), vec![3]);
        assert_eq!(sequences(ring.since(4)), Vec::<u64>::new());
    }

    #[test]
    fn a_zero_capacity_still_keeps_the_newest_record() {
        let ring = LogRing::new(0);
        ring.push(at(1), Level::INFO, "t", "a");
        ring.push(at(2), Level::INFO, "t", "b");
        assert_eq!(ring.records().len(), 1);
        assert_eq!(ring.records()[0].message, "b");
    }

    #[test]
    fn the_layer_records_level_target_message_and_fields() {
        let ring = LogRing::new(10);
        let subscriber = tracing_subscriber::registry().with(ring.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "hostd::store", generation = 7, path = "/config", "rolled back");
            tracing::info!(target: "hostd::plan", "nothing to do");
        });
        let records = ring.records();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].level, Level::WARN);
        assert_eq!(records[0].target, "hostd::store");
        assert_eq!(records[0].message, "rolled back generation=7 path=/config");
        assert_eq!(records[1].message, "nothing to do");
    }
}
