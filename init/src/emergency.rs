//! When init cannot go on: say why, optionally give a shell, then power off.
//!
//! Powering off (not rebooting) is deliberate: a failure this early repeats on every
//! boot, and a reboot loop hides the message that explains it. Never hanging matters as
//! much: a box that sits there with no services looks alive to its owner.

use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cmdline::{self, Cmdline};
use crate::error::{Chain, FatalError};
use crate::services::{PATH, prepare_child};
use crate::shutdown::{Request, Requester, ShutdownKind};

const SHELL: &str = "/bin/sh";

/// Logs the reason, runs the shell if `cairn.debug=shell`, and returns the power-off
/// request that follows.
pub fn run(error: &FatalError, cmdline: Option<&Cmdline>) -> Request {
    tracing::error!("cannot go on: {}", Chain(error));
    // The boot may have failed before reading the command line.
    let wants_shell = match cmdline {
        Some(cmdline) => cmdline.debug_shell,
        None => read_cmdline_anyhow().is_some_and(|c| c.debug_shell),
    };
    if !wants_shell {
        tracing::error!("powering off; boot with cairn.debug=shell for an emergency shell");
        return Request {
            kind: ShutdownKind::PowerOff,
            by: Requester::FatalError,
        };
    }
    tracing::info!("starting an emergency shell; the machine powers off when it exits");
    match shell_command(console_tty(Path::new("/sys"))).status() {
        Ok(status) => tracing::info!("emergency shell exited ({status})"),
        Err(err) => tracing::error!("could not start {SHELL}: {err}"),
    }
    Request {
        kind: ShutdownKind::PowerOff,
        by: Requester::EmergencyShellExit,
    }
}

/// The command line even when /proc could not be mounted (a broken image is exactly
/// when the shell is wanted): a private proc mount just for reading it.
fn read_cmdline_anyhow() -> Option<Cmdline> {
    if let Ok(cmdline) = cmdline::read(Path::new("/proc")) {
        return Some(cmdline);
    }
    let private = Path::new("/.cairn-emergency-proc");
    std::fs::create_dir_all(private).ok()?;
    let mounted = nix::mount::mount(
        Some("proc"),
        private,
        Some("proc"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    );
    let cmdline = mounted.ok().and_then(|()| cmdline::read(private).ok());
    let _ = nix::mount::umount2(private, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(private);
    cmdline
}

/// The tty behind /dev/console (the last one the kernel lists is the one /dev/console
/// writes to). /dev/console itself cannot be a controlling terminal, and without one the
/// shell has no job control and ctrl-c does nothing.
fn console_tty(sys_root: &Path) -> Option<PathBuf> {
    let active = std::fs::read_to_string(sys_root.join("class/tty/console/active")).ok()?;
    active_console(&active).map(|name| Path::new("/dev").join(name))
}

fn active_console(active: &str) -> Option<&str> {
    active.split_whitespace().last()
}

fn shell_command(tty: Option<PathBuf>) -> Command {
    let mut command = Command::new(SHELL);
    command
        .env_clear()
        .env("PATH", PATH)
        .env("TERM", "vt220")
        .env("HOME", "/")
        .current_dir("/");
    let opened = tty.and_then(|path| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY)
            .open(path)
            .ok()
    });
    let stdio = opened.and_then(|tty| Some((tty.try_clone().ok()?, tty.try_clone().ok()?, tty)));
    let controlling_tty = stdio.is_some();
    match stdio {
        Some((stdin, stdout, stderr)) => {
            command.stdin(stdin).stdout(stdout).stderr(stderr);
        }
        // init's own stdio is /dev/console: a shell without job control still helps.
        None => {
            command
                .stdin(Stdio::inherit())
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit());
        }
    }
    // SAFETY: prepare_child only makes async-signal-safe system calls (see services.rs).
    unsafe {
        command.pre_exec(move || prepare_child(None, controlling_tty));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_active_console_is_the_one() {
        assert_eq!(active_console("tty0 ttyS0\n"), Some("ttyS0"));
        assert_eq!(active_console("ttyS0\n"), Some("ttyS0"));
        assert_eq!(active_console("\n"), None);
    }

    #[test]
    fn console_tty_from_a_fixture() {
        let sys = crate::test_support::TempDir::new("tty");
        sys.write("class/tty/console/active", "tty0 ttyS1\n");
        assert_eq!(console_tty(sys.path()), Some(PathBuf::from("/dev/ttyS1")));
        assert_eq!(console_tty(&sys.path().join("none")), None);
    }
}
