//! Networking: the board's LAN ports under stable names, bonds, vSwitches (VLAN-aware Linux
//! bridges), VLANs and the management address, kept as the desired state's `network`
//! section says, and guests' ports on the vSwitches.
//!
//! The same rooms as every subsystem:
//! - [`observe`]: the kernel's links, from sysfs; [`netlink`] adds what only netlink tells
//!   (addresses, routes, the bridges' VLAN tables); [`l3`] holds the address types and the
//!   resolv.conf text.
//! - [`action`]: [`NetAction`], its text and its undo.
//! - [`plan`]: pure, from document + board ports + observed links to ordered actions, one
//!   function per stage; [`bridge_vlans`] plans the vSwitches' VLAN tables. The pure files
//!   import only `action`, `observe`, `l3` and `state`.
//! - [`execute`]: the actions through rtnetlink (and the tun ioctls for guest ports).
//! - [`taps`]: attaching and detaching a guest's port, outside the document.
//! - [`defaults`], [`board_check`], [`view`]: the first boot's network, what only the board
//!   can refuse, and what `cairnctl net` shows.
//! - [`dhcp`]: the management address from a DHCPv4 lease (a client task beside the
//!   planner: the lease is the server's state, not the document's).

pub mod action;
pub mod board_check;
pub mod bridge_vlans;
pub mod defaults;
pub mod dhcp;
pub mod execute;
pub mod l3;
pub mod netlink;
pub mod observe;
pub mod plan;
pub mod taps;
mod tun;
pub mod view;

pub use action::NetAction;
pub use execute::{NetError, NetExecutor};
pub use observe::{Link, LinkKind, NetObserved, NetPaths, observe};
