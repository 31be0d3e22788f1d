//! cairnctl: the appliance's command line, a client of hostd's `org.cairn.Host1` on the system
//! bus. Human output by default, `--json` for scripts.
//!
//! Exit codes: 0 done; 2 bad input (a refused document, an unknown generation, a file that
//! cannot be read); 1 anything else failing (the bus or hostd unreachable, storage errors).
//!
//! `main.rs` holds the grammar, the exit codes and the dispatch; each noun (`config`, `net`,
//! `storage`, `job`, `log`, `vm`) runs its commands in its own module.

mod config;
mod job;
mod log;
mod net;
mod storage;
mod vm;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use cairn_api::{self as api, DriftOutcome, Host1Proxy, HostError, Status};
use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use self::config::ConfigCommand;
use self::job::JobCommand;
use self::net::NetCommand;
use self::storage::StorageCommand;

/// `vm` calls wait for guests: a start for the boot, a stop for the power-off (up to 600 s)
/// and then the kill.
const VM_METHOD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(660);
/// How long the bus may take to accept us (its own method calls have zbus's 25 s timeout).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "cairnctl",
    version,
    about = "Control the Cairn appliance through hostd"
)]
struct Cli {
    /// Machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// The bus hostd is on.
    #[arg(long, env = "CAIRN_BUS_ADDRESS", default_value = api::SYSTEM_BUS_ADDRESS, hide_default_value = true)]
    bus_address: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Bus(BusCommand),
    /// Print a shell completion script.
    Completions { shell: Shell },
}

/// The commands that ask hostd, over the bus.
#[derive(Debug, Subcommand)]
enum BusCommand {
    /// Board, uptime, desired-state generation, whether it persists, and drift from it.
    Status,
    /// The board's configuration.
    Board,
    /// The desired state: show, plan, apply, history, rollback.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The network as the box has it: ports, bonds, vSwitches, VLANs.
    #[command(subcommand)]
    Net(NetCommand),
    /// Drives and Btrfs volumes as the box has them.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Guests: list, show, create, start, stop, reboot, pause, resume, delete, console,
    /// capacity.
    #[command(subcommand)]
    Vm(vm::VmCommand),
    /// Long operations hostd runs: list, show, wait for, cancel.
    #[command(subcommand)]
    Job(JobCommand),
    /// hostd's recent log (this boot; older boots are in /config/logs/hostd.log*).
    Log(log::LogArgs),
}

/// The process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Ok = 0,
    Failure = 1,
    BadInput = 2,
}

#[derive(Debug, thiserror::Error)]
enum CtlError {
    #[error("Cannot read {}: {source}", .path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Cannot reach the system bus at {address}: {source}")]
    Connect {
        address: String,
        source: zbus::Error,
    },
    #[error("The system bus at {address} did not answer within {seconds} s")]
    ConnectTimeout { address: String, seconds: u64 },
    #[error("{}", describe(.0))]
    Host(HostError),
    #[error("Cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("hostd answered with something that is not JSON: {0}")]
    BadAnswer(serde_json::Error),
    #[error("Cannot wait for Ctrl-C: {0}")]
    Signal(std::io::Error),
    #[error("Console: {0}")]
    Console(std::io::Error),
    /// The guest has no console to attach to: it does not exist or is not running (the
    /// caller's mistake, like any other request about a guest in the wrong state).
    #[error(
        "guest {name} has no console at {} (is it running? cairnctl vm list): {source}",
        .socket.display()
    )]
    NoConsole {
        name: String,
        socket: PathBuf,
        source: std::io::Error,
    },
}

impl CtlError {
    fn exit(&self) -> Exit {
        match self {
            Self::ReadFile { .. } | Self::NoConsole { .. } => Exit::BadInput,
            Self::Host(error) if error.is_bad_input() => Exit::BadInput,
            Self::Host(_)
            | Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::Runtime(_)
            | Self::BadAnswer(_)
            | Self::Signal(_)
            | Self::Console(_) => Exit::Failure,
        }
    }
}

impl From<HostError> for CtlError {
    fn from(error: HostError) -> Self {
        Self::Host(error)
    }
}

fn describe(error: &HostError) -> String {
    match error {
        HostError::Invalid(lines) => {
            let indented: Vec<String> = lines.lines().map(|line| format!("  {line}")).collect();
            format!("The document is refused:\n{}", indented.join("\n"))
        }
        HostError::NotFound(text)
        | HostError::Storage(text)
        | HostError::System(text)
        | HostError::ApplyFailed(text)
        | HostError::Cancelled(text)
        | HostError::Busy(text)
        | HostError::Refused(text)
        | HostError::WrongState(text) => text.clone(),
        HostError::ZBus(zbus::Error::MethodError(name, _, _))
            if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown"
                || name.as_str() == "org.freedesktop.DBus.Error.NameHasNoOwner" =>
        {
            format!("hostd is not on the bus ({} has no owner)", api::BUS_NAME)
        }
        HostError::ZBus(error) => format!("The call to hostd failed: {error}"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "cairnctl",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Bus(command) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(CtlError::Runtime)
            .and_then(|runtime| runtime.block_on(run(&cli, command))),
    };
    match result {
        Ok(()) => ExitCode::from(Exit::Ok as u8),
        Err(error) => {
            eprintln!("cairnctl: {error}");
            ExitCode::from(error.exit() as u8)
        }
    }
}

async fn run(cli: &Cli, command: &BusCommand) -> Result<(), CtlError> {
    // Files first: a bad path is the caller's mistake whether or not hostd is up.
    let document = match command {
        BusCommand::Config(command) => command.document()?,
        _ => None,
    };
    let mut builder = zbus::connection::Builder::address(cli.bus_address.as_str());
    if let BusCommand::Vm(_) = command {
        // A stop waits up to its --timeout (at most 600 s) for the guest, then forces it.
        builder = builder.method_timeout(VM_METHOD_TIMEOUT);
    }
    let connect = builder.build();
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| CtlError::ConnectTimeout {
            address: cli.bus_address.clone(),
            seconds: CONNECT_TIMEOUT.as_secs(),
        })?
        .map_err(|source| CtlError::Connect {
            address: cli.bus_address.clone(),
            source,
        })?;
    let host = Host1Proxy::new(&connection)
        .await
        .map_err(|error| CtlError::Host(HostError::ZBus(error)))?;
    let out = match command {
        BusCommand::Status => {
            let text = host.status().await?;
            if cli.json {
                text
            } else {
                let status: Status = serde_json::from_str(&text).map_err(CtlError::BadAnswer)?;
                human_status(&status)
            }
        }
        BusCommand::Board => {
            let text = host.board().await?;
            if cli.json {
                text
            } else {
                let value: serde_json::Value =
                    serde_json::from_str(&text).map_err(CtlError::BadAnswer)?;
                serde_json::to_string_pretty(&value).expect("a JSON value prints")
            }
        }
        BusCommand::Config(command) => {
            config::run(&connection, &host, command, document.as_deref(), cli.json).await?
        }
        BusCommand::Net(command) => net::run(&host, command, cli.json).await?,
        BusCommand::Storage(command) => storage::run(&connection, &host, command, cli.json).await?,
        BusCommand::Vm(command) => vm::run(&connection, command, cli.json).await?,
        BusCommand::Job(command) => job::run(&connection, &host, command, cli.json).await?,
        BusCommand::Log(args) => {
            log::run(&host, args, cli.json).await?;
            return Ok(());
        }
    };
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (`| head`) is not an error worth reporting.
    let _ = writeln!(stdout, "{out}");
    Ok(())
}

fn human_status(status: &Status) -> String {
    let uptime = status
        .uptime_seconds
        .map_or_else(|| "unknown".to_string(), |s| format!("{s:.0} s"));
    let generation = match status.generation {
        0 => "none committed".to_string(),
        n => n.to_string(),
    };
    let mut text = format!(
        "board:        {}\nuptime:       {uptime}\ngeneration:   {generation}\npersistence:  {}",
        status.board,
        if status.persistence {
            "on"
        } else {
            "OFF (changes are lost at reboot)"
        }
    );
    if let Some(error) = &status.reconcile_error {
        text.push_str(&format!("\nDRIFT:        {error}"));
    }
    for alert in &status.alerts {
        text.push_str(&format!("\nALERT:        {alert}"));
    }
    if let Some(checked) = status.drift_checked_unix {
        text.push_str(&format!(
            "\ndrift check:  {} UTC",
            cairn_api::utc::readable(checked)
        ));
    }
    for drift in &status.drift {
        let label = match drift.outcome {
            DriftOutcome::Corrected => "corrected:   ",
            DriftOutcome::Reported => "DRIFT:       ",
            DriftOutcome::Failed => "DRIFT:       ",
        };
        text.push_str(&format!(
            "\n{label} {}: {} ({}, {} UTC)",
            drift.subsystem,
            drift.difference,
            drift.outcome.as_str(),
            cairn_api::utc::readable(drift.seen_unix)
        ));
        if !drift.why.is_empty() {
            text.push_str(&format!("\n              why: {}", drift.why));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_what_differs_from_the_document_and_why_it_stays() {
        let status = Status {
            board: "qemu-x86_64".into(),
            generation: 3,
            persistence: true,
            drift_checked_unix: Some(1_700_000_060),
            drift: vec![
                api::DriftView {
                    subsystem: "storage".into(),
                    difference: "mount volume tank at /volume1".into(),
                    outcome: DriftOutcome::Reported,
                    why: "storage is changed only by an apply or a storage job".into(),
                    seen_unix: 1_700_000_000,
                },
                api::DriftView {
                    subsystem: "network".into(),
                    difference: "enslave lan2 to bond0".into(),
                    outcome: DriftOutcome::Corrected,
                    why: String::new(),
                    seen_unix: 1_700_000_000,
                },
            ],
            ..Status::default()
        };
        let text = human_status(&status);
        let tail: Vec<&str> = text.lines().skip(4).collect();
        assert_eq!(
            tail,
            [
                "drift check:  2023-11-14 22:14:20 UTC",
                "DRIFT:        storage: mount volume tank at /volume1 (reported, 2023-11-14 22:13:20 UTC)",
                "              why: storage is changed only by an apply or a storage job",
                "corrected:    network: enslave lan2 to bond0 (corrected, 2023-11-14 22:13:20 UTC)",
            ]
        );
    }

    #[test]
    fn exit_codes_follow_the_error_kind() {
        assert_eq!(
            CtlError::Host(HostError::Invalid("x".into())).exit(),
            Exit::BadInput
        );
        assert_eq!(
            CtlError::Host(HostError::NotFound("x".into())).exit(),
            Exit::BadInput
        );
        assert_eq!(
            CtlError::Host(HostError::Storage("x".into())).exit(),
            Exit::Failure
        );
        let no_console = CtlError::NoConsole {
            name: "web".into(),
            socket: PathBuf::from("/run/cairn/guests/web/console.sock"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(no_console.exit(), Exit::BadInput);
        // What a guest start meets when its volume is not mounted is the caller's to fix,
        // as it is for `cairnctl storage`: exit 2, not 1 (hostd sends it as `NotFound`, see
        // its api/error.rs tests).
        let not_mounted = HostError::NotFound("Volume tank is not mounted at /volume1".into());
        assert_eq!(CtlError::Host(not_mounted).exit(), Exit::BadInput);
        let refused = describe(&HostError::Invalid("a: b\nc: d".into()));
        assert_eq!(refused, "The document is refused:\n  a: b\n  c: d");
    }

    #[test]
    fn cli_parses() {
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["cairnctl", "--json", "config", "rollback", "3"]).expect("parses");
        assert!(cli.json);
        assert!(matches!(
            cli.command,
            Command::Bus(BusCommand::Config(ConfigCommand::Rollback {
                generation: 3
            }))
        ));
    }
}
