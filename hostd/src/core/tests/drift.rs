//! The drift check over the double of the appliance: what it corrects, what it only
//! reports, and what status says afterwards.

use super::storage::drive;
use super::*;
use crate::core::drift::{
    ADDED_BY_HAND, CORRECTED_KEPT, DriftOutcome, Policy, STORAGE_REPORTED, policy,
};
use crate::storage::signature::Contents;

const NOW: u64 = 1_700_000_000;

fn committed(core: &mut Core<FakeBox, MemoryFs>, text: &str) {
    core.store.commit(&doc(text)).expect("commit");
}

#[test]
fn a_host_name_changed_behind_hostd_s_back_is_put_back_and_shown_as_corrected() {
    let (mut core, fake) = core();
    committed(&mut core, GOOD);
    fake.lock().hostname = "intruder".into();
    let found = core.check_drift(NOW).expect("check");
    assert_eq!(fake.hostname(), "nas1");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].outcome, DriftOutcome::Corrected);
    assert_eq!(found[0].subsystem, "hostname");
    assert_eq!(
        found[0].difference,
        r#"set the host name from "intruder" to "nas1""#
    );
    let status = core.status().expect("status");
    assert_eq!(status.drift, found);
    assert_eq!(status.drift_checked_unix, Some(NOW));
    assert_eq!(status.reconcile_error, None);

    // Nothing differs at the next check; the correction stays in the status.
    assert!(core.check_drift(NOW + 60).expect("check").is_empty());
    let status = core.status().expect("status");
    assert_eq!(status.drift, found);
    assert_eq!(status.drift_checked_unix, Some(NOW + 60));
}

#[test]
fn a_correction_the_appliance_refuses_is_shown_as_failed_with_the_reason() {
    let (mut core, fake) = core();
    committed(&mut core, GOOD);
    fake.lock().hostname = "intruder".into();
    fake.lock().refuse = Some("nas1".into());
    let found = core.check_drift(NOW).expect("check");
    assert_eq!(fake.hostname(), "intruder");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].outcome, DriftOutcome::Failed);
    assert!(found[0].why.contains("nas1"), "{:?}", found[0].why);
    assert_eq!(core.status().expect("status").drift, found);

    // Still different and still refused a minute later: first seen stays the first time.
    let again = core.check_drift(NOW + 60).expect("check");
    assert_eq!(again[0].seen_unix, NOW + 60);
    assert_eq!(core.status().expect("status").drift[0].seen_unix, NOW);

    // Once the appliance takes it, the failure is gone and the correction shows.
    fake.lock().refuse = None;
    core.check_drift(NOW + 120).expect("check");
    let drift = core.status().expect("status").drift;
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].outcome, DriftOutcome::Corrected);
}

#[test]
fn storage_differences_are_reported_and_never_acted_on() {
    let (mut core, fake) = core();
    committed(
        &mut core,
        r#"
version = 1
hostname = "nas1"

[[storage.volumes]]
name = "tank"
drives = ["/dev/disk/by-id/ata-WDC_A", "/dev/disk/by-id/ata-WDC_B"]
data_profile = "raid1"
metadata_profile = "raid1"
"#,
    );
    fake.lock().hostname = "intruder".into();
    fake.lock().tools.lock().observed.drives = vec![
        drive("vdb", "A", Contents::Blank),
        drive("vdc", "B", Contents::Blank),
    ];
    let found = core.check_drift(NOW).expect("check");
    let storage: Vec<_> = found.iter().filter(|v| v.subsystem == "storage").collect();
    assert!(
        !storage.is_empty(),
        "the volume is not on the appliance: {found:?}"
    );
    for view in &storage {
        assert_eq!(view.outcome, DriftOutcome::Reported, "{view:?}");
        assert_eq!(view.why, STORAGE_REPORTED);
    }
    // The host name beside it is still corrected, and nothing of storage ran.
    assert_eq!(fake.hostname(), "nas1");
    assert!(fake.lock().tools.ran().is_empty());
    assert_eq!(
        fake.executed(),
        [r#"set the host name from "intruder" to "nas1""#]
    );
    // The appliance does not match the document: the reported lines are the first shown.
    let status = core.status().expect("status");
    assert_eq!(status.drift[0].outcome, DriftOutcome::Reported);
}

#[test]
fn the_policy_puts_back_what_the_document_declares_and_reports_the_rest() {
    let hostname = SystemAction::Hostname(crate::hostname::SetHostname {
        from: "a".into(),
        to: "b".into(),
    });
    let network = SystemAction::Network(crate::network::NetAction::SetUp {
        name: "lan1".into(),
    });
    assert_eq!(policy(&hostname), Policy::Correct);
    assert_eq!(policy(&network), Policy::Correct);
    let address =
        crate::state::IpPrefix::try_from("10.99.0.1/24").expect("an address with its prefix");
    let extra_address = SystemAction::Network(crate::network::NetAction::DelAddress {
        interface: "priv".into(),
        address,
    });
    assert_eq!(policy(&extra_address), Policy::Report(ADDED_BY_HAND));
    let missing_address = SystemAction::Network(crate::network::NetAction::AddAddress {
        interface: "priv".into(),
        address,
    });
    assert_eq!(policy(&missing_address), Policy::Correct);
    let extra_route = SystemAction::Network(crate::network::NetAction::DelDefaultRoute {
        gateway: "10.99.0.254".parse().expect("an address"),
        interface: "priv".into(),
    });
    assert_eq!(policy(&extra_route), Policy::Report(ADDED_BY_HAND));
}

#[test]
fn only_the_newest_corrections_are_kept() {
    let (mut core, fake) = core();
    committed(&mut core, GOOD);
    for minute in 0..(CORRECTED_KEPT as u64 + 5) {
        fake.lock().hostname = format!("intruder{minute}");
        core.check_drift(NOW + minute * 60).expect("check");
    }
    let drift = core.status().expect("status").drift;
    assert_eq!(drift.len(), CORRECTED_KEPT);
    assert!(drift[0].difference.contains("intruder14"), "{:?}", drift[0]);
}
