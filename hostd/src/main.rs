//! hostd, the appliance's owner. Until its own issue lands this is the placeholder that init
//! supervises: it says which board it runs on, reports readiness through init's protocol and
//! exits cleanly when asked to stop.

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;

use nix::sys::signal::{SigSet, Signal};

/// The readiness protocol of `docs/image-contract.md`: init hands us the write end of a pipe.
fn report_ready() -> Result<(), String> {
    let Ok(fd_text) = std::env::var("CAIRN_READY_FD") else {
        return Ok(()); // started by hand, not by init: nobody waits for us
    };
    let fd: i32 = fd_text
        .parse()
        .map_err(|_| format!("CAIRN_READY_FD is \"{fd_text}\", not a file descriptor number"))?;
    // SAFETY: init passes this descriptor to us alone and nothing else in this process opened
    // or owns it; taking ownership closes it after the write, which tells init we are done.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut pipe = std::fs::File::from(owned);
    pipe.write_all(b"READY\n")
        .map_err(|error| format!("cannot report readiness on fd {fd}: {error}"))
}

fn main() -> ExitCode {
    let board = std::env::var("CAIRN_BOARD").unwrap_or_else(|_| "unknown".to_string());
    // Block the stop signals first so that a SIGTERM arriving right after READY is not lost.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGTERM);
    stop.add(Signal::SIGINT);
    if let Err(error) = stop.thread_block() {
        eprintln!("hostd: cannot block stop signals: {error}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "hostd: placeholder running on board {board} (pid {})",
        std::process::id()
    );
    if let Err(message) = report_ready() {
        eprintln!("hostd: {message}");
    }
    match stop.wait() {
        Ok(signal) => {
            eprintln!("hostd: {signal:?} received, stopping");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("hostd: waiting for a stop signal failed: {error}");
            ExitCode::FAILURE
        }
    }
}
