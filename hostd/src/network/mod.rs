//! Networking: the board's LAN ports under stable names, bonds, vSwitches (Linux bridges)
//! and VLANs, kept as the desired state's `network` section says.
//!
//! - [`observe`]: the kernel's links, from sysfs.
//! - [`plan`]: pure, from document + board ports + observed links to ordered actions.
//! - [`execute`]: the actions through rtnetlink.
//!
//! - [`dhcp`]: the management address from a DHCPv4 lease (a client task beside the
//!   planner: the lease is the server's state, not the document's).

pub mod board_check;
pub mod defaults;
pub mod dhcp;
pub mod execute;
pub mod l3;
pub mod observe;
pub mod plan;
pub mod view;

pub use execute::{NetError, NetExecutor};
pub use observe::{Link, LinkKind, NetObserved, NetPaths, observe};
pub use plan::NetAction;
