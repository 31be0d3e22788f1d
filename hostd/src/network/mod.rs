//! Networking: the board's LAN ports under stable names, bonds, vSwitches (VLAN-aware Linux
//! bridges), VLANs and the management address, kept as the desired state's `network`
//! section says, and guests' ports on the vSwitches.
//!
//! - [`observe`]: the kernel's links, from sysfs; [`l3`] and [`bridge_vlans`] add what only
//!   netlink tells (addresses, routes, the bridges' VLAN tables).
//! - [`plan`]: pure, from document + board ports + observed links to ordered actions.
//! - [`execute`]: the actions through rtnetlink (and the tun ioctls for guest ports).
//! - [`taps`]: attaching and detaching a guest's port, outside the document.
//! - [`defaults`], [`board_check`], [`view`]: the first boot's network, what only the board
//!   can refuse, and what `cairnctl net` shows.
//! - [`dhcp`]: the management address from a DHCPv4 lease (a client task beside the
//!   planner: the lease is the server's state, not the document's).

pub mod board_check;
pub mod bridge_vlans;
pub mod defaults;
pub mod dhcp;
pub mod execute;
pub mod l3;
pub mod observe;
pub mod plan;
pub mod taps;
mod tun;
pub mod view;

pub use execute::{NetError, NetExecutor};
pub use observe::{Link, LinkKind, NetObserved, NetPaths, observe};
pub use plan::NetAction;
