//! hostd's core as a library: the parts that decide, kept apart from the parts that act, so
//! that they are unit-tested without root, a bus or a kernel.
//!
//! - [`state`]: the desired-state document, parsed and validated as a whole.
//! - [`store`]: where that document lives on the config partition, written atomically and
//!   kept with its history.
//! - [`plan`]: the shape every subsystem follows (desired + observed → actions → executor),
//!   with an apply driver that undoes what it did when a step fails.
//! - [`log_ring`] and [`log_file`]: where hostd's log records go (memory for the API, a
//!   size-rotated file on the config partition for the next boot).
//! - [`console`]: the serial console's login, password store, auth log and prompt.
//! - [`api`]: the `org.cairn.Host1` D-Bus interface, the core it calls and the client proxy
//!   `cairnctl` uses.
//!
//! The daemon is `main.rs`; `bin/cairnctl.rs` is the command-line client and
//! `bin/cairn-console.rs` the serial console program.

pub mod api;
pub mod console;
pub mod log_file;
pub mod log_ring;
pub mod plan;
pub mod state;
pub mod store;
