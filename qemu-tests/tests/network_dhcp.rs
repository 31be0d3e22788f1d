//! The management address from DHCP, against Debian's dnsmasq on the peer VM: obtained,
//! pinged, renewed at T1, released at a clean stop and obtained again after a reboot.
//!
//! dnsmasq is not in the appliance: it comes from the test-only archive
//! `build/image/test-tools.cpio` (`make test-tools`), which the peer appends to its root.
//! dnsmasq's shortest lease is 2 minutes, so the test asks it for T1 = 20 s
//! (option 58) and sees a renewal after about 20 s instead of 60 s. A static address
//! across reboots is `tests/network.rs`.
//!
//! Behind the `vm-tests` feature like the other image tests; two VMs, so the nextest `vm`
//! profile runs it alone (`threads-required = 2`) on a 2-core host.
#![cfg(feature = "vm-tests")]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use qemu_tests::Image;
use qemu_tests::ping_log::PingLog;
use qemu_tests::timeouts;
use qemu_tests::wired::{WiredPair, write_document};
use regex::Regex;

/// The peer's address on the cable to lan1 and the pool dnsmasq leases from.
const SERVER: &str = "10.7.0.1";
const POOL: (&str, &str) = ("10.7.0.50", "10.7.0.60");
/// T1 the server asks for: the renewal the test waits for comes this long after the ACK.
const T1_S: u32 = 20;
/// T2: well before the 2-minute expiry, so a missed renewal shows as a rebind first.
const T2_S: u32 = 90;

/// dnsmasq in the foreground (of a background subshell: the harness appends `; echo …`
/// to every command) on p1, logging every DHCP exchange to /tmp/dnsmasq.log.
/// `-p 0`: no DNS service (only DHCP); `-u root -g root`: the peer has no dnsmasq user.
fn dnsmasq_command() -> String {
    format!(
        "(dnsmasq -d -C /dev/null -p 0 -u root -g root -i p1 --bind-interfaces \
         --dhcp-range={},{},255.255.255.0,2m --dhcp-option=option:router,{SERVER} \
         --dhcp-option=option:dns-server,{SERVER} --dhcp-option=option:T1,{T1_S} \
         --dhcp-option=option:T2,{T2_S} --dhcp-leasefile=/tmp/dnsmasq.leases \
         --pid-file=/tmp/dnsmasq.pid --log-dhcp > /tmp/dnsmasq.log 2>&1 &)",
        POOL.0, POOL.1
    )
}

/// The appliance's document: a vSwitch over lan1 with the management address from DHCP.
fn dhcp_document() -> Vec<String> {
    [
        "version = 1",
        "[[network.vswitches]]",
        "name = \"vmnet\"",
        "uplink = \"lan1\"",
        "[network.management]",
        "interface = \"vmnet\"",
        "dhcp4 = true",
        "confirm_s = 90",
    ]
    .map(String::from)
    .to_vec()
}

/// The leased address `cairnctl net address` shows, if any.
fn leased_address(shown: &str) -> Option<String> {
    let lease = Regex::new(r"dhcp on vmnet: \w+, lease (10\.7\.0\.\d+)/24").expect("valid regex");
    lease
        .captures(shown)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_owned())
}

/// Polls `cairnctl net address` until it shows a lease; returns the address and the wait.
fn wait_for_lease(pair: &mut WiredPair, within: Duration) -> Result<(String, Duration)> {
    let started = Instant::now();
    loop {
        let shown = pair.appliance.shell("cairnctl net address")?;
        if let Some(address) = leased_address(&shown) {
            return Ok((address, started.elapsed()));
        }
        if started.elapsed() > within {
            let log = pair.peer.shell("cat /tmp/dnsmasq.log")?;
            bail!(
                "no DHCP lease within {within:?}; cairnctl net address:\n{shown}\ndnsmasq:\n{log}"
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn ping_from_peer(pair: &mut WiredPair, address: &str, when: &str) -> Result<()> {
    let ping = pair
        .peer
        .shell_status(&format!("ping -c 5 -i 0.2 -W 5 {address}"))?;
    let log = PingLog::parse(&ping.output);
    ensure!(
        log.received.is_some_and(|n| n >= 4),
        "{when}: the peer's pings to the leased {address} went unanswered: {}",
        ping.output
    );
    Ok(())
}

/// How many DHCPACKs dnsmasq sent (for p1).
fn acks(pair: &mut WiredPair) -> Result<usize> {
    let log = pair.peer.shell("cat /tmp/dnsmasq.log")?;
    Ok(log.lines().filter(|l| l.contains("DHCPACK(p1)")).count())
}

/// Proves a DHCP apply with no server is rolled back by the safe apply, and the appliance obtains its management address from dnsmasq (DISCOVER/OFFER/REQUEST/ACK; the safe apply waits for the lease), answers pings on it, renews it at T1, releases it when it reboots and obtains it again after the reboot.
#[test]
fn dhcp_management_address_is_leased_renewed_and_survives_reboot() -> Result<()> {
    let image = Image::from_env()?;
    let tools = image.test_tools()?;
    let mut pair = WiredPair::boot_with_archives(&image, "dhcp", &[tools])?;

    // No DHCP server yet: the safe apply waits for a lease, gets none and takes the whole
    // change back (the link alone is not enough).
    let mut unserved = dhcp_document();
    if let Some(line) = unserved.iter_mut().find(|l| l.starts_with("confirm_s")) {
        *line = "confirm_s = 5".to_string();
    }
    write_document(&mut pair.appliance, "/tmp/unserved.toml", &unserved)?;
    let refused = pair
        .appliance
        .shell_status("cairnctl config apply /tmp/unserved.toml")?;
    ensure!(
        refused.status == 1
            && refused
                .output
                .contains("the management interface vmnet had no DHCP lease within 5 s")
            && refused.output.contains("Rolled back"),
        "an apply with no DHCP server was not rolled back (exit {}): {}",
        refused.status,
        refused.output
    );

    pair.peer.shell(
        "echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && echo 'root:x:0:' > /etc/group",
    )?;
    pair.peer.shell(&format!(
        "ip link set p1 up && ip addr add {SERVER}/24 dev p1"
    ))?;
    pair.peer.shell(&dnsmasq_command())?;
    // dnsmasq prints its start-up lines at once; a missing library or a bad option ends it.
    std::thread::sleep(Duration::from_secs(2));
    let started = pair
        .peer
        .shell("cat /tmp/dnsmasq.log; pidof dnsmasq || echo NOT-RUNNING")?;
    ensure!(
        !started.contains("NOT-RUNNING"),
        "dnsmasq did not start on the peer: {started}"
    );

    let document = dhcp_document();
    write_document(&mut pair.appliance, "/tmp/dhcp.toml", &document)?;
    let apply_started = Instant::now();
    let applied = pair
        .appliance
        .shell_status("cairnctl config apply /tmp/dhcp.toml")?;
    let apply_took = apply_started.elapsed();
    ensure!(
        applied.status == 0,
        "the DHCP document was not applied (exit {}): {}",
        applied.status,
        applied.output
    );
    // The apply's safe-apply step waited for the lease: it is there at once.
    let (address, _) = wait_for_lease(&mut pair, Duration::from_secs(10))?;
    eprintln!("leased {address} ({apply_took:?} from `config apply` to its end, lease included)");
    let shown = pair.appliance.shell("cairnctl net address")?;
    for expected in [
        format!("server    {SERVER}"),
        format!("router    {SERVER}"),
        "renews at".to_string(),
        "expires".to_string(),
    ] {
        ensure!(
            shown.contains(&expected),
            "`net address` lacks {expected:?}: {shown}"
        );
    }
    let json = pair.appliance.shell("cairnctl --json net address")?;
    ensure!(
        json.contains(&format!("\"address\":\"{address}/24\""))
            || json.contains(&format!("\"address\": \"{address}/24\"")),
        "`--json net address` lacks the lease: {json}"
    );
    let resolv = pair.appliance.shell("cat /etc/resolv.conf")?;
    ensure!(
        resolv.contains(&format!("nameserver {SERVER}")),
        "resolv.conf lacks the lease's DNS server: {resolv}"
    );
    let route = pair.appliance.shell("cat /proc/net/route")?;
    ensure!(
        route
            .lines()
            .any(|l| l.starts_with("vmnet") && l.split_whitespace().nth(1) == Some("00000000")),
        "no default route on vmnet from the lease: {route}"
    );
    ping_from_peer(&mut pair, &address, "after the lease")?;

    // Renewal at T1: a second ACK from dnsmasq and hostd's log line.
    let acks_before = acks(&mut pair)?;
    let waiting = Instant::now();
    let renew_deadline = timeouts::scaled(Duration::from_secs(u64::from(T1_S) + 90));
    loop {
        let log = pair.appliance.shell("cairnctl log -n 200")?;
        if log.contains("DHCP: renewed") && acks(&mut pair)? > acks_before {
            break;
        }
        if waiting.elapsed() > renew_deadline {
            let dnsmasq = pair.peer.shell("cat /tmp/dnsmasq.log")?;
            bail!("no renewal within {renew_deadline:?}; hostd:\n{log}\ndnsmasq:\n{dnsmasq}");
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    eprintln!(
        "renewed {:?} after the first check (T1 = {T1_S} s after the ACK)",
        waiting.elapsed()
    );
    ping_from_peer(&mut pair, &address, "after the renewal")?;

    // A clean stop releases the lease; the next boot obtains one again.
    qemu_tests::probe::reboot(&mut pair.appliance)?;
    pair.appliance.shell("dmesg -n 1")?;
    let released = pair.peer.shell("cat /tmp/dnsmasq.log")?;
    ensure!(
        released.contains("DHCPRELEASE(p1)"),
        "hostd stopped without releasing the lease: {released}"
    );
    let (again, after_boot) = wait_for_lease(&mut pair, Duration::from_secs(90))?;
    eprintln!("after the reboot: leased {again} {after_boot:?} after READY (before: {address})");
    ping_from_peer(&mut pair, &again, "after the reboot")?;
    let kept = pair
        .appliance
        .shell("cairnctl config show")
        .context("the document after the reboot")?;
    ensure!(
        kept.contains("dhcp4 = true"),
        "the DHCP document did not survive the reboot: {kept}"
    );
    pair.finish();
    Ok(())
}
