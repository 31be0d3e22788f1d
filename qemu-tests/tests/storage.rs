//! Storage end to end on the qemu-x86_64 board, one boot for the whole story (boots are the
//! expensive part under TCG): drives and bays, refused documents that touch no drive, a raid1
//! volume over two throttled HDDs that survives a reboot, a pulled drive (QMP device_del)
//! after which the data still reads and the volume mounts degraded with an alert, then a
//! replacement and a clean scrub, and subvolumes, snapshots and clones.
#![cfg(feature = "vm-tests")]

#[path = "common/storage_fixture.rs"]
mod storage_fixture;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use qemu_tests::cli_output::json_output;
use qemu_tests::{Appliance, BayDrive, Image, Launch, timeouts};
use storage_fixture::{
    bay_drives, by_id, check_data, clean_scrub, first_volume, refused_document, write_lines,
};

const BOARD: &str = "qemu-x86_64";
/// Big enough for Btrfs raid1 (each member needs room for its chunks) and small enough
/// that a scrub under TCG takes seconds.
const DRIVE_MIB: u64 = 1024;
/// Test data written to the volume.
const DATA_MIB: u32 = 24;

fn bays() -> Vec<BayDrive> {
    bay_drives(
        &[
            ("hdd1", 1, "HDD1", true),
            ("hdd2", 2, "HDD2", true),
            ("hdd3", 3, "HDD3", true),
            ("ssd1", 4, "SSD1", false),
        ],
        DRIVE_MIB,
    )
}

fn volume_doc(drives: &[String], data: &str, metadata: &str) -> Vec<String> {
    let list: Vec<String> = drives.iter().map(|d| format!("\"{d}\"")).collect();
    vec![
        "version = 1".into(),
        "[[storage.volumes]]".into(),
        "name = \"tank\"".into(),
        format!("drives = [{}]", list.join(", ")),
        format!("data_profile = \"{data}\""),
        format!("metadata_profile = \"{metadata}\""),
    ]
}

/// serial → kernel device, from `cairnctl --json storage drives`.
fn devices(app: &mut Appliance) -> Result<BTreeMap<String, serde_json::Value>> {
    let drives = json_output(&app.shell("cairnctl --json storage drives")?)?;
    let list = drives.as_array().context("drives is not a list")?;
    Ok(list
        .iter()
        .map(|drive| {
            (
                drive["serial"].as_str().unwrap_or_default().to_string(),
                drive.clone(),
            )
        })
        .collect())
}

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check()? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("{what} did not happen within {limit:?}")
}

/// Proves drives are listed with their bays, bad volumes are refused with their path-level
/// message and no drive touched, and a raid1 volume keeps its data across a reboot, a pulled
/// drive (degraded mount with an alert) and a replacement, with a clean scrub whose result
/// is kept; subvolumes, snapshots and clones; a scrub started by the volume's schedule.
#[test]
fn raid1_volume_survives_reboot_pulled_drive_and_replacement() -> Result<()> {
    let image = Image::from_env()?;
    let launch = Launch::direct_kernel("storage", BOARD).bays(bays());
    let mut app = Appliance::launch(&image, launch)?;
    app.wait_ready(timeouts::ready_direct())?;

    // Drives: the four bays with their kind, and the boot disk marked as such.
    let drives = devices(&mut app)?;
    for (serial, bay, kind) in [
        ("HDD1", "bay1", "hdd"),
        ("HDD2", "bay2", "hdd"),
        ("HDD3", "bay3", "hdd"),
        ("SSD1", "bay4", "ssd"),
    ] {
        let drive = drives
            .get(serial)
            .with_context(|| format!("{serial} not listed: {drives:?}"))?;
        ensure!(
            drive["slot"] == bay
                && drive["kind"] == kind
                && drive["usage"] == "free"
                && drive["path"] == by_id(serial).as_str(),
            "{serial}: {drive}"
        );
    }
    let boot = drives
        .values()
        .find(|d| d["usage"] == "boot device")
        .context("no boot device listed")?;
    let boot_path = boot["path"].as_str().context("boot path")?.to_string();
    let human = app.shell("cairnctl storage drives")?;
    ensure!(
        human.contains("bay1") && human.contains("boot device"),
        "{human}"
    );

    // Bad input: refused with the path-level message, no drive touched.
    let ssd_device = drives["SSD1"]["device"]
        .as_str()
        .context("SSD1 device")?
        .to_string();
    app.shell(&format!("mke2fs -q -F {ssd_device}"))?;
    let ssd = devices(&mut app)?;
    ensure!(
        ssd["SSD1"]["usage"] == "an ext2/3/4 filesystem",
        "{}",
        ssd["SSD1"]
    );
    refused_document(
        &mut app,
        &volume_doc(&[by_id("HDD1"), boot_path.clone()], "raid1", "raid1"),
        &format!(
            "storage.volumes[0].drives[1]: {boot_path} is the boot device (it holds /config and the boot partitions; it is never offered)"
        ),
    )?;
    refused_document(
        &mut app,
        &volume_doc(&[by_id("HDD1"), by_id("SSD1")], "raid1", "raid1"),
        &format!(
            "storage.volumes[0].drives[1]: {} holds an ext2/3/4 filesystem (add wipe = true to this volume to erase it)",
            by_id("SSD1")
        ),
    )?;
    refused_document(
        &mut app,
        &volume_doc(&[by_id("HDD1")], "raid1", "raid1"),
        "storage.volumes[0].drives: 1 drive is too few for data_profile raid1 (expected at least 2)",
    )?;
    refused_document(
        &mut app,
        &volume_doc(
            &[by_id("HDD1"), by_id("HDD2"), by_id("HDD3")],
            "raid5",
            "raid1",
        ),
        "storage.volumes[0].data_profile: raid5 is refused unless the volume says force_parity_raid = true: Btrfs raid5 and raid6 can lose data written just before a crash or power cut (the parity write hole) (expected one of: single, dup, raid0, raid1, raid1c3, raid1c4, raid10, or the force key to take the risk)",
    )?;
    refused_document(
        &mut app,
        &volume_doc(&[by_id("HDD1"), by_id("NOPE")], "raid1", "raid1"),
        &format!(
            "storage.volumes[0].drives[1]: {} is not a drive on this box (expected one of: {}, {}, {}, {}; `cairnctl storage drives` lists them)",
            by_id("NOPE"),
            by_id("HDD1"),
            by_id("HDD2"),
            by_id("HDD3"),
            by_id("SSD1")
        ),
    )?;

    // A raid1 volume over two HDDs, with data and its checksum.
    write_lines(
        &mut app,
        "/tmp/tank.toml",
        &volume_doc(&[by_id("HDD1"), by_id("HDD2")], "raid1", "raid1"),
    )?;
    let started = Instant::now();
    app.shell("cairnctl config apply /tmp/tank.toml")?;
    eprintln!(
        "storage: raid1 volume created and mounted in {:?}",
        started.elapsed()
    );
    let tank = first_volume(&mut app)?;
    ensure!(
        tank["state"] == "mounted"
            && tank["mount_point"] == "/volume1"
            && tank["data_profile"] == "raid1"
            && tank["devices"].as_array().is_some_and(|d| d.len() == 2)
            && tank["size_bytes"].as_u64().is_some_and(|s| s > 0),
        "{tank}"
    );
    let mounts = app.shell("grep ' /volume1 ' /proc/mounts")?;
    ensure!(
        [
            "btrfs",
            "noatime",
            "compress=zstd:1",
            "discard=async",
            "space_cache=v2"
        ]
        .iter()
        .all(|o| mounts.contains(o)),
        "{mounts}"
    );
    app.shell(&format!("dd if=/dev/urandom of=/volume1/data bs=1M count={DATA_MIB} 2>/dev/null && cd /volume1 && sha256sum data > data.sha256 && sync"))?;

    qemu_tests::probe::reboot(&mut app)?;
    ensure!(
        first_volume(&mut app)?["state"] == "mounted",
        "not mounted after reboot"
    );
    app.shell("cd /volume1 && sha256sum -c data.sha256")?;

    // Pull HDD2: the data still reads (from HDD1's copy), status says degraded.
    app.vm().qmp().device_del("hdd2")?;
    wait_until("HDD2 gone from the guest", timeouts::console(), || {
        Ok(!devices(&mut app)?.contains_key("HDD2"))
    })?;
    check_data(&mut app)?;
    let tank = first_volume(&mut app)?;
    ensure!(
        tank["state"] == "degraded" && tank["missing"] == 1,
        "{tank}"
    );
    let status = app.shell("cairnctl status")?;
    ensure!(
        status.contains("ALERT:") && status.contains("volume tank is DEGRADED: 1 drive(s) missing"),
        "{status}"
    );

    // After a reboot without it, the volume mounts degraded on its own, loudly.
    qemu_tests::probe::reboot(&mut app)?;
    let tank = first_volume(&mut app)?;
    ensure!(tank["state"] == "degraded", "{tank}");
    let mounts = app.shell("grep ' /volume1 ' /proc/mounts")?;
    ensure!(mounts.contains("degraded"), "{mounts}");
    let log = app.shell("cairnctl log")?;
    ensure!(
        log.contains("volume tank is mounted DEGRADED at /volume1"),
        "{log}"
    );
    app.shell("cd /volume1 && sha256sum -c data.sha256")?;

    replace_and_scrub(&mut app)?;
    snapshots(&mut app)?;
    scheduled_scrub(&mut app)?;
    app.finish();
    Ok(())
}

fn replace_and_scrub(app: &mut Appliance) -> Result<()> {
    let started = Instant::now();
    let replaced = app.shell(&format!(
        "cairnctl --json storage replace tank missing {}",
        by_id("HDD3")
    ))?;
    let replace_time = started.elapsed();
    let result = json_output(&replaced)?;
    ensure!(result["volume"] == "tank", "{result}");
    // The document now names the drive the volume has.
    let shown = json_output(&app.shell("cairnctl --json config show")?)?;
    let toml = shown["toml"].as_str().context("no toml")?;
    ensure!(
        shown["generation"] == result["generation"]
            && toml.contains(&by_id("HDD3"))
            && !toml.contains(&by_id("HDD2")),
        "{shown}"
    );
    let tank = first_volume(app)?;
    ensure!(tank["state"] == "mounted" && tank["missing"] == 0, "{tank}");
    let started = Instant::now();
    let scrub = clean_scrub(app)?;
    let scrub_time = started.elapsed();
    ensure!(
        scrub["bytes_scrubbed"]
            .as_u64()
            .is_some_and(|b| b >= u64::from(DATA_MIB) << 20),
        "{scrub}"
    );
    eprintln!("storage: replace took {replace_time:?}, scrub {scrub_time:?}");
    // The result is kept with the volume (on the config partition) and shown with it.
    let tank = first_volume(app)?;
    let last = tank["last_scrub"].as_str().unwrap_or_default();
    ensure!(
        last.contains("(on demand)") && last.ends_with("clean"),
        "the on-demand scrub's result is not shown with the volume: {tank}"
    );
    app.shell("test -s /config/storage/scrub/tank.json")?;
    app.shell("cd /volume1 && sha256sum -c data.sha256")?;
    let status = app.shell("cairnctl status")?;
    ensure!(!status.contains("ALERT:"), "{status}");
    Ok(())
}

/// A volume with `scrub_every_days` and no scrub on record is scrubbed by hostd's schedule
/// (which looks once a minute), and the result is kept and shown as scheduled.
fn scheduled_scrub(app: &mut Appliance) -> Result<()> {
    let mut doc = volume_doc(&[by_id("HDD1"), by_id("HDD3")], "raid1", "raid1");
    doc.push("scrub_every_days = 7".into());
    write_lines(app, "/tmp/scheduled.toml", &doc)?;
    // Forget the on-demand scrub: a volume never scrubbed is due at once.
    app.shell("rm /config/storage/scrub/tank.json")?;
    app.shell("cairnctl config apply /tmp/scheduled.toml")?;
    let started = Instant::now();
    wait_until(
        "a scheduled scrub of tank",
        Duration::from_secs(240),
        || {
            let tank = first_volume(app)?;
            Ok(tank["last_scrub"]
                .as_str()
                .is_some_and(|last| last.contains("(scheduled)") && last.ends_with("clean")))
        },
    )?;
    eprintln!(
        "storage: the schedule scrubbed tank {:?} after the apply",
        started.elapsed()
    );
    let shown = app.shell("cairnctl storage volume")?;
    ensure!(
        shown.contains("scrub: every 7 days; last: ") && shown.contains("(scheduled)"),
        "{shown}"
    );
    Ok(())
}

fn snapshots(app: &mut Appliance) -> Result<()> {
    app.shell("cairnctl storage subvolume create tank images")?;
    // 1 MiB, not a line: a tiny file is stored inline in metadata and allocates no block.
    app.shell("dd if=/dev/urandom of=/volume1/images/disk.img bs=64k count=16 2>/dev/null && cd /volume1/images && sha256sum disk.img > /tmp/first.sha256 && sync")?;
    app.shell("cairnctl storage snapshot create tank images images-snap")?;
    app.shell("cairnctl storage snapshot create --writable tank images images-clone")?;
    app.shell("echo second > /volume1/images/disk.img")?;
    let list = json_output(&app.shell("cairnctl --json storage snapshot list tank")?)?;
    let entries = list.as_array().context("list is not a list")?;
    let find = |name: &str| entries.iter().find(|e| e["name"] == name).cloned();
    let snap = find("images-snap").with_context(|| format!("no snapshot in {list}"))?;
    let clone = find("images-clone").with_context(|| format!("no clone in {list}"))?;
    ensure!(
        snap["read_only"] == true && snap["origin"] == "images",
        "{snap}"
    );
    ensure!(
        clone["read_only"] == false && clone["origin"] == "images",
        "{clone}"
    );
    ensure!(
        find("images").is_some_and(|e| e["origin"].is_null()),
        "{list}"
    );
    ensure!(snap["bytes"].as_u64().is_some_and(|b| b > 0), "{snap}");
    app.shell("cd /volume1/images-snap && sha256sum -c /tmp/first.sha256")?;
    let readonly = app.shell_status("echo x > /volume1/images-snap/disk.img")?;
    ensure!(readonly.status != 0, "a read-only snapshot took a write");
    app.shell("echo third > /volume1/images-clone/disk.img")?;
    ensure!(
        app.shell("cat /volume1/images/disk.img")?.trim() == "second",
        "clone wrote through"
    );
    app.shell("cairnctl storage snapshot delete tank images-snap")?;
    app.shell("cairnctl storage snapshot delete tank images-clone")?;
    let list = json_output(&app.shell("cairnctl --json storage snapshot list tank")?)?;
    ensure!(
        list.as_array()
            .is_some_and(|l| l.len() == 1 && l[0]["name"] == "images"),
        "{list}"
    );
    let missing = app.shell_status("cairnctl storage snapshot delete tank nope")?;
    ensure!(
        missing.status == 2 && missing.output.contains("no subvolume nope in volume tank"),
        "{:?}",
        missing.output
    );
    Ok(())
}
