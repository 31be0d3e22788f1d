//! QEMU test harness for the Cairn appliance image, in the manner of cloud-hypervisor's
//! `test_infra`.
//!
//! Layers, lowest first:
//! - [`builder::QemuBuilder`]: the QEMU command line as a value (pure, unit-tested);
//! - [`console::Console`]: the serial console, expect-style, with a full transcript;
//! - [`qmp::Qmp`]: QEMU's machine protocol (status, power button, links, unplug);
//! - [`vm::Vm`]: one QEMU process whose teardown always runs and explains failures;
//! - [`appliance::Appliance`]: the image's contract — boot, READY, console commands,
//!   shell commands with captured output;
//! - [`peer::Peer`]: a second small guest on the appliance's kernel, cabled to its ports
//!   ([`peer::Cabling`]), for bonding, failover and VLAN tests; [`bond_status`] and
//!   [`ping_log`] read what the two ends report;
//! - disk checks: [`disk`] (qemu-img overlays), [`gpt_read`], [`ext4`], [`fscheck`].
//!
//! The tests that boot the image are in `tests/` behind the `vm-tests` feature; the
//! `bench` binary measures boots for `make bench`.

pub mod appliance;
pub mod bond_status;
pub mod builder;
pub mod cli_output;
pub mod console;
pub mod contract;
pub mod disk;
pub mod ext4;
pub mod fscheck;
pub mod gpt_read;
pub mod guest_disk;
pub mod guest_image;
pub mod image;
pub mod newc;
pub mod ovmf;
pub mod peer;
pub mod ping_log;
pub mod probe;
pub mod qmp;
pub mod stats;
pub mod timeouts;
pub mod vm;
pub mod wired;
pub mod workdir;

/// An error and its causes on one line (`Boot failed: VM failed: QEMU exited …`).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

pub use appliance::{Appliance, ApplianceError, BayDrive, BootMode, Launch, M2Drive, ShellOutput};
pub use builder::{Accel, Disk, NetBackend, Nic, NvmeDrive, QemuBuilder, ScsiDrive};
pub use console::{Console, ConsoleError, Match, Pattern};
pub use contract::Ready;
pub use image::Image;
pub use peer::{Cabling, Peer, PeerError, PeerLaunch};
pub use qmp::Qmp;
pub use regex::Regex;
pub use vm::{Vm, VmError};
pub use workdir::WorkDir;

#[cfg(test)]
mod tests {
    #[test]
    fn error_chain_joins_every_cause_once() {
        let io = std::io::Error::other("No space left on device");
        let outer = crate::workdir::WorkDirError::Create("/tmp/x".into(), io);
        let text = super::error_chain(&outer);
        assert!(text.ends_with(": No space left on device"), "{text}");
        assert_eq!(text.matches("No space left").count(), 1, "{text}");
    }
}
