//! The serial console: what init runs on the board's console tty (`cairn-console`). A
//! program of its own, apart from hostd: it talks to the daemon only by running
//! `/usr/bin/cairnctl`, so it links none of hostd's library.
//!
//! First boot asks for an admin password and keeps its SHA-512 crypt hash on the config
//! partition; every later start asks for it. After login a `cairn> ` prompt with line
//! editing and history takes cairnctl commands as typed, plus the console's own (`shell`,
//! `poweroff`, `reboot`, `logout`, `help`). Three wrong passwords in a row are refused,
//! paused and logged; every login and root-shell request is logged too.
//!
//! - [`password`]: hashing and verifying, the rules for a new password (pure).
//! - [`attempts`]: the three-tries rule (pure).
//! - [`command`]: a prompt line to a console command (pure).
//! - [`password_file`] and [`atomic_file`]: where the hash lives and how it is replaced.
//! - [`auth_log`]: the auth log file and the kernel log.
//! - [`reset`]: `cairn.console=reset-password` for a forgotten password.
//! - [`terminal`]: echo, signals and the foreground process group on the tty.
//! - [`session`]: the flow that ties them together.
//! - [`error`] and [`utc`]: an error printed with its causes, and the auth log's time stamps
//!   (small copies of hostd's, so the console does not link the daemon's library).
//!
//! The program itself is `main.rs`.

pub mod atomic_file;
pub mod attempts;
pub mod auth_log;
pub mod command;
pub mod error;
pub mod password;
pub mod password_file;
pub mod reset;
pub mod session;
pub mod terminal;
pub mod utc;
