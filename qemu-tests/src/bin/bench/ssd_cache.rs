//! The SSD-cache table of `make bench` (the white paper's "Benefits of SSD Cache"):
//! sequential 64K read and write MB/s and random 4K read and write IOPS on one HDD volume,
//! first without a cache, then — the same volume, the same file — with a read-write cache
//! on two SSDs (md raid1 under bcache in writeback mode, as hostd builds it), and the
//! ratios.
//!
//! The drives are the storage VM tests' bays: two "HDDs" throttled by QEMU to a 7200 rpm
//! drive's IOPS and bandwidth (`qemu_tests::builder`), two unthrottled "SSDs". The volume is
//! Btrfs raid1 on the two HDDs, mounted with hostd's options.
//!
//! fio is Debian's, from the test-only archive (`make test-tools`, never in the image),
//! unpacked over the appliance's root at boot. Every job uses `--direct=1`, so the
//! appliance's page cache is never what is measured; the host's page cache under the
//! throttled "HDDs" is behind QEMU's throttle, so it is not either.
//!
//! The table's rows run with bcache as hostd leaves it, notably `sequential_cutoff` 4 MiB:
//! a stream of contiguous requests from one task bypasses the cache once it passes 4 MiB,
//! reads and writes alike, so the sequential rows mostly go past the cache by design. On
//! Btrfs that can take in *random* writes too: copy-on-write puts each rewritten block at
//! the next free address, so while the volume has long runs of free space fio's random 4K
//! writes reach bcache as one contiguous stream (seen while writing this bench on a fresh
//! volume: 3.9 MiB dirty in the cache, two thirds of the writes on the HDDs); once free
//! space is broken up, as after the first jobs here, they are cached. The cache is not
//! warmed beyond what the jobs do themselves. One more row, outside the white paper's
//! table, runs the random writes again with `sequential_cutoff` 0 (a tuning hostd does not
//! make) to show the cache's path with nothing bypassed. Every job records where its I/O
//! went (the HDDs' and the SSD mirror's block statistics), so a figure that did not change
//! can be told apart from a cache that was not used.
//!
//! Under TCG the emulated CPU limits the "SSD" path (Btrfs, bcache and md at a few hundred
//! 4K requests a second, the guest's CPU busy in the kernel), while the HDDs' limit is
//! QEMU's throttle: the ratios show what the cache layer does with slow drives behind it,
//! not a real box's numbers. The throttle counts requests, not seeks, so a sequential 64K
//! request costs a whole I/O of the 200: the "HDDs" stream 200 × 64 KiB = 13 MB/s, not a
//! real drive's 150 MB/s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use qemu_tests::image::ImageError;
use qemu_tests::stats::Summary;
use qemu_tests::{Appliance, ApplianceError, BayDrive, Image, Launch, timeouts};
use serde::Serialize;
use thiserror::Error;

use crate::block_io::{IO_COMMAND, LayerIo};
use crate::fio::{FioError, Workload, parse_fio};

const BOARD: &str = "qemu-x86_64";
/// Each HDD: room for the Btrfs raid1 volume's test file and its metadata.
const HDD_MIB: u64 = 2048;
/// Each SSD: the cache holds the whole test file plus what random writes add (Btrfs
/// copy-on-write writes each overwritten block somewhere new) without filling up: bcache
/// stops caching writes when less than 30 % of the cache is free.
const SSD_MIB: u64 = 1024;
/// The test file: many times what a TCG guest reads or writes randomly in one job
/// (hundreds to a few thousand IOPS × 4 KiB × [`RUNTIME_S`]), so random jobs do not
/// revisit their blocks; the appliance's 2 GiB of RAM does not matter with direct I/O.
const FILE_MIB: u32 = 256;
/// Seconds each measured job runs (time-based, after [`RAMP_S`] not counted): 2,000 I/Os
/// at an HDD's 200 IOPS; nine jobs × 3 runs then take about 6 minutes under TCG, boot
/// included (measured: 384 s).
const RUNTIME_S: u32 = 10;
/// Seconds at the start of each job fio does not count (queues filling, first seeks).
const RAMP_S: u32 = 2;
/// Requests in flight: what a few busy guests give a NAS, and enough for the SSD path to
/// show it is not bound by one request's latency.
const IODEPTH: u32 = 16;
const FILE: &str = "/volume1/bench/fio.dat";

#[derive(Debug, Error)]
pub enum SsdCacheError {
    #[error("fio is not there to run")]
    TestTools(#[from] ImageError),
    #[error("Cannot start the appliance with its drives")]
    Boot(#[source] ApplianceError),
    #[error("Step failed: {step}")]
    Step {
        step: String,
        #[source]
        source: ApplianceError,
    },
    #[error("fio's report of job {job} cannot be read")]
    Fio {
        job: String,
        #[source]
        source: FioError,
    },
    #[error("The block statistics cannot be read from {0:?}")]
    BlockStats(String),
    #[error("The cache's mirror did not finish its initial resync within {0:?}")]
    Resync(Duration),
}

/// The white paper's two figures for a row, and its ratio.
#[derive(Debug, Serialize)]
pub struct WhitePaper {
    pub without_cache: f64,
    pub with_cache: f64,
    pub ratio: f64,
}

/// One row of the table.
#[derive(Debug, Serialize)]
pub struct Row {
    pub workload: &'static str,
    pub unit: &'static str,
    /// A bcache setting changed from hostd's for this row's cached jobs; none in the
    /// white paper's rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bcache_tuning: Option<&'static str>,
    pub without_cache: Summary,
    pub with_cache: Summary,
    /// Median with / median without.
    pub ratio: f64,
    pub white_paper: WhitePaper,
    /// Where the I/O of this row's jobs went, all runs together.
    pub io_without_cache: LayerIo,
    pub io_with_cache: LayerIo,
}

/// The SSD-cache part of `build/bench.json`.
#[derive(Debug, Serialize)]
pub struct SsdCacheReport {
    pub setup: &'static str,
    pub fio_version: String,
    pub fio_options: String,
    pub file_mib: u32,
    pub runtime_s: u32,
    pub runs: u32,
    /// bcache's settings on the volume's backing devices and cache set, as read after the
    /// cache was attached.
    pub bcache_settings: BTreeMap<String, String>,
    /// Seconds the cache's md raid1 took to finish its initial resync (waited for before
    /// the cached jobs, which would otherwise share the SSDs with it).
    pub mirror_resync_s: f64,
    pub rows: Vec<Row>,
    /// The whole SSD-cache part, boot included.
    pub wall_s: f64,
}

/// The figures and I/O of one workload's jobs in one setup.
#[derive(Debug, Default)]
struct Series {
    figures: Vec<f64>,
    io: LayerIo,
}

/// The random-write row outside the white paper's table.
const NO_SEQUENTIAL_CUTOFF: &str = "sequential_cutoff=0 on both backing devices (not hostd's setting): nothing bypasses the cache as sequential";

fn bays() -> Vec<BayDrive> {
    [
        ("hdd1", 1, "HDD1", true, HDD_MIB),
        ("hdd2", 2, "HDD2", true, HDD_MIB),
        ("ssd1", 3, "SSD1", false, SSD_MIB),
        ("ssd2", 4, "SSD2", false, SSD_MIB),
    ]
    .into_iter()
    .map(|(id, bay, serial, hdd, size_mib)| BayDrive {
        id: id.into(),
        bay,
        serial: serial.into(),
        size_mib,
        hdd,
    })
    .collect()
}

fn by_id(serial: &str) -> String {
    format!("/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_{serial}")
}

/// The storage document: the raid1 volume on the two HDDs, with the read-write cache on
/// the two SSDs or without. One shell line of `printf` arguments.
fn volume_document(with_cache: bool) -> String {
    let mut lines = vec![
        "version = 1".to_string(),
        "[[storage.volumes]]".to_string(),
        "name = \"tank\"".to_string(),
        format!("drives = [\"{}\", \"{}\"]", by_id("HDD1"), by_id("HDD2")),
        "data_profile = \"raid1\"".to_string(),
        "metadata_profile = \"raid1\"".to_string(),
    ];
    if with_cache {
        lines.push(format!(
            "cache = {{ mode = \"read-write\", drives = [\"{}\", \"{}\"] }}",
            by_id("SSD1"),
            by_id("SSD2")
        ));
    }
    let quoted: Vec<String> = lines.iter().map(|line| format!("'{line}'")).collect();
    format!(
        "printf '%s\\n' {} > /tmp/ssd-cache-bench.toml",
        quoted.join(" ")
    )
}

fn fio_options() -> String {
    format!(
        "--filename={FILE} --size={FILE_MIB}M --direct=1 --ioengine=libaio --iodepth={IODEPTH} --thread --output-format=json"
    )
}

fn fio_command(workload: Workload) -> String {
    format!(
        "fio --name={} {} {} --time_based --runtime={RUNTIME_S} --ramp_time={RAMP_S} --output=/tmp/fio.json >/dev/null && tr -d '\\n' < /tmp/fio.json && echo",
        workload.name(),
        workload.fio_args(),
        fio_options()
    )
}

/// Runs the bench: `runs` rounds of the four jobs without the cache, as many with it, and
/// `runs` random-write jobs with bcache's sequential cutoff off.
pub fn measure(image: &Image, runs: u32) -> Result<SsdCacheReport, SsdCacheError> {
    let started = Instant::now();
    let tools = image.test_tools()?;
    let launch = Launch::direct_kernel("bench-ssd-cache", BOARD)
        .bays(bays())
        .archive(&tools);
    let mut app = Appliance::launch(image, launch).map_err(SsdCacheError::Boot)?;
    app.wait_ready(timeouts::ready_direct())
        .map_err(SsdCacheError::Boot)?;
    let result = measure_on(&mut app, runs, started);
    app.finish();
    result
}

/// A shell command in the appliance, its failure named after `step`.
fn run_step(
    app: &mut Appliance,
    step: &str,
    command: &str,
    timeout: Duration,
) -> Result<String, SsdCacheError> {
    app.shell_within(command, timeout)
        .map_err(|source| SsdCacheError::Step {
            step: step.to_string(),
            source,
        })
}

fn measure_on(
    app: &mut Appliance,
    runs: u32,
    started: Instant,
) -> Result<SsdCacheReport, SsdCacheError> {
    let console = timeouts::console();
    // fio's own start under TCG, the file's layout and a busy host add tens of seconds.
    let job_timeout = timeouts::scaled(Duration::from_secs(u64::from(RUNTIME_S + RAMP_S + 240)));
    let apply = "cairnctl config apply /tmp/ssd-cache-bench.toml";
    run_step(
        app,
        "write the volume's document",
        &volume_document(false),
        console,
    )?;
    run_step(app, "create the HDD volume", apply, job_timeout)?;
    run_step(
        app,
        "lay out the test file",
        &format!(
            "mkdir -p /volume1/bench && fio --name=layout --rw=write --bs=1M {} --output=/tmp/fio.json >/dev/null",
            fio_options()
        ),
        job_timeout,
    )?;

    let (version, without) = measure_series(app, "no cache", runs, job_timeout)?;

    run_step(
        app,
        "write the volume's document",
        &volume_document(true),
        console,
    )?;
    run_step(app, "attach the read-write cache", apply, job_timeout)?;
    let mirror_resync_s = wait_for_resync(app)?;
    let bcache_settings = bcache_settings(app)?;
    eprintln!(
        "ssd cache: cache attached; its mirror resynced in {mirror_resync_s:.1} s; bcache: {bcache_settings:?}"
    );

    let (_, with) = measure_series(app, "read-write cache", runs, job_timeout)?;

    run_step(
        app,
        "turn bcache's sequential cutoff off",
        "for b in /sys/block/bcache*/bcache; do echo 0 > $b/sequential_cutoff; done",
        console,
    )?;
    let mut untuned = Series::default();
    for run in 1..=runs {
        let (_, figure, io) = run_job(app, Workload::RandWrite4k, job_timeout)?;
        eprintln!(
            "ssd cache: read-write cache, sequential_cutoff 0, run {run}/{runs}: random 4K write {figure:.1} IOPS; {}",
            describe(&io)
        );
        untuned.figures.push(figure);
        untuned.io.add(io);
    }

    let mut rows = Vec::new();
    // The white paper's order: sequential read, write, random read, write.
    for workload in [
        Workload::SeqRead64k,
        Workload::SeqWrite64k,
        Workload::RandRead4k,
        Workload::RandWrite4k,
    ] {
        if let (Some(plain), Some(cached)) = (without.get(&workload), with.get(&workload)) {
            rows.extend(row(workload, None, plain, cached));
        }
    }
    if let Some(plain) = without.get(&Workload::RandWrite4k) {
        rows.extend(row(
            Workload::RandWrite4k,
            Some(NO_SEQUENTIAL_CUTOFF),
            plain,
            &untuned,
        ));
    }
    Ok(SsdCacheReport {
        setup: "Btrfs raid1 on 2 HDDs (QEMU-throttled: 200 IOPS, 150 MiB/s each); cache: read-write, md raid1 of 2 unthrottled SSDs, bcache writeback; fio with direct I/O, libaio",
        fio_version: version,
        fio_options: format!(
            "{} --time_based --runtime={RUNTIME_S} --ramp_time={RAMP_S}",
            fio_options()
        ),
        file_mib: FILE_MIB,
        runtime_s: RUNTIME_S,
        runs,
        bcache_settings,
        mirror_resync_s,
        rows,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// Every workload `runs` times over, on the volume as it is now (`label` says how); returns
/// fio's version and each workload's figures and I/O.
fn measure_series(
    app: &mut Appliance,
    label: &str,
    runs: u32,
    job_timeout: Duration,
) -> Result<(String, BTreeMap<Workload, Series>), SsdCacheError> {
    let mut version = String::new();
    let mut series: BTreeMap<Workload, Series> = BTreeMap::new();
    for run in 1..=runs {
        for workload in Workload::ROUND {
            let (v, figure, io) = run_job(app, workload, job_timeout)?;
            version = v;
            eprintln!(
                "ssd cache: {label}, run {run}/{runs}: {} {figure:.1} {}; {}",
                workload.label(),
                workload.unit(),
                describe(&io)
            );
            let entry = series.entry(workload).or_default();
            entry.figures.push(figure);
            entry.io.add(io);
        }
    }
    Ok((version, series))
}

fn row(
    workload: Workload,
    bcache_tuning: Option<&'static str>,
    plain: &Series,
    cached: &Series,
) -> Option<Row> {
    let without_cache = Summary::of(&plain.figures)?;
    let with_cache = Summary::of(&cached.figures)?;
    let (paper_without, paper_with) = workload.white_paper();
    Some(Row {
        workload: workload.name(),
        unit: workload.unit(),
        bcache_tuning,
        ratio: with_cache.median / without_cache.median,
        without_cache,
        with_cache,
        white_paper: WhitePaper {
            without_cache: paper_without,
            with_cache: paper_with,
            ratio: paper_with / paper_without,
        },
        io_without_cache: plain.io,
        io_with_cache: cached.io,
    })
}

/// One line: what the HDDs and the cache device read and wrote.
fn describe(io: &LayerIo) -> String {
    format!(
        "HDDs read {:.1} MiB, wrote {:.1} MiB; cache device read {:.1} MiB, wrote {:.1} MiB",
        io.hdds.read_mib, io.hdds.write_mib, io.cache.read_mib, io.cache.write_mib
    )
}

fn read_io(app: &mut Appliance) -> Result<LayerIo, SsdCacheError> {
    let output = run_step(
        app,
        "read the block statistics",
        IO_COMMAND,
        timeouts::console(),
    )?;
    LayerIo::parse(&output).ok_or(SsdCacheError::BlockStats(output))
}

/// One fio job: fio's version, the figure and where the I/O went.
fn run_job(
    app: &mut Appliance,
    workload: Workload,
    timeout: Duration,
) -> Result<(String, f64, LayerIo), SsdCacheError> {
    let before = read_io(app)?;
    let output = run_step(app, workload.label(), &fio_command(workload), timeout)?;
    let io = read_io(app)?.since(before);
    let (version, figure) = parse_fio(&output, workload).map_err(|source| SsdCacheError::Fio {
        job: workload.name().to_string(),
        source,
    })?;
    Ok((version, figure, io))
}

/// Waits until the cache's md raid1 is idle; returns the seconds it took.
fn wait_for_resync(app: &mut Appliance) -> Result<f64, SsdCacheError> {
    let started = Instant::now();
    let limit = timeouts::scaled(Duration::from_secs(600));
    loop {
        let action = run_step(
            app,
            "read the mirror's sync action",
            "cat /sys/block/md*/md/sync_action",
            timeouts::console(),
        )?;
        if action.trim() == "idle" {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > limit {
            return Err(SsdCacheError::Resync(limit));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// bcache's settings that decide what it caches: the backing devices' (the first's; hostd
/// sets both alike) and the cache set's.
fn bcache_settings(app: &mut Appliance) -> Result<BTreeMap<String, String>, SsdCacheError> {
    let output = run_step(
        app,
        "read bcache's settings",
        "for f in cache_mode sequential_cutoff writeback_percent writeback_delay; do echo \"SETTING $f $(cat $(ls -d /sys/block/bcache*/bcache | head -n 1)/$f)\"; done; for f in congested_read_threshold_us congested_write_threshold_us cache_available_percent; do echo \"SETTING $f $(cat /sys/fs/bcache/*-*/$f)\"; done",
        timeouts::console(),
    )?;
    Ok(parse_settings(&output))
}

/// `SETTING <name> <value…>` lines.
fn parse_settings(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let at = line.find("SETTING ")?;
            let (name, value) = line[at + "SETTING ".len()..].split_once(' ')?;
            Some((name.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// The table for stdout.
pub fn print(report: &SsdCacheReport) {
    println!();
    println!(
        "SSD cache: {} (medians of {} runs of {} s on a {} MiB file)",
        report.setup, report.runs, report.runtime_s, report.file_mib
    );
    println!(
        "{:<24} {:>5} {:>10} {:>10} {:>7}   {:>10} {:>10} {:>7}",
        "", "", "no cache", "cache", "ratio", "paper HDD", "paper +SSD", "ratio"
    );
    for row in &report.rows {
        let name = match row.bcache_tuning {
            Some(_) => format!("{} (*)", row.workload),
            None => row.workload.to_string(),
        };
        println!(
            "{name:<24} {:>5} {:>10.1} {:>10.1} {:>7.2}   {:>10.1} {:>10.1} {:>7.2}",
            row.unit,
            row.without_cache.median,
            row.with_cache.median,
            row.ratio,
            row.white_paper.without_cache,
            row.white_paper.with_cache,
            row.white_paper.ratio
        );
    }
    if let Some(tuning) = report.rows.iter().find_map(|row| row.bcache_tuning) {
        println!("(*) {tuning}");
    }
    println!("Where the cached jobs' I/O went (all runs):");
    for row in &report.rows {
        let name = match row.bcache_tuning {
            Some(_) => format!("{} (*)", row.workload),
            None => row.workload.to_string(),
        };
        println!("  {name:<24} {}", describe(&row.io_with_cache));
    }
    println!(
        "SSD cache part: {:.0} s; the mirror's initial resync {:.1} s",
        report.wall_s, report.mirror_resync_s
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcache_settings_from_the_shell() {
        let settings = parse_settings(
            "SETTING cache_mode writethrough [writeback] writearound none\nSETTING sequential_cutoff 4.0M\n",
        );
        assert_eq!(
            settings.get("cache_mode").map(String::as_str),
            Some("writethrough [writeback] writearound none")
        );
        assert_eq!(
            settings.get("sequential_cutoff").map(String::as_str),
            Some("4.0M")
        );
    }

    #[test]
    fn the_documents_name_the_hdds_and_the_two_ssds() {
        let plain = volume_document(false);
        assert!(plain.contains("HDD1") && plain.contains("HDD2") && !plain.contains("cache ="));
        let cached = volume_document(true);
        assert!(
            cached.contains("read-write") && cached.contains("SSD1") && cached.contains("SSD2")
        );
        assert!(!cached.contains('\n'));
    }
}
