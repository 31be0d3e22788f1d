//! The core over an in-memory store and a recording double of the box. The storage jobs
//! over the double's storage tools are in `tests/storage.rs`.

mod fake_tools;
mod storage;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use super::*;
use crate::jobs::JobState;
use crate::network::NetObserved;
use crate::state::Hostname;
use crate::store::MemoryFs;
use crate::system::{Observed, SystemError};

const DIR: &str = "/config/desired";

/// Only the host name: the double observes no network, so a network section would be planned
/// again on every apply (the network planner has its own tests).
const GOOD: &str = r#"
version = 1
hostname = "nas1"
"#;

const BONDED: &str = r#"
version = 1
hostname = "nas1"

[[network.bonds]]
name = "bond0"
mode = "802.3ad"
members = ["lan1", "lan2"]
"#;

/// The exact line the state module gives for a wrong bond mode.
const LACP2_LINE: &str = r#"network.bonds[0].mode: unknown mode "lacp2" (expected one of: 802.3ad, active-backup, balance-alb)"#;

fn clock() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// The box as a host name and a log of what was done to it; `refuse` makes setting that
/// name fail.
#[derive(Debug, Clone, Default)]
struct FakeBox {
    inner: Arc<Mutex<FakeInner>>,
}

#[derive(Debug, Default)]
struct FakeInner {
    hostname: String,
    executed: Vec<String>,
    refuse: Option<String>,
    /// A detail every action reports while it runs, as a long one would…
    report: Option<String>,
    /// …and the job whose step is read back right after, into `steps_seen`.
    job: Option<Job>,
    steps_seen: Vec<String>,
    /// The drives, the mounts and a log of every storage command: a recording double of
    /// the storage tools, which also holds what the box's storage observes (a command such
    /// as `btrfs device add` changes it).
    tools: Arc<fake_tools::FakeTools>,
}

impl FakeBox {
    fn named(hostname: &str) -> Self {
        let fake = Self::default();
        fake.lock().hostname = hostname.into();
        fake
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn hostname(&self) -> String {
        self.lock().hostname.clone()
    }

    fn executed(&self) -> Vec<String> {
        self.lock().executed.clone()
    }
}

impl Executor<SystemAction> for FakeBox {
    type Error = SystemError;

    fn execute_reporting(
        &mut self,
        action: &SystemAction,
        report: &dyn Fn(&str),
    ) -> Result<(), SystemError> {
        let (detail, job) = {
            let inner = self.lock();
            (inner.report.clone(), inner.job.clone())
        };
        if let (Some(detail), Some(job)) = (detail, job) {
            report(&detail);
            self.lock().steps_seen.push(job.snapshot().step);
        }
        self.execute(action)
    }

    fn execute(&mut self, action: &SystemAction) -> Result<(), SystemError> {
        let mut inner = self.lock();
        let SystemAction::Hostname(set) = action else {
            inner.executed.push(action.to_string());
            return Ok(());
        };
        if inner.refuse.as_deref() == Some(set.to.as_str()) {
            return Err(SystemError::SetHostname {
                name: set.to.clone(),
                source: nix::Error::EPERM,
            });
        }
        inner.hostname = set.to.clone();
        inner.executed.push(action.to_string());
        Ok(())
    }
}

impl System for FakeBox {
    fn observe(&self) -> Result<Observed, SystemError> {
        Ok(Observed {
            hostname: self.hostname(),
            network: NetObserved::default(),
            storage: self.lock().tools.observed(),
        })
    }

    fn storage_tools(&self) -> Arc<dyn crate::storage::StorageTools> {
        self.lock().tools.clone()
    }

    fn port_carriers(
        &mut self,
        lan: &board_configs::Lan,
    ) -> Result<Vec<(String, bool)>, SystemError> {
        Ok(lan
            .ports
            .iter()
            .map(|port| (port.name.clone(), true))
            .collect())
    }
}

fn core_over(fs: MemoryFs, fake: FakeBox) -> Core<FakeBox, MemoryFs> {
    let store = StateStore::open_with(fs, DIR, clock).expect("open a store in memory");
    Core::new(store, fake, "qemu-x86_64", true, || Some(12.5))
}

fn core() -> (Core<FakeBox, MemoryFs>, FakeBox) {
    let fake = FakeBox::named("cairn");
    (core_over(MemoryFs::new(), fake.clone()), fake)
}

fn doc(text: &str) -> Validated<DesiredState> {
    DesiredState::parse(text).expect("a valid document")
}

fn apply(core: &mut Core<FakeBox, MemoryFs>, text: &str) -> Result<Applied, CoreError> {
    core.apply(&doc(text), &Job::new(1, "config apply"))
}

#[test]
fn fresh_core_shows_generation_zero_and_the_empty_document() {
    let (core, _) = core();
    let (generation, text) = core.show().expect("show");
    assert_eq!(generation, 0);
    assert_eq!(doc(&text), Validated::default());
    assert_eq!(
        core.status().expect("status"),
        Status {
            board: "qemu-x86_64".into(),
            uptime_seconds: Some(12.5),
            generation: 0,
            persistence: true,
            reconcile_error: None,
            alerts: Vec::new(),
            drift: Vec::new(),
            drift_checked_unix: None,
        }
    );
}

#[test]
fn apply_commits_acts_on_the_box_and_reports_each_step() {
    let (mut core, fake) = core();
    let job = Job::new(1, "config apply");
    let applied = core.apply(&doc(GOOD), &job).expect("apply");
    assert_eq!(
        applied,
        Applied {
            generation: 1,
            actions: vec![r#"set the host name from "cairn" to "nas1""#.into()],
            recorded_only: vec![],
        }
    );
    assert_eq!(fake.hostname(), "nas1");
    let (generation, text) = core.show().expect("show");
    assert_eq!(generation, 1);
    assert_eq!(doc(&text), doc(GOOD));
    let seen = job.snapshot();
    assert_eq!((seen.done, seen.total), (2, 2), "commit + one action");
}

#[test]
fn a_long_action_says_how_it_is_getting_on_in_the_job_step() {
    let (mut core, fake) = core();
    let job = Job::new(1, "config apply");
    {
        let mut inner = fake.lock();
        inner.report = Some("12.5 MiB of dirty data left to write back".into());
        inner.job = Some(job.clone());
    }
    core.apply(&doc(GOOD), &job).expect("apply");
    assert_eq!(
        fake.lock().steps_seen,
        vec![
            r#"set the host name from "cairn" to "nas1": 12.5 MiB of dirty data left to write back"#
        ]
    );
}

#[test]
fn applying_the_committed_document_again_keeps_its_generation_and_does_nothing() {
    let (mut core, fake) = core();
    assert_eq!(apply(&mut core, GOOD).expect("apply").generation, 1);
    let again = apply(&mut core, GOOD).expect("apply again");
    assert_eq!(again.generation, 1);
    assert!(again.actions.is_empty());
    assert_eq!(core.history().expect("history").len(), 1);
    assert_eq!(fake.executed().len(), 1);
}

#[test]
fn the_committed_document_is_applied_again_to_a_box_that_drifted() {
    let (mut core, fake) = core();
    apply(&mut core, GOOD).expect("apply");
    fake.lock().hostname = "changed-by-hand".into();
    let again = apply(&mut core, GOOD).expect("apply again");
    assert_eq!(again.generation, 1);
    assert_eq!(fake.hostname(), "nas1");
}

#[test]
fn invalid_document_is_refused_with_every_line_and_nothing_changes() {
    let (mut core, fake) = core();
    apply(&mut core, GOOD).expect("apply");
    let two_errors = BONDED.replace("802.3ad", "lacp2").replace("nas1", "-bad-");
    let invalid = DesiredState::from_toml(&two_errors).expect_err("refused");
    let lines: Vec<String> = invalid.errors.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("hostname: "), "{lines:?}");
    assert_eq!(lines[1], LACP2_LINE);
    assert_eq!(core.plan(&two_errors), Err(CoreError::Refused(invalid)));
    assert_eq!(core.show().expect("show").0, 1);
    assert_eq!(fake.hostname(), "nas1");
}

#[test]
fn a_failing_action_leaves_the_box_and_the_store_as_they_were() {
    let (mut core, fake) = core();
    apply(&mut core, GOOD).expect("apply");
    fake.lock().refuse = Some("nas2".into());
    let error = apply(&mut core, &GOOD.replace("nas1", "nas2")).expect_err("refused by the box");
    let CoreError::Apply { failure, restored } = &error else {
        panic!("expected Apply, got {error:?}");
    };
    assert_eq!(failure.0.rolled_back, []);
    assert_eq!(*restored, Restored::Back(Generation::new(3)));
    let message = error.to_string();
    assert!(
        message.contains(r#""set the host name from "nas1" to "nas2"" failed"#),
        "{message}"
    );
    assert!(
        message.contains("back at the previous document (now generation 3)"),
        "{message}"
    );
    assert_eq!(fake.hostname(), "nas1");
    let (generation, text) = core.show().expect("show");
    assert_eq!(
        generation, 3,
        "the attempt (2) stays in the history, then 1 again as 3"
    );
    assert_eq!(doc(&text), doc(GOOD));
}

#[test]
fn a_failed_first_apply_leaves_the_empty_document() {
    let (mut core, fake) = core();
    fake.lock().refuse = Some("nas1".into());
    apply(&mut core, GOOD).expect_err("refused by the box");
    assert_eq!(doc(&core.show().expect("show").1), Validated::default());
    assert_eq!(fake.hostname(), "cairn");
}

#[test]
fn a_cancel_requested_before_the_first_action_undoes_the_commit() {
    let (mut core, fake) = core();
    apply(&mut core, GOOD).expect("apply");
    let job = Job::new(2, "config apply");
    job.request_cancel().expect("running");
    let error = core
        .apply(&doc(&GOOD.replace("nas1", "nas2")), &job)
        .expect_err("cancelled");
    let CoreError::Cancelled { failure, restored } = &error else {
        panic!("expected Cancelled, got {error:?}");
    };
    assert_eq!(
        failure.0.failed_action.to_string(),
        r#"set the host name from "nas1" to "nas2""#
    );
    assert_eq!(*restored, Restored::Back(Generation::new(3)));
    assert!(error.is_cancellation());
    assert!(error.to_string().starts_with("Cancelled before"), "{error}");
    assert_eq!(fake.hostname(), "nas1");
    assert_eq!(doc(&core.show().expect("show").1), doc(GOOD));
    assert_eq!(
        job.snapshot().state,
        JobState::Running,
        "the API ends the job"
    );
}

#[test]
fn reconcile_takes_the_box_to_the_committed_document() {
    let fs = MemoryFs::new();
    let first = FakeBox::named("cairn");
    let mut core = core_over(fs.clone(), first);
    apply(&mut core, GOOD).expect("apply");
    // A reboot: a new box with init's name, the same store.
    let rebooted = FakeBox::named("cairn");
    let mut core = core_over(fs, rebooted.clone());
    let done = core.reconcile().expect("reconcile");
    assert_eq!(
        done,
        vec![r#"set the host name from "cairn" to "nas1""#.to_string()]
    );
    assert_eq!(rebooted.hostname(), "nas1");
    assert!(core.reconcile().expect("again").is_empty());
}

#[test]
fn a_failed_reconcile_shows_in_the_status() {
    let fs = MemoryFs::new();
    let mut core = core_over(fs.clone(), FakeBox::named("cairn"));
    apply(&mut core, GOOD).expect("apply");
    let stuck = FakeBox::named("cairn");
    stuck.lock().refuse = Some("nas1".into());
    let mut core = core_over(fs, stuck);
    assert!(core.reconcile().is_err());
    let error = core
        .status()
        .expect("status")
        .reconcile_error
        .expect("shown");
    assert!(error.contains("nas1"), "{error}");
}

#[test]
fn plan_names_changed_sections_and_the_actions() {
    let (mut core, _) = core();
    let plan = core.plan(GOOD).expect("plan");
    assert!(plan.starts_with("Against the empty document"), "{plan}");
    assert!(plan.contains("  hostname: changed\n"), "{plan}");
    assert!(plan.contains("  network: unchanged\n"), "{plan}");
    assert!(plan.contains("  storage: unchanged\n"), "{plan}");
    assert!(
        plan.contains("Actions on the box:\n    1. set the host name from \"cairn\" to \"nas1\"\n"),
        "{plan}"
    );
    apply(&mut core, GOOD).expect("apply");
    assert_eq!(
        core.plan(GOOD).expect("plan"),
        "No changes against generation 1.\n"
    );
    let plan = core.plan(&GOOD.replace("nas1", "nas2")).expect("plan");
    assert!(plan.starts_with("Against generation 1:\n"), "{plan}");
    assert!(
        plan.contains("  hostname: changed\n  network: unchanged\n"),
        "{plan}"
    );
    // A plan commits nothing.
    assert_eq!(core.show().expect("show").0, 1);
}

#[test]
fn history_and_rollback_documents() {
    let (mut core, fake) = core();
    apply(&mut core, GOOD).expect("apply");
    apply(&mut core, &GOOD.replace("nas1", "nas2")).expect("apply");
    assert_eq!(
        core.history().expect("history"),
        [(1, 1_700_000_000), (2, 1_700_000_000)]
    );
    let old = core.generation(1).expect("kept");
    assert_eq!(
        old.hostname,
        Some(Hostname::try_from("nas1").expect("valid"))
    );
    assert_eq!(
        core.apply(&old, &Job::new(3, "config apply"))
            .expect("rollback")
            .generation,
        3
    );
    assert_eq!(fake.hostname(), "nas1");
    assert_eq!(
        core.generation(42),
        Err(CoreError::UnknownGeneration {
            generation: Generation::new(42),
            kept: "1, 2, 3".to_string(),
        })
    );
}

#[test]
fn storage_failure_is_a_storage_error_with_its_cause() {
    let fs = MemoryFs::new();
    let (_, fake) = core();
    let mut core = core_over(fs.clone(), fake.clone());
    fs.crash_after(0);
    let error = apply(&mut core, GOOD).expect_err("the disk is gone");
    let CoreError::Store(cause) = &error else {
        panic!("expected Store, got {error:?}");
    };
    assert!(cause.to_string().starts_with("Cannot "), "{cause}");
    assert_eq!(
        fake.hostname(),
        "cairn",
        "nothing acted on before the commit"
    );
}

#[test]
fn board_is_the_board_config_as_json_and_unknown_boards_are_not_found() {
    let (core, _) = core();
    let json: serde_json::Value =
        serde_json::from_str(&core.board().expect("board")).expect("JSON");
    assert_eq!(json["id"], "qemu-x86_64");
    let store = StateStore::open_with(MemoryFs::new(), DIR, clock).expect("open");
    let unknown = Core::new(store, FakeBox::default(), "no-such-board", false, || None);
    assert_eq!(
        unknown.board(),
        Err(CoreError::UnknownBoard {
            board: "no-such-board".to_string()
        })
    );
}

#[test]
fn the_first_boot_commits_the_default_vm_network_once() {
    let (mut core, _) = core();
    let made = core
        .first_boot()
        .expect("first boot")
        .expect("a default network");
    assert_eq!(
        made,
        "vSwitch vmnet over active-backup bond bond0 of lan1, lan2"
    );
    let (generation, text) = core.show().expect("show");
    assert_eq!(generation, 1);
    assert!(text.contains("name = \"vmnet\""), "{text}");
    assert_eq!(core.first_boot().expect("second start"), None);
}

#[test]
fn a_box_with_history_never_gets_the_default_again() {
    let (mut core, _) = core();
    apply(&mut core, GOOD).expect("apply");
    assert_eq!(core.first_boot().expect("start"), None);
    assert_eq!(core.show().expect("show").0, 1);
}

/// A hostd stopped inside a safe apply's confirm window: the marker was written, the new
/// generation committed, and nothing confirmed it.
#[test]
fn a_start_after_an_unconfirmed_apply_goes_back_to_the_previous_document() {
    let fs = MemoryFs::new();
    let mut before = core_over(fs.clone(), FakeBox::named("cairn"));
    apply(&mut before, GOOD).expect("first apply");
    before
        .store
        .mark_unconfirmed(Some(Generation::new(1)))
        .expect("mark");
    before
        .store
        .commit(&doc(BONDED))
        .expect("commit the unconfirmed document");

    let mut after = core_over(fs, FakeBox::named("cairn"));
    assert_eq!(
        after.revert_unconfirmed().expect("revert_unconfirmed"),
        Some(Generation::new(3))
    );
    assert_eq!(after.show().map(|(g, _)| g).expect("show"), 3);
    assert_eq!(after.generation(3).expect("generation"), doc(GOOD));
    assert_eq!(after.store.unconfirmed().expect("store.unconfirmed"), None);
    assert_eq!(
        after.revert_unconfirmed().expect("revert_unconfirmed"),
        None,
        "the marker is gone"
    );
}

#[test]
fn an_unconfirmed_first_apply_goes_back_to_the_empty_document() {
    let fs = MemoryFs::new();
    let mut before = core_over(fs.clone(), FakeBox::named("cairn"));
    before.store.mark_unconfirmed(None).expect("mark");
    before.store.commit(&doc(BONDED)).expect("commit");

    let mut after = core_over(fs, FakeBox::named("cairn"));
    assert_eq!(
        after.revert_unconfirmed().expect("revert_unconfirmed"),
        Some(Generation::new(2))
    );
    assert_eq!(
        after.generation(2).expect("generation"),
        Validated::default()
    );
}

#[test]
fn a_marker_written_before_the_commit_changes_nothing() {
    let fs = MemoryFs::new();
    let mut before = core_over(fs.clone(), FakeBox::named("cairn"));
    apply(&mut before, GOOD).expect("first apply");
    before
        .store
        .mark_unconfirmed(Some(Generation::new(1)))
        .expect("mark");

    let mut after = core_over(fs, FakeBox::named("cairn"));
    assert_eq!(
        after.revert_unconfirmed().expect("revert_unconfirmed"),
        None
    );
    assert_eq!(after.show().map(|(g, _)| g).expect("show"), 1);
    assert_eq!(after.store.unconfirmed().expect("store.unconfirmed"), None);
}

#[test]
fn an_apply_without_a_management_section_leaves_no_marker() {
    let (mut core, _) = core();
    apply(&mut core, BONDED).expect("apply");
    assert_eq!(core.store.unconfirmed().expect("store.unconfirmed"), None);
}

/// A document with volume `tank` on two drives, committed without an apply (the double has
/// no drives, so an apply would refuse it).
fn with_tank() -> Core<FakeBox, MemoryFs> {
    let (mut core, _) = core();
    let tank = r#"
version = 1

[[storage.volumes]]
name = "tank"
drives = ["/dev/disk/by-id/ata-WDC_A", "/dev/disk/by-id/ata-WDC_B"]
data_profile = "raid1"
metadata_profile = "raid1"
"#;
    core.store.commit(&doc(tank)).expect("commit");
    core
}

#[test]
fn a_volume_not_in_the_document_is_no_such_volume_with_the_known_ones() {
    let core = with_tank();
    assert_eq!(
        core.mounted_volume("pool"),
        Err(CoreError::NoSuchVolume {
            name: "pool".to_string(),
            known: vec!["tank".to_string()],
        })
    );
    assert_eq!(
        core.addition("pool", "/dev/sdc"),
        Err(CoreError::NoSuchVolume {
            name: "pool".to_string(),
            known: vec!["tank".to_string()],
        })
    );
}

#[test]
fn a_volume_that_is_not_mounted_is_not_mounted_on_every_path() {
    let core = with_tank();
    let not_mounted = || CoreError::NotMounted {
        volume: "tank".to_string(),
        path: "/volume1".to_string(),
    };
    assert_eq!(core.mounted_volume("tank"), Err(not_mounted()));
    assert_eq!(
        core.replacement("tank", "missing", "/dev/sdc"),
        Err(not_mounted())
    );
    assert_eq!(core.removal("tank", "/dev/sda"), Err(not_mounted()));
    // The guest path: the supervisor asks the core for a guest's subvolume.
    assert_eq!(core.guest_subvolume("tank", "web"), Err(not_mounted()));
}

#[test]
fn guest_port_requests_are_refused_with_the_field_or_the_network_reason() {
    let (mut core, _) = core();
    assert_eq!(
        core.attach_tap("vm-web-0", "priv", Some(5000)),
        Err(CoreError::BadValue {
            field: "vlan",
            error: crate::state::VlanId::new(5000).expect_err("out of range"),
        })
    );
    assert_eq!(
        core.attach_tap("vm-web-0", "priv", None),
        Err(CoreError::Tap(
            crate::network::taps::TapError::UnknownVSwitch {
                name: "priv".to_string(),
                known: "none".to_string(),
            }
        ))
    );
    assert_eq!(
        core.detach_tap("vm-web-0"),
        Err(CoreError::Tap(crate::network::taps::TapError::NoSuchTap(
            "vm-web-0".to_string()
        )))
    );
}

#[test]
fn a_drive_that_is_not_a_path_is_refused_as_a_value() {
    let mut core = with_tank();
    assert_eq!(
        core.record_addition("tank", "sdc"),
        Err(CoreError::BadValue {
            field: "new",
            error: crate::state::DrivePath::try_from("sdc").expect_err("not a path"),
        })
    );
}

#[test]
fn the_daemon_s_apply_over_the_shared_core_is_the_same_transaction() {
    let (core, fake) = core();
    let shared = tokio::sync::Mutex::new(core);
    let job = Job::new(1, "config apply");
    let applied = run_apply(&shared, &doc(GOOD), &job).expect("apply");
    assert_eq!(applied.generation, 1);
    assert_eq!(fake.hostname(), "nas1");
    fake.lock().refuse = Some("nas2".into());
    let error = run_apply(&shared, &doc(&GOOD.replace("nas1", "nas2")), &job)
        .expect_err("refused by the box");
    assert!(matches!(error, CoreError::Apply { .. }), "{error:?}");
    assert_eq!(shared.blocking_lock().show().expect("show").0, 3);
}

#[test]
fn a_document_may_not_drop_a_running_guest() {
    let with_web = doc(
        "version = 1\n[[guests]]\nname = \"web\"\nvcpus = 1\nmemory_mib = 128\n[guests.boot]\nkernel = \"/k\"\n",
    );
    assert_eq!(keeps_running_guests(&with_web, vec!["web".into()]), Ok(()));
    assert_eq!(
        keeps_running_guests(&DesiredState::default(), vec!["web".into(), "db".into()]),
        Err(CoreError::DropsRunningGuests {
            guests: vec!["web".into(), "db".into()],
        })
    );
}

#[test]
fn a_guest_with_nested_tables_joins_the_document_as_a_value() {
    let (mut core, _) = core();
    core.store
        .commit(&doc(
            "version = 1\n\n[[network.vswitches]]\nname = \"priv\"\n",
        ))
        .expect("commit");
    let everything_is_there = |_: &std::path::Path| crate::guests::vm_config::FileKind::File;
    let guest = "name = \"g1\"\nvcpus = 1\nmemory_mib = 128\n\n[boot]\nkernel = \"/k\"\n\n[[nics]]\nvswitch = \"priv\"\n";
    assert_eq!(core.add_guest(guest, &everything_is_there), Ok(2));
    let guests = core.committed_guests().expect("guests");
    assert_eq!(guests.len(), 1);
    assert_eq!(guests[0].nics.len(), 1);
    let twice = core
        .add_guest(guest, &everything_is_there)
        .expect_err("the name is taken");
    let CoreError::Refused(invalid) = &twice else {
        panic!("expected Refused, got {twice:?}");
    };
    let lines: Vec<String> = invalid.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [r#"guests[1].name: "g1" is already the name of guests[0] (expected a name of its own)"#]
    );
    let wrong_type = core
        .add_guest(
            &guest.replace("vcpus = 1", "vcpus = \"two\""),
            &everything_is_there,
        )
        .expect_err("vcpus is a number");
    let CoreError::Refused(invalid) = &wrong_type else {
        panic!("expected Refused, got {wrong_type:?}");
    };
    assert!(
        invalid.errors[0]
            .to_string()
            .starts_with("guests[1].vcpus: invalid type"),
        "{invalid}"
    );
    let nothing_there = |_: &std::path::Path| crate::guests::vm_config::FileKind::Missing;
    let missing = core
        .add_guest(&guest.replace("g1", "g2"), &nothing_there)
        .expect_err("no kernel");
    assert!(
        matches!(missing, CoreError::GuestFiles { .. }),
        "{missing:?}"
    );
    assert_eq!(
        core.show().expect("show").0,
        2,
        "nothing refused was committed"
    );
}

mod drift;
mod engine;
