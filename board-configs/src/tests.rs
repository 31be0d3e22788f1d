use super::*;

const VALID: &str = r#"
schema_version = 1
id = "test-board"
name = "Test"
[cpu]
model = "x"
sockets = 1
cores = 4
threads = 8
[memory]
installed_mib = 4096
max_mib = 8192
[lan]
discovery = "pci-path"
ports = [{ name = "lan1", speed_mbps = 1000, pci_path = "0000:00:03.0" }]
[storage]
drive_bays = 4
[console]
device = "ttyS0"
baud = 115200
"#;

fn error_for(replace: &str, with: &str) -> BoardError {
    assert!(VALID.contains(replace), "fixture lacks {replace}");
    let text = VALID.replacen(replace, with, 1);
    parse_board("boards/test-board.toml", &text).expect_err("the edited board must be refused")
}

fn invalid(field: &str, message: &str) -> BoardError {
    BoardError::Invalid {
        file: "boards/test-board.toml".to_string(),
        field: field.to_string(),
        message: message.to_string(),
    }
}

#[test]
fn valid_board_parses_with_white_paper_defaults() {
    let board = parse_board("boards/test-board.toml", VALID).expect("valid");
    assert_eq!(board.guests, GuestRules::default());
    assert_eq!(board.guests.host_reserve_small_mib, 1536);
    assert_eq!(board.guests.per_vcpu_overhead_mib, 80);
}

#[test]
fn each_bad_field_is_named() {
    let cases = [
        (
            "threads = 8",
            "threads = 6",
            invalid(
                "cpu.threads",
                "is 6 (expected cpu.cores = 4 or a multiple of it, with SMT)",
            ),
        ),
        (
            "installed_mib = 4096",
            "installed_mib = 9000",
            invalid(
                "memory.installed_mib",
                "is 9000 (expected more than 0 and at most memory.max_mib = 8192)",
            ),
        ),
        (
            "baud = 115200",
            "baud = 1234",
            invalid(
                "console.baud",
                "is 1234 (expected one of [9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600])",
            ),
        ),
        (
            "device = \"ttyS0\"",
            "device = \"sda\"",
            invalid(
                "console.device",
                "\"sda\" is not a serial device name (expected e.g. ttyS0)",
            ),
        ),
        (
            "pci_path = \"0000:00:03.0\"",
            "pci_path = \"00:03.0\"",
            invalid(
                "lan.ports[0].pci_path",
                "\"00:03.0\" is not a PCI address (expected e.g. 0000:00:03.0)",
            ),
        ),
        (
            "discovery = \"pci-path\"",
            "discovery = \"pci-path\"\nbond_modes = [\"active-backup\", \"balance-rr\"]",
            invalid(
                "lan.bond_modes[1]",
                "\"balance-rr\" is not a bond mode Cairn offers (expected some of: 802.3ad, active-backup, balance-alb)",
            ),
        ),
        (
            "name = \"lan1\"",
            "name = \"eth0\"",
            invalid(
                "lan.ports[0].name",
                "is \"eth0\" (expected \"lan1\": ports are named lan1…lanN in order)",
            ),
        ),
        (
            "id = \"test-board\"",
            "id = \"other\"",
            invalid(
                "id",
                "is \"other\" but the file is named test-board.toml (they must match)",
            ),
        ),
        (
            "schema_version = 1",
            "schema_version = 2",
            invalid("schema_version", "is 2 (expected 1)"),
        ),
    ];
    for (replace, with, expected) in cases {
        assert_eq!(
            error_for(replace, with),
            expected,
            "after replacing {replace} with {with}"
        );
    }
}

#[test]
fn guest_rules_out_of_range_are_named() {
    let text = format!("{VALID}\n[guests]\nvcpus_per_thread = 5\n");
    assert_eq!(
        parse_board("boards/test-board.toml", &text),
        Err(invalid("guests.vcpus_per_thread", "is 5 (expected 1 to 4)"))
    );
}

#[test]
fn unknown_field_is_a_parse_error_naming_it() {
    let text = VALID.replacen("[storage]", "[storage]\nbays = 3", 1);
    let error = parse_board("boards/test-board.toml", &text).expect_err("unknown field");
    let message = error.to_string();
    assert!(
        message.starts_with("boards/test-board.toml: not a valid board file"),
        "{message}"
    );
    assert!(message.contains("unknown field `bays`"), "{message}");
}

#[test]
fn mac_order_refuses_pci_paths() {
    let text = VALID.replacen("discovery = \"pci-path\"", "discovery = \"mac-order\"", 1);
    assert_eq!(
        parse_board("boards/test-board.toml", &text),
        Err(invalid(
            "lan.ports[0].pci_path",
            "is set but discovery is \"mac-order\" (remove it or use \"pci-path\")"
        ))
    );
}

#[test]
fn embedded_boards_include_the_white_paper_models() {
    for id in [
        "ds918plus",
        "ds1817plus",
        "ds1619xsplus",
        "ds3617xs",
        "rs3617xsplus",
        "fs3017",
        "fs6400",
        "generic",
        "qemu-x86_64",
    ] {
        assert!(by_id(id).is_some(), "board {id} is missing");
    }
    assert_eq!(generic().id, "generic");
}

#[test]
fn dmi_match_ignores_padding_and_case() {
    assert_eq!(
        by_dmi_product_name("  ds918+ \n").map(|b| b.id.as_str()),
        Some("ds918plus")
    );
    assert_eq!(by_dmi_product_name(""), None);
    assert_eq!(by_dmi_product_name("Some Laptop"), None);
}

#[test]
fn modules_to_load_start_with_the_appliance_set_without_duplicates() {
    let board = by_id("qemu-x86_64").expect("test board");
    let modules = board.modules_to_load();
    assert_eq!(modules[0], "ext4");
    assert!(modules.contains(&"8021q".to_string()));
    let unique: std::collections::HashSet<_> = modules.iter().collect();
    assert_eq!(unique.len(), modules.len());
}

#[test]
fn image_modules_cover_every_board_driver() {
    let modules = all_image_modules();
    for board in all() {
        for driver in &board.drivers {
            assert!(
                modules.contains(&normalize_module_name(driver)),
                "{driver} of {}",
                board.id
            );
        }
    }
}

#[test]
fn drive_slots_are_unique_and_fit_the_bays() {
    let two = "drive_bays = 4\nslots = [{ name = \"bay1\", by_path = \"pci-0000:00:17.0-ata-1\" }, { name = \"bay1\", by_path = \"pci-0000:00:17.0-ata-2\" }]";
    assert_eq!(
        error_for("drive_bays = 4", two),
        invalid(
            "storage.slots[1].name",
            "\"bay1\" is not a new slot name (expected e.g. bay1, unique)"
        )
    );
    let same_port = "drive_bays = 4\nslots = [{ name = \"bay1\", by_path = \"pci-0000:00:17.0-ata-1\" }, { name = \"bay2\", by_path = \"pci-0000:00:17.0-ata-1\" }]";
    assert!(matches!(
        error_for("drive_bays = 4", same_port),
        BoardError::Invalid { field, .. } if field == "storage.slots[1].by_path"
    ));
    let too_many = "drive_bays = 1\nslots = [{ name = \"bay1\", by_path = \"a\" }, { name = \"bay2\", by_path = \"b\" }]";
    assert_eq!(
        error_for("drive_bays = 4", too_many),
        invalid(
            "storage.slots",
            "lists 2 slots (expected at most drive_bays + m2_slots = 1)"
        )
    );
    let qemu = crate::by_id("qemu-x86_64").expect("the test board");
    assert_eq!(qemu.storage.slots.len(), 6);
}
