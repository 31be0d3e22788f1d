//! The core without a bus, then the interface over a peer-to-peer socket pair.

use std::time::{Duration, SystemTime};

use super::*;
use crate::store::MemoryFs;

const DIR: &str = "/config/desired";

const GOOD: &str = r#"
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

fn core_over(fs: MemoryFs) -> Core<MemoryFs> {
    let store = StateStore::open_with(fs, DIR, clock).expect("open a store in memory");
    Core::new(store, "qemu-x86_64", true, || Some(12.5))
}

fn core() -> Core<MemoryFs> {
    core_over(MemoryFs::new())
}

fn bad_mode() -> String {
    GOOD.replace("802.3ad", "lacp2")
}

#[test]
fn fresh_core_shows_generation_zero_and_the_empty_document() {
    let core = core();
    let (generation, text) = core.show().expect("show");
    assert_eq!(generation, 0);
    assert_eq!(
        DesiredState::from_toml(&text).expect("valid"),
        DesiredState::default()
    );
    let status = core.status().expect("status");
    assert_eq!(
        status,
        Status {
            board: "qemu-x86_64".into(),
            uptime_seconds: Some(12.5),
            generation: 0,
            persistence: true,
        }
    );
}

#[test]
fn apply_commits_and_show_returns_the_document() {
    let mut core = core();
    assert_eq!(core.apply(GOOD).expect("apply"), 1);
    let (generation, text) = core.show().expect("show");
    assert_eq!(generation, 1);
    assert_eq!(
        DesiredState::from_toml(&text).expect("valid"),
        DesiredState::from_toml(GOOD).expect("valid")
    );
    assert_eq!(core.status().expect("status").generation, 1);
}

#[test]
fn applying_the_committed_document_again_keeps_its_generation() {
    let mut core = core();
    assert_eq!(core.apply(GOOD).expect("apply"), 1);
    assert_eq!(core.apply(GOOD).expect("apply again"), 1);
    assert_eq!(core.history().expect("history").len(), 1);
}

#[test]
fn invalid_document_is_refused_with_every_line_and_nothing_changes() {
    let mut core = core();
    core.apply(GOOD).expect("apply");
    let two_errors = bad_mode().replace("nas1", "-bad-");
    let error = core.apply(&two_errors).expect_err("refused");
    let HostError::Invalid(text) = &error else {
        panic!("expected Invalid, got {error:?}");
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("hostname: "), "{text}");
    assert_eq!(lines[1], LACP2_LINE);
    assert!(error.is_bad_input());
    assert_eq!(core.show().expect("show").0, 1);
}

#[test]
fn plan_names_changed_sections_and_refuses_invalid_documents() {
    let mut core = core();
    let plan = core.plan(GOOD).expect("plan");
    assert!(plan.starts_with("Against the empty document"), "{plan}");
    assert!(plan.contains("  hostname: changed\n"), "{plan}");
    assert!(plan.contains("  network: changed\n"), "{plan}");
    assert!(plan.contains("  storage: unchanged\n"), "{plan}");
    core.apply(GOOD).expect("apply");
    assert_eq!(
        core.plan(GOOD).expect("plan"),
        "No changes against generation 1.\n"
    );
    let renamed = GOOD.replace("nas1", "nas2");
    let plan = core.plan(&renamed).expect("plan");
    assert!(plan.starts_with("Against generation 1:\n"), "{plan}");
    assert!(
        plan.contains("  hostname: changed\n  network: unchanged\n"),
        "{plan}"
    );
    assert!(matches!(core.plan(&bad_mode()), Err(HostError::Invalid(_))));
    // A plan commits nothing.
    assert_eq!(core.show().expect("show").0, 1);
}

#[test]
fn history_and_rollback() {
    let mut core = core();
    core.apply(GOOD).expect("apply");
    core.apply(&GOOD.replace("nas1", "nas2")).expect("apply");
    assert_eq!(
        core.history().expect("history"),
        [(1, 1_700_000_000), (2, 1_700_000_000)]
    );
    assert_eq!(core.rollback(1).expect("rollback"), 3);
    let (generation, text) = core.show().expect("show");
    assert_eq!(generation, 3);
    assert!(text.contains("nas1"), "{text}");
    let error = core.rollback(42).expect_err("unknown generation");
    assert!(
        matches!(&error, HostError::NotFound(m) if m.contains("42")),
        "{error:?}"
    );
    assert!(error.is_bad_input());
}

#[test]
fn storage_failure_is_a_storage_error_with_its_cause() {
    let fs = MemoryFs::new();
    let mut core = core_over(fs.clone());
    fs.crash_after(0);
    let error = core.apply(GOOD).expect_err("the disk is gone");
    let HostError::Storage(text) = &error else {
        panic!("expected Storage, got {error:?}");
    };
    assert!(text.starts_with("Cannot "), "{text}");
    assert!(!error.is_bad_input());
}

#[test]
fn board_is_the_board_config_as_json_and_unknown_boards_are_not_found() {
    let core = core();
    let json: serde_json::Value =
        serde_json::from_str(&core.board().expect("board")).expect("JSON");
    assert_eq!(json["id"], "qemu-x86_64");
    let store = StateStore::open_with(MemoryFs::new(), DIR, clock).expect("open");
    let unknown = Core::new(store, "no-such-board", false, || None);
    assert!(matches!(unknown.board(), Err(HostError::NotFound(_))));
}

/// The interface end to end over a socket pair: method names, signatures and typed errors.
#[tokio::test]
async fn interface_over_a_peer_to_peer_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = StateStore::open(dir.path().join("desired")).expect("open");
    let api = HostApi::new(Core::new(store, "qemu-x86_64", false, || Some(1.0)));
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
    assert_eq!(proxy.config_apply(GOOD).await.expect("ConfigApply"), 1);
    let (generation, text) = proxy.config_show().await.expect("ConfigShow");
    assert_eq!(generation, 1);
    assert!(text.contains("nas1"), "{text}");

    let error = proxy.config_apply(&bad_mode()).await.expect_err("refused");
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
    assert_eq!(proxy.config_rollback(1).await.expect("rollback"), 2);
}
