//! `cairnctl vm`: guests through `org.cairn.Guests1`, and `vm console` straight onto the
//! guest's console socket (root-only, like the bus).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use cairn_api::guests::{Capacity, GuestView, Mib, RUN_DIR, RunPaths};
use cairn_api::{Guests1Proxy, HostError};
use clap::{Args, Subcommand};
use serde_json::json;

use super::CtlError;

/// The byte that detaches `vm console`: Ctrl-] (as telnet and virsh).
const DETACH: u8 = 0x1d;

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Every guest with its state, size and restart policy.
    List,
    /// One guest: state, NICs, its last exit and the last lines of its console.
    Show {
        name: String,
    },
    /// Add a guest to the desired state (it does not start it).
    Create(Box<CreateArgs>),
    /// Start a guest; returns once it boots.
    Start {
        name: String,
    },
    /// Press the guest's power button and wait for it to power off; kill it after the
    /// timeout, or at once with --force.
    Stop {
        name: String,
        #[arg(long)]
        force: bool,
        /// Seconds to wait for the guest to power off before forcing it.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=600))]
        timeout: u32,
    },
    Reboot {
        name: String,
    },
    Pause {
        name: String,
    },
    Resume {
        name: String,
    },
    /// Remove a stopped guest from the desired state; --remove-disks deletes its
    /// subvolume and the disk files in it too.
    Delete {
        name: String,
        #[arg(long)]
        remove_disks: bool,
    },
    /// Attach this terminal to the guest's serial console; Ctrl-] detaches.
    Console {
        name: String,
    },
    /// Memory and vCPU headroom; with --vcpus and --memory, how many more such guests fit.
    Capacity {
        #[arg(long)]
        vcpus: Option<u32>,
        #[arg(long, value_parser = parse_memory)]
        memory: Option<u64>,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    name: String,
    /// A TOML file with the guest's keys (as in a `[[guests]]` table), instead of options.
    #[arg(long, conflicts_with_all = ["vcpus", "memory"])]
    file: Option<PathBuf>,
    #[arg(long, required_unless_present = "file")]
    vcpus: Option<u32>,
    /// 512M, 2G, 1.5G… (a whole number of MiB).
    #[arg(long, required_unless_present = "file", value_parser = parse_memory)]
    memory: Option<u64>,
    /// The volume whose subvolume vm-NAME holds the guest's disk files.
    #[arg(long)]
    volume: Option<String>,
    /// file=NAME[,size=10G][,ro] (in the guest's subvolume) or path=/dev/…[,ro]; repeat for
    /// more disks (at most 8).
    #[arg(long = "disk")]
    disks: Vec<String>,
    /// vswitch=NAME[,mac=52:54:00:…][,vlan=ID]; repeat for more NICs.
    #[arg(long = "nic")]
    nics: Vec<String>,
    /// Boot this kernel directly (else the firmware boots the first disk).
    #[arg(long)]
    kernel: Option<String>,
    #[arg(long, requires = "kernel")]
    initramfs: Option<String>,
    #[arg(long, requires = "kernel")]
    cmdline: Option<String>,
    /// Start at boot, in this order (lower first).
    #[arg(long)]
    autostart: Option<u32>,
    /// Seconds to wait after starting it at boot before the next guest.
    #[arg(long, requires = "autostart")]
    autostart_delay: Option<u32>,
    /// never, on-crash (default) or always.
    #[arg(long)]
    restart: Option<String>,
    /// Host threads only this guest runs on, e.g. 2,3.
    #[arg(long, value_delimiter = ',')]
    reserve_threads: Vec<u32>,
    /// Relative CPU share against other guests (1 to 10000; 100 by default).
    #[arg(long)]
    cpu_weight: Option<u32>,
}

/// A size with an optional unit (K, M, G, T; binary; M when none) as whole MiB.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let shift: u32 = match unit.trim().trim_end_matches("iB").trim_end_matches('B') {
        "K" | "k" => 10,
        "" | "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        other => return Err(format!("{other:?} is not a unit (expected K, M, G or T)")),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = format!("{whole}{fraction}");
    let numerator: u128 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (expected e.g. 512M, 2G, 1.5G)"))?;
    let denominator = 10u128.pow(u32::try_from(fraction.len()).unwrap_or(u32::MAX).min(30));
    let scaled = numerator << shift;
    if !scaled.is_multiple_of(denominator) || !(scaled / denominator).is_multiple_of(1 << 20) {
        return Err(format!(
            "{text} is not a whole number of MiB (expected e.g. 512M, 1536M, 2G)"
        ));
    }
    u64::try_from((scaled / denominator) >> 20).map_err(|_| format!("{text} is too large"))
}

/// `key=value,key=value,flag` → pairs.
fn options(text: &str) -> Vec<(&str, &str)> {
    text.split(',')
        .filter(|part| !part.is_empty())
        .map(|part| part.split_once('=').unwrap_or((part, "")))
        .collect()
}

fn bad(message: String) -> CtlError {
    CtlError::Host(HostError::Invalid(message))
}

/// The `[[guests]]` keys for the options given.
fn guest_toml(args: &CreateArgs) -> Result<String, CtlError> {
    if let Some(file) = &args.file {
        let text = std::fs::read_to_string(file).map_err(|source| CtlError::ReadFile {
            path: file.clone(),
            source,
        })?;
        let mut table: toml::Table = text
            .parse()
            .map_err(|error| bad(format!("{}: {error}", file.display())))?;
        table.insert("name".into(), args.name.clone().into());
        return Ok(toml::to_string(&table).expect("a table prints"));
    }
    let mut table = toml::Table::new();
    table.insert("name".into(), args.name.clone().into());
    table.insert("vcpus".into(), i64::from(args.vcpus.unwrap_or(1)).into());
    let memory = i64::try_from(args.memory.unwrap_or(0)).unwrap_or(i64::MAX);
    table.insert("memory_mib".into(), memory.into());
    if let Some(volume) = &args.volume {
        table.insert("volume".into(), volume.clone().into());
    }
    let mut disks = Vec::new();
    for (i, disk) in args.disks.iter().enumerate() {
        let mut entry = toml::Table::new();
        for (key, value) in options(disk) {
            match key {
                "file" | "path" => {
                    entry.insert(key.into(), value.into());
                }
                "size" => {
                    let mib = parse_memory(value)
                        .map_err(|e| bad(format!("--disk {}: size: {e}", i + 1)))?;
                    entry.insert(
                        "size_mib".into(),
                        i64::try_from(mib).unwrap_or(i64::MAX).into(),
                    );
                }
                "ro" | "readonly" => {
                    entry.insert("readonly".into(), true.into());
                }
                other => {
                    return Err(bad(format!(
                        "--disk {disk}: unknown option {other:?} (expected file=, path=, size=, ro)"
                    )));
                }
            }
        }
        disks.push(toml::Value::Table(entry));
    }
    if !disks.is_empty() {
        table.insert("disks".into(), disks.into());
    }
    let mut nics = Vec::new();
    for nic in &args.nics {
        let mut entry = toml::Table::new();
        for (key, value) in options(nic) {
            match key {
                "vswitch" | "mac" => {
                    entry.insert(key.into(), value.into());
                }
                "vlan" => {
                    let id: i64 = value
                        .parse()
                        .map_err(|_| bad(format!("--nic {nic}: vlan {value:?} is not a number")))?;
                    entry.insert("vlan".into(), id.into());
                }
                other => {
                    return Err(bad(format!(
                        "--nic {nic}: unknown option {other:?} (expected vswitch=, mac=, vlan=)"
                    )));
                }
            }
        }
        nics.push(toml::Value::Table(entry));
    }
    if !nics.is_empty() {
        table.insert("nics".into(), nics.into());
    }
    if let Some(kernel) = &args.kernel {
        let mut boot = toml::Table::new();
        boot.insert("kernel".into(), kernel.clone().into());
        if let Some(initramfs) = &args.initramfs {
            boot.insert("initramfs".into(), initramfs.clone().into());
        }
        if let Some(cmdline) = &args.cmdline {
            boot.insert("cmdline".into(), cmdline.clone().into());
        }
        table.insert("boot".into(), boot.into());
    }
    if let Some(order) = args.autostart {
        let mut autostart = toml::Table::new();
        autostart.insert("order".into(), i64::from(order).into());
        autostart.insert(
            "delay_s".into(),
            i64::from(args.autostart_delay.unwrap_or(0)).into(),
        );
        table.insert("autostart".into(), autostart.into());
    }
    if let Some(restart) = &args.restart {
        table.insert("restart".into(), restart.clone().into());
    }
    if !args.reserve_threads.is_empty() {
        let threads: Vec<toml::Value> = args
            .reserve_threads
            .iter()
            .map(|t| toml::Value::from(i64::from(*t)))
            .collect();
        table.insert("reserved_threads".into(), threads.into());
    }
    if let Some(weight) = args.cpu_weight {
        table.insert("cpu_weight".into(), i64::from(weight).into());
    }
    Ok(toml::to_string(&table).expect("a table prints"))
}

pub async fn run(
    connection: &zbus::Connection,
    command: &VmCommand,
    as_json: bool,
) -> Result<String, CtlError> {
    let guests = Guests1Proxy::new(connection)
        .await
        .map_err(|error| CtlError::Host(HostError::ZBus(error)))?;
    let done = |name: &str, state: String, what: &str| {
        if as_json {
            json!({ "name": name, "state": state }).to_string()
        } else {
            format!("guest {name} {what}: {state}")
        }
    };
    Ok(match command {
        VmCommand::List => {
            let text = guests.list().await?;
            if as_json {
                text
            } else {
                let views: Vec<GuestView> =
                    serde_json::from_str(&text).map_err(CtlError::BadAnswer)?;
                render_list(&views)
            }
        }
        VmCommand::Show { name } => {
            let text = guests.show(name).await?;
            if as_json {
                text
            } else {
                let view: GuestView = serde_json::from_str(&text).map_err(CtlError::BadAnswer)?;
                render_show(&view)
            }
        }
        VmCommand::Create(args) => {
            let generation = guests.create(&guest_toml(args)?).await?;
            if as_json {
                json!({ "name": args.name, "generation": generation }).to_string()
            } else {
                format!(
                    "guest {} created (generation {generation}); start it with `cairnctl vm start {}`",
                    args.name, args.name
                )
            }
        }
        VmCommand::Start { name } => done(name, guests.start(name).await?, "started"),
        VmCommand::Stop {
            name,
            force,
            timeout,
        } => done(name, guests.stop(name, *force, *timeout).await?, "stopped"),
        VmCommand::Reboot { name } => done(name, guests.reboot(name).await?, "rebooted"),
        VmCommand::Pause { name } => done(name, guests.pause(name).await?, "paused"),
        VmCommand::Resume { name } => done(name, guests.resume(name).await?, "resumed"),
        VmCommand::Delete { name, remove_disks } => {
            let generation = guests.delete(name, *remove_disks).await?;
            if as_json {
                json!({ "name": name, "generation": generation }).to_string()
            } else {
                format!("guest {name} deleted (generation {generation})")
            }
        }
        VmCommand::Capacity { vcpus, memory } => {
            let text = guests
                .capacity(vcpus.unwrap_or(0), memory.unwrap_or(0))
                .await?;
            if as_json {
                text
            } else {
                let capacity: Capacity =
                    serde_json::from_str(&text).map_err(CtlError::BadAnswer)?;
                render_capacity(&capacity, *vcpus, *memory)
            }
        }
        VmCommand::Console { name } => {
            // Blocking terminal I/O: on a thread of its own.
            let name = name.clone();
            tokio::task::spawn_blocking(move || console(&name))
                .await
                .map_err(|error| CtlError::Console(std::io::Error::other(error.to_string())))??;
            String::new()
        }
    })
}

fn render_list(views: &[GuestView]) -> String {
    if views.is_empty() {
        return "no guests (cairnctl vm create)".to_string();
    }
    let mut text = format!(
        "{:<20} {:<9} {:>5} {:>10}  {:<9} {:<8} {}",
        "GUEST", "STATE", "VCPUS", "MEMORY", "AUTOSTART", "RESTART", "PID"
    );
    for view in views {
        text.push_str(&format!(
            "\n{:<20} {:<9} {:>5} {:>10}  {:<9} {:<8} {}",
            view.name,
            view.state.to_string(),
            view.vcpus,
            Mib(view.memory_mib).to_string(),
            if view.autostart { "yes" } else { "no" },
            serde_json::to_value(view.restart)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            view.pid.map_or_else(|| "-".to_string(), |p| p.to_string()),
        ));
    }
    text
}

fn render_show(view: &GuestView) -> String {
    let mut text = format!(
        "guest      {}\nstate      {} since {}\nsize       {} vCPU, {}\n",
        view.name,
        view.state,
        cairn_api::utc::readable(view.since),
        view.vcpus,
        Mib(view.memory_mib)
    );
    if let Some(pid) = view.pid {
        text.push_str(&format!("pid        {pid}\n"));
    }
    for nic in &view.nics {
        text.push_str(&format!(
            "nic        {} on {}{} mac {}\n",
            nic.tap,
            nic.vswitch,
            nic.vlan.map(|v| format!(" vlan {v}")).unwrap_or_default(),
            nic.mac
        ));
    }
    if view.restarts > 0 {
        text.push_str(&format!("restarts   {}\n", view.restarts));
    }
    if let Some(exit) = &view.last_exit {
        text.push_str(&format!("last exit  {exit}\n"));
    }
    if !view.log_tail.is_empty() {
        text.push_str("cloud-hypervisor's last lines:\n");
        for line in &view.log_tail {
            text.push_str(&format!("  {line}\n"));
        }
    }
    if !view.console_tail.is_empty() {
        text.push_str(&format!("console ({}):\n", view.console_log));
        for line in &view.console_tail {
            text.push_str(&format!("  {line}\n"));
        }
    }
    text.trim_end().to_string()
}

fn render_capacity(capacity: &Capacity, vcpus: Option<u32>, memory: Option<u64>) -> String {
    let mut text = format!(
        "memory     {} free of {} (host reserve {}, {} running guest(s) use {})\nvCPUs      {} of {} shared vCPUs in use ({} threads, {} reserved, {} vCPUs per thread)",
        Mib(capacity.free_mib),
        Mib(capacity.memory_mib),
        Mib(capacity.host_reserve_mib),
        capacity.running,
        Mib(capacity.guests_mib),
        capacity.shared_vcpus_used,
        capacity.shared_vcpus_limit,
        capacity.threads,
        capacity.reserved_threads.len(),
        capacity.vcpus_per_thread,
    );
    match (&capacity.fits, vcpus, memory) {
        (Some(fits), _, _) => text.push_str(&format!(
            "\nfits       {} more guest(s) of {} vCPU, {} (each costs {}; limited by {})",
            fits.count,
            fits.vcpus,
            Mib(fits.memory_mib),
            Mib(fits.cost_mib),
            fits.limited_by
        )),
        (None, Some(_), None) | (None, None, Some(_)) => {
            text.push_str("\n(give both --vcpus and --memory to count how many fit)");
        }
        (None, _, _) => {}
    }
    text
}

/// Raw terminal while attached; restored on every way out.
struct RawMode {
    saved: Option<nix::sys::termios::Termios>,
}

impl RawMode {
    fn enter() -> Self {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            cfmakeraw(&mut raw);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        }
        Self { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

fn console(name: &str) -> Result<(), CtlError> {
    let paths = RunPaths::new(std::path::Path::new(RUN_DIR), name);
    let socket = paths.console_socket();
    let mut stream = UnixStream::connect(&socket).map_err(|error| CtlError::NoConsole {
        name: name.to_string(),
        socket: socket.clone(),
        source: error,
    })?;
    eprintln!("Connected to guest {name}'s serial console; Ctrl-] detaches.\r");
    let mut reader = stream.try_clone().map_err(CtlError::Console)?;
    let raw = RawMode::enter();
    // Guest → terminal until the guest's side closes.
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        let mut stdout = std::io::stdout();
        while let Ok(n) = reader.read(&mut buffer) {
            if n == 0 || stdout.write_all(&buffer[..n]).is_err() {
                break;
            }
            let _ = stdout.flush();
        }
    });
    let mut stdin = std::io::stdin();
    let mut buffer = [0u8; 1024];
    loop {
        let n = stdin.read(&mut buffer).map_err(CtlError::Console)?;
        if n == 0 {
            break;
        }
        let input = &buffer[..n];
        if let Some(at) = input.iter().position(|b| *b == DETACH) {
            let _ = stream.write_all(&input[..at]);
            break;
        }
        if stream.write_all(input).is_err() {
            break;
        }
    }
    drop(raw);
    eprintln!("\nDetached from guest {name}'s console.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_memory;

    #[test]
    fn sizes() {
        assert_eq!(parse_memory("512"), Ok(512));
        assert_eq!(parse_memory("512M"), Ok(512));
        assert_eq!(parse_memory("2G"), Ok(2048));
        assert_eq!(parse_memory("1.5GiB"), Ok(1536));
        assert_eq!(parse_memory("1048576K"), Ok(1024));
        assert_eq!(
            parse_memory("1000K"),
            Err("1000K is not a whole number of MiB (expected e.g. 512M, 1536M, 2G)".into())
        );
        assert_eq!(
            parse_memory("1.3G"),
            Err("1.3G is not a whole number of MiB (expected e.g. 512M, 1536M, 2G)".into())
        );
        assert!(parse_memory("2X").is_err());
    }
}
