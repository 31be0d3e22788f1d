//! The program init runs on the serial console. A placeholder until hostd's console issue
//! brings login: it offers just what the image's tests and a curious admin need, passes
//! `cairnctl ARGS…` through to cairnctl, and asks init for power-off and reboot through
//! init's signals.

use std::io::{BufRead, Write};
use std::process::{Command, ExitCode};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const HELP: &str = "commands: status, services, cairnctl ARGS..., poweroff, reboot, sh, help";

fn main() -> ExitCode {
    let board = std::env::var("CAIRN_BOARD").unwrap_or_else(|_| "unknown".to_string());
    println!(
        "Cairn on board {board}. The admin console is a placeholder until hostd's console lands."
    );
    println!("{HELP}");
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        print!("cairn> ");
        if std::io::stdout().flush().is_err() {
            return ExitCode::FAILURE;
        }
        let Some(Ok(line)) = lines.next() else {
            // The console went away (hang-up); init starts us again.
            return ExitCode::SUCCESS;
        };
        match line.trim() {
            "" => {}
            "help" => println!("{HELP}"),
            "status" => print_status(&board),
            "services" => print_services(),
            "poweroff" => ask_init(Signal::SIGUSR2, "power off"),
            "reboot" => ask_init(Signal::SIGTERM, "reboot"),
            "sh" => run_shell(),
            other if other == "cairnctl" || other.starts_with("cairnctl ") => {
                run_cairnctl(other.split_whitespace().skip(1).collect());
            }
            other => println!("unknown command \"{other}\"; {HELP}"),
        }
    }
}

fn ask_init(signal: Signal, what: &str) {
    match kill(Pid::from_raw(1), signal) {
        Ok(()) => println!("asked init to {what}"),
        Err(error) => println!("cannot ask init to {what}: {error}"),
    }
}

/// Runs cairnctl with the words after it (split on white space; no shell quoting).
fn run_cairnctl(args: Vec<&str>) {
    match Command::new("/usr/bin/cairnctl").args(args).status() {
        Ok(status) if status.success() => {}
        Ok(status) => println!("cairnctl ended ({status})"),
        Err(error) => println!("cannot start /usr/bin/cairnctl: {error}"),
    }
}

fn run_shell() {
    match Command::new("/bin/sh").status() {
        Ok(status) => println!("shell ended ({status})"),
        Err(error) => println!("cannot start /bin/sh: {error}"),
    }
}

fn print_status(board: &str) {
    let uptime = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
    let seconds = uptime.split_whitespace().next().unwrap_or("?");
    println!("board {board}, up {seconds} s");
}

fn print_services() {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        println!("cannot read /proc");
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let pid = entry.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
        else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if matches!(comm, "hostd" | "cairn-console" | "cairn-init" | "init") {
            println!("{pid:>7} {comm}");
        }
    }
}
