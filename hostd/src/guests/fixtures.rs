//! Test fixtures shared by the guests' tests: a guest from its TOML, the files of a guest
//! that needs none created, and a machine of a known size.

use super::admission::Machine;
use super::vm_config::Resolved;
use crate::state::GuestSpec;

/// 4 GiB and 4 threads: the host keeps 1.5 GiB, so 2.5 GiB are the guests'.
pub const MACHINE: Machine = Machine {
    memory_mib: 4096,
    threads: 4,
};

/// A kernel-booted guest `name` of 1 vCPU and `memory_mib`, with `extra` TOML keys.
pub fn spec(name: &str, memory_mib: u64, extra: &str) -> GuestSpec {
    let text = format!(
        "name = \"{name}\"\nvcpus = 1\nmemory_mib = {memory_mib}\nboot = {{ kernel = \"/k\" }}\n{extra}"
    );
    match GuestSpec::from_toml(&text, 0) {
        Ok(spec) => spec,
        Err(invalid) => panic!("{invalid}\n{text}"),
    }
}

/// The files of a guest whose kernel is there and that has no disks.
pub fn files() -> Resolved {
    Resolved {
        disks: Vec::new(),
        create: Vec::new(),
        kernel: Some("/k".into()),
        initramfs: None,
    }
}
