//! Time since the kernel started, as the READY line and `make bench` report it.
//!
//! CLOCK_BOOTTIME starts at zero when the kernel does, so the numbers include the
//! firmware-to-init part that a stopwatch started by init would miss.

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// Time since the kernel started; zero if the clock cannot be read (it always can on
/// Linux ≥ 2.6.39, and a wrong boot time must never stop the boot).
pub fn since_boot() -> Duration {
    clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map(Duration::from)
        .unwrap_or_default()
}

/// Seconds with three decimals, truncated to the millisecond: `4.207`.
pub fn format_seconds(time: Duration) -> String {
    let millis = time.as_millis();
    format!("{}.{:03}", millis / 1000, millis % 1000)
}

/// The same value as a JSON number (milliseconds precision, so it prints as `4.207`).
pub fn seconds_f64(time: Duration) -> f64 {
    // u128 → f64: boot times are far below 2^53 ms, so this is exact.
    time.as_millis() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_three_decimals() {
        assert_eq!(format_seconds(Duration::from_millis(4207)), "4.207");
        assert_eq!(format_seconds(Duration::from_millis(12)), "0.012");
        assert_eq!(format_seconds(Duration::from_micros(1_999_999)), "1.999");
        assert_eq!(format_seconds(Duration::ZERO), "0.000");
    }

    #[test]
    fn json_number_matches_the_line() {
        assert_eq!(
            seconds_f64(Duration::from_millis(4207)).to_string(),
            "4.207"
        );
    }

    #[test]
    fn boot_clock_moves_forward() {
        let first = since_boot();
        assert!(since_boot() >= first);
        assert!(first > Duration::ZERO);
    }
}
