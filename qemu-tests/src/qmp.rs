//! QEMU's machine protocol (QMP), through the `qapi` crate's blocking client.
//!
//! The greeting is read here rather than with `qapi::Qmp::handshake`, because that one
//! panics when QEMU closes the socket before greeting (it `expect`s a line); a test must
//! get an error it can print instead. Every read has a timeout so a wedged QEMU fails the
//! test instead of hanging it.

use std::io::{self, BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::time::Duration;

pub use qapi::qmp::{Event, RunState, StatusInfo};
use qapi::{Command, ExecuteError};
use thiserror::Error;

/// How long one QMP command may take. Commands answer in milliseconds even under TCG;
/// this only guards against a QEMU that stopped answering.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum QmpError {
    #[error("Cannot configure the QMP socket")]
    Socket(#[source] io::Error),
    #[error("QEMU closed the QMP socket before greeting (it probably exited: see its stderr)")]
    NoGreeting,
    #[error("Cannot read QMP greeting")]
    ReadGreeting(#[source] io::Error),
    #[error("Unexpected QMP greeting {line:?}")]
    BadGreeting {
        line: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("QMP command {command} failed")]
    Command {
        command: &'static str,
        #[source]
        source: qapi::Error,
    },
    #[error(
        "QMP command {command} got no answer (QEMU exited or took longer than {COMMAND_TIMEOUT:?})"
    )]
    Io {
        command: &'static str,
        #[source]
        source: io::Error,
    },
}

type Stream = qapi::Stream<BufReader<UnixStream>, UnixStream>;

/// A QMP session in command mode (capabilities already negotiated).
pub struct Qmp {
    inner: qapi::Qmp<Stream>,
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp").finish_non_exhaustive()
    }
}

impl Qmp {
    /// Reads the greeting from a connected QMP socket and leaves capabilities
    /// negotiation mode.
    pub fn handshake(stream: UnixStream) -> Result<Self, QmpError> {
        stream
            .set_read_timeout(Some(COMMAND_TIMEOUT))
            .map_err(QmpError::Socket)?;
        let mut reader = BufReader::new(stream.try_clone().map_err(QmpError::Socket)?);
        let mut line = String::new();
        let read = reader
            .read_line(&mut line)
            .map_err(QmpError::ReadGreeting)?;
        if read == 0 {
            return Err(QmpError::NoGreeting);
        }
        serde_json::from_str::<qapi::qmp::QapiCapabilities>(&line).map_err(|source| {
            QmpError::BadGreeting {
                line: line.trim_end().to_owned(),
                source,
            }
        })?;
        let mut qmp = Self {
            inner: qapi::Qmp::new(qapi::Stream::new(reader, stream)),
        };
        qmp.execute(&qapi::qmp::qmp_capabilities { enable: None })?;
        Ok(qmp)
    }

    /// Runs any command from the `qapi::qmp` schema.
    pub fn execute<C: Command>(&mut self, command: &C) -> Result<C::Ok, QmpError> {
        self.inner.execute(command).map_err(|e| match e {
            ExecuteError::Qapi(source) => QmpError::Command {
                command: C::NAME,
                source,
            },
            ExecuteError::Io(source) => QmpError::Io {
                command: C::NAME,
                source,
            },
        })
    }

    pub fn query_status(&mut self) -> Result<StatusInfo, QmpError> {
        self.execute(&qapi::qmp::query_status {})
    }

    /// Lets a VM started with `-S` run.
    pub fn cont(&mut self) -> Result<(), QmpError> {
        self.execute(&qapi::qmp::cont {}).map(drop)
    }

    /// Presses the ACPI power button.
    pub fn system_powerdown(&mut self) -> Result<(), QmpError> {
        self.execute(&qapi::qmp::system_powerdown {}).map(drop)
    }

    /// Presses the reset button: the guest starts again at once, without shutting down
    /// (a direct-kernel boot starts the same kernel with the same command line).
    pub fn system_reset(&mut self) -> Result<(), QmpError> {
        self.execute(&qapi::qmp::system_reset {}).map(drop)
    }

    /// Ends QEMU at once, as if the power cord was pulled. QEMU may close the socket
    /// before its answer arrives; that counts as success.
    pub fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute(&qapi::qmp::quit {}) {
            Ok(_) => Ok(()),
            Err(QmpError::Io { source, .. })
                if matches!(
                    source.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::ConnectionReset
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Cable pull (`up = false`) or plug for the netdev or NIC named `name`.
    pub fn set_link(&mut self, name: &str, up: bool) -> Result<(), QmpError> {
        self.execute(&qapi::qmp::set_link {
            name: name.to_owned(),
            up,
        })
        .map(drop)
    }

    /// Asks the guest to release a device (hot-unplug); completion is the
    /// `DEVICE_DELETED` event.
    pub fn device_del(&mut self, id: &str) -> Result<(), QmpError> {
        self.execute(&qapi::qmp::device_del { id: id.to_owned() })
            .map(drop)
    }

    /// Events QEMU sent while commands were running, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.inner.events().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A scripted QMP server: sends the greeting, then answers each command line with
    /// the next canned reply.
    fn fake_qemu(replies: Vec<&'static str>) -> (UnixStream, std::thread::JoinHandle<Vec<String>>) {
        let (client, server) = UnixStream::pair().expect("socketpair");
        let handle = std::thread::spawn(move || {
            let mut writer = server.try_clone().expect("clone");
            let mut reader = BufReader::new(server);
            writer
                .write_all(
                    br#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian"}, "capabilities": ["oob"]}}"#,
                )
                .expect("greeting");
            writer.write_all(b"\r\n").expect("greeting end");
            let mut seen = Vec::new();
            for reply in replies {
                let mut line = String::new();
                if reader.read_line(&mut line).expect("read") == 0 {
                    break;
                }
                seen.push(line.trim_end().to_owned());
                writer.write_all(reply.as_bytes()).expect("reply");
                writer.write_all(b"\r\n").expect("reply end");
            }
            seen
        });
        (client, handle)
    }

    #[test]
    fn handshake_then_query_status_with_an_event_in_between() {
        let (client, server) = fake_qemu(vec![
            r#"{"return": {}}"#,
            concat!(
                r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"}"#,
                "\r\n",
                r#"{"return": {"status": "running", "singlestep": false, "running": true}}"#
            ),
        ]);
        let mut qmp = Qmp::handshake(client).expect("handshake");
        let status = qmp.query_status().expect("status");
        assert!(status.running);
        assert_eq!(status.status, RunState::running);
        assert_eq!(qmp.take_events().len(), 1);
        drop(qmp);
        let seen = server.join().expect("server");
        assert!(
            seen[0].contains(r#""execute":"qmp_capabilities""#),
            "{seen:?}"
        );
        assert!(seen[1].contains(r#""execute":"query-status""#), "{seen:?}");
    }

    #[test]
    fn command_errors_name_the_command() {
        let (client, server) = fake_qemu(vec![
            r#"{"return": {}}"#,
            r#"{"error": {"class": "DeviceNotFound", "desc": "Device 'nope' not found"}}"#,
        ]);
        let mut qmp = Qmp::handshake(client).expect("handshake");
        let err = qmp.device_del("nope").expect_err("must fail");
        assert!(
            matches!(
                err,
                QmpError::Command {
                    command: "device_del",
                    ..
                }
            ),
            "{err:?}"
        );
        drop(qmp);
        drop(server.join());
    }

    #[test]
    fn quit_tolerates_qemu_closing_first() {
        let (client, server) = fake_qemu(vec![r#"{"return": {}}"#]);
        let mut qmp = Qmp::handshake(client).expect("handshake");
        drop(server.join());
        qmp.quit().expect("eof after quit is fine");
    }

    #[test]
    fn a_closed_socket_is_an_error_not_a_panic() {
        let (client, server) = UnixStream::pair().expect("socketpair");
        drop(server);
        assert!(matches!(Qmp::handshake(client), Err(QmpError::NoGreeting)));
    }
}
