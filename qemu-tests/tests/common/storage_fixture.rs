//! What the storage VM tests share: drives in bays named by serial, documents written into
//! the appliance, and the proof that a refused request touched no drive. Included by each
//! storage test file (`#[path]`), so each uses only part of it.
#![allow(dead_code)]

use anyhow::{Context, Result, ensure};
use qemu_tests::cli_output::json_output;
use qemu_tests::{Appliance, BayDrive};

/// `(QEMU id, bay, serial, HDD?)` → blank drives of `size_mib` each.
pub fn bay_drives(drives: &[(&str, u8, &str, bool)], size_mib: u64) -> Vec<BayDrive> {
    drives
        .iter()
        .map(|(id, bay, serial, hdd)| BayDrive {
            id: (*id).into(),
            bay: *bay,
            serial: (*serial).into(),
            size_mib,
            hdd: *hdd,
        })
        .collect()
}

/// The stable path the appliance gives a bay drive with this serial.
pub fn by_id(serial: &str) -> String {
    format!("/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_{serial}")
}

/// A raid1 volume `tank` over HDD1 and HDD2, with `cache` (a TOML inline table) or none.
pub fn tank(cache: Option<&str>) -> Vec<String> {
    let mut doc = vec![
        "version = 1".into(),
        "[[storage.volumes]]".into(),
        "name = \"tank\"".into(),
        format!("drives = [\"{}\", \"{}\"]", by_id("HDD1"), by_id("HDD2")),
        "data_profile = \"raid1\"".into(),
        "metadata_profile = \"raid1\"".into(),
    ];
    if let Some(cache) = cache {
        doc.push(format!("cache = {cache}"));
    }
    doc
}

/// A read-only cache on the SSD at `path`, as a TOML inline table.
pub fn read_only_cache(path: &str) -> String {
    format!("{{ mode = \"read-only\", drives = [\"{path}\"] }}")
}

/// The stable path the appliance gives an NVMe SSD in an M.2 slot with this serial.
pub fn m2_by_id(serial: &str) -> String {
    format!("/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_{serial}")
}

/// Writes `lines` to `path` in the appliance (one shell line: the console takes no
/// multi-line commands).
pub fn write_lines(app: &mut Appliance, path: &str, lines: &[String]) -> Result<()> {
    let quoted: Vec<String> = lines
        .iter()
        .map(|line| {
            ensure!(
                !line.contains('\''),
                "no single quotes in test documents: {line}"
            );
            Ok(format!("'{line}'"))
        })
        .collect::<Result<_>>()?;
    app.shell(&format!("printf '%s\\n' {} > {path}", quoted.join(" ")))?;
    Ok(())
}

/// SHA-256 of the first MiB of every bay drive: what any change to a drive alters.
pub fn drive_heads(app: &mut Appliance) -> Result<String> {
    Ok(app.shell(
        "for d in /dev/sd?; do echo $d $(dd if=$d bs=1M count=1 2>/dev/null | sha256sum); done",
    )?)
}

/// Runs `command`, which must be refused with exit status 2 and the line `line`, and must
/// leave every drive's head as it was.
pub fn refused(app: &mut Appliance, command: &str, line: &str) -> Result<()> {
    let before = drive_heads(app)?;
    let result = app.shell_status(command)?;
    ensure!(
        result.status == 2 && result.output.lines().any(|l| l.trim() == line),
        "{command}: expected exit 2 and the line {line:?}, got {}: {:?}",
        result.status,
        result.output
    );
    let after = drive_heads(app)?;
    ensure!(
        before == after,
        "{command} was refused but changed a drive's first MiB:\n{before}\n{after}"
    );
    Ok(())
}

/// Writes `doc` to /tmp/bad.toml and requires `cairnctl config apply` to refuse it with
/// `line`, touching no drive.
pub fn refused_document(app: &mut Appliance, doc: &[String], line: &str) -> Result<()> {
    write_lines(app, "/tmp/bad.toml", doc)?;
    refused(app, "cairnctl config apply /tmp/bad.toml", line)
}

/// The first volume of `cairnctl --json storage volume`.
pub fn first_volume(app: &mut Appliance) -> Result<serde_json::Value> {
    let volumes = json_output(&app.shell("cairnctl --json storage volume")?)?;
    volumes
        .get(0)
        .cloned()
        .with_context(|| format!("no volume in {volumes}"))
}

/// `/volume1/data` still matches the checksum written with it, read from the drives (the
/// page cache dropped first).
pub fn check_data(app: &mut Appliance) -> Result<()> {
    app.shell("echo 3 > /proc/sys/vm/drop_caches; cd /volume1 && sha256sum -c data.sha256")?;
    Ok(())
}

/// Scrubs volume tank and requires no error of any kind; returns the counters.
pub fn clean_scrub(app: &mut Appliance) -> Result<serde_json::Value> {
    let scrub = json_output(&app.shell("cairnctl --json storage scrub tank")?)?;
    ensure!(
        scrub["uncorrectable_errors"] == 0
            && scrub["csum_errors"] == 0
            && scrub["read_errors"] == 0,
        "the scrub found errors: {scrub}"
    );
    Ok(scrub)
}
