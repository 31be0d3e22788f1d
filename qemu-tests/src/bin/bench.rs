//! `make bench`: boots the direct-kernel image several times and reports init's READY
//! timings, the host's launch-to-READY time, init's and idle hostd's resident memory, the
//! round-trip time of `cairnctl status` and the image sizes, as medians on stdout and in full
//! in `build/bench.json`.
//!
//! `cairnctl status` is timed inside the guest, [`RTT_CALLS`] times per boot: the shell
//! echoes a line before and after each call and busybox `ts -i` stamps every line with the
//! microseconds since the previous one, so a `CALL` line carries what an admin waits for
//! (process start, bus connection, the call, the answer). Busybox `date` has no `%N`.
//!
//! Boots run one after another, never in parallel: two TCG guests on 2 cores would
//! measure the contention, not the image.
//!
//! Then, in the same run, the bonded links against a peer VM (`qemu_tests::wired`): the
//! failover gap when the cable a 100-per-second ping stream arrives on is pulled
//! (`--link-pulls` times per mode, 802.3ad and active-backup; the gap is the unanswered
//! requests in a row times 10 ms), and one TCP stream's throughput through the 802.3ad
//! bond with both cables and with one. Here the appliance and the peer do run at once —
//! a link has two ends — so the throughput is the two TCG guests' CPU, not a NIC's.
//!
//! Last, the white paper's SSD-cache table (`bench/ssd_cache.rs`, `--ssd-cache-runs`): fio
//! from the test-only archive on an HDD volume without and with a read-write SSD cache.

#[path = "bench/block_io.rs"]
mod block_io;
#[path = "bench/fio.rs"]
mod fio;
#[path = "bench/guests.rs"]
mod guests;
#[path = "bench/ssd_cache.rs"]
mod ssd_cache;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use qemu_tests::builder::{Accel, BuildError};
use qemu_tests::image::{ImageError, workspace_root};
use qemu_tests::stats::Summary;
use qemu_tests::wired::{BondMode, FailoverSample, Pull, WiredError, WiredPair};
use qemu_tests::{Appliance, ApplianceError, Image, Launch, timeouts};
use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Parser)]
#[command(about = "Boot the Cairn image repeatedly and record boot time, memory and size")]
struct Args {
    /// How many boots to measure.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Board to boot (cairn.board= on the kernel command line).
    #[arg(long, default_value = "qemu-x86_64")]
    board: String,
    /// Image directory [default: $CAIRN_IMAGE_DIR, else <workspace>/build/image].
    #[arg(long)]
    image_dir: Option<PathBuf>,
    /// Where to write the JSON report [default: <workspace>/build/bench.json].
    #[arg(long = "out", visible_alias = "output")]
    output: Option<PathBuf>,
    /// Cable pulls per bond mode against the peer VM; 0 leaves the network out.
    #[arg(long, default_value_t = 5)]
    link_pulls: u32,
    /// Guest starts timed each way (hostd, by hand); 0 leaves guests out. Measured only
    /// when the image has cloud-hypervisor.
    #[arg(long, default_value_t = 3)]
    guest_runs: u32,
    /// Rounds of the four fio jobs on the HDD volume, each way (without and with the
    /// SSD cache); 0 leaves the SSD-cache table out. Needs `make test-tools` (fio).
    #[arg(long, default_value_t = 3)]
    ssd_cache_runs: u32,
}

/// `cairnctl status` calls timed per boot.
const RTT_CALLS: u32 = 30;

#[derive(Debug, Error)]
enum BenchError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("Invalid accelerator setting")]
    Accel(#[from] BuildError),
    #[error("Boot {run} of {runs} failed")]
    Boot {
        run: u32,
        runs: u32,
        #[source]
        source: ApplianceError,
    },
    #[error("The network measurements against the peer VM failed")]
    Network(#[from] WiredError),
    #[error("Cannot read a VmRSS from {0:?}")]
    Rss(String),
    #[error("Cannot read the timings of `cairnctl status` from {0:?}")]
    Rtt(String),
    #[error("Cannot read the size of {path}")]
    Size {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("The guest measurements failed: {0}")]
    Guest(String),
    #[error("The SSD-cache measurements failed")]
    SsdCache(#[from] ssd_cache::SsdCacheError),
    #[error("Cannot encode the report")]
    Json(#[from] serde_json::Error),
    #[error("These parts failed (the report has the rest): {0}")]
    Parts(String),
}

/// What one boot measured.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    init_s: f64,
    modules_s: f64,
    services_s: f64,
    ready_total_s: f64,
    host_launch_to_ready_s: f64,
    init_rss_kib: f64,
    hostd_idle_rss_kib: f64,
    /// The median of this boot's calls.
    cairnctl_status_ms: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    board: String,
    /// Timings depend on it: TCG is many times slower than KVM.
    accel: String,
    runs: u32,
    image_dir: PathBuf,
    /// Median, min, max and every value, per metric.
    metrics: BTreeMap<&'static str, Summary>,
    sizes_bytes: BTreeMap<&'static str, u64>,
    /// Every cable pull: mode, the port pulled and the gap (802.3ad gaps depend on the
    /// port, so the median alone hides a pattern).
    link_pulls: Vec<PullRecord>,
    /// The white paper's SSD-cache table, measured; absent with `--ssd-cache-runs 0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    ssd_cache: Option<ssd_cache::SsdCacheReport>,
    /// Parts that failed (network, guests, ssd_cache) with their error; the others ran.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    failed_parts: BTreeMap<&'static str, String>,
}

#[derive(Debug, Serialize)]
struct PullRecord {
    mode: &'static str,
    pulled: String,
    gap_ms: f64,
    lost: u32,
}

/// What the run against the peer VM measured.
#[derive(Debug, Default)]
struct NetworkSample {
    lacp: Vec<FailoverSample>,
    active_backup: Vec<FailoverSample>,
    bond_mbit_s: f64,
    one_port_mbit_s: f64,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), BenchError> {
    let image = match &args.image_dir {
        Some(dir) => Image::in_dir(dir)?,
        None => Image::from_env()?,
    };
    let accel = Accel::from_env()?;
    let mut samples = Vec::new();
    for run in 1..=args.runs {
        let sample = measure_boot(&image, &args.board, run, args.runs)?;
        eprintln!(
            "boot {run}/{}: READY total={:.3}s (host {:.3}s), init VmRSS {} KiB, hostd VmRSS {} KiB, cairnctl status {:.1} ms",
            args.runs,
            sample.ready_total_s,
            sample.host_launch_to_ready_s,
            sample.init_rss_kib,
            sample.hostd_idle_rss_kib,
            sample.cairnctl_status_ms
        );
        samples.push(sample);
    }

    let metric = |pick: fn(&Sample) -> f64| {
        let values: Vec<f64> = samples.iter().map(pick).collect();
        Summary::of(&values).expect("at least one run: clap enforces runs >= 1")
    };
    let mut metrics = BTreeMap::from([
        ("init_s", metric(|s| s.init_s)),
        ("modules_s", metric(|s| s.modules_s)),
        ("services_s", metric(|s| s.services_s)),
        ("ready_total_s", metric(|s| s.ready_total_s)),
        (
            "host_launch_to_ready_s",
            metric(|s| s.host_launch_to_ready_s),
        ),
        ("init_rss_kib", metric(|s| s.init_rss_kib)),
        ("hostd_idle_rss_kib", metric(|s| s.hostd_idle_rss_kib)),
        ("cairnctl_status_ms", metric(|s| s.cairnctl_status_ms)),
    ]);
    // Each part after the boots reports its own failure and the run goes on to the next:
    // a bench that stops half way measures nothing of what came after. A failed part is
    // in the report's `failed_parts` and makes the exit status non-zero.
    let mut failed_parts = BTreeMap::new();
    let mut link_pulls = Vec::new();
    let network = if args.link_pulls > 0 {
        part_outcome(
            "network",
            measure_network(&image, args.link_pulls),
            &mut failed_parts,
        )
    } else {
        None
    };
    if let Some(network) = network {
        let gaps = |samples: &[FailoverSample]| {
            let values: Vec<f64> = samples.iter().map(|s| s.gap_ms).collect();
            Summary::of(&values)
        };
        if let Some(summary) = gaps(&network.lacp) {
            metrics.insert("failover_gap_lacp_ms", summary);
        }
        if let Some(summary) = gaps(&network.active_backup) {
            metrics.insert("failover_gap_active_backup_ms", summary);
        }
        for (name, value) in [
            ("throughput_bond_mbit_s", network.bond_mbit_s),
            ("throughput_one_port_mbit_s", network.one_port_mbit_s),
        ] {
            if let Some(summary) = Summary::of(&[value]) {
                metrics.insert(name, summary);
            }
        }
        link_pulls = network
            .lacp
            .iter()
            .chain(&network.active_backup)
            .map(|s| PullRecord {
                mode: s.mode.name(),
                pulled: s.pulled.clone(),
                gap_ms: s.gap_ms,
                lost: s.lost,
            })
            .collect();
    }
    let guest = if args.guest_runs > 0 {
        part_outcome(
            "guests",
            guests::measure(&image, args.guest_runs).map_err(BenchError::Guest),
            &mut failed_parts,
        )
        .flatten()
    } else {
        None
    };
    if let Some(guest) = guest {
        for (name, values) in [
            ("guest_vm_start_to_marker_s", &guest.hostd_start_to_marker_s),
            (
                "guest_by_hand_start_to_marker_s",
                &guest.by_hand_start_to_marker_s,
            ),
        ] {
            if let Some(summary) = Summary::of(values) {
                metrics.insert(name, summary);
            }
        }
        for (name, value) in [
            (
                "guest_cloud_hypervisor_rss_kib",
                guest.cloud_hypervisor_rss_kib,
            ),
            ("guest_hostd_growth_kib", guest.hostd_growth_kib),
            ("guest_white_paper_reservation_kib", guest.white_paper_kib),
        ] {
            if let Some(summary) = Summary::of(&[value]) {
                metrics.insert(name, summary);
            }
        }
    }
    let ssd_cache = if args.ssd_cache_runs > 0 {
        part_outcome(
            "ssd_cache",
            ssd_cache::measure(&image, args.ssd_cache_runs).map_err(BenchError::from),
            &mut failed_parts,
        )
    } else {
        None
    };
    let sizes_bytes = BTreeMap::from([
        ("vmlinuz", file_size(&image.kernel)?),
        ("initramfs.img", file_size(&image.initramfs)?),
        ("cairn.img", file_size(&image.disk)?),
        ("cairn.img_allocated", allocated_size(&image.disk)?),
    ]);

    println!(
        "{:<30} {:>10} {:>10} {:>10}",
        "metric", "median", "min", "max"
    );
    for (name, summary) in &metrics {
        println!(
            "{name:<30} {:>10.3} {:>10.3} {:>10.3}",
            summary.median, summary.min, summary.max
        );
    }
    for (name, bytes) in &sizes_bytes {
        println!("{name:<30} {bytes:>10} bytes");
    }
    if let Some(table) = &ssd_cache {
        ssd_cache::print(table);
    }

    let report = Report {
        board: args.board.clone(),
        accel: format!("{accel:?}").to_lowercase(),
        runs: args.runs,
        image_dir: image.dir.clone(),
        metrics,
        sizes_bytes,
        link_pulls,
        ssd_cache,
        failed_parts: failed_parts.clone(),
    };
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| workspace_root().join("build").join("bench.json"));
    write_report(&output, &report)?;
    println!("wrote {}", output.display());
    if failed_parts.is_empty() {
        Ok(())
    } else {
        Err(BenchError::Parts(
            failed_parts.into_keys().collect::<Vec<_>>().join(", "),
        ))
    }
}

/// The value of a part that worked; for one that failed, its error (with causes) printed
/// and kept under `part` in `failed`, and `None`.
fn part_outcome<T>(
    part: &'static str,
    outcome: Result<T, BenchError>,
    failed: &mut BTreeMap<&'static str, String>,
) -> Option<T> {
    match outcome {
        Ok(value) => Some(value),
        Err(error) => {
            let text = qemu_tests::error_chain(&error);
            eprintln!("bench: the {part} part failed, going on with the next: {text}");
            failed.insert(part, text);
            None
        }
    }
}

fn measure_boot(image: &Image, board: &str, run: u32, runs: u32) -> Result<Sample, BenchError> {
    let failed = |source| BenchError::Boot { run, runs, source };
    let launched = Instant::now();
    let launch = Launch::direct_kernel(&format!("bench-{run}"), board);
    let mut app = Appliance::launch(image, launch).map_err(failed)?;
    let ready = app.wait_ready(timeouts::ready_direct()).map_err(failed)?;
    let host_launch_to_ready_s = launched.elapsed().as_secs_f64();
    let status = app.shell("grep VmRSS /proc/1/status").map_err(failed)?;
    let rss = parse_vm_rss_kib(&status).ok_or(BenchError::Rss(status))?;
    let hostd_status = app
        .shell("grep VmRSS /proc/$(pidof hostd)/status")
        .map_err(failed)?;
    let hostd_rss = parse_vm_rss_kib(&hostd_status).ok_or(BenchError::Rss(hostd_status))?;
    let timed = app
        .shell(&format!(
            "(for i in $(seq {RTT_CALLS}); do echo START; cairnctl status >/dev/null || exit 1; echo CALL; done) | ts -i '%.s'"
        ))
        .map_err(failed)?;
    let cairnctl_status_ms = status_rtt_ms(&timed).ok_or(BenchError::Rtt(timed))?;
    app.finish();
    Ok(Sample {
        init_s: ready.init,
        modules_s: ready.modules,
        services_s: ready.services,
        ready_total_s: ready.total,
        host_launch_to_ready_s,
        init_rss_kib: rss as f64,
        hostd_idle_rss_kib: hostd_rss as f64,
        cairnctl_status_ms,
    })
}

/// The appliance and a peer VM, cabled: throughput through the 802.3ad bond with both
/// cables and with one, then `pulls` cable pulls under a stream in 802.3ad and in
/// active-backup.
fn measure_network(image: &Image, pulls: u32) -> Result<NetworkSample, BenchError> {
    let mut pair = WiredPair::boot(image, "bench-net")?;
    let mut sample = NetworkSample::default();
    pair.bond_both(BondMode::Lacp)?;
    sample.bond_mbit_s = pair.throughput_mbit_s()?;
    sample.one_port_mbit_s = pair.throughput_one_port_mbit_s(BondMode::Lacp)?;
    eprintln!(
        "throughput, one TCP stream peer to appliance: {:.0} Mbit/s through the 802.3ad bond, {:.0} Mbit/s with one cable",
        sample.bond_mbit_s, sample.one_port_mbit_s
    );
    for mode in [BondMode::Lacp, BondMode::ActiveBackup] {
        if mode != BondMode::Lacp {
            pair.bond_both(mode)?;
        }
        for pull in 1..=pulls {
            // 802.3ad: both ports carry traffic and the gap differs by port (lan1's
            // pulls were seen far slower than lan2's), so take turns; active-backup:
            // the active port.
            let which = match mode {
                BondMode::Lacp => Pull::Cable(usize::try_from(pull % 2).unwrap_or_default()),
                BondMode::ActiveBackup => Pull::Busiest,
            };
            let failover = pair.failover_pulling(mode, which)?;
            eprintln!(
                "{} pull {pull}/{pulls}: cable of {} pulled, {} requests lost in a row = {} ms",
                mode.name(),
                failover.pulled,
                failover.lost,
                failover.gap_ms
            );
            match mode {
                BondMode::Lacp => sample.lacp.push(failover),
                BondMode::ActiveBackup => sample.active_backup.push(failover),
            }
        }
    }
    pair.finish();
    Ok(sample)
}

/// From `ts -i '%.s'` lines (`0.056120 CALL`): the median seconds before a `CALL` line, in ms.
fn status_rtt_ms(text: &str) -> Option<f64> {
    let calls: Vec<f64> = text
        .lines()
        .filter_map(|line| line.trim().strip_suffix(" CALL"))
        .filter_map(|seconds| seconds.trim().parse::<f64>().ok())
        .collect();
    Some(Summary::of(&calls)?.median * 1e3)
}

/// `VmRSS:\t    1234 kB` → 1234 (the kernel's "kB" is KiB).
fn parse_vm_rss_kib(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line.split_whitespace().skip(1);
    let value = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(value)
}

fn file_size(path: &Path) -> Result<u64, BenchError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|source| BenchError::Size {
            path: path.to_owned(),
            source,
        })
}

/// Bytes the file really occupies: the disk image is sparse.
fn allocated_size(path: &Path) -> Result<u64, BenchError> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        // st_blocks counts 512-byte units whatever the filesystem's block size.
        .map(|m| m.blocks() * 512)
        .map_err(|source| BenchError::Size {
            path: path.to_owned(),
            source,
        })
}

fn write_report(path: &Path, report: &Report) -> Result<(), BenchError> {
    let write_err = |source| BenchError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(write_err)?;
    }
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(path, json + "\n").map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_line_is_parsed_in_kib() {
        assert_eq!(parse_vm_rss_kib("VmRSS:\t    1234 kB"), Some(1234));
        assert_eq!(parse_vm_rss_kib("VmHWM: 5 kB\nVmRSS: 77 kB\n"), Some(77));
        assert_eq!(parse_vm_rss_kib("VmRSS: lots"), None);
        assert_eq!(parse_vm_rss_kib("grep: /proc/1/status: No such file"), None);
    }

    #[test]
    fn status_rtt_is_the_median_of_the_call_lines() {
        let text = "0.000010 START\n0.041000 CALL\n0.001000 START\n0.061000 CALL\n0.002000 START\n0.051000 CALL\n";
        let median = status_rtt_ms(text).expect("three calls");
        assert!((median - 51.0).abs() < 1e-9, "{median}");
        assert_eq!(status_rtt_ms("0.1 START\n"), None);
    }

    #[test]
    fn arguments_have_the_documented_defaults() {
        let args = Args::try_parse_from(["bench"]).expect("defaults");
        assert_eq!(args.runs, 5);
        assert_eq!(args.board, "qemu-x86_64");
        assert_eq!(args.link_pulls, 5);
        assert_eq!(args.ssd_cache_runs, 3);
        assert!(Args::try_parse_from(["bench", "--runs", "0"]).is_err());
        let args = Args::try_parse_from(["bench", "--image-dir", "build/image", "--out", "b.json"])
            .expect("the Makefile's arguments");
        assert_eq!(args.output, Some(PathBuf::from("b.json")));
    }
}
