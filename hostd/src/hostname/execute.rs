//! The only code of the host name that changes the kernel.

use super::action::SetHostname;

/// Sets the kernel's host name; `sethostname(2)` either takes the whole name or nothing.
pub fn execute(action: &SetHostname) -> nix::Result<()> {
    nix::unistd::sethostname(&action.to)
}
