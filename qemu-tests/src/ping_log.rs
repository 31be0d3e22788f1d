//! Busybox `ping` output read into a value: which echo requests were answered, and the
//! longest run of unanswered ones, which is how the failover tests measure a gap.
//!
//! Why sequence numbers and not timestamps: `ping` writes into a file or pipe through a
//! buffered stdout, so a timestamp taken by a reader is the flush time, not the reply's.
//! The sender's clock is steady instead: busybox ping sends every `-i` interval from a
//! timer, so `n` unanswered requests in a row are `n` intervals without traffic. The
//! resolution is one interval.

/// What one `ping` run printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PingLog {
    /// Sequence numbers answered, ascending, without duplicates.
    pub answered: Vec<u32>,
    /// From the summary line, when ping printed it (it does at `-c` or on SIGINT).
    pub transmitted: Option<u32>,
    pub received: Option<u32>,
}

/// The longest run of unanswered requests between two answered ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// The last answered sequence number before the run.
    pub after_seq: u32,
    /// How many requests in a row went unanswered.
    pub lost: u32,
}

impl Outage {
    /// The outage in milliseconds for requests sent every `interval_ms`.
    pub fn gap_ms(&self, interval_ms: f64) -> f64 {
        f64::from(self.lost) * interval_ms
    }
}

impl PingLog {
    /// Reads ping's output, or only its `seq=N` words (`grep -o 'seq=[0-9]*'`, which
    /// keeps what crosses the serial console short) and its summary line.
    pub fn parse(text: &str) -> Self {
        let mut log = Self::default();
        for line in text.lines() {
            if line.contains(" packets transmitted") {
                // `500 packets transmitted, 480 packets received, 4% packet loss`
                let mut parts = line.split(',');
                log.transmitted = parts.next().and_then(leading_number);
                log.received = parts.next().and_then(leading_number);
            } else {
                let answered = line
                    .split_whitespace()
                    .filter_map(|word| word.strip_prefix("seq="))
                    .filter_map(|n| n.parse::<u32>().ok());
                log.answered.extend(answered);
            }
        }
        log.answered.sort_unstable();
        log.answered.dedup();
        log
    }

    /// The longest run of unanswered requests with answers on both sides of it; `None`
    /// when no request between the first and the last answer was lost.
    pub fn longest_outage(&self) -> Option<Outage> {
        self.answered
            .windows(2)
            .map(|pair| Outage {
                after_seq: pair[0],
                lost: pair[1] - pair[0] - 1,
            })
            .filter(|outage| outage.lost > 0)
            .max_by_key(|outage| outage.lost)
    }

    /// Answers after sequence number `seq`.
    pub fn answered_after(&self, seq: u32) -> usize {
        self.answered.iter().filter(|&&s| s > seq).count()
    }
}

fn leading_number(text: &str) -> Option<u32> {
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_run_of_lost_requests() {
        let text = "PING 10.42.0.1 (10.42.0.1): 56 data bytes\n\
            64 bytes from 10.42.0.1: seq=0 ttl=64 time=0.9 ms\n\
            64 bytes from 10.42.0.1: seq=1 ttl=64 time=0.8 ms\n\
            64 bytes from 10.42.0.1: seq=3 ttl=64 time=0.8 ms\n\
            64 bytes from 10.42.0.1: seq=11 ttl=64 time=1.1 ms\n\
            64 bytes from 10.42.0.1: seq=11 ttl=64 time=1.1 ms (DUP!)\n\
            64 bytes from 10.42.0.1: seq=12 ttl=64 time=0.7 ms\n\
            \n--- 10.42.0.1 ping statistics ---\n\
            13 packets transmitted, 5 packets received, 1 duplicates, 61% packet loss\n\
            round-trip min/avg/max = 0.7/0.8/1.1 ms\n";
        let log = PingLog::parse(text);
        assert_eq!(log.answered, [0, 1, 3, 11, 12]);
        assert_eq!((log.transmitted, log.received), (Some(13), Some(5)));
        let outage = log.longest_outage().expect("an outage");
        assert_eq!(
            outage,
            Outage {
                after_seq: 3,
                lost: 7
            }
        );
        assert_eq!(outage.gap_ms(10.0), 70.0);
        assert_eq!(log.answered_after(3), 2);
    }

    #[test]
    fn the_short_form_the_tests_fetch() {
        let log = PingLog::parse(
            "seq=0 seq=1 seq=2 seq=9 \n10 packets transmitted, 4 packets received, 60% packet loss\n",
        );
        assert_eq!(log.answered, [0, 1, 2, 9]);
        assert_eq!(log.longest_outage().map(|o| o.lost), Some(6));
        assert_eq!(log.transmitted, Some(10));
    }

    #[test]
    fn no_loss_no_outage() {
        let log = PingLog::parse(
            "64 bytes from 1.2.3.4: seq=0 ttl=64 time=1 ms\n64 bytes from 1.2.3.4: seq=1 ttl=64 time=1 ms\n",
        );
        assert_eq!(log.longest_outage(), None);
        assert_eq!(PingLog::parse("").longest_outage(), None);
    }
}
