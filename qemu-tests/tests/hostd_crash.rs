//! hostd killed with SIGKILL in the middle of `config apply`: after init restarts it, the
//! committed document and the box are either both the old state or both the new one.
//!
//! Behind the `vm-tests` feature like the other image tests.
#![cfg(feature = "vm-tests")]

use anyhow::{Context, Result, bail, ensure};
use qemu_tests::appliance::random_token;
use qemu_tests::{Appliance, Image, Launch, timeouts};

const BOARD: &str = "qemu-x86_64";

/// Delays between starting the apply and the SIGKILL, in microseconds: from "before the
/// call reached hostd" to "after the job finished", so that the kill lands at different
/// points of the transaction across the runs.
const KILL_DELAYS_US: [u32; 4] = [0, 30_000, 120_000, 600_000];

fn document(hostname: &str, with_bond: bool) -> String {
    let mut lines = vec![
        "version = 1".to_string(),
        format!("hostname = \"{hostname}\""),
    ];
    if with_bond {
        lines.extend(
            [
                "[[network.bonds]]",
                "name = \"bond0\"",
                "mode = \"active-backup\"",
                "members = [\"lan1\", \"lan2\"]",
            ]
            .map(String::from),
        );
    }
    let quoted: Vec<String> = lines.iter().map(|line| format!("'{line}'")).collect();
    quoted.join(" ")
}

/// What the appliance says after the restart: (committed hostname, whether the committed
/// document has the bond, the live host name).
fn observe(app: &mut Appliance) -> Result<(String, bool, String)> {
    let shown = app.shell("cairnctl --json config show")?;
    let line = shown
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .with_context(|| format!("no JSON in {shown:?}"))?;
    let value: serde_json::Value = serde_json::from_str(line)?;
    let toml = value["toml"].as_str().context("no toml")?.to_string();
    let committed = toml
        .lines()
        .find_map(|line| line.strip_prefix("hostname = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .with_context(|| format!("no hostname in {toml:?}"))?
        .to_string();
    let live = qemu_tests::probe::hostname(app)?;
    Ok((committed, toml.contains("bond0"), live))
}

/// Proves a hostd killed with SIGKILL at several points of an apply comes back with the old or the new state in whole (document and host name), never a mix.
#[test]
fn sigkill_during_apply_leaves_old_or_new_never_a_mix() -> Result<()> {
    let image = Image::from_env()?;
    let mut app = Appliance::launch(&image, Launch::direct_kernel("hostd-sigkill", BOARD))?;
    app.wait_ready(timeouts::ready_direct())?;
    let token = &random_token()[..8];
    let old = format!("old-{token}");
    let new = format!("new-{token}");
    app.shell(&format!(
        "printf '%s\\n' {} > /tmp/old.toml",
        document(&old, false)
    ))?;
    app.shell(&format!(
        "printf '%s\\n' {} > /tmp/new.toml",
        document(&new, true)
    ))?;

    let mut outcomes = Vec::new();
    for delay in KILL_DELAYS_US {
        app.shell("cairnctl config apply /tmp/old.toml")?;
        // The client may die with its server; only the state afterwards matters.
        app.shell(&format!(
            "(cairnctl config apply /tmp/new.toml >/dev/null 2>&1 &); usleep {delay}; kill -9 $(pidof hostd)"
        ))?;
        // init restarts hostd with back-off; cairnctl answers once it is serving again.
        app.shell(
            "(for i in $(seq 120); do cairnctl status >/dev/null 2>&1 && exit 0; usleep 250000; done; exit 1)",
        )
        .context("hostd did not come back within 30 s of the SIGKILL")?;
        let (committed, has_bond, live) = observe(&mut app)?;
        let outcome = if committed == old && !has_bond {
            "old"
        } else if committed == new && has_bond {
            "new"
        } else {
            bail!(
                "killed {delay} µs into the apply: the committed document mixes the two (hostname {committed:?}, bond {has_bond})"
            );
        };
        ensure!(
            live == committed,
            "killed {delay} µs into the apply: the document says {committed:?} ({outcome}) but the box is named {live:?}"
        );
        outcomes.push((delay, outcome));
    }
    eprintln!("outcomes (delay µs, state): {outcomes:?}");
    app.finish();
    Ok(())
}
