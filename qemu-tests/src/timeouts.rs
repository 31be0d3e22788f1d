//! How long the harness waits for each step, in one place.
//!
//! Limits are generous because the host emulates (TCG) on 2 shared cores and `make test`
//! runs two VMs at once; a wait ends as soon as its text appears, so a passing run pays
//! nothing for them. `CAIRN_TIMEOUT_SCALE` multiplies them all for slower machines.

use std::time::Duration;

pub const SCALE_ENV: &str = "CAIRN_TIMEOUT_SCALE";

/// `base` times `CAIRN_TIMEOUT_SCALE` (a positive number; anything else counts as 1).
pub fn scaled(base: Duration) -> Duration {
    let factor = std::env::var(SCALE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|f| f.is_finite() && *f > 0.0)
        .unwrap_or(1.0);
    base.mul_f64(factor)
}

/// QEMU creating its sockets: milliseconds normally, seconds on a loaded host.
pub fn qemu_sockets() -> Duration {
    scaled(Duration::from_secs(20))
}

/// Direct-kernel boot to READY. LAB-FACTS: userspace after ~5 s; coldplug and services
/// add a few more; two parallel VMs can double it.
pub fn ready_direct() -> Duration {
    scaled(Duration::from_secs(180))
}

/// UEFI boot to READY: OVMF's own start under TCG and systemd-boot's menu timeout come
/// on top of a direct boot.
pub fn ready_uefi() -> Duration {
    scaled(Duration::from_secs(300))
}

/// The peer VM's kernel to its shell: LAB-FACTS: userspace after about 5 s, plus module
/// loading; it boots while the appliance boots on the same 2 cores.
pub fn peer_ready() -> Duration {
    scaled(Duration::from_secs(120))
}

/// LACP aggregation between the appliance and the peer: 802.3ad waits 2 s after the
/// first LACPDU (LAB-FACTS: about 2.3 s), the slow rate sends one every 30 s, and a bond
/// just built may miss the first exchange.
pub fn lacp_aggregation() -> Duration {
    scaled(Duration::from_secs(90))
}

/// The console prompt, or one shell command's round trip.
pub fn console() -> Duration {
    scaled(Duration::from_secs(60))
}

/// From a poweroff or reboot request to QEMU's exit or the next boot's first line:
/// services get a stop deadline, then the unmounts and sync.
pub fn shutdown() -> Duration {
    scaled(Duration::from_secs(120))
}
