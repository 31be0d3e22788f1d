//! cairnctl: the appliance's command line, a client of hostd's `org.cairn.Host1` on the system
//! bus. Human output by default, `--json` for scripts.
//!
//! Exit codes: 0 done; 2 bad input (a refused document, an unknown generation, a file that
//! cannot be read); 1 anything else failing (the bus or hostd unreachable, storage errors).

mod vm;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use cairn_api::JobView as JobSnapshot;
use cairn_api::net::{NetView, Section};
use cairn_api::storage::StorageView;
use cairn_api::{self as api, Host1Proxy, HostError, Job1Proxy, JobState, Status, WireLogRecord};
use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use serde_json::json;
use zbus::OwnedObjectPath;

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
    /// Board, uptime, desired-state generation and whether it persists.
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
    Log {
        /// Keep printing new records until interrupted (Ctrl-C).
        #[arg(short, long)]
        follow: bool,
        /// Print only the last N records first.
        #[arg(short = 'n', long, value_name = "N")]
        lines: Option<usize>,
    },
    /// Print a shell completion script.
    Completions { shell: Shell },
}

#[derive(Debug, Subcommand)]
enum NetCommand {
    /// Everything below.
    Show,
    /// The board's LAN ports: link, cable, MAC, PCI address, bond or vSwitch.
    Port,
    /// Bonds: mode, link monitoring, primary, members.
    Bond,
    /// vSwitches and what is attached to them.
    Vswitch,
    /// VLAN interfaces.
    Vlan,
    /// The management address: addresses, default route, DNS servers.
    Address,
    /// Guests' ports on the vSwitches (hostd makes them for guests; attach and detach by
    /// hand to wire an outside VMM or to test a VLAN).
    Tap {
        #[command(subcommand)]
        command: Option<TapCommand>,
    },
}

#[derive(Debug, Subcommand)]
enum TapCommand {
    /// The guest ports, their vSwitch and VLAN.
    List,
    /// Put a guest port (created when missing) on a vSwitch.
    Attach {
        /// The port's interface name (at most 15 characters).
        tap: String,
        /// A vSwitch of the committed document.
        #[arg(long)]
        vswitch: String,
        /// The VLAN (1 to 4094) the guest's untagged frames are on; the native VLAN without.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=4094))]
        vlan: Option<u16>,
    },
    /// Delete a guest port.
    Detach { tap: String },
}

impl NetCommand {
    fn section(&self) -> Section {
        match self {
            Self::Tap { .. } => Section::Taps,
            Self::Show => Section::All,
            Self::Port => Section::Ports,
            Self::Bond => Section::Bonds,
            Self::Vswitch => Section::VSwitches,
            Self::Vlan => Section::Vlans,
            Self::Address => Section::Address,
        }
    }
}

#[derive(Debug, Subcommand)]
enum StorageCommand {
    /// The drives: slot, device, HDD or SSD, size, model, serial, use, stable path.
    Drives,
    /// The document's volumes: state, profiles, space, member drives.
    Volume,
    /// Each volume's SSD cache: mode, state, dirty data, hit ratio, SSDs.
    Cache,
    /// Replace drive OLD (its path, or `missing`) of VOLUME by the blank drive NEW, as a job
    /// with progress.
    Replace {
        volume: String,
        old: String,
        new: String,
    },
    /// Add the blank drive NEW to VOLUME, then rebalance its data over all its drives, as a
    /// job with progress.
    Add { volume: String, new: String },
    /// Move drive OLD's data onto VOLUME's other drives and release it (left blank), as a job
    /// with progress; refused when the drives left could not hold the volume's profile or data.
    Remove { volume: String, old: String },
    /// Read every copy of every block of VOLUME and repair what can be; prints the counters.
    Scrub { volume: String },
    /// Subvolumes at the top of a volume.
    #[command(subcommand)]
    Subvolume(SubvolumeCommand),
    /// Read-only snapshots and writable clones of subvolumes.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(Debug, Subcommand)]
enum SubvolumeCommand {
    /// An empty subvolume NAME in VOLUME (mounted at /volumeN/NAME).
    Create { volume: String, name: String },
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// A read-only snapshot NAME of subvolume SOURCE; --writable makes a clone instead.
    Create {
        #[arg(long)]
        writable: bool,
        volume: String,
        source: String,
        name: String,
    },
    /// The subvolumes, snapshots and clones of VOLUME with origin and size.
    List { volume: String },
    /// Delete subvolume, snapshot or clone NAME.
    Delete { volume: String, name: String },
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// The jobs hostd remembers, oldest first.
    List,
    /// One job's state, progress and result.
    Show { id: u64 },
    /// Follow a job's progress until it ends.
    Wait { id: u64 },
    /// Stop a running job at its next step; it rolls back what it did.
    Cancel { id: u64 },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// The committed document (TOML), headed by its generation.
    Show,
    /// Validate FILE ("-": stdin) and say what applying it would change.
    Plan { file: PathBuf },
    /// Validate FILE ("-": stdin) as a whole, commit it and bring the box to it, showing each
    /// step; Ctrl-C cancels and rolls back.
    Apply { file: PathBuf },
    /// The kept generations, oldest first.
    History,
    /// Apply generation N again, as a new generation.
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
    let mut builder = zbus::connection::Builder::address(cli.bus_address.as_str());
    if let Command::Vm(_) = &cli.command {
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
            let path = host
                .config_apply(document.as_deref().unwrap_or_default())
                .await?;
            let applied = follow_apply(&connection, path, cli.json).await?;
            if cli.json {
                serde_json::to_string(&applied).expect("an outcome is strings and numbers")
            } else {
                human_applied(&applied, "applied")
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
                    text.push_str(&format!(
                        "\n{generation:>10}  {}",
                        cairn_api::utc::readable(*at)
                    ));
                }
                text
            }
        }
        Command::Config(ConfigCommand::Rollback { generation }) => {
            let path = host.config_rollback(*generation).await?;
            let applied = follow_apply(&connection, path, cli.json).await?;
            if cli.json {
                serde_json::to_string(&applied).expect("an outcome is strings and numbers")
            } else {
                human_applied(&applied, &format!("rolled back to generation {generation}"))
            }
        }
        Command::Net(NetCommand::Tap {
            command: Some(command @ (TapCommand::Attach { .. } | TapCommand::Detach { .. })),
        }) => {
            let done = match command {
                TapCommand::Attach { tap, vswitch, vlan } => {
                    host.tap_attach(tap, vswitch, vlan.unwrap_or(0)).await?
                }
                TapCommand::Detach { tap } => host.tap_detach(tap).await?,
                TapCommand::List => unreachable!("not matched by this arm"),
            };
            if cli.json {
                json!({ "actions": done }).to_string()
            } else if done.is_empty() {
                "nothing to do: the port is already there".to_string()
            } else {
                done.iter()
                    .map(|a| format!("done: {a}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        Command::Net(command) => {
            let view: NetView =
                serde_json::from_str(&host.net_show().await?).map_err(CtlError::BadAnswer)?;
            if cli.json {
                view.json(command.section()).to_string()
            } else {
                view.render(command.section())
            }
        }
        Command::Storage(command) if command.is_job() || command.is_list() => {
            storage_operation(&connection, &host, command, cli.json).await?
        }
        Command::Storage(command) => {
            let text = host.storage_show().await?;
            let view: StorageView = serde_json::from_str(&text).map_err(CtlError::BadAnswer)?;
            match (command, cli.json) {
                (StorageCommand::Drives, true) => {
                    serde_json::to_string(&view.drives).expect("drives are strings and numbers")
                }
                (StorageCommand::Volume, true) => {
                    serde_json::to_string(&view.volumes).expect("volumes are strings and numbers")
                }
                (StorageCommand::Cache, true) => {
                    serde_json::to_string(&view.caches).expect("caches are strings and numbers")
                }
                (StorageCommand::Drives, false) => view.render_drives(),
                (StorageCommand::Volume, false) => view.render_volumes(),
                (StorageCommand::Cache, false) => view.render_caches(),
                (_, _) => unreachable!("operations are handled above"),
            }
        }
        Command::Vm(command) => vm::run(&connection, command, cli.json).await?,
        Command::Job(command) => job_command(&connection, &host, command, cli.json).await?,
        Command::Log { follow, lines } => {
            print_log(&host, *follow, *lines, cli.json).await?;
            return Ok(());
        }
        Command::Completions { .. } => unreachable!("handled without a bus"),
    };
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (`| head`) is not an error worth reporting.
    let _ = writeln!(stdout, "{out}");
    Ok(())
}

impl StorageCommand {
    fn is_job(&self) -> bool {
        match self {
            Self::Replace { .. }
            | Self::Add { .. }
            | Self::Remove { .. }
            | Self::Scrub { .. }
            | Self::Subvolume(_)
            | Self::Snapshot(SnapshotCommand::Create { .. } | SnapshotCommand::Delete { .. }) => {
                true
            }
            Self::Drives
            | Self::Volume
            | Self::Cache
            | Self::Snapshot(SnapshotCommand::List { .. }) => false,
        }
    }

    fn is_list(&self) -> bool {
        matches!(self, Self::Snapshot(SnapshotCommand::List { .. }))
    }
}

/// Starts a storage job and follows it to its end (or lists snapshots); the job's JSON
/// result with `--json`, a short line otherwise.
async fn storage_operation(
    connection: &zbus::Connection,
    host: &Host1Proxy<'_>,
    command: &StorageCommand,
    json: bool,
) -> Result<String, CtlError> {
    let path = match command {
        StorageCommand::Snapshot(SnapshotCommand::List { volume }) => {
            let text = host.snapshot_list(volume).await?;
            if json {
                return Ok(text);
            }
            let entries: Vec<cairn_api::storage::SubvolumeEntry> =
                serde_json::from_str(&text).map_err(CtlError::BadAnswer)?;
            let mut out = format!(
                "{:<24} {:<9} {:<24} {:>12}",
                "name", "kind", "origin", "bytes"
            );
            for entry in entries {
                let kind = match (&entry.origin, entry.read_only) {
                    (None, false) => "subvolume",
                    (None, true) => "read-only",
                    (Some(_), true) => "snapshot",
                    (Some(_), false) => "clone",
                };
                out.push_str(&format!(
                    "\n{:<24} {kind:<9} {:<24} {:>12}",
                    entry.name,
                    entry.origin.as_deref().unwrap_or("-"),
                    entry.bytes
                ));
            }
            return Ok(out);
        }
        StorageCommand::Replace { volume, old, new } => {
            host.storage_replace(volume, old, new).await?
        }
        StorageCommand::Add { volume, new } => host.storage_add(volume, new).await?,
        StorageCommand::Remove { volume, old } => host.storage_remove(volume, old).await?,
        StorageCommand::Scrub { volume } => host.storage_scrub(volume).await?,
        StorageCommand::Subvolume(SubvolumeCommand::Create { volume, name }) => {
            host.subvolume_create(volume, name).await?
        }
        StorageCommand::Snapshot(SnapshotCommand::Create {
            writable,
            volume,
            source,
            name,
        }) => {
            host.snapshot_create(volume, source, name, *writable)
                .await?
        }
        StorageCommand::Snapshot(SnapshotCommand::Delete { volume, name }) => {
            host.snapshot_delete(volume, name).await?
        }
        StorageCommand::Drives | StorageCommand::Volume | StorageCommand::Cache => {
            unreachable!("views are not jobs")
        }
    };
    let job = job_proxy(connection, path).await?;
    let finished = follow_job(&job, json).await?;
    match finished.state {
        JobState::Succeeded if json => Ok(finished.result),
        JobState::Succeeded => Ok(format!("done: {}", finished.result)),
        JobState::Failed | JobState::Cancelled | JobState::Running => Err(CtlError::Host(
            HostError::from_job(&finished.error_name, finished.error.clone()),
        )),
    }
}

/// How often a client asks a job or the log for news: quick enough to feel live on the
/// console, slow enough to cost hostd nothing.
const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

async fn job_proxy<'a>(
    connection: &'a zbus::Connection,
    path: OwnedObjectPath,
) -> Result<Job1Proxy<'a>, CtlError> {
    Job1Proxy::builder(connection)
        .path(path)
        .build()
        .await
        .map_err(|error| CtlError::Host(HostError::ZBus(error)))
}

async fn snapshot(job: &Job1Proxy<'_>) -> Result<JobSnapshot, CtlError> {
    let text = job.snapshot().await?;
    serde_json::from_str(&text).map_err(CtlError::BadAnswer)
}

/// Prints each step of a job as it changes (to stderr, so that `--json` stdout stays one
/// document) until it ends; Ctrl-C asks hostd to cancel it and keeps following the rollback.
async fn follow_job(job: &Job1Proxy<'_>, quiet: bool) -> Result<JobSnapshot, CtlError> {
    let mut last_shown = String::new();
    let mut cancel_asked = false;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let seen = snapshot(job).await?;
        let line = format!("[{}/{}] {}", seen.done, seen.total, seen.step);
        if !quiet && line != last_shown && seen.state == JobState::Running {
            eprintln!("{line}");
            last_shown = line;
        }
        if seen.state != JobState::Running {
            return Ok(seen);
        }
        tokio::select! {
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            result = &mut interrupted, if !cancel_asked => {
                result.map_err(CtlError::Signal)?;
                cancel_asked = true;
                eprintln!("cancelling job {} (it rolls back what it did)…", seen.id);
                // Finished in between is fine: the next snapshot says how it ended.
                let _ = job.cancel().await;
            }
        }
    }
}

/// Follows an apply job to its end and turns its outcome into a result or an error.
async fn follow_apply(
    connection: &zbus::Connection,
    path: OwnedObjectPath,
    quiet: bool,
) -> Result<cairn_api::Applied, CtlError> {
    let job = job_proxy(connection, path).await?;
    let finished = follow_job(&job, quiet).await?;
    job_outcome(&finished)
}

fn job_outcome(finished: &JobSnapshot) -> Result<cairn_api::Applied, CtlError> {
    match finished.state {
        JobState::Succeeded => serde_json::from_str(&finished.result).map_err(CtlError::BadAnswer),
        JobState::Failed | JobState::Cancelled | JobState::Running => Err(CtlError::Host(
            HostError::from_job(&finished.error_name, finished.error.clone()),
        )),
    }
}

fn human_applied(applied: &cairn_api::Applied, what: &str) -> String {
    let mut text = format!("{what}: generation {}", applied.generation);
    if applied.actions.is_empty() {
        text.push_str(
            "
the box already matched; no action needed",
        );
    }
    for action in &applied.actions {
        text.push_str(&format!(
            "
done: {action}"
        ));
    }
    if !applied.recorded_only.is_empty() {
        text.push_str(&format!(
            "
recorded only (an apply does not start or stop guests: `cairnctl vm`, autostart): {}",
            applied.recorded_only.join(", ")
        ));
    }
    text
}

async fn job_command(
    connection: &zbus::Connection,
    host: &Host1Proxy<'_>,
    command: &JobCommand,
    json: bool,
) -> Result<String, CtlError> {
    match command {
        JobCommand::List => {
            let mut jobs = Vec::new();
            for path in host.jobs().await? {
                jobs.push(snapshot(&job_proxy(connection, path).await?).await?);
            }
            Ok(if json {
                serde_json::to_string(&jobs).expect("snapshots are strings and numbers")
            } else if jobs.is_empty() {
                "no jobs since hostd started".to_string()
            } else {
                let mut text = format!(
                    "{:>4}  {:<14} {:<10} {:>7}  step",
                    "id", "kind", "state", "steps"
                );
                for job in &jobs {
                    text.push_str(&format!(
                        "\n{:>4}  {:<14} {:<10} {:>7}  {}",
                        job.id,
                        job.kind,
                        job.state.as_str(),
                        format!("{}/{}", job.done, job.total),
                        job.step
                    ));
                }
                text
            })
        }
        JobCommand::Show { id } | JobCommand::Wait { id } | JobCommand::Cancel { id } => {
            let job = find_job(connection, host, *id).await?;
            let seen = match command {
                JobCommand::Wait { .. } => follow_job(&job, json).await?,
                JobCommand::Cancel { .. } => {
                    job.cancel().await?;
                    follow_job(&job, json).await?
                }
                JobCommand::Show { .. } | JobCommand::List => snapshot(&job).await?,
            };
            Ok(if json {
                serde_json::to_string(&seen).expect("a snapshot is strings and numbers")
            } else {
                human_job(&seen)
            })
        }
    }
}

async fn find_job<'a>(
    connection: &'a zbus::Connection,
    host: &Host1Proxy<'_>,
    id: u64,
) -> Result<Job1Proxy<'a>, CtlError> {
    let wanted = api::job_path(id);
    if !host.jobs().await?.contains(&wanted) {
        return Err(CtlError::Host(HostError::NotFound(format!(
            "No job {id}; `cairnctl job list` shows the jobs hostd remembers"
        ))));
    }
    job_proxy(connection, wanted).await
}

fn human_job(job: &JobSnapshot) -> String {
    let mut text = format!(
        "job {}: {} — {} ({}/{} steps)\nstep: {}",
        job.id,
        job.kind,
        job.state.as_str(),
        job.done,
        job.total,
        job.step
    );
    if !job.result.is_empty() {
        text.push_str(&format!("\nresult: {}", job.result));
    }
    if !job.error.is_empty() {
        text.push_str(&format!("\nerror: {}", job.error));
    }
    text
}

/// Records asked for per call while following.
const LOG_BATCH: u32 = 500;

async fn print_log(
    host: &Host1Proxy<'_>,
    follow: bool,
    last: Option<usize>,
    json: bool,
) -> Result<(), CtlError> {
    let mut since = 0;
    let mut first = true;
    loop {
        let (next, mut records) = host.log(since, LOG_BATCH).await?;
        if first && let Some(keep) = last {
            // Only the tail of what is there now: fetch it all, then cut.
            let mut all = records;
            let mut next_all = next;
            loop {
                let (more_next, more) = host.log(next_all, LOG_BATCH).await?;
                if more.is_empty() {
                    break;
                }
                all.extend(more);
                next_all = more_next;
            }
            records = all.split_off(all.len().saturating_sub(keep));
            since = next_all;
        } else {
            if let Some(gap_end) = records.first().map(|record| record.0)
                && gap_end > since
                && !first
            {
                eprintln!(
                    "cairnctl: {} records were dropped from the ring before they could be read",
                    gap_end - since
                );
            }
            since = next;
        }
        first = false;
        let mut stdout = std::io::stdout().lock();
        for record in &records {
            let line = if json {
                log_json(record).to_string()
            } else {
                human_log(record)
            };
            if writeln!(stdout, "{line}").is_err() {
                return Ok(()); // `| head`
            }
        }
        drop(stdout);
        if records.len() == LOG_BATCH as usize {
            continue; // more waiting right now
        }
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn log_json(record: &WireLogRecord) -> serde_json::Value {
    let (sequence, micros, level, target, message) = record;
    json!({
        "sequence": sequence,
        "time_us": micros,
        "level": level,
        "target": target,
        "message": message,
    })
}

fn human_log(record: &WireLogRecord) -> String {
    let (_, micros, level, target, message) = record;
    format!(
        "{}.{:03} {level:>5} {target}: {message}",
        cairn_api::utc::readable(micros / 1_000_000),
        micros % 1_000_000 / 1000
    )
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
    text
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Command::Config(ConfigCommand::Rollback { generation: 3 })
        ));
    }
}
