//! The exact messages an admin sees for wrong documents, and the round trip of good ones.

use super::*;

/// A document using every part of the schema.
const GOOD: &str = r#"
version = 1
hostname = "nas1"

[[network.bonds]]
name = "bond0"
mode = "802.3ad"
members = ["lan1", "lan2"]
miimon_ms = 100

[[network.vswitches]]
name = "br0"
uplink = "bond0"

[[network.vswitches]]
name = "br-storage"
uplink = "bond0.100"

[[network.vlans]]
parent = "bond0"
id = 100

[[storage.volumes]]
name = "tank"
drives = ["/dev/disk/by-id/ata-WDC_A", "/dev/disk/by-id/ata-WDC_B"]
data_profile = "raid1"
metadata_profile = "raid1"

[[guests]]
name = "web"
vcpus = 2
memory_mib = 2048
volume = "tank"
nics = [{ vswitch = "br0", mac = "52:54:00:12:34:56" }]
"#;

/// The error lines of a refused document.
fn errors(text: &str) -> Vec<String> {
    match DesiredState::from_toml(text) {
        Ok(state) => panic!("accepted a document that should be refused: {state:?}"),
        Err(invalid) => invalid.errors.iter().map(ToString::to_string).collect(),
    }
}

/// `GOOD` with one piece of text replaced (which must be there).
fn good_with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "GOOD does not contain {from:?}");
    GOOD.replacen(from, to, 1)
}

fn parse(text: &str) -> DesiredState {
    DesiredState::from_toml(text).unwrap_or_else(|invalid| panic!("{invalid}"))
}

#[test]
fn a_good_document_is_accepted_with_typed_values() {
    let state = parse(GOOD);
    assert_eq!(state.version, 1);
    assert_eq!(state.hostname.as_ref().map(Hostname::as_str), Some("nas1"));
    let bond = &state.network.bonds[0];
    assert_eq!(bond.mode, BondMode::Lacp);
    assert_eq!(bond.miimon_ms.map(MiimonMs::get), Some(100));
    assert_eq!(state.network.vlans[0].interface_name(), "bond0.100");
    assert_eq!(state.storage.volumes[0].data_profile, Profile::Raid1);
    assert_eq!(state.guests[0].memory_mib.get(), 2048);
    assert_eq!(
        state.guests[0].nics[0].mac.map(|mac| mac.octets()),
        Some([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
    );
    assert_eq!(state.validate(), Ok(()));
}

#[test]
fn the_smallest_document_is_only_a_version() {
    assert_eq!(parse("version = 1\n"), DesiredState::default());
}

#[test]
fn to_toml_reads_back_to_the_same_state() {
    let state = parse(GOOD);
    let text = state.to_toml();
    assert_eq!(parse(&text), state, "rendered as:\n{text}");
    assert_eq!(DesiredState::default().to_toml(), "version = 1\n");
}

// ---- one wrong value each: the exact line the admin sees ----

#[test]
fn unknown_bond_mode() {
    assert_eq!(
        errors(&good_with(r#"mode = "802.3ad""#, r#"mode = "lacp2""#)),
        [
            r#"network.bonds[0].mode: unknown mode "lacp2" (expected one of: 802.3ad, active-backup, balance-alb)"#
        ]
    );
}

#[test]
fn vlan_id_out_of_range() {
    assert_eq!(
        errors(&good_with("id = 100", "id = 4095")),
        [
            "network.vlans[0].id: 4095 is out of range (expected 1 to 4094)",
            // The VLAN's interface name is made of its id, so the vSwitch over bond0.100 now
            // names an interface the document does not declare.
            r#"network.vswitches[1].uplink: no port, bond or VLAN named "bond0.100" (expected a port like lan1, or one of: bond0, bond0.4095)"#,
        ]
    );
    assert_eq!(
        errors(&good_with("id = 100", "id = -1")),
        [
            "network.vlans[0].id: -1 is out of range (expected 1 to 4094)",
            r#"network.vswitches[1].uplink: no port, bond or VLAN named "bond0.100" (expected a port like lan1, or one of: bond0, bond0.-1)"#,
        ]
    );
}

#[test]
fn interface_name_too_long_or_with_a_slash() {
    assert_eq!(
        errors(&good_with(
            r#"name = "br0""#,
            r#"name = "a-very-long-bridge""#
        )),
        [
            r#"network.vswitches[0].name: "a-very-long-bridge" is not an interface name (expected 1 to 15 letters, digits, '-', '_' or '.', starting with a letter)"#,
            // The guest's NIC still names br0, which no longer exists.
            r#"guests[0].nics[0].vswitch: no vswitch named "br0" (expected one of: a-very-long-bridge, br-storage)"#,
        ]
    );
    assert_eq!(
        errors(&good_with(r#"parent = "bond0""#, r#"parent = "bond/0""#)),
        [
            r#"network.vlans[0].parent: "bond/0" is not an interface name (expected 1 to 15 letters, digits, '-', '_' or '.', starting with a letter)"#,
            r#"network.vswitches[1].uplink: no port, bond or VLAN named "bond0.100" (expected a port like lan1, or one of: bond0, bond/0.100)"#,
        ]
    );
}

#[test]
fn member_that_is_not_a_port() {
    assert_eq!(
        errors(&good_with(r#"["lan1", "lan2"]"#, r#"["lan1", "eth0"]"#)),
        [
            r#"network.bonds[0].members[1]: "eth0" is not a port name (expected the board's port names lan1, lan2, …)"#
        ]
    );
}

#[test]
fn bad_hostname() {
    assert_eq!(
        errors(&good_with(r#"hostname = "nas1""#, r#"hostname = "-nas""#)),
        [
            r#"hostname: "-nas" is not a hostname (expected at most 64 characters: labels of 1 to 63 letters, digits or '-' separated by '.', none starting or ending with '-')"#
        ]
    );
}

#[test]
fn bad_mac_addresses() {
    assert_eq!(
        errors(&good_with("52:54:00:12:34:56", "52:54:00:12:34")),
        [
            r#"guests[0].nics[0].mac: "52:54:00:12:34" is not a MAC address (expected six pairs of hex digits separated by ':', like 52:54:00:12:34:56)"#
        ]
    );
    assert_eq!(
        errors(&good_with("52:54:00:12:34:56", "01:00:5E:00:00:01")),
        [
            "guests[0].nics[0].mac: 01:00:5e:00:00:01 is a multicast address (expected a unicast address: the first octet's lowest bit clear)"
        ]
    );
    assert_eq!(
        errors(&good_with("52:54:00:12:34:56", "00:00:00:00:00:00")),
        [
            "guests[0].nics[0].mac: 00:00:00:00:00:00 is not a usable address (expected a unicast address)"
        ]
    );
}

#[test]
fn drive_by_kernel_name() {
    assert_eq!(
        errors(&good_with("/dev/disk/by-id/ata-WDC_B", "/dev/sdb")),
        [
            r#"storage.volumes[0].drives[1]: "/dev/sdb" is not a stable drive path (expected /dev/disk/by-id/… or /dev/disk/by-path/…; names like /dev/sdb change between boots)"#
        ]
    );
}

#[test]
fn unknown_profile() {
    assert_eq!(
        errors(&good_with(
            r#"data_profile = "raid1""#,
            r#"data_profile = "mirror""#
        )),
        [
            r#"storage.volumes[0].data_profile: unknown profile "mirror" (expected one of: single, dup, raid0, raid1, raid1c3, raid1c4, raid10)"#
        ]
    );
}

/// Three drives, so that the parity profiles have their minimum and only the parity rules
/// speak.
fn three_drive_volume(data: &str, metadata: &str, force: bool) -> String {
    let volume = format!(
        "drives = [\"/dev/disk/by-id/ata-WDC_A\", \"/dev/disk/by-id/ata-WDC_B\", \"/dev/disk/by-id/ata-WDC_C\"]\ndata_profile = \"{data}\"\nmetadata_profile = \"{metadata}\"{}",
        if force {
            "\nforce_parity_raid = true"
        } else {
            ""
        }
    );
    good_with(
        "drives = [\"/dev/disk/by-id/ata-WDC_A\", \"/dev/disk/by-id/ata-WDC_B\"]\ndata_profile = \"raid1\"\nmetadata_profile = \"raid1\"",
        &volume,
    )
}

#[test]
fn scrub_schedule_is_days_within_a_year() {
    let scheduled = parse(&good_with(
        r#"metadata_profile = "raid1""#,
        "metadata_profile = \"raid1\"\nscrub_every_days = 30",
    ));
    assert_eq!(scheduled.storage.volumes[0].scrub_every_days, Some(30));
    assert_eq!(parse(&scheduled.to_toml()), scheduled);
    for days in [0, -1, 367] {
        assert_eq!(
            errors(&good_with(
                r#"metadata_profile = "raid1""#,
                &format!("metadata_profile = \"raid1\"\nscrub_every_days = {days}"),
            )),
            [format!(
                "storage.volumes[0].scrub_every_days: {days} is out of range (expected 1 to 366 days; leave it out for scrubs on demand only)"
            )]
        );
    }
}

#[test]
fn parity_raid_is_refused_unless_forced_and_never_for_metadata() {
    assert_eq!(
        errors(&three_drive_volume("raid5", "raid1", false)),
        [format!(
            "storage.volumes[0].data_profile: raid5 is refused unless the volume says force_parity_raid = true: {PARITY_RISK} (expected one of: single, dup, raid0, raid1, raid1c3, raid1c4, raid10, or the force key to take the risk)"
        )]
    );
    let forced = parse(&three_drive_volume("raid5", "raid1", true));
    assert_eq!(forced.storage.volumes[0].data_profile, Profile::Raid5);
    assert!(forced.storage.volumes[0].force_parity_raid);
    // What is written back reads back the same, consent included.
    assert_eq!(parse(&forced.to_toml()), forced);

    assert_eq!(
        errors(&three_drive_volume("raid5", "raid5", true)),
        [format!(
            "storage.volumes[0].metadata_profile: raid5 is refused for metadata: {PARITY_RISK}, and metadata lost is the volume lost (expected raid1 or raid1c3 beside parity data; offered: single, dup, raid0, raid1, raid1c3, raid1c4, raid10)"
        )]
    );
    // raid6 survives two lost drives: its metadata must too, and it needs four drives.
    assert_eq!(
        errors(&three_drive_volume("raid6", "raid1", true)),
        [
            "storage.volumes[0].drives: 3 drives are too few for data_profile raid6 (expected at least 4)",
            "storage.volumes[0].metadata_profile: raid1 is less redundant than data_profile raid6, and losing metadata loses the volume (expected one of: raid1c3, raid1c4)",
        ]
    );
}

#[test]
fn guest_sizes_out_of_range() {
    assert_eq!(
        errors(&good_with("vcpus = 2", "vcpus = 0")),
        ["guests[0].vcpus: 0 is out of range (expected 1 to 255)"]
    );
    assert_eq!(
        errors(&good_with("memory_mib = 2048", "memory_mib = 16")),
        ["guests[0].memory_mib: 16 is out of range (expected 64 to 16777216)"]
    );
    assert_eq!(
        errors(&good_with("miimon_ms = 100", "miimon_ms = 0")),
        ["network.bonds[0].miimon_ms: 0 is out of range (expected 1 to 60000)"]
    );
}

#[test]
fn guest_name_with_capitals() {
    assert_eq!(
        errors(&good_with(r#"name = "web""#, r#"name = "Web Server""#)),
        [
            r#"guests[0].name: "Web Server" is not a name (expected 1 to 63 lowercase letters, digits or '-', starting with a letter and not ending with '-')"#
        ]
    );
}

#[test]
fn unsupported_version() {
    assert_eq!(
        errors(&good_with("version = 1", "version = 2")),
        ["version: unsupported version 2 (expected 1)"]
    );
}

// ---- relations between fields ----

#[test]
fn port_in_two_bonds() {
    let text = good_with(
        "[[network.vswitches]]",
        "[[network.bonds]]\nname = \"bond1\"\nmode = \"active-backup\"\nmembers = [\"lan3\", \"lan2\"]\n\n[[network.vswitches]]",
    );
    assert_eq!(
        errors(&text),
        [
            "network.bonds[1].members[1]: lan2 is already a member of bond0 (expected each port in one bond at most)"
        ]
    );
}

#[test]
fn port_listed_twice_and_empty_bond() {
    assert_eq!(
        errors(&good_with(r#"["lan1", "lan2"]"#, r#"["lan1", "lan1"]"#)),
        ["network.bonds[0].members[1]: lan1 is listed twice in this bond"]
    );
    assert_eq!(
        errors(&good_with(r#"["lan1", "lan2"]"#, "[]")),
        ["network.bonds[0].members: empty (expected at least one port)"]
    );
}

#[test]
fn primary_port_rules() {
    assert_eq!(
        errors(&good_with("miimon_ms = 100", "primary = \"lan1\"")),
        [
            "network.bonds[0].primary: mode 802.3ad has no primary port (expected no primary, or mode active-backup or balance-alb)"
        ]
    );
    let text = good_with("miimon_ms = 100", "primary = \"lan3\"").replacen(
        r#"mode = "802.3ad""#,
        r#"mode = "active-backup""#,
        1,
    );
    assert_eq!(
        errors(&text),
        [
            "network.bonds[0].primary: lan3 is not a member of this bond (expected one of: lan1, lan2)"
        ]
    );
}

#[test]
fn vlan_whose_parent_does_not_exist() {
    assert_eq!(
        errors(&good_with(r#"parent = "bond0""#, r#"parent = "bond9""#)),
        [
            r#"network.vlans[0].parent: no port, bond or vswitch named "bond9" (expected a port like lan1, or one of: bond0, br-storage, br0)"#,
            r#"network.vswitches[1].uplink: no port, bond or VLAN named "bond0.100" (expected a port like lan1, or one of: bond0, bond9.100)"#,
        ]
    );
}

#[test]
fn vlan_on_a_bonded_port_and_duplicate_vlan() {
    assert_eq!(
        errors(&good_with(r#"parent = "bond0""#, r#"parent = "lan2""#)),
        [
            "network.vlans[0].parent: lan2 is a member of bond0 (expected the bond itself)",
            r#"network.vswitches[1].uplink: no port, bond or VLAN named "bond0.100" (expected a port like lan1, or one of: bond0, lan2.100)"#,
        ]
    );
    let text = good_with(
        "[[storage.volumes]]",
        "[[network.vlans]]\nparent = \"bond0\"\nid = 100\n\n[[storage.volumes]]",
    );
    assert_eq!(
        errors(&text),
        [
            "network.vlans[1]: VLAN 100 on bond0 (interface bond0.100) is already declared as network.vlans[0]"
        ]
    );
}

#[test]
fn vlan_interface_name_too_long() {
    let vlan_on = |parent: &str| {
        good_with(r#"name = "br-storage""#, &format!("name = {parent:?}")).replacen(
            "[[storage.volumes]]",
            &format!("[[network.vlans]]\nparent = {parent:?}\nid = 4000\n\n[[storage.volumes]]"),
            1,
        )
    };
    // "br-storage.4000" is 15 characters: it just fits.
    assert!(DesiredState::from_toml(&vlan_on("br-storage")).is_ok());
    assert_eq!(
        errors(&vlan_on("br-storage-1")),
        [
            r#"network.vlans[1]: interface name "br-storage-1.4000" would be 17 characters (expected at most 15: shorten the parent's name)"#
        ]
    );
}

#[test]
fn duplicate_names() {
    assert_eq!(
        errors(&good_with(r#"name = "br0""#, r#"name = "bond0""#)),
        [
            r#"network.vswitches[0].name: "bond0" is already the name of network.bonds[0] (expected a name no other bond, vswitch or VLAN uses)"#,
            r#"guests[0].nics[0].vswitch: no vswitch named "br0" (expected one of: bond0, br-storage)"#,
        ]
    );
    assert_eq!(
        errors(&good_with(r#"name = "bond0""#, r#"name = "lan1""#)),
        [
            r#"network.bonds[0].name: "lan1" is a port's name (expected a name other than lan1, lan2, …)"#,
            // What referred to bond0 now refers to nothing.
            r#"network.vlans[0].parent: no port, bond or vswitch named "bond0" (expected a port like lan1, or one of: lan1, br-storage, br0)"#,
            r#"network.vswitches[0].uplink: no port, bond or VLAN named "bond0" (expected a port like lan1, or one of: lan1, bond0.100)"#,
        ]
    );
    let two_guests = format!(
        "{GOOD}\n[[guests]]\nname = \"web\"\nvcpus = 1\nmemory_mib = 512\nnics = [{{ vswitch = \"br0\", mac = \"52:54:00:12:34:56\" }}]\n"
    );
    assert_eq!(
        errors(&two_guests),
        [
            r#"guests[1].name: "web" is already the name of guests[0] (expected a name of its own)"#,
            "guests[1].nics[0].mac: 52:54:00:12:34:56 is already the address of guests[0].nics[0] (expected an address of its own)",
        ]
    );
}

#[test]
fn raid1_volume_with_one_drive() {
    assert_eq!(
        errors(&good_with(r#", "/dev/disk/by-id/ata-WDC_B""#, "")),
        [
            "storage.volumes[0].drives: 1 drive is too few for data_profile raid1 (expected at least 2)",
            "storage.volumes[0].drives: 1 drive is too few for metadata_profile raid1 (expected at least 2)",
        ]
    );
}

#[test]
fn drive_in_two_volumes() {
    let text = format!(
        "{GOOD}\n[[storage.volumes]]\nname = \"scratch\"\ndrives = [\"/dev/disk/by-id/ata-WDC_B\"]\ndata_profile = \"single\"\nmetadata_profile = \"dup\"\n"
    );
    assert_eq!(
        errors(&text),
        [
            "storage.volumes[1].drives[0]: /dev/disk/by-id/ata-WDC_B is already in volume tank (expected each drive in one volume at most)"
        ]
    );
}

#[test]
fn metadata_less_redundant_than_data() {
    assert_eq!(
        errors(&good_with(
            r#"metadata_profile = "raid1""#,
            r#"metadata_profile = "dup""#
        )),
        [
            "storage.volumes[0].metadata_profile: dup is less redundant than data_profile raid1, and losing metadata loses the volume (expected one of: raid1, raid1c3, raid1c4, raid10)"
        ]
    );
}

#[test]
fn uplink_rules() {
    assert_eq!(
        errors(&good_with(r#"uplink = "bond0""#, r#"uplink = "lan1""#)),
        ["network.vswitches[0].uplink: lan1 is a member of bond0 (expected the bond itself)"]
    );
    assert_eq!(
        errors(&good_with(r#"uplink = "bond0.100""#, r#"uplink = "bond0""#)),
        [
            "network.vswitches[1].uplink: bond0 is already the uplink of br0 (expected each interface to uplink one vswitch at most)"
        ]
    );
    assert_eq!(
        errors(&good_with(r#"uplink = "bond0.100""#, r#"uplink = "br0""#)),
        [
            r#"network.vswitches[1].uplink: no port, bond or VLAN named "br0" (expected a port like lan1, or one of: bond0, bond0.100)"#
        ]
    );
}

#[test]
fn guest_references_that_do_not_resolve() {
    let text = good_with(r#"volume = "tank""#, r#"volume = "tank2""#).replacen(
        r#"vswitch = "br0""#,
        r#"vswitch = "br9""#,
        1,
    );
    assert_eq!(
        errors(&text),
        [
            r#"guests[0].volume: no volume named "tank2" (expected one of: tank)"#,
            r#"guests[0].nics[0].vswitch: no vswitch named "br9" (expected one of: br-storage, br0)"#,
        ]
    );
    assert_eq!(
        errors(
            "version = 1\n[[guests]]\nname = \"a\"\nvcpus = 1\nmemory_mib = 64\nnics = [{ vswitch = \"br0\" }]\n"
        ),
        [r#"guests[0].nics[0].vswitch: no vswitch named "br0" (no vswitch is declared)"#]
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let text = GOOD
        .replacen(r#"mode = "802.3ad""#, r#"mode = "lacp2""#, 1)
        .replacen(r#"hostname = "nas1""#, r#"hostname = "nas_1""#, 1)
        .replacen("vcpus = 2", "vcpus = 300", 1)
        .replacen(r#"volume = "tank""#, r#"volume = "nope""#, 1);
    assert_eq!(
        errors(&text),
        [
            r#"hostname: "nas_1" is not a hostname (expected at most 64 characters: labels of 1 to 63 letters, digits or '-' separated by '.', none starting or ending with '-')"#,
            r#"network.bonds[0].mode: unknown mode "lacp2" (expected one of: 802.3ad, active-backup, balance-alb)"#,
            "guests[0].vcpus: 300 is out of range (expected 1 to 255)",
            // The bond had a wrong value, yet the VLAN and the vSwitch over it are not reported
            // as referring to nothing: references resolve against every declared name. The
            // guest's references are checked only once its own values are right, so its
            // missing volume waits for the next round.
        ]
    );
}

#[test]
fn a_reference_to_an_item_with_a_wrong_value_is_not_also_missing() {
    // bond0 has a wrong mode; the VLAN on it and the vSwitch over it must not be reported.
    assert_eq!(
        errors(&good_with(r#"mode = "802.3ad""#, r#"mode = "LACP""#)).len(),
        1
    );
}

#[test]
fn invalid_displays_every_line() {
    let invalid = DesiredState::from_toml(&good_with("vcpus = 2", "vcpus = 0"))
        .expect_err("vcpus 0 is refused");
    assert_eq!(
        invalid.to_string(),
        "Invalid desired state (1 error)\n  guests[0].vcpus: 0 is out of range (expected 1 to 255)"
    );
}

// ---- shape errors from serde, with their paths ----

#[test]
fn unknown_field_is_reported_with_its_path() {
    assert_eq!(
        errors(&good_with("miimon_ms = 100", "speed = 1000")),
        [
            "network.bonds[0].speed: unknown field (expected one of: name, mode, members, miimon_ms, primary, lacp_rate, xmit_hash_policy)"
        ]
    );
    assert_eq!(
        errors("version = 1\ntimezone = \"UTC\"\n"),
        ["timezone: unknown field (expected one of: version, hostname, network, storage, guests)"]
    );
    assert_eq!(
        errors(&good_with("[[network.vlans]]", "[[network.vlan]]")),
        ["network.vlan: unknown field (expected one of: bonds, vswitches, vlans, management)"]
    );
}

#[test]
fn missing_field_is_reported_with_its_path() {
    assert_eq!(
        errors(&good_with(r#"mode = "802.3ad""#, "")),
        ["network.bonds[0].mode: missing (this field is required)"]
    );
    assert_eq!(
        errors("hostname = \"nas\"\n"),
        ["version: missing (this field is required)"]
    );
}

#[test]
fn wrong_type_is_reported_with_its_path() {
    assert_eq!(
        errors(&good_with(r#"["lan1", "lan2"]"#, r#""lan1""#)),
        [r#"network.bonds[0].members: invalid type: string "lan1", expected a sequence"#]
    );
    assert_eq!(
        errors(&good_with("vcpus = 2", r#"vcpus = "two""#)),
        [r#"guests[0].vcpus: invalid type: string "two", expected i64"#]
    );
}

#[test]
fn toml_syntax_error_names_line_and_column() {
    assert_eq!(
        errors("version = 1\n[network\nbonds = []\n"),
        [r#"not valid TOML at line 2, column 9: unclosed table, expected "]""#]
    );
}

// ---- states built in code ----

#[test]
fn validate_checks_a_state_built_in_code() {
    let mut state = parse(GOOD);
    state.version = 3;
    state.network.bonds[0]
        .members
        .push(PortName::try_from("lan1").expect("port name"));
    state.guests[0].volume = Some(ObjectName::try_from("gone").expect("name"));
    let invalid = state.validate().expect_err("three errors");
    assert_eq!(
        invalid
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "version: unsupported version 3 (expected 1)",
            "network.bonds[0].members[2]: lan1 is listed twice in this bond",
            r#"guests[0].volume: no volume named "gone" (expected one of: tank)"#,
        ]
    );
}

#[test]
fn value_types_refuse_wrong_values_on_their_own() {
    assert_eq!(
        VlanId::try_from(5000),
        Err(ValueError::OutOfRange {
            value: 5000,
            min: 1,
            max: 4094
        })
    );
    assert_eq!(VlanId::new(42).map(VlanId::get), Ok(42));
    assert!(InterfaceName::try_from("bond0.100").is_ok());
    assert!(InterfaceName::try_from("").is_err());
    assert!(InterfaceName::try_from("0bond").is_err());
    assert!(PortName::try_from("lan12").is_ok());
    assert!(PortName::try_from("lan0").is_err());
    assert!(PortName::try_from("lan01").is_err());
    assert!(Hostname::try_from("nas-1.example.org").is_ok());
    assert!(Hostname::try_from("nas..example").is_err());
    assert!(Hostname::try_from("a".repeat(65).as_str()).is_err());
    assert!(ObjectName::try_from("web-1").is_ok());
    assert!(ObjectName::try_from("web-").is_err());
    assert!(DrivePath::try_from("/dev/disk/by-path/pci-0000:00:1f.2-ata-1").is_ok());
    assert!(DrivePath::try_from("/dev/disk/by-id/../../sda").is_err());
    assert!(DrivePath::try_from("/dev/disk/by-id/").is_err());
    assert_eq!(
        MacAddress::try_from("02:00:00:00:00:01").map(|mac| mac.to_string()),
        Ok("02:00:00:00:00:01".to_string())
    );
    assert!(MacAddress::try_from("02:00:00:00:00:01:02").is_err());
    assert!(MacAddress::try_from("02-00-00-00-00-01").is_err());
    assert!(MacAddress::try_from("+2:00:00:00:00:01").is_err());
}

#[test]
fn lacp_options_belong_to_802_3ad_and_have_named_values() {
    let doc = "version = 1\n[[network.bonds]]\nname = \"bond0\"\nmode = \"active-backup\"\nmembers = [\"lan1\"]\nlacp_rate = \"fast\"\n\n[[network.bonds]]\nname = \"bond1\"\nmode = \"802.3ad\"\nmembers = [\"lan2\"]\nxmit_hash_policy = \"layer9\"\n";
    let errors: Vec<String> = DesiredState::from_toml(doc)
        .expect_err("refused")
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            r#"network.bonds[1].xmit_hash_policy: unknown xmit_hash_policy "layer9" (expected one of: layer2, layer2+3, layer3+4, encap2+3, encap3+4)"#,
            "network.bonds[0].lacp_rate: mode active-backup has no lacp_rate (expected no lacp_rate, or mode 802.3ad)",
        ]
    );
}

#[test]
fn management_fields_are_checked_with_what_would_be_right() {
    let doc = "version = 1\n[[network.bonds]]\nname = \"bond0\"\nmode = \"active-backup\"\nmembers = [\"lan1\"]\n\n[network.management]\ninterface = \"lan1\"\naddresses = [\"10.0.0.2/33\", \"fd00::2/64\"]\ngateway = \"10.0.0.300\"\nconfirm_s = 1\n";
    let errors: Vec<String> = DesiredState::from_toml(doc)
        .expect_err("refused")
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            r#"network.management.addresses[0]: "10.0.0.2/33" has prefix length 33 (expected 1 to 32 for an IPv4 address)"#,
            r#"network.management.gateway: "10.0.0.300" is not an IP address (expected the gateway as e.g. 192.168.1.1 or fd00::1)"#,
            "network.management.confirm_s: 1 is out of range (expected 5 to 600 seconds)",
        ]
    );
    let enslaved = "version = 1\n[[network.bonds]]\nname = \"bond0\"\nmode = \"active-backup\"\nmembers = [\"lan1\"]\n\n[network.management]\ninterface = \"lan1\"\naddresses = [\"10.0.0.2/24\"]\ngateway = \"fd00::1\"\n";
    let errors: Vec<String> = DesiredState::from_toml(enslaved)
        .expect_err("refused")
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "network.management.interface: lan1 is a member of bond0 (expected the bond itself)",
            "network.management.gateway: fd00::1 is IPv6 but no address is (expected a gateway in the family of an address)",
        ]
    );
}

#[test]
fn dhcp4_takes_ipv4_from_the_lease_and_leaves_ipv6_static() {
    let base = "version = 1\n[network.management]\ninterface = \"lan1\"\ndhcp4 = true\n";
    let dhcp_only =
        DesiredState::from_toml(base).expect("dhcp4 alone is a whole management section");
    let management = dhcp_only.network.management.as_ref().expect("management");
    assert!(management.dhcp4);
    assert!(management.addresses.is_empty());
    assert!(
        dhcp_only.to_toml().contains("dhcp4 = true"),
        "the flag survives a round trip through the store"
    );
    let with_v6 = format!(
        "{base}addresses = [\"fd00::10/64\"]\ngateway = \"fd00::1\"\ndns = [\"fd00::53\"]\n"
    );
    assert!(DesiredState::from_toml(&with_v6).is_ok());

    let clashing =
        format!("{base}addresses = [\"fd00::10/64\", \"10.0.0.2/24\"]\ngateway = \"10.0.0.1\"\n");
    let errors: Vec<String> = DesiredState::from_toml(&clashing)
        .expect_err("refused")
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "network.management.addresses[1]: 10.0.0.2/24 is IPv4 but dhcp4 = true takes the IPv4 address from the lease (expected IPv6 addresses only, or dhcp4 = false)",
            "network.management.gateway: 10.0.0.1 is IPv4 but with dhcp4 = true the lease's router is the IPv4 gateway (expected an IPv6 gateway or none)",
        ]
    );
    let nothing = "version = 1\n[network.management]\ninterface = \"lan1\"\n";
    let errors: Vec<String> = DesiredState::from_toml(nothing)
        .expect_err("refused")
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "network.management.addresses: empty (expected at least one address, e.g. 192.168.1.10/24, or dhcp4 = true)"
        ]
    );
    let not_a_bool = "version = 1\n[network.management]\ninterface = \"lan1\"\ndhcp4 = \"yes\"\n";
    assert!(DesiredState::from_toml(not_a_bool).is_err());
}

#[test]
fn vlan_1_on_a_vswitch_is_its_native_vlan() {
    let text = good_with(
        "[[storage.volumes]]",
        "[[network.vlans]]\nparent = \"br0\"\nid = 1\n\n[[storage.volumes]]",
    );
    assert_eq!(
        errors(&text),
        [
            "network.vlans[1].id: VLAN 1 is the untagged native VLAN of vSwitch br0 (its own address is on it; expected 2 to 4094 on a vSwitch)"
        ]
    );
}
