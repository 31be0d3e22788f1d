//! The management address from DHCPv4: a client that obtains, renews, rebinds and
//! releases a lease on the management interface when the document says `dhcp4 = true`.
//!
//! - [`machine`]: the protocol, pure (events in, messages and lease changes out).
//! - [`run`]: the thin part: one UDP socket on port 68 bound to the interface, the timers,
//!   and the lease put on the box through [`kernel`].
//! - [`DhcpHandle`]: how the core tells the client what to do (after every apply and
//!   reconcile) and reads the lease back (safe apply, `cairnctl net address`).
//!
//! The protocol's messages are dhcproto's (BlueCat's DHCPv4/v6 codec, the one their dora
//! server is built on: typed options, fuzzed, released through 2025), so hostd encodes no
//! byte by hand; the state machine is ours, because the crate has none and the policy
//! (what a lease does to the box) is the appliance's.
//!
//! The lease is not part of the desired state and not in the planner's view: its address
//! has finite lifetimes (the planner only owns permanent ones) and its route protocol
//! `dhcp` (the planner owns `static`), so an apply never removes a lease and a lease never
//! shows up as drift.

pub mod kernel;
pub mod machine;
pub mod run;
pub mod status;

pub use run::{DhcpHandle, DhcpTarget};
pub use status::DhcpView;
