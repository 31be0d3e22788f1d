//! Guests: virtual machines, each its own cloud-hypervisor process that hostd starts,
//! drives over its REST API and watches. The same rooms as the other subsystems:
//!
//! - [`observe`]: the processes and their state as observed (the supervisor's table, the
//!   processes that outlived a hostd restart), and what kind of file is at a path;
//! - [`action`]: what can be done to a guest's process (start, stop, control, take over,
//!   restart), as values with their text;
//! - [`plan`]: pure — document guests + the run asked for + observed processes → actions,
//!   admission ([`admission`], the white paper's rules) included, so a start that does not
//!   fit is a planned refusal;
//! - [`execute`]: the only guests code that acts, through the [`vmm`] seam.
//!
//! Around them:
//! - [`supervisor`]: the table and its state machine ([`lifecycle`]), the restart policy's
//!   timers, stopping everything when hostd stops; [`start_up`]: taking over the processes
//!   that outlived a hostd restart, then autostart; [`view`]: what the API shows;
//!   [`error`]: how a request fails.
//! - [`vmm`]: cloud-hypervisor behind a trait; [`live_vmm`]: the real one, over
//!   [`chv_api`] and [`api_client`] (its API, typed, over its unix socket).
//! - [`core_services`]: what the guests ask of the core (definitions, subvolumes, taps).
//! - [`layout`]: run-time paths, tap names, MACs; [`vm_config`]: definition → `VmConfig`.
//! - [`console`]: the serial port relay (log file + one attached admin).
//! - [`host_cpu`]: the machine's size as admission needs it, and cgroup CPU weights.

pub mod action;
pub mod admission;
pub mod api_client;
pub mod chv_api;
pub mod console;
pub mod core_services;
pub mod error;
pub mod execute;
#[cfg(test)]
mod fake_vmm;
#[cfg(test)]
mod fixtures;
pub mod host_cpu;
pub mod layout;
pub mod lifecycle;
pub mod live_vmm;
pub mod observe;
pub mod plan;
pub mod start_up;
pub mod supervisor;
pub mod view;
pub mod vm_config;
pub mod vmm;
