//! The guests section: every field, the round trip, and the exact refusals.

use crate::state::{DesiredState, DiskSource, GuestBoot, RestartPolicy};

const HEAD: &str = r#"
version = 1
[[network.vswitches]]
name = "vmnet"
[[storage.volumes]]
name = "tank"
drives = ["/dev/disk/by-id/ata-A"]
data_profile = "single"
metadata_profile = "dup"
"#;

/// A guest using every field.
const FULL: &str = r#"
[[guests]]
name = "web"
vcpus = 2
memory_mib = 1024
volume = "tank"
reserved_threads = [2, 3]
cpu_weight = 200
restart = "always"
autostart = { order = 1, delay_s = 10 }
boot = { kernel = "vmlinuz", initramfs = "/volume1/images/initrd.img", cmdline = "console=ttyS0 quiet" }
nics = [{ vswitch = "vmnet", mac = "52:54:00:12:34:56", vlan = 42 }, { vswitch = "vmnet" }]
disks = [{ file = "root.img", size_mib = 10240 }, { path = "/dev/disk/by-id/ata-B", readonly = true }]
"#;

fn parse(text: &str) -> DesiredState {
    DesiredState::from_toml(text).unwrap_or_else(|invalid| panic!("{invalid}"))
}

fn errors(guest: &str) -> Vec<String> {
    match DesiredState::from_toml(&format!("{HEAD}\n[[guests]]\n{guest}")) {
        Ok(state) => panic!("accepted: {state:?}"),
        Err(invalid) => invalid.errors.iter().map(ToString::to_string).collect(),
    }
}

const BASE: &str = "name = \"db\"\nvcpus = 1\nmemory_mib = 512\n";

#[test]
fn every_field_reads_and_round_trips() {
    let state = parse(&format!("{HEAD}{FULL}"));
    let guest = &state.guests[0];
    assert_eq!(guest.restart, RestartPolicy::Always);
    assert_eq!(
        guest
            .reserved_threads
            .iter()
            .map(|t| t.get())
            .collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(guest.nics[0].vlan.map(|v| v.get()), Some(42));
    assert!(
        matches!(&guest.disks[1].source, DiskSource::Path(p) if p.as_str() == "/dev/disk/by-id/ata-B")
    );
    assert!(
        matches!(&guest.boot, GuestBoot::Kernel { cmdline: Some(c), .. } if c == "console=ttyS0 quiet")
    );
    let text = state.to_toml();
    assert_eq!(parse(&text), state, "rendered as:\n{text}");
    // The defaults are not written back.
    let plain = parse(&format!("{HEAD}[[guests]]\n{BASE}"));
    assert!(!plain.to_toml().contains("restart"), "{}", plain.to_toml());
    assert_eq!(parse(&plain.to_toml()), plain);
}

#[test]
fn nine_disks() {
    let disks: Vec<String> = (0..9)
        .map(|i| format!("{{ path = \"/dev/disk/by-id/d{i}\" }}"))
        .collect();
    assert_eq!(
        errors(&format!("{BASE}disks = [{}]\n", disks.join(", "))),
        ["guests[0].disks: 9 disks (expected at most 8, the most virtual disks a guest may have)"]
    );
}

#[test]
fn zero_vcpus_and_too_little_memory() {
    assert_eq!(
        errors("name = \"db\"\nvcpus = 0\nmemory_mib = 32\n"),
        [
            "guests[0].vcpus: 0 is out of range (expected 1 to 255)",
            "guests[0].memory_mib: 32 is out of range (expected 64 to 16777216)",
        ]
    );
}

#[test]
fn memory_that_is_not_whole_mib() {
    assert_eq!(
        errors("name = \"db\"\nvcpus = 1\nmemory_mib = 512.5\n"),
        ["guests[0].memory_mib: invalid type: floating point \"512.5\", expected i64"]
    );
}

#[test]
fn disk_sources() {
    assert_eq!(
        errors(&format!("{BASE}disks = [{{ file = \"root.img\" }}]\n")),
        [
            r#"guests[0].disks[0].file: "root.img" is a file in the guest's subvolume, but the guest has no volume (expected volume = "…", or path = an absolute path)"#
        ]
    );
    assert_eq!(
        errors(&format!(
            "{BASE}volume = \"tank\"\ndisks = [{{ file = \"../etc/passwd\" }}, {{ path = \"root.img\" }}, {{ file = \"a\", path = \"/b\" }}, {{ path = \"/dev/x\", size_mib = 5 }}]\n"
        )),
        [
            r#"guests[0].disks[0].file: "../etc/passwd" is not a guest file (expected a file name in the guest's subvolume, like root.img, or an absolute path without '..', like /volume1/images/vmlinuz)"#,
            r#"guests[0].disks[1].path: "root.img" is not an absolute path (expected /dev/disk/by-id/… or /volume1/…; use file = … for a file in the guest's subvolume)"#,
            "guests[0].disks[2]: both file and path (expected one of them)",
            "guests[0].disks[3].size_mib: only a file in the guest's subvolume is created by hostd (expected no size_mib beside path)",
        ]
    );
}

#[test]
fn unknown_vswitch_vlan_restart_and_threads() {
    assert_eq!(
        errors(&format!(
            "{BASE}restart = \"sometimes\"\nreserved_threads = [1, 1]\ncpu_weight = 0\nnics = [{{ vswitch = \"lan\", vlan = 4095 }}]\n"
        )),
        [
            "guests[0].nics[0].vlan: 4095 is out of range (expected 1 to 4094)",
            "guests[0].reserved_threads[1]: thread 1 is listed twice (expected each thread once)",
            "guests[0].cpu_weight: 0 is out of range (expected 1 to 10000)",
            r#"guests[0].restart: unknown policy "sometimes" (expected one of: never, on-crash, always)"#,
        ]
    );
    assert_eq!(
        errors(&format!("{BASE}nics = [{{ vswitch = \"lan\" }}]\n")),
        [r#"guests[0].nics[0].vswitch: no vswitch named "lan" (expected one of: vmnet)"#]
    );
}

#[test]
fn boot_without_a_kernel() {
    assert_eq!(
        errors(&format!("{BASE}boot = {{ cmdline = \"quiet\" }}\n")),
        [
            "guests[0].boot.kernel: missing (initramfs and cmdline need a kernel; leave boot out to boot the first disk through the firmware)"
        ]
    );
}

#[test]
fn duplicate_names() {
    assert_eq!(
        errors(&format!("{BASE}\n[[guests]]\n{BASE}")),
        [r#"guests[1].name: "db" is already the name of guests[0] (expected a name of its own)"#]
    );
}
