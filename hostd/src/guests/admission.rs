//! Admission: may this guest start now? Pure functions of the board's rules, the machine's
//! size and the guests already running.
//!
//! The white paper's rules (board-configs `GuestRules` holds the numbers per model):
//! - memory is reserved, never overcommitted: the host keeps 1.5 GiB when it has 15 GiB or
//!   less, else 10 % of RAM; every running guest costs its memory plus 250 MiB plus 80 MiB
//!   per vCPU; a start that does not fit in what is left is refused;
//! - vCPUs may be overcommitted up to `vcpus_per_thread` (2, or 4 on models that allow it)
//!   per hardware thread that no guest has reserved;
//! - a reserved thread belongs to one running guest only; that guest's vCPUs run on its
//!   threads alone (at most `vcpus_per_thread` per thread) and the threads leave the shared
//!   pool.
//!
//! Every refusal shows its arithmetic, so the admin sees what to stop or shrink.

use std::collections::BTreeMap;
use std::fmt;

use board_configs::GuestRules;
use serde::Serialize;

/// The machine's size as admission sees it (the host's RAM and threads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Machine {
    /// RAM the kernel manages (MemTotal), in MiB.
    pub memory_mib: u64,
    /// Hardware threads (logical CPUs), numbered 0 to `threads - 1`.
    pub threads: u32,
}

/// What one guest asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demand {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub reserved_threads: Vec<u32>,
    pub disks: usize,
}

pub use cairn_api::guests::Mib;

/// The memory a running guest costs the host: its own, plus the per-VM and per-vCPU
/// overheads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub memory_mib: u64,
    pub per_guest_mib: u64,
    pub vcpus: u32,
    pub per_vcpu_mib: u64,
}

impl Cost {
    pub fn of(rules: &GuestRules, vcpus: u32, memory_mib: u64) -> Self {
        Self {
            memory_mib,
            per_guest_mib: rules.per_guest_overhead_mib,
            vcpus,
            per_vcpu_mib: rules.per_vcpu_overhead_mib,
        }
    }

    pub fn total_mib(&self) -> u64 {
        self.memory_mib
            .saturating_add(self.per_guest_mib)
            .saturating_add(u64::from(self.vcpus).saturating_mul(self.per_vcpu_mib))
    }
}

impl fmt::Display for Cost {
    /// `4.32 GiB (4 GiB + 250 MiB + 1×80 MiB)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} + {} + {}×{})",
            Mib(self.total_mib()),
            Mib(self.memory_mib),
            Mib(self.per_guest_mib),
            self.vcpus,
            Mib(self.per_vcpu_mib)
        )
    }
}

/// The host's own reserve: a fixed amount up to the threshold, a share of RAM above it.
pub fn host_reserve_mib(rules: &GuestRules, memory_mib: u64) -> u64 {
    if memory_mib <= rules.host_reserve_threshold_mib {
        rules.host_reserve_small_mib
    } else {
        memory_mib.saturating_mul(u64::from(rules.host_reserve_large_percent)) / 100
    }
}

/// Why a guest may not start. Messages are the admin's: they show the sum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "cannot start {name:?}: needs {cost}, {free} free of {total} after the host's {reserve} reserve and {running} running guest{plural}",
        free = Mib(*free_mib),
        total = Mib(*total_mib),
        reserve = Mib(*reserve_mib),
        plural = if *running == 1 { "" } else { "s" }
    )]
    Memory {
        name: String,
        cost: Cost,
        free_mib: u64,
        total_mib: u64,
        reserve_mib: u64,
        running: usize,
    },
    #[error(
        "cannot start {name:?}: needs {vcpus} vCPU{plural}, {used} of {limit} shared vCPUs in use ({shared_threads} unreserved thread{tplural} × {ratio} vCPUs per thread)",
        plural = if *vcpus == 1 { "" } else { "s" },
        tplural = if *shared_threads == 1 { "" } else { "s" }
    )]
    Vcpus {
        name: String,
        vcpus: u32,
        used: u32,
        limit: u32,
        shared_threads: u32,
        ratio: u32,
    },
    #[error(
        "cannot start {name:?}: reserving thread{plural} {threads} leaves {shared_threads} unreserved thread{tplural} × {ratio} = {limit} vCPUs for the {used} shared vCPUs already running",
        plural = if reserved.len() == 1 { "" } else { "s" },
        threads = join(reserved),
        tplural = if *shared_threads == 1 { "" } else { "s" }
    )]
    SharedPoolShrinks {
        name: String,
        reserved: Vec<u32>,
        used: u32,
        limit: u32,
        shared_threads: u32,
        ratio: u32,
    },
    #[error(
        "cannot start {name:?}: {vcpus} vCPUs on {threads} reserved thread{plural} (expected at most {ratio} vCPUs per thread, {limit} in all)",
        plural = if *threads == 1 { "" } else { "s" }
    )]
    ReservedOvercommit {
        name: String,
        vcpus: u32,
        threads: u32,
        ratio: u32,
        limit: u32,
    },
    #[error("cannot start {name:?}: thread {thread} is reserved by the running guest {by:?}")]
    ThreadTaken {
        name: String,
        thread: u32,
        by: String,
    },
    #[error(
        "cannot start {name:?}: thread {thread} does not exist (this host has threads 0 to {last})"
    )]
    NoSuchThread {
        name: String,
        thread: u32,
        last: u32,
    },
    #[error("cannot start {name:?}: {disks} disks (this board allows at most {max} per guest)")]
    Disks {
        name: String,
        disks: usize,
        max: u32,
    },
}

fn join(threads: &[u32]) -> String {
    let parts: Vec<String> = threads.iter().map(ToString::to_string).collect();
    parts.join(", ")
}

/// Threads reserved by the running guests: thread → guest.
fn reserved_by(running: &[Demand]) -> BTreeMap<u32, &str> {
    running
        .iter()
        .flat_map(|guest| {
            guest
                .reserved_threads
                .iter()
                .map(move |thread| (*thread, guest.name.as_str()))
        })
        .collect()
}

/// vCPUs of running guests that share the unreserved threads.
fn shared_vcpus(running: &[Demand]) -> u32 {
    running
        .iter()
        .filter(|guest| guest.reserved_threads.is_empty())
        .map(|guest| guest.vcpus)
        .sum()
}

/// Memory the running guests cost.
fn used_mib(rules: &GuestRules, running: &[Demand]) -> u64 {
    running
        .iter()
        .map(|guest| Cost::of(rules, guest.vcpus, guest.memory_mib).total_mib())
        .sum()
}

/// Whether `new` may start beside `running`. Checks, in order: disks, threads, vCPUs,
/// memory (the first failing rule is the refusal).
pub fn admit(
    rules: &GuestRules,
    machine: Machine,
    running: &[Demand],
    new: &Demand,
) -> Result<(), Refusal> {
    let name = || new.name.clone();
    if new.disks > rules.max_disks_per_guest as usize {
        return Err(Refusal::Disks {
            name: name(),
            disks: new.disks,
            max: rules.max_disks_per_guest,
        });
    }
    let ratio = rules.vcpus_per_thread;
    let taken = reserved_by(running);
    for thread in &new.reserved_threads {
        if *thread >= machine.threads {
            return Err(Refusal::NoSuchThread {
                name: name(),
                thread: *thread,
                last: machine.threads.saturating_sub(1),
            });
        }
        if let Some(by) = taken.get(thread) {
            return Err(Refusal::ThreadTaken {
                name: name(),
                thread: *thread,
                by: (*by).to_string(),
            });
        }
    }
    let reserved_after =
        u32::try_from(taken.len() + new.reserved_threads.len()).unwrap_or(u32::MAX);
    let shared_threads = machine.threads.saturating_sub(reserved_after);
    let limit = shared_threads.saturating_mul(ratio);
    let used = shared_vcpus(running);
    if new.reserved_threads.is_empty() {
        if used.saturating_add(new.vcpus) > limit {
            return Err(Refusal::Vcpus {
                name: name(),
                vcpus: new.vcpus,
                used,
                limit,
                shared_threads,
                ratio,
            });
        }
    } else {
        let threads = u32::try_from(new.reserved_threads.len()).unwrap_or(u32::MAX);
        let own_limit = threads.saturating_mul(ratio);
        if new.vcpus > own_limit {
            return Err(Refusal::ReservedOvercommit {
                name: name(),
                vcpus: new.vcpus,
                threads,
                ratio,
                limit: own_limit,
            });
        }
        if used > limit {
            return Err(Refusal::SharedPoolShrinks {
                name: name(),
                reserved: new.reserved_threads.clone(),
                used,
                limit,
                shared_threads,
                ratio,
            });
        }
    }
    let reserve_mib = host_reserve_mib(rules, machine.memory_mib);
    let free_mib = machine
        .memory_mib
        .saturating_sub(reserve_mib)
        .saturating_sub(used_mib(rules, running));
    let cost = Cost::of(rules, new.vcpus, new.memory_mib);
    if cost.total_mib() > free_mib {
        return Err(Refusal::Memory {
            name: name(),
            cost,
            free_mib,
            total_mib: machine.memory_mib,
            reserve_mib,
            running: running.len(),
        });
    }
    Ok(())
}

pub use cairn_api::guests::{Capacity, Fits};

pub fn capacity(
    rules: &GuestRules,
    machine: Machine,
    running: &[Demand],
    size: Option<(u32, u64)>,
) -> Capacity {
    let reserve = host_reserve_mib(rules, machine.memory_mib);
    let guests = used_mib(rules, running);
    let free = machine
        .memory_mib
        .saturating_sub(reserve)
        .saturating_sub(guests);
    let reserved: Vec<u32> = reserved_by(running).into_keys().collect();
    let shared_threads = machine
        .threads
        .saturating_sub(u32::try_from(reserved.len()).unwrap_or(u32::MAX));
    let limit = shared_threads.saturating_mul(rules.vcpus_per_thread);
    let used = shared_vcpus(running);
    let fits = size.map(|(vcpus, memory_mib)| {
        let cost = Cost::of(rules, vcpus, memory_mib).total_mib();
        let by_memory = free.checked_div(cost).unwrap_or(0);
        let by_vcpus = u64::from(limit.saturating_sub(used))
            .checked_div(u64::from(vcpus))
            .unwrap_or(0);
        Fits {
            vcpus,
            memory_mib,
            cost_mib: cost,
            count: by_memory.min(by_vcpus),
            limited_by: if by_memory <= by_vcpus {
                "memory"
            } else {
                "vcpus"
            }
            .to_string(),
        }
    });
    Capacity {
        memory_mib: machine.memory_mib,
        host_reserve_mib: reserve,
        guests_mib: guests,
        free_mib: free,
        threads: machine.threads,
        reserved_threads: reserved,
        vcpus_per_thread: rules.vcpus_per_thread,
        shared_vcpus_used: used,
        shared_vcpus_limit: limit,
        running: running.len(),
        fits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024;

    fn rules(ratio: u32) -> GuestRules {
        GuestRules {
            vcpus_per_thread: ratio,
            ..GuestRules::default()
        }
    }

    fn guest(name: &str, vcpus: u32, memory_mib: u64) -> Demand {
        Demand {
            name: name.into(),
            vcpus,
            memory_mib,
            reserved_threads: Vec::new(),
            disks: 1,
        }
    }

    fn pinned(name: &str, vcpus: u32, threads: &[u32]) -> Demand {
        Demand {
            reserved_threads: threads.to_vec(),
            ..guest(name, vcpus, 512)
        }
    }

    const BIG: Machine = Machine {
        memory_mib: 16 * GIB,
        threads: 8,
    };

    #[test]
    fn the_issue_example_shows_the_sum() {
        // 16 GiB: reserve 10 % = 1638 MiB. Three running guests costing 11572 MiB with
        // their overheads leave 16384 - 1638 - 11572 = 3174 MiB, the example's 3.10 GiB.
        let running = vec![
            guest("a", 1, 3 * GIB),
            guest("b", 1, 3 * GIB),
            guest("c", 1, 3 * GIB + 1366),
        ];
        let refused = admit(&rules(2), BIG, &running, &guest("db", 1, 4 * GIB));
        assert_eq!(
            refused.map_err(|r| r.to_string()),
            Err(r#"cannot start "db": needs 4.32 GiB (4 GiB + 250 MiB + 1×80 MiB), 3.10 GiB free of 16 GiB after the host's 1.60 GiB reserve and 3 running guests"#.to_string())
        );
    }

    #[test]
    fn memory_exactly_at_the_limit_fits_and_one_mib_more_does_not() {
        let machine = Machine {
            memory_mib: 8 * GIB,
            threads: 4,
        };
        // 8 GiB ≤ 15 GiB: reserve 1536. Free 8192 - 1536 = 6656 = memory + 250 + 80.
        let exact = 6656 - 250 - 80;
        assert_eq!(
            admit(&rules(2), machine, &[], &guest("a", 1, exact)),
            Ok(())
        );
        let over = admit(&rules(2), machine, &[], &guest("a", 1, exact + 1));
        assert!(
            matches!(over, Err(Refusal::Memory { free_mib: 6656, .. })),
            "{over:?}"
        );
    }

    #[test]
    fn the_15_gib_threshold() {
        let r = rules(2);
        assert_eq!(host_reserve_mib(&r, 2 * GIB), 1536);
        assert_eq!(
            host_reserve_mib(&r, 15 * GIB),
            1536,
            "15 GiB or less: 1.5 GiB"
        );
        assert_eq!(host_reserve_mib(&r, 15 * GIB + 1), (15 * GIB + 1) / 10);
        assert_eq!(host_reserve_mib(&r, 32 * GIB), 3276);
    }

    #[test]
    fn vcpu_overcommit_ratio_2_and_4() {
        let machine = Machine {
            memory_mib: 64 * GIB,
            threads: 4,
        };
        let running = vec![guest("a", 6, 512)];
        // Ratio 2: 4 threads × 2 = 8; 6 running + 2 fits, + 3 does not.
        assert_eq!(
            admit(&rules(2), machine, &running, &guest("b", 2, 512)),
            Ok(())
        );
        assert_eq!(
            admit(&rules(2), machine, &running, &guest("b", 3, 512)).map_err(|r| r.to_string()),
            Err(r#"cannot start "b": needs 3 vCPUs, 6 of 8 shared vCPUs in use (4 unreserved threads × 2 vCPUs per thread)"#.into())
        );
        // Ratio 4: 16.
        assert_eq!(
            admit(&rules(4), machine, &running, &guest("b", 10, 512)),
            Ok(())
        );
        assert!(admit(&rules(4), machine, &running, &guest("b", 11, 512)).is_err());
    }

    #[test]
    fn a_reserved_thread_is_never_given_twice() {
        let running = vec![pinned("web", 2, &[2, 3])];
        assert_eq!(
            admit(&rules(2), BIG, &running, &pinned("db", 1, &[3])).map_err(|r| r.to_string()),
            Err(r#"cannot start "db": thread 3 is reserved by the running guest "web""#.into())
        );
        assert_eq!(
            admit(&rules(2), BIG, &running, &pinned("db", 1, &[4])),
            Ok(())
        );
        assert!(matches!(
            admit(&rules(2), BIG, &running, &pinned("db", 1, &[8])),
            Err(Refusal::NoSuchThread { last: 7, .. })
        ));
    }

    #[test]
    fn reserved_threads_leave_the_shared_pool() {
        // 8 threads, 2 reserved by web: 6 × 2 = 12 shared vCPUs.
        let running = vec![pinned("web", 2, &[0, 1]), guest("a", 10, 512)];
        assert_eq!(admit(&rules(2), BIG, &running, &guest("b", 2, 512)), Ok(()));
        assert!(matches!(
            admit(&rules(2), BIG, &running, &guest("b", 3, 512)),
            Err(Refusal::Vcpus {
                limit: 12,
                used: 10,
                ..
            })
        ));
        // Reserving one more leaves 5 × 2 = 10: still room for the 10 running shared vCPUs…
        assert_eq!(
            admit(&rules(2), BIG, &running, &pinned("c", 1, &[2])),
            Ok(())
        );
        // …two more would leave 8, fewer than the 10 running.
        assert_eq!(
            admit(&rules(2), BIG, &running, &pinned("c", 1, &[2, 3])).map_err(|r| r.to_string()),
            Err(r#"cannot start "c": reserving threads 2, 3 leaves 4 unreserved threads × 2 = 8 vCPUs for the 10 shared vCPUs already running"#.into())
        );
        // A pinned guest's vCPUs are limited by its own threads and the ratio.
        assert!(matches!(
            admit(&rules(2), BIG, &[], &pinned("c", 5, &[2, 3])),
            Err(Refusal::ReservedOvercommit { limit: 4, .. })
        ));
    }

    #[test]
    fn disks_beyond_the_board_limit() {
        let mut r = rules(2);
        r.max_disks_per_guest = 4;
        let mut many = guest("a", 1, 512);
        many.disks = 5;
        assert_eq!(
            admit(&r, BIG, &[], &many).map_err(|e| e.to_string()),
            Err(r#"cannot start "a": 5 disks (this board allows at most 4 per guest)"#.into())
        );
    }

    #[test]
    fn capacity_counts_what_fits() {
        let running = vec![guest("a", 2, 2 * GIB)];
        let capacity = capacity(&rules(2), BIG, &running, Some((1, 1024)));
        // 16384 - 1638 - (2048 + 250 + 160) = 12288; one more costs 1354 → 9.
        assert_eq!(capacity.free_mib, 12288);
        let fits = capacity.fits.expect("a size was asked");
        assert_eq!((fits.count, fits.limited_by.as_str()), (9, "memory"));
        assert_eq!(capacity.shared_vcpus_limit, 16);
    }

    #[test]
    fn sizes_read_like_the_white_paper() {
        assert_eq!(Mib(4096).to_string(), "4 GiB");
        assert_eq!(Mib(250).to_string(), "250 MiB");
        assert_eq!(Mib(3174).to_string(), "3.10 GiB");
    }
}
