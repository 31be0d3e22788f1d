//! `make boot-soak`: boots the direct-kernel image many times and counts the boots whose
//! kernel oopses or panics before READY, with each boot's host launch → READY time. It is
//! the measurement behind the choice of QEMU (README, "QEMU and the boot soak"): under
//! Debian 12's QEMU 7.2 the appliance's kernel died now and then with `Oops: int3` in code
//! it was live-patching, a rare event that no single test run can show to be gone.
//!
//! Boots run `--parallel` at a time (2 by default, as `make test` runs two VM tests at
//! once): a race in the emulator shows most under the load the tests put on it. Every boot
//! is the real appliance of `make run`'s board with its two vCPUs, a fresh disk overlay and
//! the default console log level, so an oops is printed in full. `CAIRN_QEMU` picks another
//! emulator (a wrapper script around an older QEMU works) for the before-and-after count.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use qemu_tests::builder::qemu_from_env;
use qemu_tests::contract::READY;
use qemu_tests::image::workspace_root;
use qemu_tests::stats::Summary;
use qemu_tests::{Appliance, Image, Launch, Regex, error_chain, timeouts};
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(about = "Boot the Cairn image many times and count kernel oopses and panics")]
struct Args {
    /// How many boots.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    boots: u32,
    /// Boots running at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=8))]
    parallel: u32,
    /// Board to boot (cairn.board= on the kernel command line).
    #[arg(long, default_value = "qemu-x86_64")]
    board: String,
    /// Image directory [default: $CAIRN_IMAGE_DIR, else <workspace>/build/image].
    #[arg(long)]
    image_dir: Option<PathBuf>,
    /// Where to write the JSON report [default: <workspace>/build/boot-soak.json].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// What one boot ended in.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
enum Outcome {
    Ready {
        launch_to_ready_s: f64,
    },
    /// The kernel printed an oops, a BUG or a panic; `line` is the first such line.
    KernelDied {
        line: String,
        after_s: f64,
    },
    /// Neither READY nor a kernel death within the READY timeout, or the harness failed.
    NoReady {
        why: String,
    },
}

/// Lines by which the kernel says it is dying: `Oops: int3 …`, `BUG: …`, `Kernel panic - …`,
/// `general protection fault …`.
const KERNEL_DEATH: &str = r"(Oops: |BUG: |Kernel panic - |general protection fault)";

/// The pattern for "this boot is over": READY or a kernel death, whichever comes first.
fn boot_end_regex() -> Regex {
    Regex::new(&format!(r"(?P<death>{KERNEL_DEATH}.*)|(?P<ready>{READY})"))
        .expect("a constant pattern")
}

/// Classifies the line the wait stopped at.
fn classify(line: &str, elapsed: Duration) -> Outcome {
    let death = Regex::new(KERNEL_DEATH).expect("a constant pattern");
    if death.is_match(line) {
        Outcome::KernelDied {
            line: line.trim().to_owned(),
            after_s: elapsed.as_secs_f64(),
        }
    } else {
        Outcome::Ready {
            launch_to_ready_s: elapsed.as_secs_f64(),
        }
    }
}

fn boot_once(image: &Image, board: &str, number: u32) -> Outcome {
    let started = Instant::now();
    let launch = Launch::direct_kernel(&format!("soak-{number}"), board);
    let mut appliance = match Appliance::launch(image, launch) {
        Ok(appliance) => appliance,
        Err(e) => {
            return Outcome::NoReady {
                why: error_chain(&e),
            };
        }
    };
    let found = appliance
        .console()
        .wait_for_line(boot_end_regex(), timeouts::ready_direct());
    let outcome = match found {
        Ok(found) => classify(found.line().unwrap_or_default(), started.elapsed()),
        Err(e) => Outcome::NoReady {
            why: error_chain(&e),
        },
    };
    if let Outcome::KernelDied { .. } = outcome {
        // Keep the oops text: the console's tail names the function and the call chain,
        // which the kernel prints over the next moments.
        std::thread::sleep(Duration::from_secs(3));
        eprintln!(
            "boot {number}: kernel died; console tail:\n{}",
            appliance.console().tail(40)
        );
    }
    appliance.finish();
    outcome
}

#[derive(Debug, Serialize)]
struct Report {
    qemu: String,
    qemu_version: String,
    board: String,
    boots: u32,
    parallel: u32,
    ready: u32,
    kernel_died: u32,
    no_ready: u32,
    launch_to_ready_s: Option<Summary>,
    wall_clock_s: f64,
    outcomes: BTreeMap<u32, Outcome>,
}

fn qemu_version(qemu: &PathBuf) -> String {
    std::process::Command::new(qemu)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "(no version printed)".to_owned())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let image = match &args.image_dir {
        Some(dir) => Image::in_dir(dir),
        None => Image::from_env(),
    };
    let image = match image {
        Ok(image) => Arc::new(image),
        Err(e) => {
            eprintln!("boot-soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    let qemu = qemu_from_env();
    let version = qemu_version(&qemu);
    eprintln!(
        "boot-soak: {} boots, {} at a time, on {version}",
        args.boots, args.parallel
    );
    let started = Instant::now();
    let next = Arc::new(AtomicU32::new(1));
    let outcomes = Arc::new(Mutex::new(BTreeMap::new()));
    let workers: Vec<_> = (0..args.parallel)
        .map(|_| {
            let (image, next, outcomes) = (image.clone(), next.clone(), outcomes.clone());
            let (board, boots) = (args.board.clone(), args.boots);
            std::thread::spawn(move || {
                loop {
                    let number = next.fetch_add(1, Ordering::SeqCst);
                    if number > boots {
                        break;
                    }
                    let outcome = boot_once(&image, &board, number);
                    eprintln!("boot {number}/{boots}: {outcome:?}");
                    outcomes
                        .lock()
                        .expect("no worker panics while holding the lock")
                        .insert(number, outcome);
                }
            })
        })
        .collect();
    for worker in workers {
        if worker.join().is_err() {
            eprintln!("boot-soak: a worker thread panicked; its boot is missing from the count");
        }
    }
    let outcomes = std::mem::take(
        &mut *outcomes
            .lock()
            .expect("the workers have ended; nobody holds the lock"),
    );
    let count = |pick: fn(&Outcome) -> bool| outcomes.values().filter(|o| pick(o)).count() as u32;
    let ready_times: Vec<f64> = outcomes
        .values()
        .filter_map(|o| match o {
            Outcome::Ready { launch_to_ready_s } => Some(*launch_to_ready_s),
            Outcome::KernelDied { .. } | Outcome::NoReady { .. } => None,
        })
        .collect();
    let report = Report {
        qemu: qemu.display().to_string(),
        qemu_version: version,
        board: args.board.clone(),
        boots: args.boots,
        parallel: args.parallel,
        ready: count(|o| matches!(o, Outcome::Ready { .. })),
        kernel_died: count(|o| matches!(o, Outcome::KernelDied { .. })),
        no_ready: count(|o| matches!(o, Outcome::NoReady { .. })),
        launch_to_ready_s: Summary::of(&ready_times),
        wall_clock_s: started.elapsed().as_secs_f64(),
        outcomes,
    };
    let median = report
        .launch_to_ready_s
        .as_ref()
        .map_or_else(|| "-".to_owned(), |s| format!("{:.2} s", s.median));
    println!(
        "boot-soak: {} boots on {}: {} READY, {} kernel oops/panic, {} no READY; launch → READY median {median}; {:.0} s in all",
        report.boots,
        report.qemu_version,
        report.ready,
        report.kernel_died,
        report.no_ready,
        report.wall_clock_s
    );
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("build/boot-soak.json"));
    let written = serde_json::to_string_pretty(&report)
        .map_err(|e| e.to_string())
        .and_then(|json| std::fs::write(&out, json + "\n").map_err(|e| e.to_string()));
    if let Err(e) = written {
        eprintln!("boot-soak: cannot write {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    eprintln!("boot-soak: report in {}", out.display());
    if report.kernel_died > 0 || report.no_ready > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_int3_oops_ends_the_boot_as_a_kernel_death() {
        let line = "[    4.712345] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI";
        let regex = boot_end_regex();
        let caps = regex.captures(line).expect("matches");
        assert!(caps.name("death").is_some());
        assert_eq!(
            classify(line, Duration::from_secs(4)),
            Outcome::KernelDied {
                line: line.to_owned(),
                after_s: 4.0
            }
        );
    }

    #[test]
    fn a_panic_counts_and_ready_does_not() {
        let panic = "[    5.1] Kernel panic - not syncing: Fatal exception in interrupt";
        assert!(matches!(
            classify(panic, Duration::from_secs(5)),
            Outcome::KernelDied { .. }
        ));
        let ready =
            "cairn-init: READY board=qemu-x86_64 init=3.1 modules=4.2 services=0.9 total=8.2";
        assert!(boot_end_regex().is_match(ready));
        assert_eq!(
            classify(ready, Duration::from_secs(9)),
            Outcome::Ready {
                launch_to_ready_s: 9.0
            }
        );
    }
}
