//! The guest lifecycle over the fake cloud-hypervisor ([`FakeVmm`]): no root, no
//! cloud-hypervisor, and paused time, so back-offs and deadlines are exact and instant.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use board_configs::GuestRules;
use tokio::time::Instant;

use super::*;
use crate::guests::admission::Refusal;
use crate::guests::chv_api::{Endpoint, VmState};
use crate::guests::execute::LaunchError;
use crate::guests::fake_vmm::{Behaviour, Call, FakeCore, FakeVmm};
use crate::guests::fixtures::MACHINE;
use GuestState::*;

/// A supervisor over the fakes, with its run directory and the guests' kernel in a
/// temporary directory.
struct Bench {
    supervisor: Supervisor,
    vmm: Arc<FakeVmm>,
    core: Arc<FakeCore>,
    dir: tempfile::TempDir,
}

impl Bench {
    fn new(guests: &[(&str, u64, &str)]) -> Self {
        Self::with_core(guests, FakeCore::default())
    }

    fn with_core(guests: &[(&str, u64, &str)], core: FakeCore) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = dir.path().join("vmlinuz");
        std::fs::write(&kernel, b"kernel").expect("writes");
        *core.guests.lock().expect("not poisoned") = guests
            .iter()
            .map(|(name, memory_mib, extra)| guest(&kernel, name, *memory_mib, extra))
            .collect();
        let core = Arc::new(core);
        let vmm = Arc::new(FakeVmm::default());
        let env = Environment {
            firmware: PathBuf::from("/fw"),
            run_dir: dir.path().join("run"),
            rules: GuestRules::default(),
            machine: MACHINE,
            cgroups: None,
        };
        let supervisor = Supervisor::new(
            env,
            Arc::clone(&core) as Arc<dyn CoreServices>,
            Arc::clone(&vmm) as Arc<dyn Vmm>,
        );
        Self {
            supervisor,
            vmm,
            core,
            dir,
        }
    }

    fn process(&self, name: &str) -> GuestProcess {
        self.supervisor
            .table()
            .get(name)
            .cloned()
            .expect("the guest has a row")
    }

    /// Waits (in paused time: instantly) until `name` is `state`; fails after `within`.
    async fn until(&self, name: &str, state: GuestState, within: Duration) {
        let now = self
            .supervisor
            .wait_while(name, |s| s != state, within)
            .await;
        assert_eq!(now, state, "{name} within {within:?}");
    }

    /// A run directory entry as a surviving cloud-hypervisor leaves it.
    fn leave_api_socket(&self, name: &str) {
        let paths = RunPaths::new(&self.supervisor.environment().run_dir, name);
        std::fs::create_dir_all(&paths.dir).expect("creates");
        std::fs::write(paths.api_socket(), b"").expect("writes");
    }
}

fn guest(kernel: &Path, name: &str, memory_mib: u64, extra: &str) -> GuestSpec {
    let text = format!(
        "name = \"{name}\"\nvcpus = 1\nmemory_mib = {memory_mib}\nboot = {{ kernel = \"{}\" }}\n{extra}",
        kernel.display()
    );
    GuestSpec::from_toml(&text, 0).unwrap_or_else(|invalid| panic!("{invalid}\n{text}"))
}

fn seconds(gaps: &[Duration]) -> Vec<u64> {
    gaps.iter().map(Duration::as_secs).collect()
}

const LONG: Duration = Duration::from_secs(600);

#[tokio::test(start_paused = true)]
async fn a_start_creates_disks_attaches_ports_and_boots_in_order() {
    let bench = Bench::new(&[(
        "web",
        256,
        "volume = \"tank\"\nnics = [{ vswitch = \"vmnet\", vlan = 20 }]\ndisks = [{ file = \"data.img\", size_mib = 64 }]",
    )]);
    assert_eq!(
        bench.supervisor.start("web").await.expect("starts"),
        Running
    );
    let process = bench.process("web");
    assert_eq!(process.state, Running);
    assert_eq!(process.pid, bench.vmm.pid("web"));
    assert_eq!(process.run, 1);
    assert_eq!(
        bench.vmm.calls(),
        [
            // In the subvolume the core gave.
            Call::Sparse("/volumes/tank/vm-web/data.img".into(), 64),
            Call::Spawn("web".into()),
            Call::Ping("web".into()),
            Call::Create("web".into()),
            Call::Relay("web".into()),
            Call::Put("web".into(), Endpoint::VmBoot),
        ]
    );
    assert_eq!(
        *bench.core.taps.lock().expect("not poisoned"),
        [("vm-web-0".to_string(), "vmnet".to_string(), Some(20))]
    );
    // A second start is refused by the planner, with the state it found.
    let again = bench.supervisor.start("web").await.expect_err("running");
    assert_eq!(
        again.to_string(),
        r#"Guest "web" is running; a start needs it stopped or crashed"#
    );
    assert!(matches!(
        bench.supervisor.start("nope").await,
        Err(GuestError::NotFound(name)) if name == "nope"
    ));
}

#[tokio::test(start_paused = true)]
async fn a_crash_restarts_by_policy_after_a_backoff_that_doubles() {
    let bench = Bench::new(&[("web", 256, "")]);
    let _restarter = bench.supervisor.spawn_restarter();
    bench.supervisor.start("web").await.expect("starts");
    let mut gaps = Vec::new();
    for restart in 1..=4u32 {
        let crashed_at = Instant::now();
        bench.vmm.end("web", Exit::Signal("SIGKILL".into()));
        bench.until("web", Crashed, LONG).await;
        let process = bench.process("web");
        assert_eq!(
            process.last_exit.as_deref(),
            Some("cloud-hypervisor was killed by SIGKILL")
        );
        assert_eq!(process.restarts, restart);
        bench.until("web", Running, LONG).await;
        let spawned = *bench.vmm.spawns("web").last().expect("spawned");
        gaps.push(spawned - crashed_at);
    }
    assert_eq!(seconds(&gaps), [1, 2, 4, 8]);
    assert_eq!(bench.vmm.spawns("web").len(), 5);
    assert_eq!(bench.process("web").run, 5);
}

#[tokio::test(start_paused = true)]
async fn each_restart_policy_is_obeyed() {
    // (policy, how the process ends) → (state it is left in, restarted?)
    let cases = [
        ("never", Exit::Signal("SIGKILL".into()), Crashed, false),
        ("never", Exit::Status(0), Stopped, false),
        ("on-crash", Exit::Status(3), Crashed, true),
        ("on-crash", Exit::Status(0), Stopped, false),
        ("always", Exit::Status(0), Stopped, true),
        ("always", Exit::Signal("SIGSEGV".into()), Crashed, true),
    ];
    for (policy, exit, left, restarted) in cases {
        let bench = Bench::new(&[("web", 256, &format!("restart = \"{policy}\""))]);
        let _restarter = bench.supervisor.spawn_restarter();
        bench.supervisor.start("web").await.expect("starts");
        bench.vmm.end("web", exit.clone());
        bench.until("web", left, LONG).await;
        // Well past the first back-off.
        tokio::time::sleep(Duration::from_secs(120)).await;
        let spawns = bench.vmm.spawns("web").len();
        assert_eq!(
            (bench.supervisor.state("web"), spawns),
            (
                if restarted { Running } else { left },
                if restarted { 2 } else { 1 }
            ),
            "{policy} after {exit}"
        );
    }
    // A guest powering itself off says so.
    let bench = Bench::new(&[("web", 256, "")]);
    bench.supervisor.start("web").await.expect("starts");
    bench.vmm.end("web", Exit::Status(0));
    bench.until("web", Stopped, LONG).await;
    assert_eq!(
        bench.process("web").last_exit.as_deref(),
        Some("the guest powered itself off (cloud-hypervisor exited with status 0)")
    );
}

#[tokio::test(start_paused = true)]
async fn a_process_that_dies_at_once_is_a_failed_start_and_is_not_restarted() {
    let bench = Bench::new(&[("web", 256, "restart = \"always\"")]);
    let _restarter = bench.supervisor.spawn_restarter();
    bench.vmm.script("web", [Behaviour::DiesAtOnce(1)]);
    let error = bench.supervisor.start("web").await.expect_err("dies");
    assert!(
        matches!(
            &error,
            GuestError::StartFailed {
                source: LaunchError::ExitedAtOnce,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        chain(&error),
        r#"Guest "web" did not start: cloud-hypervisor exited at once"#
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    let process = bench.process("web");
    assert_eq!(process.state, Crashed);
    assert_eq!(
        process.last_exit.as_deref(),
        Some("cloud-hypervisor exited with status 1")
    );
    assert_eq!(
        bench.vmm.spawns("web").len(),
        1,
        "a failed start is not retried"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_boot_kills_the_process_and_the_guest_shows_why() {
    let bench = Bench::new(&[("web", 256, "")]);
    bench.vmm.script("web", [Behaviour::RefusesBoot]);
    let error = bench.supervisor.start("web").await.expect_err("refused");
    assert_eq!(
        chain(&error),
        r#"Guest "web" did not start: Guest "web": cloud-hypervisor refused the request: /api/v1/vm.boot answered 500: VmBoot: failed"#
    );
    assert_eq!(bench.vmm.calls().last(), Some(&Call::Kill("web".into())));
    let process = bench.process("web");
    assert_eq!((process.state, process.pid), (Crashed, None));
    assert_eq!(
        process.last_exit.as_deref(),
        Some(
            r#"cloud-hypervisor was killed by SIGKILL; the start failed: Guest "web": cloud-hypervisor refused the request: /api/v1/vm.boot answered 500: VmBoot: failed"#
        )
    );
    // The next start begins afresh.
    bench
        .supervisor
        .start("web")
        .await
        .expect("boots this time");
    assert_eq!(bench.process("web").last_exit, None);
}

#[tokio::test(start_paused = true)]
async fn a_port_the_core_refuses_fails_the_start_with_the_cores_error_and_spawns_nothing() {
    let bench = Bench::with_core(
        &[("web", 256, "nics = [{ vswitch = \"nope\" }]")],
        FakeCore {
            refuse_taps: Some("no vswitch named \"nope\""),
            ..FakeCore::default()
        },
    );
    let error = bench.supervisor.start("web").await.expect_err("refused");
    assert!(
        matches!(
            &error,
            GuestError::StartFailed {
                source: LaunchError::Core(_),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        chain(&error),
        r#"Guest "web" did not start: no vswitch named "nope""#
    );
    assert!(bench.vmm.spawns("web").is_empty());
    assert_eq!(bench.supervisor.state("web"), Crashed);
}

#[tokio::test(start_paused = true)]
async fn admission_refuses_a_start_that_does_not_fit_and_names_the_sum() {
    let bench = Bench::new(&[("a", 1024, ""), ("big", 1024, "")]);
    bench.supervisor.start("a").await.expect("fits");
    let error = bench
        .supervisor
        .start("big")
        .await
        .expect_err("does not fit");
    assert!(
        matches!(&error, GuestError::Refused(Refusal::Memory { name, running: 1, .. }) if name == "big"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        r#"cannot start "big": needs 1.32 GiB (1 GiB + 250 MiB + 1×80 MiB), 1.18 GiB free of 4 GiB after the host's 1.50 GiB reserve and 1 running guest"#
    );
    // Nothing changed: no process, no row moved.
    assert!(bench.vmm.spawns("big").is_empty());
    assert_eq!(bench.supervisor.state("big"), Stopped);
    // Once "a" is stopped it fits.
    bench
        .supervisor
        .stop("a", false, Duration::from_secs(60))
        .await
        .expect("stops");
    bench.supervisor.start("big").await.expect("fits now");
}

#[tokio::test(start_paused = true)]
async fn a_stop_presses_the_power_button_and_kills_only_after_the_timeout() {
    let bench = Bench::new(&[("obeys", 256, ""), ("deaf", 256, "")]);
    bench.vmm.script("deaf", [Behaviour::IgnoresPowerButton]);
    bench.supervisor.start("obeys").await.expect("starts");
    bench.supervisor.start("deaf").await.expect("starts");

    let timeout = Duration::from_secs(30);
    let began = Instant::now();
    let state = bench.supervisor.stop("obeys", false, timeout).await;
    assert_eq!(
        (state.expect("stops"), began.elapsed()),
        (Stopped, Duration::ZERO)
    );
    assert_eq!(
        bench.process("obeys").last_exit.as_deref(),
        Some("stopped: cloud-hypervisor exited with status 0")
    );
    assert!(!bench.vmm.calls().contains(&Call::Kill("obeys".into())));

    let began = Instant::now();
    let state = bench.supervisor.stop("deaf", false, timeout).await;
    assert_eq!((state.expect("stops"), began.elapsed()), (Stopped, timeout));
    let pressed = bench
        .vmm
        .when(&Call::Put("deaf".into(), Endpoint::VmPowerButton))
        .expect("pressed");
    let killed = bench.vmm.when(&Call::Kill("deaf".into())).expect("killed");
    assert_eq!(killed - pressed, timeout);
    assert_eq!(
        bench.process("deaf").last_exit.as_deref(),
        Some("stopped: cloud-hypervisor was killed by SIGKILL")
    );
    // Stopped is not crashed: no restart; and there is nothing left to stop.
    let error = bench
        .supervisor
        .stop("deaf", false, timeout)
        .await
        .expect_err("nothing to stop");
    assert_eq!(
        error.to_string(),
        r#"Guest "deaf" is stopped; there is nothing to stop"#
    );
}

#[tokio::test(start_paused = true)]
async fn a_paused_guest_is_resumed_before_its_button_and_force_kills_at_once() {
    let bench = Bench::new(&[("web", 256, ""), ("db", 256, "")]);
    bench.supervisor.start("web").await.expect("starts");
    bench.supervisor.start("db").await.expect("starts");
    assert_eq!(
        bench
            .supervisor
            .control("web", Control::Pause)
            .await
            .expect("pauses"),
        Paused
    );
    let error = bench
        .supervisor
        .control("web", Control::Pause)
        .await
        .expect_err("already paused");
    assert_eq!(
        error.to_string(),
        r#"Guest "web" is paused; it must be running"#
    );
    bench
        .supervisor
        .stop("web", false, LONG)
        .await
        .expect("stops");
    let web: Vec<Call> = bench
        .vmm
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Put(g, _) if g == "web"))
        .collect();
    assert_eq!(
        web,
        [
            Call::Put("web".into(), Endpoint::VmBoot),
            Call::Put("web".into(), Endpoint::VmPause),
            Call::Put("web".into(), Endpoint::VmResume),
            Call::Put("web".into(), Endpoint::VmPowerButton),
        ]
    );

    let began = Instant::now();
    let state = bench
        .supervisor
        .stop("db", true, LONG)
        .await
        .expect("stops");
    assert_eq!((state, began.elapsed()), (Stopped, Duration::ZERO));
    assert!(
        !bench
            .vmm
            .calls()
            .contains(&Call::Put("db".into(), Endpoint::VmPowerButton)),
        "force skips the button"
    );
}

#[tokio::test(start_paused = true)]
async fn after_a_hostd_restart_survivors_are_taken_over_from_the_run_directory() {
    let bench = Bench::new(&[
        ("running", 256, "autostart = { order = 1, delay_s = 0 }"),
        ("paused", 256, ""),
        ("half", 256, ""),
        ("stale", 256, ""),
        ("nosocket", 256, ""),
    ]);
    let _restarter = bench.supervisor.spawn_restarter();
    bench.vmm.survivor("running", 500, VmState::Running);
    bench.vmm.survivor("paused", 501, VmState::Paused);
    bench.vmm.survivor("half", 502, VmState::Created);
    bench.vmm.survivor("nosocket", 503, VmState::Running);
    for name in ["running", "paused", "half", "stale"] {
        bench.leave_api_socket(name);
    }

    bench.supervisor.adopt().await;
    let running = bench.process("running");
    assert_eq!((running.state, running.pid), (Running, Some(500)));
    let paused = bench.process("paused");
    assert_eq!((paused.state, paused.pid), (Paused, Some(501)));
    assert_eq!(bench.supervisor.state("half"), Stopped);
    assert_eq!(bench.supervisor.state("stale"), Stopped);
    assert_eq!(bench.supervisor.state("nosocket"), Stopped);
    let calls = bench.vmm.calls();
    assert!(calls.contains(&Call::Kill("half".into())), "{calls:?}");
    assert!(calls.contains(&Call::Relay("running".into())), "{calls:?}");
    assert!(!calls.contains(&Call::Ping("nosocket".into())), "{calls:?}");
    // Admission counts the adopted guests.
    assert_eq!(bench.supervisor.capacity(None).running, 2);

    // Autostart does not start a guest that was taken over.
    bench.supervisor.autostart().await;
    assert!(bench.vmm.spawns("running").is_empty());

    // Its end is noticed without a status, and its policy (on-crash) restarts it.
    bench.vmm.end("running", Exit::Unknown);
    bench.until("running", Crashed, LONG).await;
    assert_eq!(
        bench.process("running").last_exit.as_deref(),
        Some(
            "cloud-hypervisor ended (taken over after a hostd restart, so its exit status is unknown)"
        )
    );
    bench.until("running", Running, LONG).await;
    assert_eq!(bench.vmm.spawns("running").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn autostart_starts_in_order_with_the_delays() {
    let bench = Bench::new(&[
        ("second", 256, "autostart = { order = 2, delay_s = 0 }"),
        ("first", 256, "autostart = { order = 1, delay_s = 7 }"),
        ("manual", 256, ""),
    ]);
    let began = Instant::now();
    bench.supervisor.autostart().await;
    let first = bench.vmm.spawns("first");
    let second = bench.vmm.spawns("second");
    assert_eq!(first.len(), 1);
    assert_eq!(second.len(), 1);
    assert_eq!(first[0] - began, Duration::ZERO);
    assert_eq!(second[0] - first[0], Duration::from_secs(7));
    assert!(bench.vmm.spawns("manual").is_empty());
}

#[tokio::test(start_paused = true)]
async fn hostd_stop_presses_every_button_at_once_then_kills_what_is_left_at_the_deadline() {
    let bench = Bench::new(&[("a", 256, ""), ("b", 256, ""), ("c", 256, "")]);
    let _restarter = bench.supervisor.spawn_restarter();
    bench.vmm.script("b", [Behaviour::IgnoresPowerButton]);
    bench.vmm.script("c", [Behaviour::IgnoresPowerButton]);
    for name in ["a", "b", "c"] {
        bench.supervisor.start(name).await.expect("starts");
    }
    bench
        .supervisor
        .control("c", Control::Pause)
        .await
        .expect("pauses");

    let deadline = Duration::from_secs(5);
    let began = Instant::now();
    bench.supervisor.stop_all(deadline).await;
    assert_eq!(began.elapsed(), deadline);

    let pressed: Vec<Instant> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            bench
                .vmm
                .when(&Call::Put((*name).into(), Endpoint::VmPowerButton))
                .expect("pressed")
        })
        .collect();
    assert_eq!(pressed, [began; 3], "every button at once");
    assert_eq!(bench.vmm.when(&Call::Kill("a".into())), None);
    for name in ["b", "c"] {
        let killed = bench.vmm.when(&Call::Kill(name.into())).expect("killed");
        assert_eq!(killed - began, deadline, "{name} killed at the deadline");
    }
    for name in ["a", "b", "c"] {
        assert_eq!(bench.supervisor.state(name), Stopped, "{name}");
    }
    // No restart and no start once hostd is stopping.
    tokio::time::sleep(LONG).await;
    assert_eq!(bench.vmm.spawns("a").len(), 1);
    assert!(matches!(
        bench.supervisor.start("a").await,
        Err(GuestError::ShuttingDown)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_running_guest_cannot_be_forgotten_and_a_stopped_one_leaves_no_run_directory() {
    let bench = Bench::new(&[("web", 256, "")]);
    bench.supervisor.start("web").await.expect("starts");
    bench.leave_api_socket("web");
    let error = bench.supervisor.forget("web").expect_err("running");
    assert_eq!(
        error.to_string(),
        r#"Guest "web" is running; stop it before deleting it"#
    );
    bench
        .supervisor
        .stop("web", false, LONG)
        .await
        .expect("stops");
    bench.supervisor.forget("web").expect("forgets");
    assert!(!bench.dir.path().join("run/web").exists());
    assert!(bench.supervisor.table().get("web").is_none());
}
