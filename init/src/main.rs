//! cairn-init: PID 1 of the Cairn appliance. See `boot.rs` for the sequence and
//! docs/image-contract.md for what it promises the image and the tests.

mod board;
mod boot;
mod boot_slot;
mod clock;
mod cmdline;
mod config_partition;
mod console_log;
mod emergency;
mod error;
mod event_loop;
mod modules;
mod mounts;
mod readiness;
mod reaper;
mod services;
mod shutdown;
mod signals;
mod supervisor;
#[cfg(test)]
mod test_support;

fn main() {
    boot::main()
}
