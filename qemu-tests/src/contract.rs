//! The console lines docs/image-contract.md promises, as patterns and parsers. Tests and
//! `make bench` match through here, so a change to the contract is a change in one file.

use regex::Regex;
use thiserror::Error;

/// Printed by `cairn-console` when it waits for a command.
pub const PROMPT: &str = "cairn> ";
/// `cairn-console` asking for the admin password: to log in, or before `shell`.
pub const PASSWORD_PROMPT: &str = "Password: ";
/// `cairn-console` on first boot (no password stored yet), then asking for it again.
pub const NEW_PASSWORD_PROMPT: &str = "New admin password: ";
pub const REPEAT_PASSWORD_PROMPT: &str = "Repeat the password: ";
/// After the right password at [`PASSWORD_PROMPT`] (login).
pub const LOGGED_IN: &str = "Logged in.";
/// After the right password before `shell`.
pub const ROOT_SHELL: &str = "Root shell.";
/// After `logout`.
pub const LOGGED_OUT: &str = "Logged out.";
/// The third wrong password in a row at login.
pub const LOGIN_REFUSED: &str = "Login refused after 3 wrong passwords";
/// Where the console keeps the hash and its auth log when /config is mounted.
pub const PASSWORD_FILE: &str = "/config/console/admin.passwd";
pub const AUTH_LOG: &str = "/config/logs/auth.log";
/// The last line of an orderly shutdown before power goes.
pub const ALL_UNMOUNTED: &str = "cairn-init: all filesystems unmounted";

/// init's READY line, with the phase times (the boot soak waits for it or an oops).
pub const READY: &str = r"cairn-init: READY board=(?P<board>\S+) init=(?P<init>\S+) modules=(?P<modules>\S+) services=(?P<services>\S+) total=(?P<total>\S+)";

fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("contract patterns are static and valid")
}

/// Whichever of the console's waiting states shows: first-boot password set-up, login, or
/// the command prompt.
pub fn console_state_regex() -> Regex {
    compile(r"New admin password: |Password: |cairn> ")
}

/// What the console says after a password at the login prompt.
pub fn login_answer_regex() -> Regex {
    compile(r"Logged in\.|Wrong password|Login refused")
}

/// `cairn-init: READY board=<id> init=<s> modules=<s> services=<s> total=<s>`.
pub fn ready_regex() -> Regex {
    compile(READY)
}

/// `cairn-init: board <id> (<how>)`.
pub fn board_regex() -> Regex {
    compile(r"cairn-init: board (?P<board>\S+) \((?P<how>.*)\)$")
}

/// `cairn-init: unknown board "<name>" on the kernel command line; using generic (known: …)`.
pub fn unknown_board_regex(name: &str) -> Regex {
    compile(&format!(
        r#"cairn-init: unknown board "{}" on the kernel command line; using generic \(known: (?P<known>.*)\)"#,
        regex::escape(name)
    ))
}

/// `cairn-init: config partition /dev/<dev> mounted at /config`.
pub fn config_mounted_regex() -> Regex {
    compile(r"cairn-init: config partition (?P<dev>/dev/\S+) mounted at /config")
}

/// `cairn-init: service <name> (pid <n>) was killed by <SIGNAL>`.
pub fn service_killed_regex(service: &str) -> Regex {
    compile(&format!(
        r"cairn-init: service {} \(pid (?P<pid>\d+)\) was killed by (?P<signal>SIG[A-Z0-9]+)",
        regex::escape(service)
    ))
}

/// `cairn-init: restarting <name> in <ms> ms`.
pub fn restarting_regex(service: &str) -> Regex {
    compile(&format!(
        r"cairn-init: restarting {} in (?P<ms>\d+) ms",
        regex::escape(service)
    ))
}

/// `cairn-init: unmounted <path>`.
pub fn unmounted_regex(path: &str) -> Regex {
    compile(&format!(r"cairn-init: unmounted {}$", regex::escape(path)))
}

#[derive(Debug, Error, PartialEq)]
pub enum ContractError {
    #[error("Not a READY line: {0:?}")]
    NotReady(String),
    #[error("READY field {field}={value:?} is not a number of seconds")]
    BadSeconds { field: &'static str, value: String },
    #[error("READY field {field}={value} is not positive")]
    NotPositive { field: &'static str, value: f64 },
    #[error("READY timings out of order: {earlier}={a} comes after {later}={b}")]
    OutOfOrder {
        earlier: &'static str,
        a: f64,
        later: &'static str,
        b: f64,
    },
}

/// A parsed READY line: seconds since the kernel started (CLOCK_BOOTTIME) at init's
/// start, after module coldplug, when every service was ready, and overall.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    pub board: String,
    pub init: f64,
    pub modules: f64,
    pub services: f64,
    pub total: f64,
}

impl Ready {
    /// Parses the line (or any text containing it).
    pub fn parse(line: &str) -> Result<Self, ContractError> {
        let caps = ready_regex()
            .captures(line)
            .ok_or_else(|| ContractError::NotReady(line.to_owned()))?;
        let seconds = |field: &'static str| {
            let value = caps.name(field).map_or("", |m| m.as_str());
            // Accept "1.234" and "1.234s": the unit is fixed by the contract either way.
            value
                .strip_suffix('s')
                .unwrap_or(value)
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| ContractError::BadSeconds {
                    field,
                    value: value.to_owned(),
                })
        };
        Ok(Self {
            board: caps.name("board").map_or("", |m| m.as_str()).to_owned(),
            init: seconds("init")?,
            modules: seconds("modules")?,
            services: seconds("services")?,
            total: seconds("total")?,
        })
    }

    /// The timings in boot order, named as in the line.
    pub fn timings(&self) -> [(&'static str, f64); 4] {
        [
            ("init", self.init),
            ("modules", self.modules),
            ("services", self.services),
            ("total", self.total),
        ]
    }

    /// Every timing is positive and none comes before the step it follows.
    pub fn check_timings(&self) -> Result<(), ContractError> {
        let timings = self.timings();
        for (field, value) in timings {
            if value <= 0.0 {
                return Err(ContractError::NotPositive { field, value });
            }
        }
        for pair in timings.windows(2) {
            let [(earlier, a), (later, b)] = [pair[0], pair[1]];
            if a > b {
                return Err(ContractError::OutOfOrder {
                    earlier,
                    a,
                    later,
                    b,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line_parses_and_checks() {
        let ready = Ready::parse(
            "cairn-init: READY board=qemu-x86_64 init=4.120 modules=6.5s services=7.25 total=7.30",
        )
        .expect("parsed");
        assert_eq!(ready.board, "qemu-x86_64");
        assert_eq!(ready.modules, 6.5);
        assert_eq!(ready.check_timings(), Ok(()));
    }

    #[test]
    fn bad_ready_lines_are_named() {
        assert!(matches!(
            Ready::parse("cairn-init: READY board=x"),
            Err(ContractError::NotReady(_))
        ));
        assert_eq!(
            Ready::parse("cairn-init: READY board=x init=abc modules=1 services=1 total=1"),
            Err(ContractError::BadSeconds {
                field: "init",
                value: "abc".into()
            })
        );
        let zero = Ready::parse("cairn-init: READY board=x init=0 modules=1 services=2 total=3")
            .expect("parsed");
        assert_eq!(
            zero.check_timings(),
            Err(ContractError::NotPositive {
                field: "init",
                value: 0.0
            })
        );
        let swapped = Ready::parse("cairn-init: READY board=x init=1 modules=3 services=2 total=4")
            .expect("parsed");
        assert!(matches!(
            swapped.check_timings(),
            Err(ContractError::OutOfOrder {
                earlier: "modules",
                later: "services",
                ..
            })
        ));
    }

    #[test]
    fn line_patterns_match_the_contract_examples() {
        let killed = service_killed_regex("hostd")
            .captures("cairn-init: service hostd (pid 231) was killed by SIGKILL")
            .expect("killed line");
        assert_eq!(&killed["pid"], "231");
        assert_eq!(&killed["signal"], "SIGKILL");
        assert!(restarting_regex("hostd").is_match("cairn-init: restarting hostd in 500 ms"));
        assert!(
            unknown_board_regex("no-such-model").is_match(
                r#"cairn-init: unknown board "no-such-model" on the kernel command line; using generic (known: generic, qemu-x86_64)"#
            )
        );
        assert!(
            config_mounted_regex()
                .is_match("cairn-init: config partition /dev/vda2 mounted at /config")
        );
        let board = board_regex()
            .captures("cairn-init: board qemu-x86_64 (kernel command line)")
            .expect("board line");
        assert_eq!(&board["how"], "kernel command line");
        assert!(unmounted_regex("/config").is_match("cairn-init: unmounted /config"));
        assert!(!unmounted_regex("/config").is_match("cairn-init: unmounted /config/x"));
    }
}
