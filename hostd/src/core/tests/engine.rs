//! The engine over the same double of the appliance: what it adds to the core — jobs it
//! runs itself, one per kind at a time, and the running guests an apply may not drop.

use std::sync::Arc;

use super::*;
use crate::core::engine::{Engine, LiveEngine};
use crate::storage::scrub_records::{ScrubRecords, Trigger};

type FakeEngine = LiveEngine<FakeBox, MemoryFs>;

/// An engine over a fresh core, and the runtime its job threads run on (entered: the test
/// thread calls the engine as a transport's blocking thread would).
fn engine() -> (
    FakeEngine,
    FakeBox,
    tokio::runtime::Runtime,
    tempfile::TempDir,
) {
    // Jobs run on the runtime's blocking threads, which work without the runtime being
    // driven.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let (core, fake) = core();
    let records = tempfile::tempdir().expect("tempdir");
    let engine = LiveEngine::new(
        Arc::new(tokio::sync::Mutex::new(core)),
        ScrubRecords::new(records.path()),
    );
    (engine, fake, runtime, records)
}

fn finished(job: &Job) -> crate::jobs::JobSnapshot<CoreError> {
    for _ in 0..500 {
        let snapshot = job.snapshot();
        if snapshot.state != JobState::Running {
            return snapshot;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("job {} did not finish within 5 s", job.id());
}

#[test]
fn an_apply_is_a_job_the_engine_runs_and_ends_with_its_outcome() {
    let (engine, fake, runtime, _records) = engine();
    let _entered = runtime.enter();
    let job = engine.config_apply(GOOD).expect("started");
    let snapshot = finished(&job);
    assert_eq!(snapshot.state, JobState::Succeeded, "{snapshot:?}");
    let applied: Applied = serde_json::from_str(&snapshot.result).expect("the outcome as JSON");
    assert_eq!(applied.generation, 1);
    assert_eq!(fake.hostname(), "nas1");
    assert_eq!(engine.config_show().expect("show").0, 1);
    assert_eq!(engine.jobs().len(), 1);
}

#[test]
fn a_refused_document_starts_no_job() {
    let (engine, _fake, runtime, _records) = engine();
    let _entered = runtime.enter();
    let error = engine
        .config_apply(&BONDED.replace("802.3ad", "lacp2"))
        .expect_err("refused");
    assert!(
        matches!(&error, CoreError::Refused(invalid) if invalid.errors[0].to_string() == LACP2_LINE),
        "{error:?}"
    );
    assert!(engine.jobs().is_empty());
}

#[test]
fn one_job_of_a_kind_at_a_time_and_the_kinds_do_not_block_each_other() {
    let (engine, _fake, runtime, _records) = engine();
    let _entered = runtime.enter();
    // Holding the core keeps the first jobs running at their first step.
    let held = engine.core().blocking_lock();
    let apply = engine.config_apply(GOOD).expect("first apply");
    assert_eq!(
        engine.config_apply(GOOD).map(|job| job.id()),
        Err(CoreError::ApplyBusy { job: apply.id() })
    );
    let scrub = engine
        .storage_scrub("tank", Trigger::OnDemand)
        .expect("a storage job beside the apply");
    assert_eq!(
        engine.storage_add("tank", "/dev/sdc").map(|job| job.id()),
        Err(CoreError::StorageBusy { job: scrub.id() })
    );
    drop(held);
    assert_eq!(finished(&apply).state, JobState::Succeeded);
    let scrubbed = finished(&scrub);
    assert_eq!(scrubbed.state, JobState::Failed);
    assert!(
        matches!(
            scrubbed.failure.as_deref(),
            Some(CoreError::NoSuchVolume { name, .. }) if name == "tank"
        ),
        "{scrubbed:?}"
    );
    // Both finished: the next of each kind starts.
    assert!(engine.config_apply(GOOD).is_ok());
    assert!(engine.storage_scrub("tank", Trigger::OnDemand).is_ok());
}

#[test]
fn an_apply_may_not_drop_a_running_guest() {
    let (engine, _fake, runtime, _records) = engine();
    let _entered = runtime.enter();
    let engine = engine.with_running_guests(Arc::new(|| vec!["web".to_string()]));
    assert_eq!(
        engine.config_apply(GOOD).map(|job| job.id()),
        Err(CoreError::DropsRunningGuests {
            guests: vec!["web".into()]
        })
    );
    assert!(engine.jobs().is_empty());
}

#[test]
fn nothing_is_due_without_volumes() {
    let (engine, _fake, runtime, _records) = engine();
    let _entered = runtime.enter();
    assert!(engine.start_due_scrubs().expect("schedule").is_empty());
    assert!(engine.jobs().is_empty());
}
