//! cairnctl: the appliance's command line, a client of hostd's `org.cairn.Host1` on the system
//! bus. Human output by default, `--json` for scripts.
//!
//! Exit codes: 0 done; 2 bad input (a refused document, an unknown generation, a file that
//! cannot be read); 1 anything else failing (the bus or hostd unreachable, storage errors).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use hostd::api::{self, Host1Proxy, HostError, Status};
use serde_json::json;

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
    /// Board, uptime, desired-state generation and whether it persists.
    Status,
    /// The board's configuration.
    Board,
    /// The desired state: show, plan, apply, history, rollback.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script.
    Completions { shell: Shell },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// The committed document (TOML), headed by its generation.
    Show,
    /// Validate FILE ("-": stdin) and say what applying it would change.
    Plan { file: PathBuf },
    /// Validate FILE ("-": stdin) as a whole and commit it.
    Apply { file: PathBuf },
    /// The kept generations, oldest first.
    History,
    /// Commit generation N again, as a new generation.
    Rollback { generation: u64 },
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
}

impl CtlError {
    fn exit(&self) -> Exit {
        match self {
            Self::ReadFile { .. } => Exit::BadInput,
            Self::Host(error) if error.is_bad_input() => Exit::BadInput,
            Self::Host(_)
            | Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::Runtime(_)
            | Self::BadAnswer(_) => Exit::Failure,
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
        HostError::NotFound(text) | HostError::Storage(text) => text.clone(),
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
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(CtlError::Runtime)
            .and_then(|runtime| runtime.block_on(run(&cli))),
    };
    match result {
        Ok(()) => ExitCode::from(Exit::Ok as u8),
        Err(error) => {
            eprintln!("cairnctl: {error}");
            ExitCode::from(error.exit() as u8)
        }
    }
}

async fn run(cli: &Cli) -> Result<(), CtlError> {
    // Files first: a bad path is the caller's mistake whether or not hostd is up.
    let document = match &cli.command {
        Command::Config(ConfigCommand::Plan { file } | ConfigCommand::Apply { file }) => {
            Some(read_document(file)?)
        }
        _ => None,
    };
    let connect = zbus::connection::Builder::address(cli.bus_address.as_str()).build();
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
    let out = match &cli.command {
        Command::Status => {
            let text = host.status().await?;
            if cli.json {
                text
            } else {
                let status: Status = serde_json::from_str(&text).map_err(CtlError::BadAnswer)?;
                human_status(&status)
            }
        }
        Command::Board => {
            let text = host.board().await?;
            if cli.json {
                text
            } else {
                let value: serde_json::Value =
                    serde_json::from_str(&text).map_err(CtlError::BadAnswer)?;
                serde_json::to_string_pretty(&value).expect("a JSON value prints")
            }
        }
        Command::Config(ConfigCommand::Show) => {
            let (generation, toml) = host.config_show().await?;
            if cli.json {
                json!({ "generation": generation, "toml": toml }).to_string()
            } else {
                format!("# generation {generation}\n{}", toml.trim_end())
            }
        }
        Command::Config(ConfigCommand::Plan { .. }) => {
            let plan = host
                .config_plan(document.as_deref().unwrap_or_default())
                .await?;
            if cli.json {
                json!({ "plan": plan }).to_string()
            } else {
                plan.trim_end().to_string()
            }
        }
        Command::Config(ConfigCommand::Apply { .. }) => {
            let generation = host
                .config_apply(document.as_deref().unwrap_or_default())
                .await?;
            if cli.json {
                json!({ "generation": generation }).to_string()
            } else {
                format!("applied: generation {generation}")
            }
        }
        Command::Config(ConfigCommand::History) => {
            let history = host.config_history().await?;
            if cli.json {
                let entries: Vec<_> = history
                    .iter()
                    .map(|(g, t)| json!({ "generation": g, "committed_at": t }))
                    .collect();
                serde_json::Value::from(entries).to_string()
            } else if history.is_empty() {
                "no generation committed yet".to_string()
            } else {
                let mut text = String::from("generation  committed (UTC)");
                for (generation, at) in &history {
                    text.push_str(&format!("\n{generation:>10}  {}", utc(*at)));
                }
                text
            }
        }
        Command::Config(ConfigCommand::Rollback { generation }) => {
            let new = host.config_rollback(*generation).await?;
            if cli.json {
                json!({ "generation": new }).to_string()
            } else {
                format!("rolled back to generation {generation}: now generation {new}")
            }
        }
        Command::Completions { .. } => unreachable!("handled without a bus"),
    };
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (`| head`) is not an error worth reporting.
    let _ = writeln!(stdout, "{out}");
    Ok(())
}

fn read_document(path: &PathBuf) -> Result<String, CtlError> {
    let mut text = String::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|read| text = read)
    };
    result.map_err(|source| CtlError::ReadFile {
        path: path.clone(),
        source,
    })?;
    Ok(text)
}

fn human_status(status: &Status) -> String {
    let uptime = status
        .uptime_seconds
        .map_or_else(|| "unknown".to_string(), |s| format!("{s:.0} s"));
    let generation = match status.generation {
        0 => "none committed".to_string(),
        n => n.to_string(),
    };
    format!(
        "board:        {}\nuptime:       {uptime}\ngeneration:   {generation}\npersistence:  {}",
        status.board,
        if status.persistence {
            "on"
        } else {
            "OFF (changes are lost at reboot)"
        }
    )
}

/// Seconds since 1970 as `YYYY-MM-DD HH:MM:SS` (UTC; proleptic Gregorian).
fn utc(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX);
    let rest = seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
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
            Command::Config(ConfigCommand::Rollback { generation: 3 })
        ));
    }
}
