//! The program init runs on the board's console tty: password set-up on first boot, login,
//! then the `cairn> ` prompt (the modules are in `lib.rs`). It exits only when the terminal
//! hangs up or cannot be used; init starts it again.

use std::path::PathBuf;
use std::process::ExitCode;

use cairn_console::auth_log::{AuthLog, KMSG};
use cairn_console::error::chain;
use cairn_console::password_file::Locations;
use cairn_console::session::Console;
use cairn_console::terminal::{self, Controlling};

fn main() -> ExitCode {
    let board = std::env::var("CAIRN_BOARD").unwrap_or_else(|_| "unknown".to_owned());
    let locations =
        Locations::from_mounts(&std::fs::read_to_string("/proc/mounts").unwrap_or_default());
    if let Err(error) = terminal::catch_interrupts() {
        eprintln!("cairn-console: {}", chain(&error));
        return ExitCode::FAILURE;
    }
    if let Controlling::No(why) = terminal::check_controlling_terminal() {
        // Everything else works; only Ctrl-C cannot stop a running command.
        eprintln!(
            "cairn-console: the console is not this terminal's controller ({why}); Ctrl-C will not stop commands"
        );
    }
    let mut console = Console {
        log: AuthLog {
            file: locations.auth_log.clone(),
            kmsg: PathBuf::from(KMSG),
            tty: terminal::tty_name(),
        },
        locations,
        board,
        cmdline: std::fs::read_to_string("/proc/cmdline").unwrap_or_default(),
    };
    match console.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cairn-console: {}", chain(&error));
            ExitCode::FAILURE
        }
    }
}
