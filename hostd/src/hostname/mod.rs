//! The host name: the smallest subsystem, in the same four rooms as the others.
//!
//! Desired: `hostname` in the document, or [`DEFAULT_HOSTNAME`] (what init sets at boot)
//! when the document has none, so that removing the key undoes an earlier change. Observed:
//! `/proc/sys/kernel/hostname`. One action at most.

pub mod action;
pub mod execute;
pub mod observe;
pub mod plan;

pub use action::SetHostname;
pub use execute::execute;
pub use observe::{PROC_HOSTNAME, observe};
pub use plan::{DEFAULT_HOSTNAME, desired, plan};
