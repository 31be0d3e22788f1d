//! The interface end to end over a peer-to-peer socket pair: method names, signatures, job
//! objects and typed errors. The decisions behind them are tested in `core/tests.rs`.

use std::time::Duration;

use super::*;
use crate::core::engine::LiveEngine;
use crate::core::{Applied, Core};
use crate::jobs::JobState;
use crate::storage::scrub_records::ScrubRecords;
use crate::store::StateStore;
use crate::system::{Observed, System, SystemAction, SystemError};

const GOOD: &str = "version = 1\nhostname = \"nas1\"\n";
const LACP2_LINE: &str = r#"network.bonds[0].mode: unknown mode "lacp2" (expected one of: 802.3ad, active-backup, balance-alb)"#;
const BAD: &str = "version = 1\n[[network.bonds]]\nname = \"bond0\"\nmode = \"lacp2\"\nmembers = [\"lan1\", \"lan2\"]\n";

/// A box whose host name lives in memory.
#[derive(Debug)]
struct NameOnly(std::sync::Mutex<String>);

impl crate::plan::Executor<SystemAction> for NameOnly {
    type Error = SystemError;

    fn execute(&mut self, action: &SystemAction) -> Result<(), SystemError> {
        if let SystemAction::Hostname(set) = action {
            *self.0.lock().expect("not poisoned") = set.to.clone();
        }
        Ok(())
    }
}

impl System for NameOnly {
    fn observe(&self) -> Result<Observed, SystemError> {
        Ok(Observed {
            hostname: self.0.lock().expect("not poisoned").clone(),
            network: crate::network::NetObserved::default(),
            storage: crate::storage::StorageObserved::default(),
        })
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

async fn wait_for_job(client: &zbus::Connection, path: &OwnedObjectPath) -> crate::api::JobView {
    let job = Job1Proxy::builder(client)
        .path(path.clone())
        .build()
        .await
        .expect("job proxy");
    for _ in 0..500 {
        let snapshot =
            serde_json::from_str::<crate::api::JobView>(&job.snapshot().await.expect("Snapshot"))
                .expect("JSON");
        if snapshot.state != JobState::Running {
            return snapshot;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {path} did not finish within 5 s");
}

#[tokio::test]
async fn interface_over_a_peer_to_peer_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = StateStore::open(dir.path().join("desired")).expect("open");
    let system: Box<dyn System> = Box::new(NameOnly(std::sync::Mutex::new("cairn".into())));
    let core = Core::new(store, system, "qemu-x86_64", false, || Some(1.0));
    let ring = LogRing::new(10);
    ring.push(
        std::time::SystemTime::UNIX_EPOCH,
        tracing::Level::INFO,
        "hostd",
        "first",
    );
    ring.push(
        std::time::SystemTime::UNIX_EPOCH,
        tracing::Level::WARN,
        "hostd",
        "second",
    );
    let records = ScrubRecords::new(dir.path().join("scrub"));
    let engine = LiveEngine::new(Arc::new(tokio::sync::Mutex::new(core)), records);
    let api = HostApi::new(Arc::new(engine), ring);
    let (server_socket, client_socket) =
        std::os::unix::net::UnixStream::pair().expect("socket pair");
    let guid = zbus::Guid::generate();
    let server = zbus::connection::Builder::unix_stream(server_socket)
        .server(guid)
        .p2p()
        .serve_at(OBJECT_PATH, api)
        .build();
    let client = zbus::connection::Builder::unix_stream(client_socket)
        .p2p()
        .build();
    let (server, client) = tokio::join!(server, client);
    let _server = server.expect("server connection");
    let client = client.expect("client connection");
    let proxy = Host1Proxy::builder(&client).build().await.expect("proxy");

    let status: Status =
        serde_json::from_str(&proxy.status().await.expect("Status")).expect("JSON");
    assert_eq!(status.board, "qemu-x86_64");
    assert!(!status.persistence);
    assert_eq!(proxy.config_show().await.expect("ConfigShow").0, 0);

    let path = proxy.config_apply(GOOD).await.expect("ConfigApply");
    assert_eq!(path.as_str(), "/org/cairn/Host1/job/1");
    let finished = wait_for_job(&client, &path).await;
    assert_eq!(finished.state, JobState::Succeeded, "{finished:?}");
    let applied: Applied = serde_json::from_str(&finished.result).expect("result JSON");
    assert_eq!(applied.generation, 1);
    assert_eq!(applied.actions.len(), 1);
    let (generation, text) = proxy.config_show().await.expect("ConfigShow");
    assert_eq!(generation, 1);
    assert!(text.contains("nas1"), "{text}");

    let error = proxy.config_apply(BAD).await.expect_err("refused");
    assert!(
        matches!(&error, HostError::Invalid(m) if m == LACP2_LINE),
        "{error:?}"
    );
    let error = proxy.config_rollback(9).await.expect_err("unknown");
    assert!(matches!(&error, HostError::NotFound(_)), "{error:?}");
    assert_eq!(proxy.config_history().await.expect("history").len(), 1);
    assert!(
        proxy
            .config_plan(GOOD)
            .await
            .expect("plan")
            .starts_with("No changes")
    );

    let path = proxy.config_rollback(1).await.expect("rollback");
    let finished = wait_for_job(&client, &path).await;
    assert_eq!(finished.state, JobState::Succeeded, "{finished:?}");
    assert_eq!(proxy.jobs().await.expect("Jobs").len(), 2);

    // A finished job cannot be cancelled, and says so.
    let job = Job1Proxy::builder(&client)
        .path(path)
        .build()
        .await
        .expect("proxy");
    assert!(matches!(job.cancel().await, Err(HostError::Invalid(m)) if m.contains("succeeded")));

    let (next, records) = proxy.log(0, 10).await.expect("Log");
    assert_eq!(next, 2);
    let messages: Vec<&str> = records.iter().map(|r| r.4.as_str()).collect();
    assert_eq!(messages, ["first", "second"]);
    assert_eq!(records[1].2, "WARN");
    let (next, records) = proxy.log(1, 10).await.expect("Log");
    assert_eq!((next, records.len()), (2, 1));
    assert!(proxy.log(2, 10).await.expect("Log").1.is_empty());

    // A job keeps its typed failure; the job object maps it when it shows the job: a
    // volume the document does not have is NotFound, as a direct call says.
    let path = proxy.storage_scrub("tank").await.expect("StorageScrub");
    let finished = wait_for_job(&client, &path).await;
    assert_eq!(finished.state, JobState::Failed, "{finished:?}");
    assert_eq!(finished.error_name, "org.cairn.Error.NotFound");
    assert_eq!(
        finished.error,
        r#"There is no volume "tank" in the committed document (it has: none)"#
    );
    let error = proxy.snapshot_list("tank").await.expect_err("no volume");
    assert!(matches!(&error, HostError::NotFound(_)), "{error:?}");
}
