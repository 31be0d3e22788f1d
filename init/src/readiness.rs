//! Readiness: the pipe a `notify` service writes `READY\n` to, and the READY line.
//!
//! The protocol is the smallest that needs no library in the service: init creates a
//! pipe, the service finds its write end as fd 3 (`CAIRN_READY_FD=3`) and writes one
//! line. EOF before that line means the service died or closed it without being ready.
//! The READY line and /run/cairn/boot-times.json are what qemu-tests and `make bench`
//! measure the boot by.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use serde::Serialize;

use crate::clock::{format_seconds, seconds_f64};
use crate::error::BootTimesError;

/// The fd number a notify service finds its pipe at.
pub const READY_FD: i32 = 3;
/// Past this after the services started, the READY line is printed anyway, naming who
/// is late: a hung service must not hide how long the rest of the boot took.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// A service that writes more than this without a READY line is not speaking the
/// protocol; stop buffering.
const MAX_BUFFER: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeState {
    Waiting,
    Ready,
    /// EOF (or an error) before READY.
    Closed,
}

/// Init's end of one service's readiness pipe.
#[derive(Debug)]
pub struct ReadyPipe {
    read_end: std::fs::File,
    buffer: Vec<u8>,
}

impl ReadyPipe {
    /// Returns init's read end and the write end to hand to the child (both close on
    /// exec; the child's copy is made with dup2, which clears that flag).
    pub fn new() -> nix::Result<(ReadyPipe, OwnedFd)> {
        let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok((
            ReadyPipe {
                read_end: std::fs::File::from(read_end),
                buffer: Vec::new(),
            },
            write_end,
        ))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read_end.as_fd()
    }

    /// Reads what is there without blocking.
    pub fn read_available(&mut self) -> PipeState {
        let mut chunk = [0u8; 256];
        loop {
            match self.read_end.read(&mut chunk) {
                Ok(0) => return PipeState::Closed,
                Ok(n) => {
                    if self.buffer.len() < MAX_BUFFER {
                        self.buffer.extend_from_slice(&chunk[..n]);
                    }
                    if has_ready_line(&self.buffer) {
                        return PipeState::Ready;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return PipeState::Waiting,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return PipeState::Closed,
            }
        }
    }
}

/// A complete `READY` line (surrounding white space allowed) anywhere in `buffer`.
pub fn has_ready_line(buffer: &[u8]) -> bool {
    buffer
        .split(|&b| b == b'\n')
        .rev()
        .skip(1) // the part after the last newline is not a complete line yet
        .any(|line| line.trim_ascii() == b"READY")
}

/// Decides when the READY line is printed: once, when every notify service is ready or
/// [`DEADLINE`] after the services started, whichever comes first.
#[derive(Debug)]
pub struct ReadyGate {
    deadline: Instant,
    reported: bool,
}

impl ReadyGate {
    pub fn new(services_started: Instant) -> ReadyGate {
        ReadyGate {
            deadline: services_started + DEADLINE,
            reported: false,
        }
    }

    /// True exactly once: when the READY line is due.
    pub fn due(&mut self, not_ready: &[String], now: Instant) -> bool {
        if self.reported || (!not_ready.is_empty() && now < self.deadline) {
            return false;
        }
        self.reported = true;
        true
    }

    /// When the loop must wake up to print the line anyway.
    pub fn deadline(&self) -> Option<Instant> {
        (!self.reported).then_some(self.deadline)
    }
}

/// The three moments the READY line reports, as times since the kernel started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootTimes {
    pub board: String,
    pub init: Duration,
    pub modules: Duration,
    pub services: Duration,
    /// Notify services that had not said READY by the deadline.
    pub not_ready: Vec<String>,
}

impl BootTimes {
    /// `READY board=<id> init=<s> modules=<s> services=<s> total=<s>[ <name>=not-ready…]`
    pub fn ready_line(&self) -> String {
        let mut line = format!(
            "READY board={} init={} modules={} services={} total={}",
            self.board,
            format_seconds(self.init),
            format_seconds(self.modules),
            format_seconds(self.services),
            // total is services: READY is the end of the boot.
            format_seconds(self.services),
        );
        for name in &self.not_ready {
            line.push_str(&format!(" {name}=not-ready"));
        }
        line
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            board: &'a str,
            init: f64,
            modules: f64,
            services: f64,
            total: f64,
            #[serde(flatten)]
            not_ready: BTreeMap<&'a str, &'static str>,
        }
        serde_json::to_string(&Json {
            board: &self.board,
            init: seconds_f64(self.init),
            modules: seconds_f64(self.modules),
            services: seconds_f64(self.services),
            total: seconds_f64(self.services),
            not_ready: self
                .not_ready
                .iter()
                .map(|name| (name.as_str(), "not-ready"))
                .collect(),
        })
    }

    /// Writes `<run_dir>/cairn/boot-times.json`.
    pub fn write(&self, run_dir: &Path) -> Result<(), BootTimesError> {
        let dir = run_dir.join("cairn");
        std::fs::create_dir_all(&dir).map_err(|source| BootTimesError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let mut json = self.to_json().map_err(BootTimesError::Encode)?;
        json.push('\n');
        let path = dir.join("boot-times.json");
        std::fs::write(&path, json).map_err(|source| BootTimesError::Write { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gate_opens_once_when_ready_or_late() {
        let t0 = Instant::now();
        let hostd = vec!["hostd".to_owned()];
        let mut gate = ReadyGate::new(t0);
        assert_eq!(gate.deadline(), Some(t0 + DEADLINE));
        assert!(!gate.due(&hostd, t0 + Duration::from_secs(1)));
        assert!(gate.due(&[], t0 + Duration::from_secs(2)));
        assert!(!gate.due(&[], t0 + Duration::from_secs(3)));
        assert_eq!(gate.deadline(), None);

        let mut gate = ReadyGate::new(t0);
        assert!(!gate.due(&hostd, t0 + DEADLINE - Duration::from_millis(1)));
        assert!(gate.due(&hostd, t0 + DEADLINE));
    }

    #[test]
    fn ready_line_detection() {
        assert!(has_ready_line(b"READY\n"));
        assert!(has_ready_line(b"starting\nREADY\n"));
        assert!(has_ready_line(b" READY \r\n"));
        assert!(!has_ready_line(b"READY"));
        assert!(!has_ready_line(b"READ"));
        assert!(!has_ready_line(b"NOT READY\n"));
        assert!(!has_ready_line(b""));
    }

    #[test]
    fn pipe_reports_ready_partial_and_closed() {
        let (mut pipe, write_end) = ReadyPipe::new().expect("pipe");
        let mut writer = std::fs::File::from(write_end);
        assert_eq!(pipe.read_available(), PipeState::Waiting);
        writer.write_all(b"REA").expect("write");
        assert_eq!(pipe.read_available(), PipeState::Waiting);
        writer.write_all(b"DY\n").expect("write");
        assert_eq!(pipe.read_available(), PipeState::Ready);

        let (mut pipe, write_end) = ReadyPipe::new().expect("pipe");
        drop(write_end);
        assert_eq!(pipe.read_available(), PipeState::Closed);
    }

    fn times() -> BootTimes {
        BootTimes {
            board: "qemu-x86_64".into(),
            init: Duration::from_millis(2_104),
            modules: Duration::from_millis(2_871),
            services: Duration::from_millis(3_350),
            not_ready: Vec::new(),
        }
    }

    #[test]
    fn ready_line_format() {
        assert_eq!(
            times().ready_line(),
            "READY board=qemu-x86_64 init=2.104 modules=2.871 services=3.350 total=3.350"
        );
        let late = BootTimes {
            not_ready: vec!["hostd".into()],
            ..times()
        };
        assert_eq!(
            late.ready_line(),
            "READY board=qemu-x86_64 init=2.104 modules=2.871 services=3.350 total=3.350 \
             hostd=not-ready"
        );
    }

    #[test]
    fn json_has_the_same_keys() {
        let value: serde_json::Value =
            serde_json::from_str(&times().to_json().expect("encode")).expect("valid json");
        assert_eq!(value["board"], "qemu-x86_64");
        assert_eq!(value["init"], 2.104);
        assert_eq!(value["modules"], 2.871);
        assert_eq!(value["services"], 3.35);
        assert_eq!(value["total"], 3.35);
        let late = BootTimes {
            not_ready: vec!["hostd".into()],
            ..times()
        };
        let value: serde_json::Value =
            serde_json::from_str(&late.to_json().expect("encode")).expect("valid json");
        assert_eq!(value["hostd"], "not-ready");
    }

    #[test]
    fn writes_boot_times_file() {
        let dir = crate::test_support::TempDir::new("run");
        times().write(dir.path()).expect("write");
        let text = std::fs::read_to_string(dir.path().join("cairn/boot-times.json")).expect("read");
        assert!(text.starts_with("{\"board\":\"qemu-x86_64\""));
    }
}
