//! The console's side of the serial line: reading a password with echo off, signals, the
//! foreground process group, and running a command on the terminal.
//!
//! Ctrl-C: init makes the console a session leader with the tty as its controlling
//! terminal, so the line discipline sends SIGINT to the foreground process group, which is
//! the console's. The console catches SIGINT and SIGQUIT with a handler that does nothing
//! (not SIG_IGN: an ignored signal stays ignored across exec, a caught one is reset to the
//! default), so a child started from the prompt dies of Ctrl-C (or handles it, as a shell
//! does) while the console only sees its wait end. The handler is installed without
//! SA_RESTART, so a password prompt's `read` returns EINTR and Ctrl-C cancels it.
//! At the `cairn> ` prompt the line editor has the tty in raw mode (no ISIG): Ctrl-C is a
//! key there, and clears the line.

use std::io::{self, Write};
use std::process::{Command, ExitStatus};

use nix::errno::Errno;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::termios::{self, LocalFlags, SetArg};
use nix::unistd::{self, Pid};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TerminalError {
    #[error("Input was interrupted (Ctrl-C)")]
    Interrupted,
    #[error("The terminal hung up")]
    HangUp,
    #[error("Cannot read from the terminal")]
    Read(#[source] Errno),
    #[error("Cannot switch the terminal's echo")]
    Echo(#[source] Errno),
    #[error("Cannot set up signal handling")]
    Signals(#[source] Errno),
    #[error("Cannot write to the terminal")]
    Write(#[source] io::Error),
}

extern "C" fn ignore_signal(_: nix::libc::c_int) {}

/// Catches SIGINT and SIGQUIT for the console's whole life (see the module comment).
pub fn catch_interrupts() -> Result<(), TerminalError> {
    let action = SigAction::new(
        SigHandler::Handler(ignore_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGQUIT] {
        // SAFETY: the handler is async-signal-safe (it does nothing), and no other code in
        // this process installs a handler for these signals.
        unsafe { signal::sigaction(sig, &action) }.map_err(TerminalError::Signals)?;
    }
    Ok(())
}

/// fd 0: the tty init gave us.
fn stdin() -> io::Stdin {
    io::stdin()
}

/// What the console knows about its terminal: whether Ctrl-C can reach the commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Controlling {
    /// The tty's session is ours and our process group is in the foreground.
    Yes,
    No(String),
}

pub fn check_controlling_terminal() -> Controlling {
    let ours = match unistd::getsid(None) {
        Ok(sid) => sid,
        Err(e) => return Controlling::No(format!("getsid failed: {e}")),
    };
    match termios::tcgetsid(stdin()) {
        Ok(sid) if sid == ours => {}
        Ok(sid) => {
            return Controlling::No(format!(
                "the terminal belongs to session {sid}, the console is in {ours}"
            ));
        }
        Err(e) => return Controlling::No(format!("stdin is not a controlling terminal ({e})")),
    }
    match unistd::tcgetpgrp(stdin()) {
        Ok(pgrp) if pgrp == unistd::getpgrp() => Controlling::Yes,
        Ok(pgrp) => Controlling::No(format!("process group {pgrp} is in the foreground")),
        Err(e) => Controlling::No(format!("tcgetpgrp failed: {e}")),
    }
}

/// The terminal's name for messages (`ttyS0`), or `console` when stdin is no tty.
pub fn tty_name() -> String {
    unistd::ttyname(stdin())
        .ok()
        .and_then(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "console".to_owned())
}

/// Echo off for as long as it lives; the previous settings come back on drop.
struct EchoOff {
    saved: Option<termios::Termios>,
}

impl EchoOff {
    fn new() -> Result<Self, TerminalError> {
        let saved = match termios::tcgetattr(stdin()) {
            Ok(saved) => saved,
            // Not a terminal (a pipe in a test): there is no echo to switch off.
            Err(Errno::ENOTTY) => return Ok(Self { saved: None }),
            Err(e) => return Err(TerminalError::Echo(e)),
        };
        let mut quiet = saved.clone();
        // Canonical mode stays on: the line discipline still handles backspace and kill.
        // TCSANOW, not TCSAFLUSH: input typed ahead (a test harness, a paste) is kept.
        quiet.local_flags.remove(LocalFlags::ECHO);
        termios::tcsetattr(stdin(), SetArg::TCSANOW, &quiet).map_err(TerminalError::Echo)?;
        Ok(Self { saved: Some(saved) })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // Nothing better to do if this fails: the next line editor resets the mode.
            let _ = termios::tcsetattr(stdin(), SetArg::TCSANOW, saved);
        }
    }
}

pub fn say(text: &str) -> Result<(), TerminalError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(TerminalError::Write)
}

/// Prints `prompt` and reads one line with echo off. The line ends at a newline; a carriage
/// return before it is dropped.
pub fn read_secret(prompt: &str) -> Result<String, TerminalError> {
    let line = {
        // Echo goes off before the prompt shows: whoever types as soon as they see it (a
        // test harness, a paste) must not have the password echoed.
        let _quiet = EchoOff::new()?;
        say(prompt)?;
        read_line_raw()
    };
    // The newline the admin typed was not echoed either.
    say("\n")?;
    line
}

/// Reads one line from fd 0 byte by byte (nothing is read past the newline, so the next
/// reader — the line editor, a shell — gets the rest), without retrying on EINTR.
fn read_line_raw() -> Result<String, TerminalError> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match unistd::read(stdin(), &mut byte) {
            Ok(0) => return Err(TerminalError::HangUp),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(Errno::EINTR) => return Err(TerminalError::Interrupted),
            Err(e) => return Err(TerminalError::Read(e)),
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Reads one line with echo on (for "press Enter").
pub fn read_line() -> Result<String, TerminalError> {
    read_line_raw()
}

/// Runs `command` on the terminal and waits for it. Ctrl-C reaches it (see the module
/// comment); afterwards the console's group is put back in the foreground in case the
/// child (a job-control shell) moved it.
pub fn run_foreground(command: &mut Command) -> io::Result<ExitStatus> {
    let status = command.status();
    reclaim_foreground();
    status
}

fn reclaim_foreground() {
    let ours = unistd::getpgrp();
    if unistd::tcgetpgrp(stdin()).is_ok_and(|pgrp| pgrp == ours) {
        return;
    }
    // tcsetpgrp from a background group raises SIGTTOU unless it is blocked; block it for
    // this call only, since a blocked mask is inherited by later children.
    let mut ttou = SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    if signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old)).is_err() {
        return;
    }
    let _ = unistd::tcsetpgrp(stdin(), ours);
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
}

/// Asks init (pid 1) for an orderly power-off or reboot.
pub fn ask_init(signal: Signal) -> nix::Result<()> {
    signal::kill(Pid::from_raw(1), signal)
}
