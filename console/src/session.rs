//! The console program's flow: password set-up on first boot, login, the `cairn> ` prompt,
//! and back to login after `logout`. Everything that decides is in the sibling modules;
//! this one prompts, reads and runs.

use std::process::{Command as Process, ExitStatus};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::termios::{self, FlushArg};
use rustyline::config::Configurer;
use rustyline::error::ReadlineError;
use rustyline::{Config, DefaultEditor};

use crate::attempts::{Attempts, MAX_TRIES, REFUSAL_PAUSE, Verdict};
use crate::auth_log::{AuthEvent, AuthLog};
use crate::command::{self, Command, HELP};
use crate::error::chain;
use crate::password::{self, MIN_LENGTH, PasswordHash};
use crate::password_file::{self, Locations, PasswordFileError, Stored};
use crate::reset;
use crate::terminal::{self, TerminalError, read_secret, say};

pub const CAIRNCTL: &str = "/usr/bin/cairnctl";
pub const SHELL: &str = "/bin/sh";
/// Commands an admin keeps across one session; more is scrolling, not recall.
const HISTORY_SIZE: usize = 200;

pub struct Console {
    pub locations: Locations,
    pub log: AuthLog,
    pub board: String,
    /// The kernel command line, for `cairn.console=reset-password`.
    pub cmdline: String,
}

impl Console {
    /// Runs until the terminal hangs up (init then starts the console again).
    pub fn run(&mut self) -> Result<(), TerminalError> {
        self.apply_reset();
        loop {
            match self.one_round() {
                Ok(()) => {}
                // Ctrl-C at a password prompt: start over.
                Err(TerminalError::Interrupted) => say("\n")?,
                Err(other) => return Err(other),
            }
        }
    }

    /// Password set-up if needed, login, one session.
    fn one_round(&mut self) -> Result<(), TerminalError> {
        let Some(hash) = self.stored_hash()? else {
            return Ok(());
        };
        if !self.login(&hash)? {
            return Ok(());
        }
        self.session(&hash)?;
        say("Logged out.\n")
    }

    fn record(&self, event: &AuthEvent) {
        for error in self.log.record(event) {
            // Shown, not fatal: a full config partition must not lock the admin out.
            let _ = say(&format!("warning: {}\n", chain(&error)));
        }
    }

    fn apply_reset(&self) {
        let marker = std::path::Path::new(reset::DONE_MARKER);
        match reset::apply(&self.cmdline, &self.locations.password, marker) {
            Ok(reset::Reset::NotNow) => {}
            Ok(reset::Reset::Done) => {
                self.record(&AuthEvent::PasswordReset);
                let _ = say(&format!(
                    "\nThe admin password was reset ({}={} on the kernel command line).\n\
                     Remove that key from the command line for the next boots.\n",
                    reset::KEY,
                    reset::VALUE
                ));
            }
            Err(error) => {
                let _ = say(&format!(
                    "\nCannot reset the admin password: cannot remove {}: {error}\n",
                    self.locations.password.display()
                ));
            }
        }
    }

    /// The stored hash; sets one first if none is stored. `None` when nothing usable was
    /// found (the reason was shown): the caller starts over.
    fn stored_hash(&mut self) -> Result<Option<PasswordHash>, TerminalError> {
        match password_file::load(&self.locations.password) {
            Ok(Stored::Hash(hash)) => Ok(Some(hash)),
            Ok(Stored::Missing) => self.first_password(),
            Err(error) => {
                self.unusable(&error)?;
                Ok(None)
            }
        }
    }

    /// The file is there but cannot be used: say so and how to get out, then wait. No
    /// login is possible (a file that someone damaged must not open the door), but the
    /// admin is told exactly what to do.
    fn unusable(&self, error: &PasswordFileError) -> Result<(), TerminalError> {
        let why = chain(error);
        self.record(&AuthEvent::PasswordFileUnusable { why: why.clone() });
        say(&format!(
            "\n{why}\n\
             No login is possible until this is fixed. To set a new password, boot once with\n\
             {}={} on the kernel command line (add it to the `options` line of\n\
             the boot entry loader/entries/cairn-*.conf on the ESP), or remove {} from the\n\
             config partition on another computer.\n\
             Press Enter to check the file again.\n",
            reset::KEY,
            reset::VALUE,
            self.locations.password.display()
        ))?;
        terminal::read_line()?;
        Ok(())
    }

    /// First boot (or after a reset): asks for a new password twice and stores its hash.
    /// `None` when no hash could be made (the reason was shown).
    fn first_password(&mut self) -> Result<Option<PasswordHash>, TerminalError> {
        say(&format!(
            "\nCairn on board {}: no admin password is set (first boot, or it was reset).\n\
             Choose one now. It protects this console and the root shell; at least {MIN_LENGTH} characters.\n",
            self.board
        ))?;
        if !self.locations.persistent {
            say(
                "WARNING: no config partition is mounted. The password is kept in /run and is\n\
                 LOST AT THE NEXT REBOOT; you will be asked for a new one then.\n",
            )?;
        }
        let chosen = loop {
            let first = read_secret("New admin password: ")?;
            if first.is_empty() {
                continue;
            }
            let second = read_secret("Repeat the password: ")?;
            match password::check_new(&first, &second) {
                Ok(()) => break first,
                Err(error) => say(&format!("{error}. Try again.\n"))?,
            }
        };
        let hash = match PasswordHash::new(&chosen) {
            Ok(hash) => hash,
            Err(error) => {
                say(&format!("Cannot hash the password: {error}. Try again.\n"))?;
                return Ok(None);
            }
        };
        match password_file::store(&self.locations.password, &hash) {
            Ok(()) => {
                self.record(&AuthEvent::PasswordSet {
                    persistent: self.locations.persistent,
                });
                say(&format!(
                    "Admin password set (hash in {}).\n",
                    self.locations.password.display()
                ))?;
            }
            Err(error) => say(&format!(
                "{}\nThe password works until you log out; you will be asked for one again then.\n",
                chain(&error)
            ))?,
        }
        Ok(Some(hash))
    }

    /// One login round: true when the right password was given.
    fn login(&self, hash: &PasswordHash) -> Result<bool, TerminalError> {
        say(&format!(
            "\nCairn on board {}. Log in with the admin password.\n",
            self.board
        ))?;
        let mut attempts = Attempts::new();
        loop {
            let typed = read_secret("Password: ")?;
            // An empty line is no guess (the password has 8 characters at least): ask again.
            if typed.is_empty() {
                continue;
            }
            match attempts.record(hash.verify(&typed)) {
                Verdict::Granted => {
                    self.record(&AuthEvent::LoginGranted);
                    say("Logged in. `help` lists the commands.\n")?;
                    return Ok(true);
                }
                Verdict::TryAgain { left } => {
                    self.record(&AuthEvent::LoginFailed {
                        failures: MAX_TRIES - left,
                    });
                    let tries = if left == 1 { "try" } else { "tries" };
                    say(&format!("Wrong password; {left} more {tries}.\n"))?;
                }
                Verdict::Refused => {
                    self.record(&AuthEvent::LoginFailed {
                        failures: MAX_TRIES,
                    });
                    self.record(&AuthEvent::LoginRefused);
                    say(&format!(
                        "Login refused after {MAX_TRIES} wrong passwords. Wait {} s.\n",
                        REFUSAL_PAUSE.as_secs()
                    ))?;
                    std::thread::sleep(REFUSAL_PAUSE);
                    // What was typed during the pause is not taken as the next guesses.
                    let _ = termios::tcflush(std::io::stdin(), FlushArg::TCIFLUSH);
                    return Ok(false);
                }
            }
        }
    }

    /// The `cairn> ` prompt until `logout`.
    fn session(&self, hash: &PasswordHash) -> Result<(), TerminalError> {
        let mut editor = match new_editor() {
            Ok(editor) => editor,
            Err(error) => {
                say(&format!("Cannot start the line editor: {error}\n"))?;
                return Ok(());
            }
        };
        loop {
            let line = match editor.readline("cairn> ") {
                Ok(line) => line,
                // Ctrl-C at the prompt: the line is dropped, a fresh prompt follows.
                Err(ReadlineError::Interrupted) => continue,
                // Ctrl-D on an empty line, or the terminal went away.
                Err(ReadlineError::Eof) => return Ok(()),
                Err(error) => {
                    say(&format!("Cannot read the command line: {error}\n"))?;
                    return Err(TerminalError::HangUp);
                }
            };
            if !line.trim().is_empty() {
                // Errors only mean the entry was a duplicate or history is off.
                let _ = editor.add_history_entry(line.as_str());
            }
            match command::parse(&line) {
                Ok(Command::Nothing) => {}
                Ok(Command::Help) => say(&format!("{HELP}\n"))?,
                Ok(Command::Cairnctl(args)) => run_cairnctl(&args)?,
                Ok(Command::Shell) => self.root_shell(hash)?,
                Ok(Command::Poweroff) => ask_init(Signal::SIGUSR2, "power off")?,
                Ok(Command::Reboot) => ask_init(Signal::SIGTERM, "reboot")?,
                Ok(Command::Logout) => return Ok(()),
                Err(error) => say(&format!("{error}. `help` lists the commands.\n"))?,
            }
        }
    }

    /// `shell`: the password again, then a root shell until it exits.
    fn root_shell(&self, hash: &PasswordHash) -> Result<(), TerminalError> {
        let typed = match read_secret("Password: ") {
            Ok(typed) => typed,
            Err(TerminalError::Interrupted) => return say("\nCancelled.\n"),
            Err(other) => return Err(other),
        };
        if typed.is_empty() {
            return say("Cancelled.\n");
        }
        if !hash.verify(&typed) {
            self.record(&AuthEvent::ShellRefused);
            return say("Wrong password; no shell.\n");
        }
        self.record(&AuthEvent::ShellGranted);
        say("Root shell. `exit` comes back to the console.\n")?;
        match terminal::run_foreground(&mut Process::new(SHELL)) {
            Ok(status) => report_end("shell", status),
            Err(error) => say(&format!("Cannot start {SHELL}: {error}\n")),
        }
    }
}

fn new_editor() -> rustyline::Result<DefaultEditor> {
    let mut builder = Config::builder()
        .max_history_size(HISTORY_SIZE)?
        .history_ignore_dups(true)?
        .history_ignore_space(true)
        // A serial line may have no terminal that answers `ESC[6n`; never wait for one.
        .check_cursor_position(false)
        // Neither is a VT220 sequence; a serial terminal would print them.
        .bracketed_paste(false);
    builder.enable_synchronized_output(false);
    DefaultEditor::with_config(builder.build())
}

fn run_cairnctl(args: &[String]) -> Result<(), TerminalError> {
    match terminal::run_foreground(Process::new(CAIRNCTL).args(args)) {
        Ok(status) => report_end("cairnctl", status),
        Err(error) => say(&format!("Cannot start {CAIRNCTL}: {error}\n")),
    }
}

/// cairnctl and the shell print their own errors; only a signal needs saying.
fn report_end(what: &str, status: ExitStatus) -> Result<(), TerminalError> {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(sig) if sig == Signal::SIGINT as i32 => say(&format!("\n{what} interrupted.\n")),
        Some(sig) => {
            let name = Signal::try_from(sig).map_or("an unknown signal", Signal::as_str);
            say(&format!("\n{what} was killed by {name}.\n"))
        }
        None => Ok(()),
    }
}

fn ask_init(signal: Signal, what: &str) -> Result<(), TerminalError> {
    match terminal::ask_init(signal) {
        Ok(()) => {
            say(&format!(
                "Asked init to {what}: services stop, file systems are unmounted.\n"
            ))?;
            // init stops the console within moments; a prompt meanwhile would only invite
            // commands that never run.
            std::thread::sleep(Duration::from_secs(30));
            Ok(())
        }
        Err(error) => say(&format!("Cannot ask init to {what}: {error}\n")),
    }
}
