//! Networking inside the real image, without a peer: the board's NICs get their port names,
//! a first boot brings the Default VM Network, and bonds, vSwitches and VLANs follow the desired state through rtnetlink, across a
//! reboot. What needs a peer on the wire (LACP, failover, DHCP, VLAN isolation) is not here.
//!
//! Behind the `vm-tests` feature like the other image tests.
#![cfg(feature = "vm-tests")]

use anyhow::{Context, Result, ensure};
use qemu_tests::{Appliance, Image, Launch, timeouts};

const BOARD: &str = "qemu-x86_64";

fn write_document(app: &mut Appliance, path: &str, lines: &[&str]) -> Result<()> {
    let quoted: Vec<String> = lines.iter().map(|line| format!("'{line}'")).collect();
    app.shell(&format!("printf '%s\\n' {} > {path}", quoted.join(" ")))?;
    Ok(())
}

const BONDED: &[&str] = &[
    "version = 1",
    "[[network.bonds]]",
    "name = \"bond0\"",
    "mode = \"active-backup\"",
    "members = [\"lan1\", \"lan2\"]",
    "primary = \"lan2\"",
    "miimon_ms = 50",
    "[[network.vswitches]]",
    "name = \"vs0\"",
    "uplink = \"bond0\"",
    "[[network.vlans]]",
    "parent = \"bond0\"",
    "id = 42",
];

/// Lines added to [`BONDED`] and the message each document must be refused with.
const BAD_INPUTS: &[(&[&str], &str)] = &[
    (
        &[
            "[[network.bonds]]",
            "name = \"bond1\"",
            "mode = \"active-backup\"",
            "members = [\"lan2\"]",
        ],
        "network.bonds[1].members[0]: lan2 is already a member of bond0 (expected each port in one bond at most)",
    ),
    (
        &[
            "[[network.vswitches]]",
            "name = \"vs1\"",
            "uplink = \"lan1\"",
        ],
        "network.vswitches[1].uplink: lan1 is a member of bond0 (expected the bond itself)",
    ),
    (
        &[
            "[[network.vswitches]]",
            "name = \"vs1\"",
            "uplink = \"bond0\"",
        ],
        "network.vswitches[1].uplink: bond0 is already the uplink of vs0 (expected each interface to uplink one vswitch at most)",
    ),
    (
        &["[[network.vlans]]", "parent = \"bond0\"", "id = 0"],
        "network.vlans[1].id: 0 is out of range (expected 1 to 4094)",
    ),
    (
        &["[[network.vlans]]", "parent = \"bond0\"", "id = 4095"],
        "network.vlans[1].id: 4095 is out of range (expected 1 to 4094)",
    ),
    (
        &["[[network.vlans]]", "parent = \"vs0\"", "id = 1"],
        "network.vlans[1].id: VLAN 1 is the untagged native VLAN of vSwitch vs0",
    ),
    (
        &[
            "[network.management]",
            "interface = \"vs0\"",
            "addresses = [\"192.168.1.300/24\"]",
        ],
        "network.management.addresses[0]: \"192.168.1.300/24\" is not an address with a prefix length (expected e.g. 192.168.1.10/24 or fd00::10/64)",
    ),
    (
        &[
            "[network.management]",
            "interface = \"vs0\"",
            "addresses = [\"192.168.1.3/33\"]",
        ],
        "network.management.addresses[0]: \"192.168.1.3/33\" has prefix length 33 (expected 1 to 32 for an IPv4 address)",
    ),
    (
        &[
            "[[network.bonds]]",
            "name = \"bond1\"",
            "mode = \"balance-rr\"",
            "members = [\"lan3\"]",
        ],
        "network.bonds[1].mode: unknown mode \"balance-rr\" (expected one of: 802.3ad, active-backup, balance-alb)",
    ),
];

/// One line per fact the kernel shows about the bonded stack, from sysfs and procfs.
const STACK_FACTS: &str = "for f in mode slaves primary miimon; do echo \"bond0 $f: $(cat /sys/class/net/bond0/bonding/$f)\"; done; \
echo \"bond0 master: $(basename $(readlink /sys/class/net/bond0/master))\"; \
echo \"vs0 bridge: $(test -d /sys/class/net/vs0/bridge && echo yes)\"; \
echo \"vlan: $(grep '^bond0.42 ' /proc/net/vlan/config | tr -s ' ')\"; \
for i in lan1 lan2 bond0 vs0 bond0.42; do echo \"$i flags: $(cat /sys/class/net/$i/flags)\"; done";

fn check_bonded_stack(app: &mut Appliance, when: &str) -> Result<()> {
    let facts = app.shell(STACK_FACTS)?;
    for expected in [
        "bond0 mode: active-backup 1",
        "bond0 slaves: lan1 lan2",
        "bond0 primary: lan2",
        "bond0 miimon: 50",
        "bond0 master: vs0",
        "vs0 bridge: yes",
        "vlan: bond0.42 | 42 | bond0",
    ] {
        ensure!(
            facts.lines().any(|line| line.trim() == expected),
            "{when}: {expected:?} missing from the kernel's view:\n{facts}"
        );
    }
    for line in facts.lines().filter(|line| line.contains(" flags: ")) {
        let flags = line.rsplit(' ').next().unwrap_or_default();
        let value = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap_or(0);
        ensure!(value & 1 == 1, "{when}: not up: {line}");
    }
    Ok(())
}

/// Proves the NICs get their board port names, a first boot brings the Default VM Network, a bonded vSwitch with a VLAN is built from the document and rebuilt after a reboot, a new bond mode rebuilds the bond, an unknown port is refused, and an empty network section removes it all.
#[test]
fn bonds_vswitches_and_vlans_follow_the_document() -> Result<()> {
    let image = Image::from_env()?;
    let mut app = Appliance::launch(&image, Launch::direct_kernel("net-stack", BOARD))?;
    app.wait_ready(timeouts::ready_direct())?;

    // Port names by PCI address.
    let names = app.shell("for i in /sys/class/net/*; do echo \"$(basename $i) $(basename $(readlink -f $i/device/..))\"; done")?;
    for expected in ["lan1 0000:00:03.0", "lan2 0000:00:04.0"] {
        ensure!(
            names.lines().any(|l| l.trim() == expected),
            "{expected:?} not in {names:?}"
        );
    }
    // A first boot with no configuration: the Default VM Network, over an active-backup
    // bond of both ports (both have carrier), committed as generation 1.
    let default = app.shell("cat /sys/class/net/bond0/bonding/mode /sys/class/net/bond0/bonding/slaves; basename $(readlink /sys/class/net/bond0/master); test -d /sys/class/net/vmnet/bridge && echo vmnet-is-a-bridge")?;
    ensure!(
        default.contains("active-backup 1")
            && default.contains("lan1 lan2")
            && default.contains("vmnet-is-a-bridge"),
        "no Default VM Network on a first boot: {default}"
    );
    let shown = app.shell("cairnctl config show")?;
    ensure!(
        shown.contains("# generation 1") && shown.contains("name = \"vmnet\""),
        "{shown}"
    );
    let net = app.shell("cairnctl net vswitch")?;
    ensure!(
        net.lines()
            .any(|l| l.starts_with("vmnet ") && l.contains("bond0")),
        "{net}"
    );

    write_document(&mut app, "/tmp/bonded.toml", BONDED)?;
    let applied = app.shell("cairnctl config apply /tmp/bonded.toml")?;
    ensure!(
        applied.contains("done: delete vSwitch vmnet")
            && applied.contains("done: create vSwitch vs0"),
        "{applied}"
    );
    check_bonded_stack(&mut app, "after apply")?;
    let plan = app.shell("cairnctl config plan /tmp/bonded.toml")?;
    ensure!(
        plan.contains("No changes"),
        "an applied document still plans changes: {plan}"
    );

    qemu_tests::probe::reboot(&mut app)?;
    check_bonded_stack(&mut app, "after reboot")?;

    // A port the board does not have: refused with the board's ports, nothing changes.
    let bad: Vec<&str> = BONDED
        .iter()
        .map(|line| {
            if line.starts_with("members") {
                "members = [\"lan2\", \"lan3\"]"
            } else {
                line
            }
        })
        .collect();
    write_document(&mut app, "/tmp/bad.toml", &bad)?;
    let refused = app.shell_status("cairnctl config apply /tmp/bad.toml")?;
    ensure!(
        refused.status == 2,
        "exit {} for an unknown port: {}",
        refused.status,
        refused.output
    );
    ensure!(
        refused.output.contains(r#"network.bonds[0].members[1]: port "lan3" does not exist on board qemu-x86_64 (it has lan1, lan2)"#),
        "{}",
        refused.output
    );
    check_bonded_stack(&mut app, "after a refused document")?;

    // Every other kind of bad input: refused whole with its path-level message (exit 2),
    // the generation and the stack untouched.
    let generation_before = app.shell("cairnctl config show | head -1")?;
    for (extra, message) in BAD_INPUTS {
        let mut document: Vec<&str> = BONDED.to_vec();
        document.extend(extra.iter());
        write_document(&mut app, "/tmp/bad.toml", &document)?;
        let refused = app.shell_status("cairnctl config apply /tmp/bad.toml")?;
        ensure!(
            refused.status == 2 && refused.output.contains(message),
            "expected exit 2 and {message:?}, got exit {}: {}",
            refused.status,
            refused.output
        );
    }
    ensure!(
        app.shell("cairnctl config show | head -1")? == generation_before,
        "a refused document changed the committed generation"
    );
    check_bonded_stack(&mut app, "after the bad inputs")?;

    let lacp: Vec<&str> = BONDED
        .iter()
        .filter(|line| !line.starts_with("primary"))
        .flat_map(|line| {
            if line.contains("active-backup") {
                vec![
                    "mode = \"802.3ad\"",
                    "lacp_rate = \"fast\"",
                    "xmit_hash_policy = \"layer3+4\"",
                ]
            } else {
                vec![*line]
            }
        })
        .collect();
    write_document(&mut app, "/tmp/lacp.toml", &lacp)?;
    app.shell("cairnctl config apply /tmp/lacp.toml")?;
    let mode = app.shell("cd /sys/class/net/bond0/bonding && cat mode slaves lacp_rate xmit_hash_policy; basename $(readlink /sys/class/net/bond0/master)")?;
    for expected in ["802.3ad 4", "lan1 lan2", "fast 1", "layer3+4 1", "vs0"] {
        ensure!(
            mode.lines().any(|line| line.trim() == expected),
            "the bond was not rebuilt in 802.3ad with its options, members and uplink ({expected:?} missing): {mode}"
        );
    }

    // A VLAN on a bare port: the bond lets go of lan1 (and closes it); the port comes up
    // again under its VLAN.
    write_document(
        &mut app,
        "/tmp/port-vlan.toml",
        &[
            "version = 1",
            "[[network.vlans]]",
            "parent = \"lan1\"",
            "id = 42",
        ],
    )?;
    app.shell("cairnctl config apply /tmp/port-vlan.toml")?;
    let vlan = app.shell(
        "grep '^lan1.42 ' /proc/net/vlan/config | tr -s ' '; cat /sys/class/net/lan1.42/operstate",
    )?;
    ensure!(
        vlan.contains("lan1.42 | 42 | lan1") && vlan.lines().any(|l| l.trim() == "up"),
        "VLAN 42 on lan1 is not there and up: {vlan}"
    );

    write_document(&mut app, "/tmp/empty.toml", &["version = 1"])?;
    app.shell("cairnctl config apply /tmp/empty.toml")?;
    let left = app.shell("ls /sys/class/net")?;
    for gone in ["bond0", "vs0", "bond0.42", "vmnet", "lan1.42"] {
        ensure!(
            !left.split_whitespace().any(|name| name == gone),
            "{gone} is left: {left}"
        );
    }
    let lan = app.shell("ls /sys/class/net")?;
    ensure!(
        lan.contains("lan1") && lan.contains("lan2"),
        "ports lost: {lan}"
    );
    app.finish();
    Ok(())
}

fn managed_document(interface: &str, private_vswitch: bool, confirm_s: u32) -> Vec<String> {
    let mut lines: Vec<String> = [
        "version = 1",
        "[[network.bonds]]",
        "name = \"bond0\"",
        "mode = \"active-backup\"",
        "members = [\"lan1\", \"lan2\"]",
        "[[network.vswitches]]",
        "name = \"vmnet\"",
        "uplink = \"bond0\"",
    ]
    .map(String::from)
    .to_vec();
    if private_vswitch {
        lines.extend(["[[network.vswitches]]", "name = \"priv\""].map(String::from));
    }
    lines.extend([
        "[network.management]".to_string(),
        format!("interface = \"{interface}\""),
        "addresses = [\"192.168.77.2/24\"]".to_string(),
        "gateway = \"192.168.77.1\"".to_string(),
        "dns = [\"192.168.77.1\"]".to_string(),
        format!("confirm_s = {confirm_s}"),
    ]);
    lines
}

/// The management address as the kernel shows it without iproute2: the local address in
/// fib_trie, the default route in /proc/net/route (gateway 192.168.77.1 is 014DA8C0 in its
/// little-endian hex), the resolver's servers.
const ADDRESS_FACTS: &str = "grep -c '192.168.77.2' /proc/net/fib_trie; grep -E '^[a-z0-9]+\\s+00000000\\s+014DA8C0' /proc/net/route | cut -f1; grep nameserver /etc/resolv.conf";

fn check_management_on(app: &mut Appliance, interface: &str, when: &str) -> Result<()> {
    let facts = app.shell(ADDRESS_FACTS)?;
    let lines: Vec<&str> = facts.lines().map(str::trim).collect();
    ensure!(
        lines.first().is_some_and(|count| *count != "0"),
        "{when}: 192.168.77.2 is not a local address: {facts}"
    );
    ensure!(
        lines.contains(&interface),
        "{when}: no default route via 192.168.77.1 on {interface}: {facts}"
    );
    ensure!(
        lines.contains(&"nameserver 192.168.77.1"),
        "{when}: resolv.conf lacks the DNS server: {facts}"
    );
    Ok(())
}

/// Proves a static management address with gateway and DNS is applied and comes back after a reboot, and a change that leaves the management interface without a link is rolled back on its own within the grace period.
#[test]
fn management_address_and_safe_apply() -> Result<()> {
    let image = Image::from_env()?;
    let mut app = Appliance::launch(&image, Launch::direct_kernel("net-address", BOARD))?;
    app.wait_ready(timeouts::ready_direct())?;

    let good = managed_document("vmnet", false, 5);
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    write_document(&mut app, "/tmp/managed.toml", &good)?;
    let applied = app.shell("cairnctl config apply /tmp/managed.toml")?;
    ensure!(
        applied.contains("done: add address 192.168.77.2/24 to vmnet"),
        "{applied}"
    );
    check_management_on(&mut app, "vmnet", "after apply")?;
    let shown = app.shell("cairnctl net address")?;
    for expected in [
        "address vmnet 192.168.77.2/24",
        "default route via 192.168.77.1 on vmnet",
        "dns 192.168.77.1",
    ] {
        ensure!(
            shown.lines().any(|l| l.trim() == expected),
            "`net address` lacks {expected:?}: {shown}"
        );
    }
    let before = app.shell("cairnctl config show")?;

    // The address moves to a vSwitch with no uplink: no link, so after 5 s hostd takes the
    // whole change back.
    let cut = managed_document("priv", true, 5);
    let cut: Vec<&str> = cut.iter().map(String::as_str).collect();
    write_document(&mut app, "/tmp/cut.toml", &cut)?;
    let refused = app.shell_status("cairnctl config apply /tmp/cut.toml")?;
    ensure!(
        refused.status == 1,
        "exit {} for a cut-off apply: {}",
        refused.status,
        refused.output
    );
    ensure!(
        refused
            .output
            .contains("the management interface priv had no link within 5 s")
            && refused.output.contains("Rolled back"),
        "{}",
        refused.output
    );
    check_management_on(&mut app, "vmnet", "after the rollback")?;
    let left = app.shell("ls /sys/class/net")?;
    ensure!(
        !left.split_whitespace().any(|n| n == "priv"),
        "priv is left: {left}"
    );
    let after = app.shell("cairnctl config show")?;
    let body = |text: &str| text.lines().skip(1).collect::<Vec<_>>().join("\n");
    ensure!(
        body(&after) == body(&before),
        "the document changed:\n{before}\n---\n{after}"
    );
    let log = app.shell("cairnctl log")?;
    ensure!(
        log.contains("safe apply: Rolled back"),
        "the rollback is not logged: {log}"
    );

    // The same cut with a long grace period, and hostd killed while it waits: nobody
    // confirmed the change, so the restarted hostd goes back to the previous document.
    let cut_slow = managed_document("priv", true, 300);
    let cut_slow: Vec<&str> = cut_slow.iter().map(String::as_str).collect();
    write_document(&mut app, "/tmp/cut-slow.toml", &cut_slow)?;
    app.shell("(cairnctl config apply /tmp/cut-slow.toml >/dev/null 2>&1 &)")?;
    app.shell(
        "(for i in $(seq 240); do cairnctl job list 2>/dev/null | grep ' running ' | grep -q 'confirming the management link on priv (up to 300 s)' && exit 0; usleep 250000; done; exit 1)",
    )
    .context("the apply never reached its confirm window")?;
    let inside = app.shell("ls /sys/class/net")?;
    ensure!(
        inside.split_whitespace().any(|n| n == "priv"),
        "inside the window the new vSwitch should exist: {inside}"
    );
    app.shell("kill -9 $(pidof hostd)")?;
    app.shell(
        "(for i in $(seq 120); do cairnctl status >/dev/null 2>&1 && exit 0; usleep 250000; done; exit 1)",
    )
    .context("hostd did not come back within 30 s of the SIGKILL")?;
    check_management_on(&mut app, "vmnet", "after a kill inside the confirm window")?;
    let after_kill = app.shell("cairnctl config show")?;
    ensure!(
        body(&after_kill) == body(&before),
        "an unconfirmed change survived the kill:\n{before}\n---\n{after_kill}"
    );
    let log = app.shell("cairnctl log")?;
    ensure!(
        log.contains("it was never confirmed"),
        "the revert is not logged: {log}"
    );

    qemu_tests::probe::reboot(&mut app)?;
    check_management_on(&mut app, "vmnet", "after reboot")?;
    app.finish();
    Ok(())
}
