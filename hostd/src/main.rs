//! hostd, the appliance's owner: serves `org.cairn.Host1` on the system bus.
//!
//! Start-up, in order: logging (a ring for the API, the rotating file on the config partition
//! when it is mounted, warnings and errors on stderr — init's console); the desired-state
//! store (`/config/desired`, or `/run/cairn/desired` without persistence); a reconcile of the
//! box with the committed document; the bus (retried for [`BUS_CONNECT_DEADLINE`]: init starts
//! the broker just before us); the object and the well-known name; then READY on init's pipe. SIGTERM or SIGINT stops it; so does losing the
//! bus, so that init restarts it and it registers again on the new broker.

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hostd::api::{self, HostApi};
use hostd::core::Core;
use hostd::core::engine::LiveEngine;
use hostd::drift_watch;
use hostd::guests::live_vmm::LiveVmm;
use hostd::guests::supervisor::{Environment, Supervisor};
use hostd::guests::vmm::Vmm;
use hostd::guests::{host_cpu, layout};
use hostd::log_file::{self, RotatingFile, SharedLogFile};
use hostd::log_ring::{self, LogRing};
use hostd::mounts;
use hostd::start_phases::{PhaseClock, StartPhase};
use hostd::store::StateStore;
use hostd::system::{LiveSystem, System};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How long hostd waits for the broker before giving up (init then restarts it).
const BUS_CONNECT_DEADLINE: Duration = Duration::from_secs(10);
const BUS_RETRY_INTERVAL: Duration = Duration::from_millis(100);
const PERSISTENT_STATE_DIR: &str = "/config/desired";
/// How often the scrub schedule looks for a volume whose scrub is due: intervals are days,
/// so a minute late is nothing, and a look costs a read of the document and the mounts.
const SCRUB_SCHEDULE_PERIOD: Duration = Duration::from_secs(60);
/// How long guests get to power off when hostd stops: init's stop timeout for hostd is 90 s,
/// which leaves time for the kills and hostd's own clean-up.
const GUEST_STOP_TIMEOUT: Duration = Duration::from_secs(60);
const VOLATILE_STATE_DIR: &str = "/run/cairn/desired";

/// Process exit codes (init logs them).
#[derive(Debug, Clone, Copy)]
enum Exit {
    /// Stopped on request.
    Stopped = 0,
    /// Could not start: no store, no bus, no name.
    StartFailed = 1,
    /// The bus connection was lost while serving.
    BusLost = 2,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("Cannot open the desired-state store")]
    Store(#[source] hostd::store::StoreError),
    #[error("Cannot set up signal handling")]
    Signals(#[source] std::io::Error),
    #[error("Cannot reach the system bus at {address} within {seconds} s")]
    Connect {
        address: &'static str,
        seconds: u64,
        #[source]
        source: zbus::Error,
    },
    #[error("Cannot serve {path}")]
    Serve {
        path: &'static str,
        #[source]
        source: zbus::Error,
    },
    #[error("Cannot own the bus name {name}")]
    Name {
        name: &'static str,
        #[source]
        source: zbus::Error,
    },
    #[error("Cannot report readiness")]
    Ready(#[source] ReadyError),
    #[error("Cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("The start-up reconcile did not finish")]
    Reconcile(#[source] tokio::task::JoinError),
}

#[derive(Debug, thiserror::Error)]
enum ReadyError {
    #[error("CAIRN_READY_FD is {0:?}, not a file descriptor number")]
    BadFd(String),
    #[error("Cannot write READY to fd {fd}")]
    Write {
        fd: i32,
        #[source]
        source: std::io::Error,
    },
}

fn main() -> ExitCode {
    let persistent = mounts::is_mounted(
        &std::fs::read_to_string("/proc/mounts").unwrap_or_default(),
        mounts::CONFIG_MOUNT,
    );
    let clock = PhaseClock::default();
    let ring = LogRing::new(log_ring::DEFAULT_CAPACITY);
    init_logging(&ring, persistent);
    clock.enter(StartPhase::Logging);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("{}", hostd::error::chain(&StartError::Runtime(error)));
            return Exit::StartFailed.into();
        }
    };
    match runtime.block_on(run(persistent, ring, clock)) {
        Ok(exit) => exit.into(),
        Err(error) => {
            tracing::error!("{}", hostd::error::chain(&error));
            Exit::StartFailed.into()
        }
    }
}

async fn run(persistent: bool, ring: LogRing, clock: PhaseClock) -> Result<Exit, StartError> {
    // Handlers first: a SIGTERM from here on is seen, not fatal.
    let mut terminate = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;
    let board = std::env::var("CAIRN_BOARD").unwrap_or_else(|_| "unknown".to_string());

    clock.enter(StartPhase::Store);
    let dir = if persistent {
        PERSISTENT_STATE_DIR
    } else {
        tracing::warn!(
            "/config is not mounted: the desired state lives in {VOLATILE_STATE_DIR} and every change is LOST at the next boot"
        );
        VOLATILE_STATE_DIR
    };
    let store = StateStore::open(dir).map_err(StartError::Store)?;
    let system: Box<dyn System> = Box::new(LiveSystem::default());
    // The DHCP client runs on this runtime; the core tells it what each document asks.
    let (dhcp, dhcp_task) = hostd::network::dhcp::DhcpHandle::spawn();
    let mut core = Core::new(store, system, board.clone(), persistent, api::system_uptime)
        .with_dhcp(dhcp.clone());
    // Before serving: after a reboot or a crash mid-apply the box follows the committed
    // document again. A failure is reported in the status, not fatal: the admin needs the
    // API to fix it. On a blocking thread: network actions run their own netlink runtime.
    let core = tokio::task::spawn_blocking(move || {
        if let Err(error) = core.revert_unconfirmed() {
            tracing::error!(
                "cannot take back a network change that was never confirmed: {}",
                hostd::error::chain(&error)
            );
        }
        // Only when there are volumes to mount, so other boots do not pay for it. Quiet for
        // 1 s: SCSI scans report a disk every few ms; 10 s: what init's own READY deadline
        // leaves after coldplug.
        clock.enter(StartPhase::Drives);
        if core.has_volumes() {
            hostd::storage::wait_for_drives(
                &hostd::storage::DrivePaths::default(),
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(10),
            );
            // No udev: assemble cache arrays and register bcache devices before the mount.
            hostd::storage::activate::activate(
                &hostd::storage::DrivePaths::default(),
                &hostd::storage::bcache::Sysfs::default(),
            );
        }
        clock.enter(StartPhase::Reconcile);
        if let Err(error) = core.first_boot() {
            tracing::error!(
                "cannot set up the Default VM Network on this first boot: {}",
                hostd::error::chain(&error)
            );
        }
        match core.reconcile() {
            Ok(done) if done.is_empty() => {
                tracing::info!("the box matches the committed document");
            }
            Ok(done) => {
                for action in done {
                    tracing::info!("reconciled: {action}");
                }
            }
            Err(error) => tracing::error!(
                "cannot reconcile the box with the committed document: {}",
                hostd::error::chain(&error)
            ),
        }
        core
    })
    .await
    .map_err(StartError::Reconcile)?;
    let core = std::sync::Arc::new(tokio::sync::Mutex::new(core));
    let guests = guest_supervisor(&board, &core);

    clock.enter(StartPhase::Bus);
    let connection = connect(BUS_CONNECT_DEADLINE).await?;
    let scrub_records = hostd::storage::scrub_records::ScrubRecords::new(if persistent {
        api::PERSISTENT_SCRUB_RECORDS
    } else {
        api::VOLATILE_SCRUB_RECORDS
    });
    let running = guests.clone();
    let engine = LiveEngine::new(std::sync::Arc::clone(&core), scrub_records)
        .with_running_guests(std::sync::Arc::new(move || running.active()));
    let drift_engine = engine.clone();
    let host_api = HostApi::new(std::sync::Arc::new(engine), ring);
    let schedule_api = host_api.clone();
    connection
        .object_server()
        .at(api::OBJECT_PATH, host_api)
        .await
        .map_err(|source| StartError::Serve {
            path: api::OBJECT_PATH,
            source,
        })?;
    connection
        .object_server()
        .at(
            api::OBJECT_PATH,
            api::guests::GuestsApi::new(
                hostd::core::guest_admin::GuestAdmin::new(
                    std::sync::Arc::clone(&core),
                    guests.clone(),
                ),
                guests.clone(),
            ),
        )
        .await
        .map_err(|source| StartError::Serve {
            path: api::OBJECT_PATH,
            source,
        })?;
    connection
        .request_name(api::BUS_NAME)
        .await
        .map_err(|source| StartError::Name {
            name: api::BUS_NAME,
            source,
        })?;
    tracing::info!(
        board = %board,
        persistent,
        "serving {} at {} on the system bus",
        api::BUS_NAME,
        api::OBJECT_PATH
    );
    report_ready().map_err(StartError::Ready)?;
    clock.enter(StartPhase::Background);
    let schedule_connection = connection.clone();
    tokio::spawn(async move {
        let mut rounds = tokio::time::interval(SCRUB_SCHEDULE_PERIOD);
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            rounds.tick().await;
            schedule_api
                .run_scrub_schedule(schedule_connection.object_server())
                .await;
        }
    });
    // After READY: a guest's boot must not hold up the appliance's.
    spawn_drift_watch(drift_engine);
    let _restarter = guests.spawn_restarter();
    let autostart = {
        let guests = guests.clone();
        tokio::spawn(async move {
            // Guests still running from before a hostd restart first, so that autostart
            // does not start them twice.
            guests.adopt().await;
            guests.autostart().await;
        })
    };

    let exit = tokio::select! {
        _ = terminate.recv() => {
            tracing::info!("SIGTERM received, stopping");
            Exit::Stopped
        }
        _ = interrupt.recv() => {
            tracing::info!("SIGINT received, stopping");
            Exit::Stopped
        }
        () = connection.closed() => {
            tracing::error!("the system bus connection closed; exiting so that init restarts hostd");
            Exit::BusLost
        }
    };
    clock.enter(StartPhase::Stop);
    // Guests first, while the network and volumes they use are still there: power button,
    // then a kill for what has not stopped within GUEST_STOP_TIMEOUT (init waits 90 s).
    autostart.abort();
    guests.stop_all(GUEST_STOP_TIMEOUT).await;
    // A clean stop gives the lease back (RELEASE) and takes the address off.
    dhcp.stop(dhcp_task).await;
    Ok(exit)
}

/// Connects to the image's system bus, retrying until `deadline` has passed.
async fn connect(deadline: Duration) -> Result<zbus::Connection, StartError> {
    let started = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let attempt = zbus::connection::Builder::address(api::SYSTEM_BUS_ADDRESS).build();
        // A broker that accepts the socket but never answers must not outlast the deadline.
        let left = deadline
            .saturating_sub(started.elapsed())
            .max(BUS_RETRY_INTERVAL);
        let result = tokio::time::timeout(left, attempt)
            .await
            .unwrap_or_else(|_| Err(zbus::Error::Failure("no answer from the broker".into())));
        match result {
            Ok(connection) => {
                if attempts > 1 {
                    tracing::info!(
                        attempts,
                        "connected to the system bus after {} ms",
                        started.elapsed().as_millis()
                    );
                }
                return Ok(connection);
            }
            Err(source) if started.elapsed() >= deadline => {
                return Err(StartError::Connect {
                    address: api::SYSTEM_BUS_ADDRESS,
                    seconds: deadline.as_secs(),
                    source,
                });
            }
            Err(error) => {
                if attempts == 1 {
                    tracing::info!("system bus not reachable yet ({error}); retrying");
                }
                tokio::time::sleep(BUS_RETRY_INTERVAL).await;
            }
        }
    }
}

/// Ring (for the API), file (when persistent), stderr (init's console).
fn init_logging(ring: &LogRing, persistent: bool) {
    let file = if persistent {
        match RotatingFile::open(
            log_file::DEFAULT_PATH,
            log_file::DEFAULT_MAX_BYTES,
            log_file::DEFAULT_FILES,
        ) {
            Ok(file) => Some(SharedLogFile::new(file)),
            Err(error) => {
                eprintln!(
                    "hostd: cannot open {}: {error}; logging to the console and memory only",
                    log_file::DEFAULT_PATH
                );
                None
            }
        }
    } else {
        None
    };
    let file_layer = file.map(|file| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(file)
    });
    // The console is the admin's terminal too: only what needs attention goes there; the
    // ring (`cairnctl log`) and the file keep everything.
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::filter::LevelFilter::WARN);
    tracing_subscriber::registry()
        .with(ring.layer())
        .with(file_layer)
        .with(stderr_layer)
        .init();
}

/// The readiness protocol of `docs/image-contract.md`: init hands us the write end of a pipe.
fn report_ready() -> Result<(), ReadyError> {
    let Ok(fd_text) = std::env::var("CAIRN_READY_FD") else {
        return Ok(()); // started by hand, not by init: nobody waits for us
    };
    let fd: i32 = fd_text.parse().map_err(|_| ReadyError::BadFd(fd_text))?;
    // SAFETY: init passes this descriptor to us alone and nothing else in this process opened
    // or owns it; taking ownership closes it after the write, which tells init we are done.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut pipe = std::fs::File::from(owned);
    pipe.write_all(b"READY\n")
        .map_err(|source| ReadyError::Write { fd, source })
}

/// The guests' supervisor for this board: its admission rules, the host as the kernel
/// reports it, the binaries where image-builder puts them.
fn guest_supervisor(board: &str, core: &api::SharedCore) -> Supervisor {
    let rules = board_configs::by_id(board)
        .unwrap_or_else(board_configs::generic)
        .guests
        .clone();
    let cgroup_root = std::path::Path::new("/sys/fs/cgroup");
    let vmm = LiveVmm::new(layout::CLOUD_HYPERVISOR);
    let env = Environment {
        firmware: layout::HYPERVISOR_FW.into(),
        run_dir: layout::RUN_DIR.into(),
        rules,
        machine: host_cpu::observe_machine(),
        cgroups: cgroup_root
            .join("cgroup.controllers")
            .exists()
            .then(|| host_cpu::Cgroups::new(cgroup_root)),
    };
    tracing::info!(
        "guests: {} MiB of RAM, {} threads; cloud-hypervisor {}",
        env.machine.memory_mib,
        env.machine.threads,
        if vmm.installed() {
            "present"
        } else {
            "not in this image"
        }
    );
    Supervisor::new(
        env,
        std::sync::Arc::new(hostd::core::CoreOps(std::sync::Arc::clone(core))),
        std::sync::Arc::new(vmm),
    )
}

/// The reconcile loop (`drift_watch.rs`): a drift check on netlink events and on a timer,
/// each on a blocking thread (observing runs netlink through a runtime of its own).
fn spawn_drift_watch(engine: LiveEngine) {
    let events: std::pin::Pin<Box<dyn futures::Stream<Item = ()> + Send>> =
        match drift_watch::netlink_events() {
            Ok(events) => Box::pin(events),
            Err(error) => {
                tracing::warn!(
                    "cannot listen for netlink events ({error}); drift is checked on the timer only"
                );
                Box::pin(futures::stream::empty())
            }
        };
    tokio::spawn(drift_watch::run(
        events,
        drift_watch::PERIOD,
        drift_watch::QUIET,
        move || {
            let engine = engine.clone();
            async move {
                match tokio::task::spawn_blocking(move || engine.check_drift()).await {
                    Ok(Some(Ok(found))) => Some(found),
                    Ok(Some(Err(error))) => {
                        tracing::warn!("drift check failed: {}", hostd::error::chain(&error));
                        None
                    }
                    Ok(None) => None,
                    Err(error) => {
                        tracing::error!("drift check did not finish: {error}");
                        None
                    }
                }
            }
        },
    ));
}
