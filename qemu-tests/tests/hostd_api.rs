//! hostd's API in the real image: the system bus broker, `org.cairn.Host1` and cairnctl.
//!
//! Behind the `vm-tests` feature like `boot.rs` (`make test` runs them after `make image`).
//! Documents are written with one-line `printf`s: the harness's shell commands are single
//! lines.
#![cfg(feature = "vm-tests")]

use anyhow::{Context, Result, ensure};
use qemu_tests::appliance::random_token;
use qemu_tests::cli_output::json_output;
use qemu_tests::{Appliance, Image, Launch, timeouts};

const BOARD: &str = "qemu-x86_64";

/// The exact path-level message hostd gives for the wrong bond mode in [`bad_document`].
const LACP2_LINE: &str = r#"network.bonds[0].mode: unknown mode "lacp2" (expected one of: 802.3ad, active-backup, balance-alb)"#;

fn boot(name: &str) -> Result<Appliance> {
    let image = Image::from_env()?;
    let mut app = Appliance::launch(&image, Launch::direct_kernel(name, BOARD))?;
    app.wait_ready(timeouts::ready_direct())?;
    Ok(app)
}

/// A shell command writing `lines` to `path`, one `printf` argument per line.
fn write_file(path: &str, lines: &[&str]) -> String {
    let quoted: Vec<String> = lines
        .iter()
        .map(|line| {
            assert!(!line.contains('\''), "no single quotes in test documents");
            format!("'{line}'")
        })
        .collect();
    format!("printf '%s\\n' {} > {path}", quoted.join(" "))
}

fn good_document(hostname: &str) -> Vec<String> {
    vec![
        "version = 1".into(),
        format!("hostname = \"{hostname}\""),
        "[[network.bonds]]".into(),
        "name = \"bond0\"".into(),
        "mode = \"active-backup\"".into(),
        "members = [\"lan1\", \"lan2\"]".into(),
    ]
}

fn bad_document() -> Vec<String> {
    good_document("nas1")
        .into_iter()
        .map(|line| line.replace("active-backup", "lacp2"))
        .collect()
}

fn write_document(app: &mut Appliance, path: &str, lines: &[String]) -> Result<()> {
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    app.shell(&write_file(path, &lines))?;
    Ok(())
}

/// `cairnctl --json config show`, parsed: (generation, TOML).
fn config_show(app: &mut Appliance) -> Result<(u64, String)> {
    let value = json_output(&app.shell("cairnctl --json config show")?)?;
    let generation = value["generation"]
        .as_u64()
        .with_context(|| format!("no generation in {value}"))?;
    let toml = value["toml"]
        .as_str()
        .with_context(|| format!("no toml in {value}"))?;
    Ok((generation, toml.to_owned()))
}

/// Proves a valid document applied with cairnctl is shown back and survives a reboot under the same generation.
#[test]
fn applied_document_is_shown_and_survives_reboot() -> Result<()> {
    let mut app = boot("api-apply")?;
    let hostname = format!("nas-{}", &random_token()[..8]);
    write_document(&mut app, "/tmp/good.toml", &good_document(&hostname))?;
    let plan = app.shell("cairnctl config plan /tmp/good.toml")?;
    ensure!(
        plan.contains(&format!(
            r#"set the host name from "cairn" to "{hostname}""#
        )),
        "the plan does not show the host name action: {plan:?}"
    );
    let applied = json_output(&app.shell("cairnctl --json config apply /tmp/good.toml")?)?;
    let generation = applied["generation"].as_u64().context("no generation")?;
    ensure!(generation >= 1, "apply returned generation {generation}");
    // The first boot's Default VM Network gives way to the document's bond alone.
    ensure!(
        applied["actions"]
            .as_array()
            .is_some_and(|actions| actions.iter().any(|a| a == "delete vSwitch vmnet")),
        "the apply did not replace the Default VM Network: {applied}"
    );
    let live = qemu_tests::probe::hostname(&mut app)?;
    ensure!(
        live == hostname,
        "hostname after apply is {live:?}, not {hostname:?}"
    );

    // The apply ran as job 1: its object is on the bus and says how it ended.
    let job = json_output(&app.shell("cairnctl --json job show 1")?)?;
    ensure!(
        job["state"] == "succeeded" && job["kind"] == "config apply",
        "job 1: {job}"
    );
    let log = app.shell("cairnctl log")?;
    ensure!(
        log.contains("committed a new desired state") && log.contains("apply finished"),
        "hostd's log over the API lacks the apply: {log:?}"
    );

    let (shown_generation, shown) = config_show(&mut app)?;
    ensure!(
        shown_generation == generation,
        "show: generation {shown_generation}, apply said {generation}"
    );
    ensure!(
        shown.contains(&format!("hostname = \"{hostname}\""))
            && shown.contains("mode = \"active-backup\""),
        "config show does not return the applied document: {shown:?}"
    );

    qemu_tests::probe::reboot(&mut app)?;
    let after = config_show(&mut app)?;
    ensure!(
        after == (generation, shown.clone()),
        "after reboot config show gives {after:?}, before it gave {:?}",
        (generation, shown)
    );
    // init names the box "cairn" at boot; hostd reconciles it to the document before READY.
    let live = qemu_tests::probe::hostname(&mut app)?;
    ensure!(
        live == hostname,
        "hostname after reboot is {live:?}, not {hostname:?}"
    );
    app.finish();
    Ok(())
}

/// Proves an invalid document is refused with exit code 2 and the exact path-level message, and changes nothing.
#[test]
fn invalid_document_is_refused_with_its_path_level_message() -> Result<()> {
    let mut app = boot("api-invalid")?;
    let before = config_show(&mut app)?;
    write_document(&mut app, "/tmp/bad.toml", &bad_document())?;
    let refused = app.shell_status("cairnctl config apply /tmp/bad.toml")?;
    ensure!(
        refused.status == 2,
        "cairnctl exited with {} (expected 2): {:?}",
        refused.status,
        refused.output
    );
    ensure!(
        refused.output.lines().any(|line| line.trim() == LACP2_LINE),
        "the refusal lacks the line {LACP2_LINE:?}: {:?}",
        refused.output
    );
    let after = config_show(&mut app)?;
    ensure!(
        after == before,
        "config show changed: {before:?} -> {after:?}"
    );
    app.finish();
    Ok(())
}

/// Proves `cairnctl --json status` prints JSON naming the board, and the console passes `cairnctl` through.
#[test]
fn json_status_names_the_board() -> Result<()> {
    let mut app = boot("api-status")?;
    let status = json_output(&app.shell("cairnctl --json status")?)?;
    ensure!(
        status["board"] == BOARD,
        "status names board {}",
        status["board"]
    );
    ensure!(status["persistence"] == true, "no persistence: {status}");
    ensure!(
        status["uptime_seconds"].as_f64().is_some_and(|s| s > 0.0),
        "{status}"
    );

    app.console_command("cairnctl status")?;
    app.console().wait_for_line(
        format!("board:        {BOARD}").as_str(),
        timeouts::console(),
    )?;
    app.finish();
    Ok(())
}

/// Proves `busctl introspect` shows org.cairn.Host1 with its methods, and a finished apply's job object with its state.
#[test]
fn busctl_introspects_the_interface_and_job_objects() -> Result<()> {
    let mut app = boot("api-introspect")?;
    let host = app.shell("busctl --no-pager introspect org.cairn.Host1 /org/cairn/Host1")?;
    ensure!(
        host.lines()
            .any(|line| line.starts_with("org.cairn.Host1 ") && line.contains("interface")),
        "no org.cairn.Host1 interface in {host:?}"
    );
    for method in [
        "Status",
        "Board",
        "ConfigShow",
        "ConfigPlan",
        "ConfigApply",
        "ConfigHistory",
        "ConfigRollback",
        "Jobs",
        "Log",
    ] {
        ensure!(
            host.lines()
                .any(|line| line.starts_with(&format!(".{method} ")) && line.contains("method")),
            "method {method} missing from {host:?}"
        );
    }
    write_document(&mut app, "/tmp/good.toml", &good_document("introspected"))?;
    app.shell("cairnctl config apply /tmp/good.toml")?;
    let job = app.shell("busctl --no-pager introspect org.cairn.Host1 /org/cairn/Host1/job/1")?;
    ensure!(
        job.lines().any(|line| line.starts_with(".State ")
            && line.contains("property")
            && line.contains("\"succeeded\"")),
        "job 1 does not show State \"succeeded\": {job:?}"
    );
    // dbus-send, the other stock client, sees the same interface.
    let xml = app.shell(
        "dbus-send --system --print-reply --dest=org.cairn.Host1 /org/cairn/Host1 org.freedesktop.DBus.Introspectable.Introspect",
    )?;
    ensure!(
        xml.contains(r#"<interface name="org.cairn.Host1">"#),
        "no org.cairn.Host1 interface in {xml:?}"
    );
    app.finish();
    Ok(())
}
