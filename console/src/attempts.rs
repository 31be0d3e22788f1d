//! The three-tries rule for logins: a wrong password may be retried twice; the third wrong
//! one in a row ends the round (the console refuses, logs it and pauses before it asks
//! again). A right password ends the round too. Kept apart from the prompting so the rule
//! is tested as a value.

use std::time::Duration;

/// Wrong passwords in a row that end a login round.
pub const MAX_TRIES: u32 = 3;
/// How long the console waits after a refusal before it asks again: slows guessing to a
/// few tries a minute on a line that anyone at the box can type on.
pub const REFUSAL_PAUSE: Duration = Duration::from_secs(10);

/// What happens after one password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Granted,
    /// Wrong; `left` more tries in this round.
    TryAgain {
        left: u32,
    },
    /// The last try of the round was wrong.
    Refused,
}

/// One round of login attempts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    failures: u32,
}

impl Attempts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the outcome of one try.
    pub fn record(&mut self, correct: bool) -> Verdict {
        if correct {
            self.failures = 0;
            return Verdict::Granted;
        }
        self.failures += 1;
        if self.failures >= MAX_TRIES {
            self.failures = 0;
            Verdict::Refused
        } else {
            Verdict::TryAgain {
                left: MAX_TRIES - self.failures,
            }
        }
    }

    /// Wrong passwords so far in this round.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn third_wrong_password_is_refused_then_a_new_round_starts() {
        let mut attempts = Attempts::new();
        assert_eq!(attempts.record(false), Verdict::TryAgain { left: 2 });
        assert_eq!(attempts.record(false), Verdict::TryAgain { left: 1 });
        assert_eq!(attempts.record(false), Verdict::Refused);
        assert_eq!(attempts.failures(), 0);
        assert_eq!(attempts.record(false), Verdict::TryAgain { left: 2 });
    }

    #[test]
    fn right_password_resets_the_count() {
        let mut attempts = Attempts::new();
        assert_eq!(attempts.record(false), Verdict::TryAgain { left: 2 });
        assert_eq!(attempts.record(false), Verdict::TryAgain { left: 1 });
        assert_eq!(attempts.record(true), Verdict::Granted);
        assert_eq!(attempts.failures(), 0);
        assert_eq!(attempts.record(false), Verdict::TryAgain { left: 2 });
    }

    #[test]
    fn right_first_time() {
        assert_eq!(Attempts::new().record(true), Verdict::Granted);
    }
}
