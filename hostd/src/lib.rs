//! hostd's core as a library: the parts that decide, kept apart from the parts that act, so
//! that they are unit-tested without root, a bus or a kernel.
//!
//! - [`state`]: the desired-state document, parsed and validated as a whole.
//! - [`store`]: where that document lives on the config partition, written atomically and
//!   kept with its history.
//! - [`plan`]: the shape every subsystem follows (desired + observed → actions → executor),
//!   with an apply driver that undoes what it did when a step fails.
//! - [`error`]: [`error::chain`], the one way an error is printed with its causes.
//! - [`log_ring`] and [`log_file`]: where hostd's log records go (memory for the API, a
//!   size-rotated file on the config partition for the next boot).
//! - [`system`]: the appliance as hostd sees and changes it: the observed state of every
//!   subsystem, their actions in one enum, the one planner over them, and the live executor.
//! - [`hostname`], [`network`], [`storage`], [`guests`]: the subsystems, each in the same
//!   rooms: `observe`, `action`, a pure `plan`, `execute`.
//! - [`core`]: the decisions behind every API call; applying a document is one transaction
//!   across the store and the appliance, reported as a [`jobs::Job`]. It fails with its own
//!   typed [`core::CoreError`] and imports nothing of the API.
//! - [`api`]: the `org.cairn.Host1` D-Bus interface, its job objects and the client proxies
//!   `cairnctl` uses; `api/error.rs` is the one place errors become `org.cairn.Error.*`.
//!
//! The daemon is `main.rs`; `bin/cairnctl.rs` is the command-line client. The serial console
//! program is a crate of its own (`console/`, `cairn-console`).

pub mod api;
pub mod core;
pub mod drift_watch;
pub mod error;
pub mod guests;
pub mod hostname;
pub mod jobs;
pub mod log_file;
pub mod log_ring;
pub mod mounts;
pub mod network;
pub mod plan;
pub mod start_phases;
pub mod state;
pub mod storage;
pub mod store;
pub mod system;
pub use cairn_api::utc;
