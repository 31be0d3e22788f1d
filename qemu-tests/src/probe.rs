//! Small things tests ask of a running appliance, shared so that each is written once.

use crate::appliance::{Appliance, ApplianceError};
use crate::{contract, timeouts};

/// The prefix of the line [`hostname`] reads: hostd's warnings share the console, so the
/// answer is told apart by a marker of its own.
const HOSTNAME_MARK: &str = "LIVE-HOSTNAME=";

/// The box's host name as the kernel has it now.
pub fn hostname(app: &mut Appliance) -> Result<String, ApplianceError> {
    let output = app.shell(&format!("echo \"{HOSTNAME_MARK}$(hostname)\""))?;
    Ok(output
        .lines()
        .find_map(|line| line.strip_prefix(HOSTNAME_MARK))
        .map(|name| name.trim().to_string())
        .unwrap_or_default())
}

/// Syncs, reboots through the console's `reboot`, and waits for the config partition and
/// the next READY (init's orderly path, as an admin would do it).
pub fn reboot(app: &mut Appliance) -> Result<(), ApplianceError> {
    app.shell("sync")?;
    app.console_command("reboot")?;
    let console = app.console();
    console.wait_for_line("cairn-init: rebooting", timeouts::shutdown())?;
    console.wait_for_line(contract::config_mounted_regex(), timeouts::ready_direct())?;
    app.wait_ready(timeouts::ready_direct())?;
    Ok(())
}
