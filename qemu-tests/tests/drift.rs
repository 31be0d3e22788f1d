//! The reconcile loop in the real image: the network and the host name changed behind
//! hostd's back (from the console, through sysfs and procfs) are put back without an apply,
//! after the kernel's netlink event, and `cairnctl status` says what was corrected. An
//! address added by hand beside the document's is reported and left in place.
//!
//! Behind the `vm-tests` feature like the other image tests.
#![cfg(feature = "vm-tests")]

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use qemu_tests::{Appliance, Image, Launch, timeouts};

const BOARD: &str = "qemu-x86_64";

/// What the three changes below touch, one line each.
const FACTS: &str = "cat /sys/class/net/bond0/bonding/slaves /sys/class/net/vmnet/bridge/vlan_filtering /proc/sys/kernel/hostname";

/// Waits until `FACTS` shows the Default VM Network and the default host name again.
fn wait_until_restored(app: &mut Appliance, within: Duration) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let facts = app.shell(FACTS)?;
        let lines: Vec<&str> = facts.lines().map(str::trim).collect();
        if lines == ["lan1 lan2", "1", "cairn"] {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            bail!("not put back within {within:?}: {lines:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Proves that a bond member released by hand, VLAN filtering turned off on the vSwitch and
/// a changed host name are all put back by hostd on its own, after the netlink event (well
/// before the 60 s timer), that status lists each correction, and that an address added by
/// hand stays, reported.
#[test]
fn drift_behind_hostd_s_back_is_put_back_and_reported() -> Result<()> {
    let image = Image::from_env()?;
    let mut app = Appliance::launch(&image, Launch::direct_kernel("drift", BOARD))?;
    app.wait_ready(timeouts::ready_direct())?;
    // The first boot's Default VM Network is in place.
    wait_until_restored(&mut app, Duration::from_secs(10))?;

    app.shell(
        "busybox ip addr add 10.77.0.1/24 dev vmnet && echo intruder > /proc/sys/kernel/hostname && echo 0 > /sys/class/net/vmnet/bridge/vlan_filtering && echo -lan2 > /sys/class/net/bond0/bonding/slaves",
    )?;
    let facts = app.shell(FACTS)?;
    ensure!(
        facts.contains("intruder") && !facts.contains("lan1 lan2"),
        "the changes did not take: {facts}"
    );
    // The timer is 60 s: a correction within 30 s came from the event.
    let took = wait_until_restored(&mut app, Duration::from_secs(30))?;
    eprintln!(
        "drift put back {:.1} s after the change",
        took.as_secs_f64()
    );

    let status = app.shell("cairnctl status")?;
    for expected in [
        "corrected:    network: add lan2 to bond0",
        "corrected:    hostname: set the host name from \"intruder\" to \"cairn\"",
        "drift check:",
        "DRIFT:        network: remove address 10.77.0.1/24 from vmnet (reported",
    ] {
        ensure!(
            status.lines().any(|line| line.starts_with(expected)),
            "{expected:?} not in the status:\n{status}"
        );
    }
    ensure!(
        status.contains("VLAN filtering"),
        "the vSwitch's VLAN filtering is not among the corrections:\n{status}"
    );
    let json = app.shell("cairnctl --json status")?;
    ensure!(
        json.contains("\"outcome\":\"corrected\"") && json.contains("\"drift_checked_unix\""),
        "{json}"
    );
    let addresses = app.shell("busybox ip addr show dev vmnet")?;
    ensure!(
        addresses.contains("10.77.0.1/24"),
        "the address added by hand was removed: {addresses}"
    );
    // What is left to do is the address alone, which the next apply removes.
    let plan =
        app.shell("cairnctl config show > /tmp/now.toml && cairnctl config plan /tmp/now.toml")?;
    let steps: Vec<&str> = plan
        .lines()
        .filter(|line| line.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    ensure!(
        steps.len() == 1 && steps[0].contains("remove address 10.77.0.1/24 from vmnet"),
        "{plan}"
    );
    app.finish();
    Ok(())
}
