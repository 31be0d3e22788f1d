//! hostd's API: the `org.cairn.Host1` interface on the system bus, and the core it calls.
//!
//! The D-Bus layer ([`HostApi`]) only takes arguments off the wire and hands them to
//! [`Core`], which decides and answers with typed values or a [`HostError`]; the core is
//! unit-tested without a bus, the interface over a peer-to-peer socket pair. `cairnctl`
//! talks to the interface through [`Host1Proxy`].
//!
//! For now the desired state has no executors: applying a document validates it and commits
//! it to the store, and a plan says which sections of the document would change.

#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::state::{DesiredState, Invalid};
use crate::store::{Filesystem, Generation, OsFilesystem, StateStore, StoreError};

/// The well-known name hostd owns on the system bus.
pub const BUS_NAME: &str = "org.cairn.Host1";
/// The object that carries [`INTERFACE`].
pub const OBJECT_PATH: &str = "/org/cairn/Host1";
pub const INTERFACE: &str = "org.cairn.Host1";
/// Where the image's broker listens (`/etc/cairn/dbus-system.conf`). Named explicitly: zbus's
/// default system address is under `/var/run`, which the image does not have.
pub const SYSTEM_BUS_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";

/// Every way a call can fail, as the client sees it: `org.cairn.Error.<Variant>` with the
/// text as the error message. Every variant carries its message (a D-Bus error without one
/// shows as "Input/output error" in busctl).
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.cairn.Error")]
pub enum HostError {
    /// The bus itself failed (client side: unreachable broker, timeout, no such name).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// A refused document: every path-level message, one per line.
    Invalid(String),
    /// A generation or board that does not exist.
    NotFound(String),
    /// The store on the config partition failed; the message is the whole error chain.
    Storage(String),
}

impl HostError {
    /// Whether the caller asked for something wrong (as opposed to something failing).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Invalid(_) | Self::NotFound(_))
    }

    /// The text for a person: the message without the error name.
    pub fn message(&self) -> String {
        match self {
            Self::ZBus(error) => error.to_string(),
            Self::Invalid(text) | Self::NotFound(text) | Self::Storage(text) => text.clone(),
        }
    }
}

impl From<Invalid> for HostError {
    fn from(invalid: Invalid) -> Self {
        let lines: Vec<String> = invalid.errors.iter().map(ToString::to_string).collect();
        Self::Invalid(lines.join("\n"))
    }
}

impl From<StoreError> for HostError {
    /// The one place store failures become wire errors.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Invalid(invalid) => invalid.into(),
            StoreError::UnknownGeneration { .. } => Self::NotFound(error.to_string()),
            StoreError::Read { .. }
            | StoreError::List { .. }
            | StoreError::CreateDir { .. }
            | StoreError::Write { .. }
            | StoreError::Sync { .. }
            | StoreError::Rename { .. }
            | StoreError::Remove { .. }
            | StoreError::Corrupt { .. } => Self::Storage(chain(&error)),
        }
    }
}

/// An error and its causes on one line: `Cannot write /x: No space left on device`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

/// What `Status()` answers, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Status {
    pub board: String,
    /// Seconds since the kernel started; absent when /proc/uptime cannot be read.
    pub uptime_seconds: Option<f64>,
    /// The committed desired state's generation; 0 before the first commit.
    pub generation: u64,
    /// Whether the desired state is on the config partition (survives a reboot).
    pub persistence: bool,
}

/// The sections of a desired-state document, in document order.
const SECTIONS: [&str; 4] = ["hostname", "network", "storage", "guests"];

/// The decisions behind every call, over any store.
#[derive(Debug)]
pub struct Core<F: Filesystem = OsFilesystem> {
    store: StateStore<F>,
    board: String,
    persistent: bool,
    uptime: fn() -> Option<f64>,
}

impl<F: Filesystem> Core<F> {
    pub fn new(
        store: StateStore<F>,
        board: impl Into<String>,
        persistent: bool,
        uptime: fn() -> Option<f64>,
    ) -> Self {
        Self {
            store,
            board: board.into(),
            persistent,
            uptime,
        }
    }

    pub fn status(&self) -> Result<Status, HostError> {
        Ok(Status {
            board: self.board.clone(),
            uptime_seconds: (self.uptime)(),
            generation: self
                .current()?
                .map_or(0, |(generation, _)| generation.get()),
            persistence: self.persistent,
        })
    }

    /// The board's configuration (board-configs) as JSON.
    pub fn board(&self) -> Result<String, HostError> {
        let board = board_configs::by_id(&self.board).ok_or_else(|| {
            HostError::NotFound(format!("Board {:?} is not in board-configs", self.board))
        })?;
        Ok(serde_json::to_string(board).expect("a board is strings, numbers and lists"))
    }

    /// The committed document and its generation; generation 0 and the empty document before
    /// the first commit.
    pub fn show(&self) -> Result<(u64, String), HostError> {
        Ok(match self.current()? {
            Some((generation, state)) => (generation.get(), state.to_toml()),
            None => (0, DesiredState::default().to_toml()),
        })
    }

    /// Validates `text` and says which sections differ from the committed document.
    pub fn plan(&self, text: &str) -> Result<String, HostError> {
        let desired = DesiredState::from_toml(text)?;
        let current = self.current()?;
        Ok(describe_plan(
            current
                .as_ref()
                .map(|(generation, state)| (*generation, state)),
            &desired,
        ))
    }

    /// Validates `text` as a whole and commits it; returns its generation. A document equal
    /// to the committed one is not committed again: its generation is returned.
    pub fn apply(&mut self, text: &str) -> Result<u64, HostError> {
        let desired = DesiredState::from_toml(text)?;
        if let Some((generation, current)) = self.current()?
            && current == desired
        {
            tracing::info!(%generation, "applied document equals the committed one; nothing to commit");
            return Ok(generation.get());
        }
        let generation = self.store.commit(&desired)?;
        tracing::info!(%generation, "committed a new desired state");
        Ok(generation.get())
    }

    /// `(generation, committed at in seconds since 1970)`, oldest first.
    pub fn history(&self) -> Result<Vec<(u64, u64)>, HostError> {
        Ok(self
            .store
            .history()?
            .into_iter()
            .map(|version| {
                let since_epoch = version
                    .committed_at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO);
                (version.generation.get(), since_epoch.as_secs())
            })
            .collect())
    }

    /// Commits generation `to` again as a new generation, which it returns.
    pub fn rollback(&mut self, to: u64) -> Result<u64, HostError> {
        let generation = self.store.rollback(Generation::new(to))?;
        tracing::info!(from = to, %generation, "rolled back");
        Ok(generation.get())
    }

    fn current(&self) -> Result<Option<(Generation, DesiredState)>, HostError> {
        Ok(self.store.current()?)
    }
}

/// The plan's text: which sections change, against what.
pub fn describe_plan(
    current: Option<(Generation, &DesiredState)>,
    desired: &DesiredState,
) -> String {
    let empty = DesiredState::default();
    let (against, before) = match current {
        Some((generation, state)) => (format!("generation {generation}"), state),
        None => (
            "the empty document (nothing committed yet)".to_string(),
            &empty,
        ),
    };
    let changed: Vec<&str> = SECTIONS
        .into_iter()
        .filter(|section| section_differs(section, before, desired))
        .collect();
    if changed.is_empty() {
        return format!("No changes against {against}.\n");
    }
    let mut text = format!("Against {against}:\n");
    for section in SECTIONS {
        let verdict = if changed.contains(&section) {
            "changed"
        } else {
            "unchanged"
        };
        text.push_str(&format!("  {section}: {verdict}\n"));
    }
    text.push_str(
        "Applying records the document; no subsystem acts on it yet, so nothing on the box changes.\n",
    );
    text
}

fn section_differs(section: &str, a: &DesiredState, b: &DesiredState) -> bool {
    match section {
        "hostname" => a.hostname != b.hostname,
        "network" => a.network != b.network,
        "storage" => a.storage != b.storage,
        "guests" => a.guests != b.guests,
        _ => unreachable!("SECTIONS lists only these"),
    }
}

/// Seconds since boot, from /proc/uptime.
pub fn system_uptime() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The `org.cairn.Host1` object: deserialises, calls [`Core`], serialises.
#[derive(Debug)]
pub struct HostApi {
    core: Core<OsFilesystem>,
}

impl HostApi {
    pub fn new(core: Core<OsFilesystem>) -> Self {
        Self { core }
    }
}

#[zbus::interface(interface = "org.cairn.Host1")]
impl HostApi {
    /// JSON: board, uptime_seconds, generation, persistence.
    fn status(&self) -> Result<String, HostError> {
        let status = self.core.status()?;
        Ok(serde_json::to_string(&status).expect("a status is strings, numbers and booleans"))
    }

    /// JSON of the board's configuration.
    fn board(&self) -> Result<String, HostError> {
        self.core.board()
    }

    fn config_show(&self) -> Result<(u64, String), HostError> {
        self.core.show()
    }

    fn config_plan(&self, toml: &str) -> Result<String, HostError> {
        self.core.plan(toml)
    }

    fn config_apply(&mut self, toml: &str) -> Result<u64, HostError> {
        self.core.apply(toml)
    }

    fn config_history(&self) -> Result<Vec<(u64, u64)>, HostError> {
        self.core.history()
    }

    fn config_rollback(&mut self, generation: u64) -> Result<u64, HostError> {
        self.core.rollback(generation)
    }
}

/// The client side of `org.cairn.Host1`, for cairnctl and the tests.
#[zbus::proxy(
    interface = "org.cairn.Host1",
    default_service = "org.cairn.Host1",
    default_path = "/org/cairn/Host1"
)]
pub trait Host1 {
    fn status(&self) -> Result<String, HostError>;
    fn board(&self) -> Result<String, HostError>;
    fn config_show(&self) -> Result<(u64, String), HostError>;
    fn config_plan(&self, toml: &str) -> Result<String, HostError>;
    fn config_apply(&self, toml: &str) -> Result<u64, HostError>;
    fn config_history(&self) -> Result<Vec<(u64, u64)>, HostError>;
    fn config_rollback(&self, generation: u64) -> Result<u64, HostError>;
}
