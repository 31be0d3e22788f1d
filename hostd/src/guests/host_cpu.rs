//! The machine's size ([`Machine`]) as admission counts it, and each guest's cgroup for its
//! CPU weight. Paths are parameters, so tests feed fixtures.

use std::path::{Path, PathBuf};

use super::admission::Machine;

/// MemTotal from `/proc/meminfo`, in MiB: what the kernel manages (installed RAM minus
/// firmware and kernel reservations), which is what guests and host share.
pub fn mem_total_mib(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kib / 1024)
    })
}

/// The running host: RAM from `/proc/meminfo`, threads the kernel has online.
pub fn observe_machine() -> Machine {
    let memory_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_total_mib(&text))
        .unwrap_or(0);
    let threads = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1);
    Machine {
        memory_mib,
        threads,
    }
}

/// cgroup v2: one group per guest under `cairn-guests`, whose `cpu.weight` is the guest's
/// relative CPU share against the other guests.
#[derive(Debug, Clone)]
pub struct Cgroups {
    root: PathBuf,
}

impl Cgroups {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn parent(&self) -> PathBuf {
        self.root.join("cairn-guests")
    }

    /// Puts `pid` in the guest's group with `weight`. The cpu controller has to be enabled
    /// in every ancestor's `cgroup.subtree_control` first.
    pub fn place(&self, guest: &str, pid: u32, weight: u16) -> std::io::Result<()> {
        let parent = self.parent();
        std::fs::create_dir_all(&parent)?;
        write(&self.root.join("cgroup.subtree_control"), "+cpu")?;
        write(&parent.join("cgroup.subtree_control"), "+cpu")?;
        let group = parent.join(guest);
        std::fs::create_dir_all(&group)?;
        write(&group.join("cpu.weight"), &weight.to_string())?;
        write(&group.join("cgroup.procs"), &pid.to_string())
    }

    /// Removes the guest's group once its process is gone (an empty group only).
    pub fn remove(&self, guest: &str) {
        let _ = std::fs::remove_dir(self.parent().join(guest));
    }
}

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
        .map_err(|error| std::io::Error::new(error.kind(), format!("{}: {error}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo() {
        assert_eq!(
            mem_total_mib("MemTotal:        2014236 kB\nMemFree:  1 kB\n"),
            Some(1967)
        );
        assert_eq!(mem_total_mib("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn a_guest_group_with_its_weight() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cgroups = Cgroups::new(dir.path());
        cgroups.place("web", 42, 300).expect("writes");
        let group = dir.path().join("cairn-guests/web");
        assert_eq!(
            std::fs::read_to_string(group.join("cpu.weight"))
                .ok()
                .as_deref(),
            Some("300")
        );
        assert_eq!(
            std::fs::read_to_string(group.join("cgroup.procs"))
                .ok()
                .as_deref(),
            Some("42")
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cgroup.subtree_control"))
                .ok()
                .as_deref(),
            Some("+cpu")
        );
    }
}
