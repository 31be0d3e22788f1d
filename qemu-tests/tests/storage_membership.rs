//! A volume that grows and shrinks online, on the qemu-x86_64 board: three throttled "HDDs"
//! (bays 1–3) and one NVMe "SSD" in the first M.2 slot, listed as such. A raid1 volume on
//! HDD1 and HDD2 with a read-only cache on the SSD takes HDD3 (it becomes a bcache backing
//! device on the same cache, and a balance job spreads the chunks over it, with progress),
//! then lets HDD1 go (its chunks move to the others, it is left blank and free); refused
//! requests touch no drive; the data's checksums hold throughout, through a scrub and a
//! reboot.
#![cfg(feature = "vm-tests")]

#[path = "common/storage_fixture.rs"]
mod storage_fixture;

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use qemu_tests::cli_output::json_output;
use qemu_tests::{Appliance, Image, Launch, M2Drive, timeouts};
use storage_fixture::{
    bay_drives, by_id, check_data, clean_scrub, first_volume, m2_by_id, read_only_cache, refused,
    tank, write_lines,
};

const BOARD: &str = "qemu-x86_64";
const DRIVE_MIB: u64 = 1024;
/// Enough for several data chunks (a few hundred MiB each on drives this size), so that the
/// balance has chunks to move and runs long enough to report progress.
const DATA_MIB: u32 = 320;

/// serial → the drive's entry in `cairnctl --json storage drives`.
fn drive(app: &mut Appliance, serial: &str) -> Result<serde_json::Value> {
    let drives = json_output(&app.shell("cairnctl --json storage drives")?)?;
    drives
        .as_array()
        .and_then(|list| list.iter().find(|d| d["serial"] == serial).cloned())
        .with_context(|| format!("{serial} not in {drives}"))
}

fn kernel_name(app: &mut Appliance, serial: &str) -> Result<String> {
    Ok(drive(app, serial)?["device"]
        .as_str()
        .context("device")?
        .trim_start_matches("/dev/")
        .to_string())
}

/// The committed document's TOML.
fn document(app: &mut Appliance) -> Result<String> {
    let shown = json_output(&app.shell("cairnctl --json config show")?)?;
    Ok(shown["toml"].as_str().context("no toml")?.to_string())
}

/// The `[done/total] step` lines a storage job printed while it ran, as (done, step).
fn progress_lines(output: &str) -> Vec<(u32, String)> {
    output
        .lines()
        .filter_map(|line| {
            let (done, rest) = line.trim().strip_prefix('[')?.split_once("/100] ")?;
            Some((done.parse().ok()?, rest.to_string()))
        })
        .collect()
}

/// Proves a drive joins a mounted raid1 HDD volume with a cache (as a bcache backing device
/// on that cache) and a balance job moves chunks onto it with progress; that a member
/// leaves (chunks moved, drive blanked and offered again) and the document follows both;
/// that removing below raid1's two drives, adding the boot device, a member or the cache
/// SSD are refused with their message and no drive touched; data intact throughout.
#[test]
fn volume_takes_a_drive_and_lets_one_go_online() -> Result<()> {
    let image = Image::from_env()?;
    let bays = bay_drives(
        &[
            ("hdd1", 1, "HDD1", true),
            ("hdd2", 2, "HDD2", true),
            ("hdd3", 3, "HDD3", true),
        ],
        DRIVE_MIB,
    );
    let m2 = vec![M2Drive {
        id: "ssd1".into(),
        slot: 1,
        serial: "SSD1".into(),
        size_mib: DRIVE_MIB,
    }];
    let launch = Launch::direct_kernel("storage-grow", BOARD)
        .bays(bays)
        .m2(m2);
    let mut app = Appliance::launch(&image, launch)?;
    app.wait_ready(timeouts::ready_direct())?;
    // The SSD is in the board's first M.2 slot, an NVMe drive, and listed as such.
    let ssd = drive(&mut app, "SSD1")?;
    ensure!(
        ssd["slot"] == "m2-1"
            && ssd["kind"] == "ssd"
            && ssd["usage"] == "free"
            && ssd["path"] == m2_by_id("SSD1").as_str(),
        "the M.2 SSD is not listed in its slot: {ssd}"
    );

    write_lines(
        &mut app,
        "/tmp/tank.toml",
        &tank(Some(&read_only_cache(&m2_by_id("SSD1")))),
    )?;
    app.shell("cairnctl config apply /tmp/tank.toml")?;
    app.shell(&format!("dd if=/dev/urandom of=/volume1/data bs=1M count={DATA_MIB} 2>/dev/null && cd /volume1 && sha256sum data > data.sha256 && sync"))?;

    // Refused, touching nothing.
    let boot = json_output(&app.shell("cairnctl --json storage drives")?)?
        .as_array()
        .and_then(|list| list.iter().find(|d| d["usage"] == "boot device").cloned())
        .context("no boot device listed")?;
    let boot_path = boot["path"].as_str().context("boot path")?.to_string();
    refused(
        &mut app,
        &format!("cairnctl storage remove tank {}", by_id("HDD1")),
        &format!(
            "old: {} cannot be removed: volume tank has 2 drive(s); without this one 1 would be left, too few for data raid1 / metadata raid1 (expected at least 2: add a drive first)",
            by_id("HDD1")
        ),
    )?;
    refused(
        &mut app,
        &format!("cairnctl storage add tank {boot_path}"),
        &format!("new: {boot_path} is the boot device (it is never offered)"),
    )?;
    refused(
        &mut app,
        &format!("cairnctl storage add tank {}", by_id("HDD2")),
        &format!(
            "new: {} holds the Cairn volume tank (expected a blank drive)",
            by_id("HDD2")
        ),
    )?;
    refused(
        &mut app,
        &format!("cairnctl storage add tank {}", m2_by_id("SSD1")),
        &format!(
            "new: {} holds a bcache cache (expected a blank drive)",
            m2_by_id("SSD1")
        ),
    )?;

    // HDD3 joins: a backing device on the volume's cache, then a balance with progress.
    let started = Instant::now();
    let output = app.shell(&format!("cairnctl storage add tank {} 2>&1", by_id("HDD3")))?;
    let add_time = started.elapsed();
    let steps = progress_lines(&output);
    ensure!(
        steps.iter().any(|(done, step)| *done < 100
            && step.contains(" chunks")
            && step.starts_with("rebalancing: ")),
        "no rebalancing progress (chunks so far) was shown: {output}"
    );
    let result = json_output(
        output
            .lines()
            .find_map(|line| line.trim().strip_prefix("done: "))
            .context("no result line")?,
    )?;
    ensure!(
        result["change"] == "added" && result["chunks_balanced"].as_u64().is_some_and(|c| c > 0),
        "{result}"
    );
    let tank = first_volume(&mut app)?;
    ensure!(
        tank["state"] == "mounted" && tank["devices"].as_array().is_some_and(|d| d.len() == 3),
        "{tank}"
    );
    ensure!(
        document(&mut app)?.contains(&by_id("HDD3")),
        "HDD3 not in the document"
    );
    let hdd3 = kernel_name(&mut app, "HDD3")?;
    let mode = app.shell(&format!(
        "cat /sys/block/{hdd3}/bcache/cache_mode /sys/block/{hdd3}/bcache/state"
    ))?;
    ensure!(
        mode.contains("[writearound]") && mode.contains("clean"),
        "HDD3 is not on the volume's read-only cache: {mode}"
    );
    let usage = app.shell("btrfs filesystem show --raw /volume1")?;
    let bcache3 = app.shell(&format!(
        "basename $(readlink /sys/block/{hdd3}/bcache/dev)"
    ))?;
    let bcache3 = bcache3.trim();
    ensure!(
        usage
            .lines()
            .any(|l| l.ends_with(&format!("/dev/{bcache3}")) && !l.contains(" used 0 ")),
        "the balance put nothing on HDD3 ({bcache3}): {usage}"
    );
    check_data(&mut app)?;

    // HDD1 leaves: its chunks move, it is blank and free again.
    let hdd1 = kernel_name(&mut app, "HDD1")?;
    let started = Instant::now();
    let output = app.shell(&format!(
        "cairnctl storage remove tank {} 2>&1",
        by_id("HDD1")
    ))?;
    let remove_time = started.elapsed();
    ensure!(
        progress_lines(&output)
            .iter()
            .any(|(_, step)| step.starts_with("moving the drive's chunks")),
        "no progress of the removal was shown: {output}"
    );
    let tank = first_volume(&mut app)?;
    ensure!(
        tank["state"] == "mounted"
            && tank["missing"] == 0
            && tank["devices"].as_array().is_some_and(|d| d.len() == 2),
        "{tank}"
    );
    ensure!(
        drive(&mut app, "HDD1")?["usage"] == "free",
        "HDD1 is not free"
    );
    let left = app.shell(&format!(
        "test ! -e /sys/block/{hdd1}/bcache && ls /sys/block/{hdd1}/holders | wc -l && dd if=/dev/{hdd1} bs=1M count=1 2>/dev/null | tr -d '\\000' | wc -c"
    ))?;
    ensure!(
        left.split_whitespace().collect::<Vec<_>>() == ["0", "0"],
        "HDD1 not let go of and blanked: {left}"
    );
    let toml = document(&mut app)?;
    ensure!(
        !toml.contains(&by_id("HDD1"))
            && toml.contains(&by_id("HDD2"))
            && toml.contains(&by_id("HDD3")),
        "the document does not name the volume's drives: {toml}"
    );
    check_data(&mut app)?;
    clean_scrub(&mut app)?;
    eprintln!("storage-grow: add (with balance) took {add_time:?}, remove {remove_time:?}");

    // What the kernel has is what the document says: the next boot mounts it whole.
    qemu_tests::probe::reboot(&mut app)?;
    let tank = first_volume(&mut app)?;
    ensure!(
        tank["state"] == "mounted" && tank["missing"] == 0,
        "after a reboot: {tank}"
    );
    check_data(&mut app)?;
    let status = app.shell("cairnctl status")?;
    ensure!(!status.contains("ALERT:"), "{status}");
    app.finish();
    Ok(())
}
