//! Guests: virtual machines, each its own cloud-hypervisor process that hostd starts,
//! drives over its REST API and watches.
//!
//! - [`admission`]: may a guest start (memory, vCPU overcommit, reserved threads)? Pure.
//! - [`lifecycle`]: the states and the transitions allowed between them.
//! - [`chv_api`] and [`api_client`]: cloud-hypervisor's API, typed, over its unix socket.
//! - [`layout`]: run-time paths, tap names, MACs; [`vm_config`]: definition → `VmConfig`.
//! - [`supervisor`]: the processes — start, stop, crash detection, restart policy,
//!   autostart, stopping everything when hostd stops.
//! - [`console`]: the serial port relay (log file + one attached admin).
//! - [`host_cpu`]: the host's size as admission needs it, and cgroup CPU weights.

pub mod admission;
pub mod api_client;
pub mod chv_api;
pub mod console;
pub mod host_cpu;
pub mod layout;
pub mod lifecycle;
pub mod supervisor;
pub mod vm_config;
