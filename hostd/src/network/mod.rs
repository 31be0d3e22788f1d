//! Networking: the board's LAN ports under stable names, bonds, vSwitches (Linux bridges)
//! and VLANs, kept as the desired state's `network` section says.
//!
//! - [`observe`]: the kernel's links, from sysfs.
//! - [`plan`]: pure, from document + board ports + observed links to ordered actions.
//! - [`execute`]: the actions through rtnetlink.
//!
//! Not here yet (issue 4): the management address (DHCP, static), the Default VM Network on
//! a first boot, safe apply with a grace period, `cairnctl net`, guest tap attachment.

pub mod board_check;
pub mod defaults;
pub mod execute;
pub mod l3;
pub mod observe;
pub mod plan;
pub mod view;

pub use execute::{NetError, NetExecutor};
pub use observe::{Link, LinkKind, NetObserved, NetPaths, observe};
pub use plan::NetAction;
