//! `org.cairn.Host1` over a fake [`Engine`]: what the transport itself does — pass the
//! arguments through unchanged, publish the jobs the engine starts, take down the objects of
//! jobs it forgot, refuse bad names before the engine is called, and map every core error
//! to its wire name. The decisions are the engine's and are tested in `core/`.

use std::sync::{Arc, Mutex};

use super::*;
use crate::core::engine::ScheduledScrub;
use crate::jobs::JobState;
use crate::network::view::NetView;
use crate::storage::subvolumes::SubvolumeEntry;
use crate::storage::view::StorageView;

/// Records every call as text and answers from a script: `fail` (when set) is returned by
/// every call that can fail; job-starting calls otherwise start a job that succeeds at once.
#[derive(Debug, Default)]
struct FakeEngine {
    calls: Mutex<Vec<String>>,
    fail: Mutex<Option<fn() -> CoreError>>,
    jobs: Mutex<Vec<Job>>,
    /// How many of the newest jobs the engine remembers.
    remembers: Mutex<usize>,
}

impl FakeEngine {
    fn record(&self, call: String) -> Result<(), CoreError> {
        self.calls.lock().expect("not poisoned").push(call);
        match *self.fail.lock().expect("not poisoned") {
            Some(error) => Err(error()),
            None => Ok(()),
        }
    }

    fn job(&self, call: String) -> Result<Job, CoreError> {
        self.record(call.clone())?;
        let mut jobs = self.jobs.lock().expect("not poisoned");
        let job = Job::new(jobs.len() as u64 + 1, "fake");
        job.succeed(format!("{{\"call\":{call:?}}}"));
        jobs.push(job.clone());
        Ok(job)
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("not poisoned").clone()
    }

    fn failing(&self, error: Option<fn() -> CoreError>) {
        *self.fail.lock().expect("not poisoned") = error;
    }
}

impl Engine for FakeEngine {
    fn status(&self) -> Result<Status, CoreError> {
        self.record("status".into())?;
        Ok(Status {
            board: "fake-board".into(),
            ..Status::default()
        })
    }

    fn board(&self) -> Result<String, CoreError> {
        self.record("board".into())?;
        Ok("{}".into())
    }

    fn config_show(&self) -> Result<(u64, String), CoreError> {
        self.record("config_show".into())?;
        Ok((7, "version = 1\n".into()))
    }

    fn config_plan(&self, document: &str) -> Result<String, CoreError> {
        self.record(format!("config_plan {document}"))?;
        Ok("No changes".into())
    }

    fn config_apply(&self, document: &str) -> Result<Job, CoreError> {
        self.job(format!("config_apply {document}"))
    }

    fn config_history(&self) -> Result<Vec<(u64, u64)>, CoreError> {
        self.record("config_history".into())?;
        Ok(vec![(1, 100), (2, 200)])
    }

    fn config_rollback(&self, generation: u64) -> Result<Job, CoreError> {
        self.job(format!("config_rollback {generation}"))
    }

    fn net_view(&self) -> Result<NetView, CoreError> {
        self.record("net_view".into())?;
        Ok(NetView::default())
    }

    fn tap_attach(
        &self,
        tap: &str,
        vswitch: &str,
        vlan: Option<u16>,
    ) -> Result<Vec<String>, CoreError> {
        self.record(format!("tap_attach {tap} {vswitch} {vlan:?}"))?;
        Ok(vec!["attached".into()])
    }

    fn tap_detach(&self, tap: &str) -> Result<Vec<String>, CoreError> {
        self.record(format!("tap_detach {tap}"))?;
        Ok(Vec::new())
    }

    fn storage_view(&self) -> Result<StorageView, CoreError> {
        self.record("storage_view".into())?;
        Ok(StorageView::default())
    }

    fn storage_replace(&self, volume: &str, old: &str, new: &str) -> Result<Job, CoreError> {
        self.job(format!("storage_replace {volume} {old} {new}"))
    }

    fn storage_add(&self, volume: &str, new: &str) -> Result<Job, CoreError> {
        self.job(format!("storage_add {volume} {new}"))
    }

    fn storage_remove(&self, volume: &str, old: &str) -> Result<Job, CoreError> {
        self.job(format!("storage_remove {volume} {old}"))
    }

    fn storage_scrub(&self, volume: &str, trigger: Trigger) -> Result<Job, CoreError> {
        self.job(format!("storage_scrub {volume} {trigger:?}"))
    }

    fn subvolume(&self, volume: &str, operation: SubvolumeOp) -> Result<Job, CoreError> {
        self.job(format!("subvolume {volume} {operation:?}"))
    }

    fn snapshot_list(&self, volume: &str) -> Result<Vec<SubvolumeEntry>, CoreError> {
        self.record(format!("snapshot_list {volume}"))?;
        Ok(Vec::new())
    }

    fn start_due_scrubs(&self) -> Result<Vec<ScheduledScrub>, CoreError> {
        self.record("start_due_scrubs".into())?;
        Ok(vec![
            (
                "tank".into(),
                self.job("storage_scrub tank Schedule".into()),
            ),
            (
                "gone".into(),
                Err(CoreError::NotMounted {
                    volume: "gone".into(),
                    path: "/volumes/gone".into(),
                }),
            ),
            (
                "pool".into(),
                self.job("storage_scrub pool Schedule".into()),
            ),
            ("busy".into(), Err(CoreError::StorageBusy { job: 1 })),
        ])
    }

    fn jobs(&self) -> Vec<Job> {
        let jobs = self.jobs.lock().expect("not poisoned");
        let remembers = *self.remembers.lock().expect("not poisoned");
        jobs[jobs.len().saturating_sub(remembers)..].to_vec()
    }
}

/// Makes the error a failing fake returns (an error is not `Clone`).
type ErrorMaker = fn() -> CoreError;

/// A bus between a client and `HostApi` over the fake.
struct Bus {
    engine: Arc<FakeEngine>,
    api: HostApi,
    server: zbus::Connection,
    client: zbus::Connection,
}

impl Bus {
    async fn new() -> Self {
        let engine = Arc::new(FakeEngine {
            remembers: Mutex::new(usize::MAX),
            ..FakeEngine::default()
        });
        let api = HostApi::new(engine.clone(), LogRing::new(4));
        let (server_socket, client_socket) =
            std::os::unix::net::UnixStream::pair().expect("socket pair");
        let server = zbus::connection::Builder::unix_stream(server_socket)
            .server(zbus::Guid::generate())
            .p2p()
            .serve_at(OBJECT_PATH, api.clone())
            .build();
        let client = zbus::connection::Builder::unix_stream(client_socket)
            .p2p()
            .build();
        let (server, client) = tokio::join!(server, client);
        Self {
            engine,
            api,
            server: server.expect("server connection"),
            client: client.expect("client connection"),
        }
    }

    async fn proxy(&self) -> Host1Proxy<'_> {
        Host1Proxy::builder(&self.client)
            .build()
            .await
            .expect("proxy")
    }

    /// The job's snapshot, or the error of a path with no job object behind it.
    async fn job(&self, path: &OwnedObjectPath) -> Result<JobView, HostError> {
        let job = Job1Proxy::builder(&self.client)
            .path(path.clone())
            .build()
            .await
            .map_err(HostError::ZBus)?;
        let snapshot: String = job.snapshot().await?;
        Ok(serde_json::from_str(&snapshot).expect("a snapshot is JSON"))
    }
}

#[tokio::test]
async fn every_method_passes_its_arguments_to_the_engine_unchanged() {
    let bus = Bus::new().await;
    let proxy = bus.proxy().await;

    let status: Status =
        serde_json::from_str(&proxy.status().await.expect("Status")).expect("JSON");
    assert_eq!(status.board, "fake-board");
    assert_eq!(proxy.board().await.expect("Board"), "{}");
    assert_eq!(
        proxy.config_show().await.expect("Show"),
        (7, "version = 1\n".into())
    );
    assert_eq!(proxy.config_plan("doc").await.expect("Plan"), "No changes");
    assert_eq!(
        proxy.config_history().await.expect("History"),
        [(1, 100), (2, 200)]
    );
    proxy.net_show().await.expect("NetShow");
    assert_eq!(
        proxy.tap_attach("tap0", "vs0", 0).await.expect("attach"),
        ["attached"]
    );
    proxy.tap_attach("tap1", "vs0", 42).await.expect("attach");
    proxy.tap_detach("tap0").await.expect("detach");
    proxy.storage_show().await.expect("StorageShow");
    proxy.snapshot_list("tank").await.expect("list");
    for path in [
        proxy.config_apply("version = 1\n").await.expect("apply"),
        proxy.config_rollback(3).await.expect("rollback"),
        proxy
            .storage_replace("tank", "missing", "/dev/sdc")
            .await
            .expect("replace"),
        proxy.storage_add("tank", "/dev/sdd").await.expect("add"),
        proxy
            .storage_remove("tank", "/dev/sda")
            .await
            .expect("remove"),
        proxy.storage_scrub("tank").await.expect("scrub"),
        proxy.subvolume_create("tank", "vm1").await.expect("create"),
        proxy
            .snapshot_create("tank", "vm1", "vm1-snap", true)
            .await
            .expect("snapshot"),
        proxy
            .snapshot_delete("tank", "vm1-snap")
            .await
            .expect("delete"),
    ] {
        let view = bus.job(&path).await.expect("the job is published");
        assert_eq!(view.state, JobState::Succeeded);
        assert_eq!(path.as_str(), format!("/org/cairn/Host1/job/{}", view.id));
    }

    assert_eq!(
        bus.engine.calls(),
        [
            "status",
            "board",
            "config_show",
            "config_plan doc",
            "config_history",
            "net_view",
            "tap_attach tap0 vs0 None",
            "tap_attach tap1 vs0 Some(42)",
            "tap_detach tap0",
            "storage_view",
            "snapshot_list tank",
            "config_apply version = 1\n",
            "config_rollback 3",
            "storage_replace tank missing /dev/sdc",
            "storage_add tank /dev/sdd",
            "storage_remove tank /dev/sda",
            "storage_scrub tank OnDemand",
            r#"subvolume tank Create { name: ObjectName("vm1") }"#,
            r#"subvolume tank Snapshot { source: ObjectName("vm1"), name: ObjectName("vm1-snap"), writable: true }"#,
            r#"subvolume tank Delete { name: ObjectName("vm1-snap") }"#,
        ]
    );
    assert_eq!(proxy.jobs().await.expect("Jobs").len(), 9);
    drop(bus.server);
}

#[tokio::test]
async fn a_bad_subvolume_name_is_refused_before_the_engine_is_called() {
    let bus = Bus::new().await;
    let proxy = bus.proxy().await;
    let error = proxy
        .subvolume_create("tank", "../escape")
        .await
        .expect_err("a path is not a name");
    assert!(
        matches!(&error, HostError::Invalid(m) if m.starts_with("name:")),
        "{error:?}"
    );
    let error = proxy
        .snapshot_create("tank", "", "copy", false)
        .await
        .expect_err("empty source");
    assert!(
        matches!(&error, HostError::Invalid(m) if m.starts_with("source:")),
        "{error:?}"
    );
    assert!(bus.engine.calls().is_empty(), "{:?}", bus.engine.calls());
}

#[tokio::test]
async fn core_errors_reach_the_client_under_their_wire_names() {
    let bus = Bus::new().await;
    let proxy = bus.proxy().await;
    let cases: [(ErrorMaker, &str); 4] = [
        (
            || CoreError::NotMounted {
                volume: "tank".into(),
                path: "/volumes/tank".into(),
            },
            "org.cairn.Error.NotFound",
        ),
        (|| CoreError::StorageBusy { job: 4 }, "org.cairn.Error.Busy"),
        (
            || CoreError::DropsRunningGuests {
                guests: vec!["web".into()],
            },
            "org.cairn.Error.WrongState",
        ),
        (
            || CoreError::BootDrive {
                drive: "/dev/sda".into(),
            },
            "org.cairn.Error.Invalid",
        ),
    ];
    for (error, wire_name) in cases {
        bus.engine.failing(Some(error));
        let expected = HostError::from(error());
        assert_eq!(expected.name(), wire_name);
        let got = proxy
            .storage_add("tank", "/dev/sda")
            .await
            .expect_err("fails");
        assert_eq!(got.name(), wire_name, "{got:?}");
        assert_eq!(got.message(), expected.message());
        let got = proxy.status().await.expect_err("fails");
        assert_eq!(got.name(), wire_name, "{got:?}");
    }
    // A refused call publishes no job.
    assert!(proxy.jobs().await.expect("Jobs").is_empty());
}

#[tokio::test]
async fn the_objects_of_jobs_the_engine_forgot_are_taken_down() {
    let bus = Bus::new().await;
    let proxy = bus.proxy().await;
    *bus.engine.remembers.lock().expect("not poisoned") = 2;
    let first = proxy.storage_scrub("a").await.expect("scrub");
    let second = proxy.storage_scrub("b").await.expect("scrub");
    assert!(bus.job(&first).await.is_ok());
    let third = proxy.storage_scrub("c").await.expect("scrub");
    assert!(bus.job(&first).await.is_err(), "job 1 is forgotten");
    assert!(bus.job(&second).await.is_ok());
    assert!(bus.job(&third).await.is_ok());
    assert_eq!(proxy.jobs().await.expect("Jobs"), [second, third]);
}

#[tokio::test]
async fn the_scrub_schedule_publishes_every_job_the_engine_started() {
    let bus = Bus::new().await;
    let started = bus.api.run_scrub_schedule(bus.server.object_server()).await;
    assert_eq!(started, ["tank", "pool"]);
    for id in [1, 2] {
        let path = job_path(id);
        assert_eq!(
            bus.job(&path).await.expect("published").state,
            JobState::Succeeded
        );
    }
}
