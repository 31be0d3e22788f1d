//! The boot as named phases, then the supervision loop, then the one way out.
//!
//! [`main`] is everything PID 1 does: run [`BOOT_PHASES`] in order, supervise until a
//! request comes, and shut down. A fatal error or a panic anywhere before that leads
//! to the emergency path and then into the same shutdown; nothing returns from PID 1.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signalfd::SignalFd;
use nix::unistd::Pid;

use crate::board::{BoardConfigs, BoardSettings, choose_board, read_dmi_product_name};
use crate::clock;
use crate::cmdline::{self, Cmdline};
use crate::config_partition;
use crate::console_log;
use crate::emergency;
use crate::error::{Chain, FatalError};
use crate::event_loop::{self, BootMarks};
use crate::modules::{self, KernelLoader, ModuleIndex};
use crate::mounts::{EARLY_MOUNTS, SystemMounter, mount_all};
use crate::readiness::ReadyGate;
use crate::services::{ProcessSpawner, SERVICES};
use crate::shutdown::{self, Request, SystemActions};
use crate::signals;
use crate::supervisor::Supervisor;

pub const HOSTNAME: &str = "cairn";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootPhase {
    /// Block the signals init reads from a signalfd, before anything can send them, and
    /// turn ctrl-alt-del into SIGINT.
    Signals,
    Mounts,
    /// Needs /dev.
    Console,
    Hostname,
    /// Needs /proc (command line) and /sys (DMI).
    Board,
    /// Needs the board's module list.
    Modules,
    /// Needs the disk drivers from coldplug.
    ConfigPartition,
    /// Needs /config for hostd, and the signalfd: a SIGCHLD from a service that exits
    /// before init reads signals would otherwise be lost.
    Services,
}

pub const BOOT_PHASES: [BootPhase; 8] = [
    BootPhase::Signals,
    BootPhase::Mounts,
    BootPhase::Console,
    BootPhase::Hostname,
    BootPhase::Board,
    BootPhase::Modules,
    BootPhase::ConfigPartition,
    BootPhase::Services,
];

/// What the boot has set up so far; kept outside the unwinding boot so that shutdown
/// can still stop the services after a panic.
pub struct Boot {
    init_time: Duration,
    modules_time: Duration,
    cmdline: Option<Cmdline>,
    board: Option<BoardSettings>,
    signals: Option<SignalFd>,
    supervisor: Option<Supervisor<ProcessSpawner>>,
    services_started: Option<Instant>,
}

impl Boot {
    fn new(init_time: Duration) -> Boot {
        Boot {
            init_time,
            modules_time: init_time,
            cmdline: None,
            board: None,
            signals: None,
            supervisor: None,
            services_started: None,
        }
    }

    /// The boot phases, then supervision until a shutdown request.
    fn run(&mut self) -> Result<Request, FatalError> {
        for phase in BOOT_PHASES {
            tracing::debug!("boot phase {phase:?}");
            self.run_phase(phase)?;
        }
        self.supervise()
    }

    fn run_phase(&mut self, phase: BootPhase) -> Result<(), FatalError> {
        match phase {
            BootPhase::Signals => {
                self.signals = Some(signals::block_and_open().map_err(FatalError::Signals)?);
                if let Err(err) = nix::sys::reboot::set_cad_enabled(false) {
                    tracing::warn!("could not hand ctrl-alt-del to init: {err}");
                }
            }
            BootPhase::Mounts => {
                mount_all(&mut SystemMounter, EARLY_MOUNTS).map_err(FatalError::EssentialMount)?;
            }
            BootPhase::Console => {
                if let Err(err) = console_log::attach_console(Path::new("/dev")) {
                    let _ = console_log::attach_kmsg(Path::new("/dev"));
                    return Err(FatalError::NoConsole(err));
                }
            }
            BootPhase::Hostname => {
                if let Err(err) = nix::unistd::sethostname(HOSTNAME) {
                    tracing::warn!("could not set the hostname: {err}");
                }
            }
            BootPhase::Board => self.choose_board(),
            BootPhase::Modules => self.load_modules(),
            BootPhase::ConfigPartition => {
                config_partition::setup(
                    Path::new("/sys"),
                    Path::new("/dev"),
                    Instant::now() + config_partition::WAIT,
                );
            }
            BootPhase::Services => self.start_services(),
        }
        Ok(())
    }

    fn choose_board(&mut self) {
        let cmdline = cmdline::read(Path::new("/proc")).unwrap_or_else(|err| {
            tracing::warn!("could not read the kernel command line: {err}");
            Cmdline::default()
        });
        console_log::set_verbose(cmdline.verbose);
        if let Some(slot) = &cmdline.slot {
            tracing::debug!("boot slot {slot}");
        }
        let dmi = read_dmi_product_name(Path::new("/sys"));
        let choice = choose_board(&BoardConfigs, cmdline.board.as_deref(), dmi.as_deref());
        if let Some(warning) = &choice.warning {
            tracing::warn!("{warning}");
        }
        tracing::info!("board {} ({})", choice.board.id, choice.reason);
        self.board = Some(BoardSettings::from(choice.board));
        self.cmdline = Some(cmdline);
    }

    fn load_modules(&mut self) {
        let board_modules = self
            .board
            .as_ref()
            .map(|b| b.modules.clone())
            .unwrap_or_default();
        match modules::module_dir(Path::new("/")).and_then(|dir| ModuleIndex::read(&dir)) {
            Ok(index) => {
                let already = modules::loaded_modules(Path::new("/proc"), Path::new("/sys"));
                let summary = modules::coldplug(
                    &index,
                    Path::new("/sys/devices"),
                    &board_modules,
                    already,
                    &mut KernelLoader,
                );
                let mut line = format!(
                    "loaded {} modules in {} {}",
                    summary.loaded.len(),
                    summary.rounds,
                    if summary.rounds == 1 {
                        "round"
                    } else {
                        "rounds"
                    }
                );
                if !summary.failed.is_empty() {
                    line.push_str(&format!(
                        " ({} failed: {})",
                        summary.failed.len(),
                        summary.failed.join(", ")
                    ));
                }
                tracing::info!("{line}");
            }
            Err(err) => tracing::warn!("{}; no modules loaded", Chain(&err)),
        }
        self.modules_time = clock::since_boot();
    }

    fn start_services(&mut self) {
        let board = self
            .board
            .clone()
            .unwrap_or_else(|| BoardSettings::from(board_configs::generic()));
        let spawner = ProcessSpawner {
            tty: PathBuf::from("/dev").join(&board.console_device),
            baud: board.console_baud,
            board_id: board.id,
        };
        let now = Instant::now();
        let mut supervisor = Supervisor::new(spawner, SERVICES);
        supervisor.start_all(now);
        self.supervisor = Some(supervisor);
        self.services_started = Some(now);
    }

    fn supervise(&mut self) -> Result<Request, FatalError> {
        let (Some(supervisor), Some(signals)) = (self.supervisor.as_mut(), self.signals.as_ref())
        else {
            // The phases above set both or returned an error.
            return Err(FatalError::Sequence(
                "supervision started before its phases",
            ));
        };
        let marks = BootMarks {
            board: self
                .board
                .as_ref()
                .map_or_else(|| "generic".to_owned(), |b| b.id.clone()),
            init: self.init_time,
            modules: self.modules_time,
            slot: self.cmdline.as_ref().and_then(|c| c.slot.clone()),
        };
        let mut gate = ReadyGate::new(self.services_started.unwrap_or_else(Instant::now));
        Ok(event_loop::run(supervisor, signals, &marks, &mut gate))
    }
}

/// PID 1's whole life.
pub fn main() -> ! {
    let init_time = clock::since_boot();
    console_log::install();
    let pid = nix::unistd::getpid();
    if pid != Pid::from_raw(1) {
        tracing::error!("cairn-init must run as PID 1 (this is pid {pid})");
        std::process::exit(2);
    }
    std::panic::set_hook(Box::new(|info| {
        tracing::error!("panic: {info}");
    }));

    let mut boot = Boot::new(init_time);
    let request = match catch_unwind(AssertUnwindSafe(|| boot.run())) {
        Ok(Ok(request)) => request,
        Ok(Err(fatal)) => emergency_request(&fatal, boot.cmdline.as_ref()),
        Err(payload) => emergency_request(
            &FatalError::Panic(panic_text(payload.as_ref())),
            boot.cmdline.as_ref(),
        ),
    };
    let mut actions = SystemActions {
        supervisor: boot.supervisor.as_mut(),
        signals: boot.signals.as_ref(),
        proc_root: Path::new("/proc"),
    };
    shutdown::execute(&mut actions, &request);
    shutdown::park()
}

fn emergency_request(error: &FatalError, cmdline: Option<&Cmdline>) -> Request {
    catch_unwind(AssertUnwindSafe(|| emergency::run(error, cmdline))).unwrap_or(Request {
        kind: shutdown::ShutdownKind::PowerOff,
        by: shutdown::Requester::FatalError,
    })
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(phase: BootPhase) -> usize {
        BOOT_PHASES
            .iter()
            .position(|p| *p == phase)
            .unwrap_or(usize::MAX)
    }

    #[test]
    fn every_phase_runs_after_what_it_needs() {
        use BootPhase::*;
        let needs = [
            (Signals, Services),
            (Mounts, Console),
            (Mounts, Board),
            (Board, Modules),
            (Modules, ConfigPartition),
            (ConfigPartition, Services),
        ];
        for (first, then) in needs {
            assert!(
                position(first) < position(then),
                "{first:?} must come before {then:?}"
            );
        }
        assert_eq!(BOOT_PHASES[0], Signals);
        assert_eq!(BOOT_PHASES.last(), Some(&Services));
    }

    #[test]
    fn panic_payloads_become_text() {
        let payload = catch_unwind(|| panic!("boom {}", 1)).expect_err("panics");
        assert_eq!(panic_text(payload.as_ref()), "boom 1");
        let payload = catch_unwind(|| std::panic::panic_any(7u8)).expect_err("panics");
        assert_eq!(panic_text(payload.as_ref()), "a panic without a message");
    }
}
