//! The store on a real directory (tempdir) and, for crashes, on the in-memory model of what a
//! power cut keeps.

use std::fs;
use std::time::{Duration, UNIX_EPOCH};

use super::*;

/// 2026-01-01T00:00:00Z: every commit in these tests happens then.
const NOW: u64 = 1_767_225_600;

fn clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn doc(hostname: &str) -> Validated<DesiredState> {
    DesiredState::parse(&format!("version = 1\nhostname = \"{hostname}\"\n"))
        .unwrap_or_else(|invalid| panic!("{invalid}"))
}

fn open_dir(dir: &Path) -> StateStore {
    StateStore::open_with(OsFilesystem, dir, clock).expect("open a store in a tempdir")
}

fn generations(store: &StateStore<impl Filesystem>) -> Vec<u64> {
    store
        .history()
        .expect("history")
        .iter()
        .map(|v| v.generation.get())
        .collect()
}

#[test]
fn a_new_store_is_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_dir(&dir.path().join("desired"));
    assert_eq!(store.current(), Ok(None));
    assert_eq!(store.history(), Ok(vec![]));
    assert!(dir.path().join("desired/history").is_dir());
}

#[test]
fn commit_writes_the_state_and_its_history_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open_dir(dir.path());
    assert_eq!(store.commit(&doc("nas1")), Ok(Generation::new(1)));
    assert_eq!(store.current(), Ok(Some((Generation::new(1), doc("nas1")))));
    let text = fs::read_to_string(dir.path().join("state.toml")).expect("state.toml");
    assert_eq!(
        text,
        "# Cairn desired state, generation 1, committed 1767225600 (seconds since 1970, UTC).\n\
         # hostd writes this file and keeps earlier generations in history/: change it through cairnctl.\n\
         version = 1\nhostname = \"nas1\"\n"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("history/1.toml")).expect("history copy"),
        text
    );
    assert_eq!(
        store.history(),
        Ok(vec![Version {
            generation: Generation::new(1),
            committed_at: clock(),
        }])
    );
    // Nothing else is left in the directory.
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["history", "state.toml"]);
}

#[test]
fn generations_grow_and_the_history_keeps_the_last_twenty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open_dir(dir.path());
    for n in 1..=25u64 {
        assert_eq!(
            store.commit(&doc(&format!("nas{n}"))),
            Ok(Generation::new(n))
        );
    }
    assert_eq!(generations(&store), (6..=25).collect::<Vec<u64>>());
    assert_eq!(
        store.current(),
        Ok(Some((Generation::new(25), doc("nas25"))))
    );
    // Reopening continues the numbering.
    let mut store = open_dir(dir.path());
    assert_eq!(store.commit(&doc("again")), Ok(Generation::new(26)));
}

#[test]
fn rollback_commits_an_old_document_as_a_new_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open_dir(dir.path());
    for name in ["a", "b", "c"] {
        store.commit(&doc(name)).expect("commit");
    }
    assert_eq!(store.rollback(Generation::new(1)), Ok(Generation::new(4)));
    assert_eq!(store.current(), Ok(Some((Generation::new(4), doc("a")))));
    assert_eq!(generations(&store), [1, 2, 3, 4]);
    // The rollback is itself a generation, so it can be rolled back too.
    assert_eq!(store.rollback(Generation::new(3)), Ok(Generation::new(5)));
    assert_eq!(store.current(), Ok(Some((Generation::new(5), doc("c")))));

    let error = store
        .rollback(Generation::new(9))
        .expect_err("9 never existed");
    assert_eq!(
        error,
        StoreError::UnknownGeneration {
            generation: Generation::new(9),
            kept: "1, 2, 3, 4, 5".to_string(),
        }
    );
    assert_eq!(
        error.to_string(),
        "Generation 9 is not in the history (kept: 1, 2, 3, 4, 5)"
    );
}

#[test]
fn temporary_files_left_by_a_crash_are_removed_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    open_dir(dir.path()).commit(&doc("kept")).expect("commit");
    fs::write(
        dir.path().join(".state.toml.tmp"),
        "version = 1\nhostname = \"ha",
    )
    .expect("tmp");
    fs::write(dir.path().join("history/.2.toml.tmp"), "").expect("tmp");
    let store = open_dir(dir.path());
    assert!(!dir.path().join(".state.toml.tmp").exists());
    assert!(!dir.path().join("history/.2.toml.tmp").exists());
    assert_eq!(store.current(), Ok(Some((Generation::new(1), doc("kept")))));
}

#[test]
fn a_state_written_by_hand_is_adopted_as_the_next_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = open_dir(dir.path());
        store.commit(&doc("one")).expect("commit");
        store.commit(&doc("two")).expect("commit");
    }
    fs::write(
        dir.path().join("state.toml"),
        "version = 1\nhostname = \"restored\"\n",
    )
    .expect("write by hand");
    let store = open_dir(dir.path());
    assert_eq!(
        store.current(),
        Ok(Some((Generation::new(3), doc("restored"))))
    );
    assert_eq!(generations(&store), [1, 2, 3]);
}

#[test]
fn a_corrupt_state_is_reported_not_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.toml");
    fs::write(&path, "version = 1\nhostname = \"bad name\"\n").expect("write by hand");
    let store = open_dir(dir.path());
    let error = store.current().expect_err("invalid hostname");
    assert_eq!(
        error,
        StoreError::Corrupt {
            path: path.clone(),
            cause: Invalid {
                errors: vec![FieldError::new(
                    "hostname",
                    "\"bad name\" is not a hostname (expected at most 64 characters: labels of 1 to 63 letters, digits or '-' separated by '.', none starting or ending with '-')"
                )],
            },
        }
    );
    assert_eq!(
        error.to_string(),
        format!("{} does not hold a valid desired state", path.display())
    );
    assert_eq!(
        fs::read_to_string(&path).expect("still there"),
        "version = 1\nhostname = \"bad name\"\n"
    );
}

#[test]
fn a_current_generation_missing_from_the_history_is_copied_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    open_dir(dir.path()).commit(&doc("x")).expect("commit");
    fs::remove_file(dir.path().join("history/1.toml")).expect("remove");
    let store = open_dir(dir.path());
    assert_eq!(generations(&store), [1]);
    assert_eq!(store.read_generation(Generation::new(1)), Ok(doc("x")));
}

// ---- crashes, on the model of what a power cut keeps ----

const DIR: &str = "/config/desired";

fn open_memory(fs: &MemoryFs) -> Result<StateStore<MemoryFs>> {
    StateStore::open_with(fs.clone(), DIR, clock)
}

#[derive(Debug, Clone, Copy)]
enum Crash {
    /// The machine lost power: only what was made durable is left.
    PowerCut,
    /// Only hostd died: the kernel keeps what it was given.
    Kill,
}

impl Crash {
    fn recover(self, fs: &MemoryFs) {
        match self {
            Self::PowerCut => fs.power_cut(),
            Self::Kill => fs.restart(),
        }
    }
}

/// What a change to the store does, given a store prepared by `setup`.
type Change = fn(&mut StateStore<MemoryFs>) -> Result<Generation>;

/// A store with generation 1 ("old") committed, durably.
fn setup_one_generation() -> MemoryFs {
    let fs = MemoryFs::new();
    open_memory(&fs)
        .and_then(|mut store| store.commit(&doc("old")))
        .expect("setup");
    fs
}

/// The labels of the calls `change` makes, from a fresh setup.
fn calls_of(setup: fn() -> MemoryFs, change: Change) -> Vec<String> {
    let fs = setup();
    let mut store = open_memory(&fs).expect("open");
    let before = fs.operations().len();
    change(&mut store).expect("the change works without a crash");
    fs.operations()[before..].to_vec()
}

/// Crashes `change` at its `k`-th call, recovers as `crash` says and reopens: returns what
/// `change` returned and the reopened store.
fn crash_at(
    setup: fn() -> MemoryFs,
    change: Change,
    k: usize,
    crash: Crash,
) -> (Result<Generation>, StateStore<MemoryFs>, MemoryFs) {
    let fs = setup();
    let mut store = open_memory(&fs).expect("open");
    fs.crash_after(k);
    let result = change(&mut store);
    crash.recover(&fs);
    let reopened = open_memory(&fs)
        .unwrap_or_else(|e| panic!("open after a crash at call {k} ({crash:?}): {e}"));
    (result, reopened, fs)
}

/// For every call of `change` and both kinds of crash: the reopened store holds exactly `old`
/// or exactly `new` (`new` if `change` had returned), its history holds its current generation,
/// and it takes the next commit.
fn assert_old_or_new_after_any_crash(
    setup: fn() -> MemoryFs,
    change: Change,
    old: Option<(Generation, Validated<DesiredState>)>,
    new: (Generation, Validated<DesiredState>),
) {
    let calls = calls_of(setup, change);
    for crash in [Crash::PowerCut, Crash::Kill] {
        // k == calls.len(): the crash comes after the change's last call.
        for k in 0..=calls.len() {
            let at = calls.get(k).map_or("after the last call", String::as_str);
            let (result, mut store, _) = crash_at(setup, change, k, crash);
            let current = store
                .current()
                .unwrap_or_else(|e| panic!("{crash:?} at {at}: current() failed: {e}"));
            assert!(
                current == old || current == Some(new.clone()),
                "{crash:?} at {at}: current is {current:?}"
            );
            if result.is_ok() {
                assert_eq!(
                    current,
                    Some(new.clone()),
                    "{crash:?} at {at}: a returned commit was lost"
                );
            }
            if let Some((generation, _)) = &current {
                assert!(
                    generations(&store).contains(&generation.get()),
                    "{crash:?} at {at}: current generation missing from the history"
                );
            }
            let next = store
                .commit(&doc("next"))
                .unwrap_or_else(|e| panic!("{crash:?} at {at}: commit after recovery: {e}"));
            let floor = current.map_or(0, |(generation, _)| generation.get());
            assert!(
                next.get() > floor,
                "{crash:?} at {at}: generation went back"
            );
        }
    }
}

fn commit_new(store: &mut StateStore<MemoryFs>) -> Result<Generation> {
    store.commit(&doc("new"))
}

fn rollback_to_first(store: &mut StateStore<MemoryFs>) -> Result<Generation> {
    store.rollback(Generation::new(1))
}

#[test]
fn the_crash_points_cover_every_step_of_an_atomic_write() {
    let calls = calls_of(setup_one_generation, commit_new);
    assert_eq!(
        calls,
        [
            "write /config/desired/.state.toml.tmp",
            "sync_file /config/desired/.state.toml.tmp",
            "rename /config/desired/.state.toml.tmp -> /config/desired/state.toml",
            "sync_dir /config/desired",
            "write /config/desired/history/.2.toml.tmp",
            "sync_file /config/desired/history/.2.toml.tmp",
            "rename /config/desired/history/.2.toml.tmp -> /config/desired/history/2.toml",
            "sync_dir /config/desired/history",
        ]
    );
}

#[test]
fn a_crash_anywhere_in_a_commit_leaves_the_old_or_the_new_state() {
    assert_old_or_new_after_any_crash(
        setup_one_generation,
        commit_new,
        Some((Generation::new(1), doc("old"))),
        (Generation::new(2), doc("new")),
    );
}

#[test]
fn a_crash_anywhere_in_the_first_commit_leaves_nothing_or_the_new_state() {
    assert_old_or_new_after_any_crash(
        MemoryFs::new,
        commit_new,
        None,
        (Generation::new(1), doc("new")),
    );
}

#[test]
fn a_crash_anywhere_in_a_rollback_leaves_the_old_or_the_new_state() {
    fn setup() -> MemoryFs {
        let fs = setup_one_generation();
        open_memory(&fs)
            .and_then(|mut store| store.commit(&doc("second")))
            .expect("setup");
        fs
    }
    assert_old_or_new_after_any_crash(
        setup,
        rollback_to_first,
        Some((Generation::new(2), doc("second"))),
        (Generation::new(3), doc("old")),
    );
}

#[test]
fn a_crash_while_pruning_the_history_leaves_the_new_state() {
    fn setup() -> MemoryFs {
        let fs = MemoryFs::new();
        let mut store = open_memory(&fs).expect("open");
        for n in 1..=HISTORY_KEPT {
            store.commit(&doc(&format!("v{n}"))).expect("setup");
        }
        fs
    }
    let calls = calls_of(setup, commit_new);
    assert_eq!(
        calls.last().map(String::as_str),
        Some("remove /config/desired/history/1.toml")
    );
    assert_old_or_new_after_any_crash(
        setup,
        commit_new,
        Some((Generation::new(20), doc("v20"))),
        (Generation::new(21), doc("new")),
    );
}

/// Index of the call with this label in a commit of generation 2.
fn call_index(label: &str) -> usize {
    calls_of(setup_one_generation, commit_new)
        .iter()
        .position(|call| call == label)
        .unwrap_or_else(|| panic!("no call {label:?}"))
}

#[test]
fn crash_after_the_temporary_file_is_written_keeps_the_old_state() {
    // The write happened; its fsync is where the crash strikes.
    let k = call_index("sync_file /config/desired/.state.toml.tmp");
    for crash in [Crash::PowerCut, Crash::Kill] {
        let (result, store, fs) = crash_at(setup_one_generation, commit_new, k, crash);
        assert!(result.is_err());
        assert_eq!(store.current(), Ok(Some((Generation::new(1), doc("old")))));
        assert_eq!(generations(&store), [1]);
        // The temporary file, if it survived, was removed on open.
        assert_eq!(
            fs.list(Path::new(DIR)).expect("list"),
            ["history", "state.toml"]
        );
    }
}

#[test]
fn crash_after_the_rename_before_the_directory_fsync() {
    let k = call_index("sync_dir /config/desired");
    // Power cut: the rename was not durable yet, so the old file is back.
    let (result, store, _) = crash_at(setup_one_generation, commit_new, k, Crash::PowerCut);
    assert!(result.is_err());
    assert_eq!(store.current(), Ok(Some((Generation::new(1), doc("old")))));
    assert_eq!(generations(&store), [1]);
    // Only hostd died: the kernel has the rename, so the new file is current, and opening the
    // store puts its missing history copy in place.
    let (result, store, _) = crash_at(setup_one_generation, commit_new, k, Crash::Kill);
    assert!(result.is_err());
    assert_eq!(store.current(), Ok(Some((Generation::new(2), doc("new")))));
    assert_eq!(generations(&store), [1, 2]);
}

#[test]
fn crash_after_the_directory_fsync_keeps_the_new_state_and_repairs_the_history() {
    let k = call_index("write /config/desired/history/.2.toml.tmp");
    for crash in [Crash::PowerCut, Crash::Kill] {
        let (result, store, _) = crash_at(setup_one_generation, commit_new, k, crash);
        assert!(result.is_err());
        assert_eq!(store.current(), Ok(Some((Generation::new(2), doc("new")))));
        assert_eq!(generations(&store), [1, 2]);
    }
}

#[test]
fn a_crash_while_open_repairs_the_history_is_repaired_by_the_next_open() {
    // State: generation 2 current, its history copy missing.
    fn setup() -> MemoryFs {
        let fs = setup_one_generation();
        let mut store = open_memory(&fs).expect("open");
        let k = calls_of(setup_one_generation, commit_new)
            .iter()
            .position(|c| c.starts_with("write /config/desired/history/"))
            .expect("history write");
        fs.crash_after(k);
        assert!(store.commit(&doc("new")).is_err());
        fs.power_cut();
        fs
    }
    let opening = setup();
    let before = opening.operations().len();
    open_memory(&opening).expect("open repairs");
    let open_calls = opening.operations().len() - before;
    for k in 0..open_calls {
        let fs = setup();
        fs.crash_after(k);
        assert!(open_memory(&fs).is_err(), "open crashed at call {k}");
        fs.power_cut();
        let store = open_memory(&fs).expect("second open");
        assert_eq!(store.current(), Ok(Some((Generation::new(2), doc("new")))));
        assert_eq!(generations(&store), [1, 2], "crash at open call {k}");
    }
}
