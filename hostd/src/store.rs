//! Where the desired state lives: `state.toml` in a directory of the config partition
//! (`/config/desired/`), with earlier generations kept under `history/`.
//!
//! # Crash safety
//! A hostd killed, or a box losing power, at any instant must come back to exactly the old or
//! exactly the new document. Every file is therefore written as: a temporary file in the same
//! directory, written and fsynced; renamed over the target (atomic: readers see the old or the
//! new file, never a mix); then the directory fsynced, which makes the rename itself durable.
//! Until that last fsync a power cut may still bring back the old file, which is allowed; once
//! [`StateStore::commit`] has returned, the new generation survives anything short of a broken
//! disk.
//!
//! A commit writes `state.toml` first and its copy `history/<generation>.toml` second. A crash
//! between the two leaves a current generation missing from the history; [`StateStore::open`]
//! finds that and writes the copy, and it removes the temporary files a crash left behind.
//! The opposite order would leave a history entry that was never current.
//!
//! # Generations
//! Each commit gets the next number after every number seen (current and history), so numbers
//! only grow; a rollback commits an old document again under a new number, so it can itself
//! be undone. Each file begins with a comment line naming its generation and commit time: the
//! number travels inside the file it describes, so the two cannot disagree after a crash.

mod filesystem;
mod memory_fs;
mod unconfirmed;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use filesystem::{Filesystem, OsFilesystem};
pub use memory_fs::MemoryFs;
pub use unconfirmed::Unconfirmed;

use crate::state::{DesiredState, FieldError, Invalid, Validated};

/// Generations kept under `history/`. A document is a few KiB and the config partition has
/// hundreds of MiB, so the bound is about how far back an admin plausibly wants to step, not
/// about space.
pub const HISTORY_KEPT: usize = 20;

const STATE_FILE: &str = "state.toml";
const HISTORY_DIR: &str = "history";
const HEADER_PREFIX: &str = "# Cairn desired state, generation ";
const HEADER_TIME: &str = ", committed ";

/// The number of a committed document: 1 for the first, growing with every commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(u64);

impl Generation {
    pub const fn new(number: u64) -> Self {
        Self(number)
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One kept generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub generation: Generation,
    pub committed_at: SystemTime,
}

/// An I/O error, kept as its kind and text so that [`StoreError`] can derive `PartialEq`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IoCause {
    pub kind: io::ErrorKind,
    pub message: String,
}

impl From<io::Error> for IoCause {
    fn from(error: io::Error) -> Self {
        Self {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("Cannot read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        cause: IoCause,
    },
    #[error("Cannot list {}", .path.display())]
    List {
        path: PathBuf,
        #[source]
        cause: IoCause,
    },
    #[error("Cannot create {}", .path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        cause: IoCause,
    },
    #[error("Cannot write {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        cause: IoCause,
    },
    #[error("Cannot sync {}", .path.display())]
    Sync {
        path: PathBuf,
        #[source]
        cause: IoCause,
    },
    #[error("Cannot rename {} to {}", .from.display(), .to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        cause: IoCause,
    },
    #[error("Cannot remove {}", .path.display())]
    Remove {
        path: PathBuf,
        #[source]
        cause: IoCause,
    },
    #[error("{} does not hold a valid desired state", .path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        cause: Invalid,
    },
    #[error("Generation {generation} is not in the history (kept: {kept})")]
    UnknownGeneration {
        generation: Generation,
        kept: String,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The desired state on disk. One process owns a directory (hostd, supervised by init, runs
/// once); nothing here locks against a second writer.
#[derive(Debug)]
pub struct StateStore<F: Filesystem = OsFilesystem> {
    fs: F,
    dir: PathBuf,
    clock: fn() -> SystemTime,
}

impl StateStore<OsFilesystem> {
    /// Opens the store in `dir` on the real disk (creating it), recovering from any crash.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        Self::open_with(OsFilesystem, dir, SystemTime::now)
    }
}

impl<F: Filesystem> StateStore<F> {
    /// Opens the store over any [`Filesystem`] with any clock: removes temporary files a crash
    /// left, copies a current generation missing from the history into it, and adopts a
    /// `state.toml` placed by hand (a restored backup) as a new generation.
    pub fn open_with(fs: F, dir: impl Into<PathBuf>, clock: fn() -> SystemTime) -> Result<Self> {
        let mut store = Self {
            fs,
            dir: dir.into(),
            clock,
        };
        let history = store.history_dir();
        store
            .fs
            .create_dir_all(&history)
            .map_err(|e| StoreError::CreateDir {
                path: history.clone(),
                cause: e.into(),
            })?;
        store.remove_temporary_files(&store.dir)?;
        store.remove_temporary_files(&history)?;
        store.recover_current()?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The committed document and its generation; `None` before the first commit.
    pub fn current(&self) -> Result<Option<(Generation, Validated<DesiredState>)>> {
        let path = self.state_path();
        let Some(text) = self.read_text(&path)? else {
            return Ok(None);
        };
        let state = DesiredState::parse(&text).map_err(|cause| StoreError::Corrupt {
            path: path.clone(),
            cause,
        })?;
        let Some((generation, _)) = parse_header(&text) else {
            // A valid document without the line is adopted on open; one that appeared since
            // was written behind hostd's back.
            return Err(corrupt(
                path,
                "the first line does not name a generation (the file was not written by hostd)",
            ));
        };
        Ok(Some((generation, state)))
    }

    /// Stores `state` as the next generation; when this returns, the new generation is
    /// durable.
    pub fn commit(&mut self, state: &Validated<DesiredState>) -> Result<Generation> {
        let generation = Generation(self.newest_generation()?.map_or(1, |g| g.0 + 1));
        let text = render(generation, (self.clock)(), state);
        self.write_atomically(&self.dir, STATE_FILE, &text)?;
        self.write_atomically(&self.history_dir(), &history_name(generation), &text)?;
        self.prune_history(generation);
        Ok(generation)
    }

    /// The kept generations, oldest first.
    pub fn history(&self) -> Result<Vec<Version>> {
        let mut versions = Vec::new();
        for generation in self.history_generations()? {
            let path = self.history_dir().join(history_name(generation));
            let Some(text) = self.read_text(&path)? else {
                continue; // removed between listing and reading: no longer kept
            };
            match parse_header(&text) {
                Some((number, committed_at)) if number == generation => versions.push(Version {
                    generation,
                    committed_at,
                }),
                _ => tracing::warn!(
                    path = %path.display(),
                    "history file without a matching generation line; left out of the history"
                ),
            }
        }
        Ok(versions)
    }

    /// The document of a kept generation.
    pub fn read_generation(&self, generation: Generation) -> Result<Validated<DesiredState>> {
        let path = self.history_dir().join(history_name(generation));
        let Some(text) = self.read_text(&path)? else {
            let kept: Vec<String> = self
                .history_generations()?
                .iter()
                .map(Generation::to_string)
                .collect();
            return Err(StoreError::UnknownGeneration {
                generation,
                kept: if kept.is_empty() {
                    "none".to_string()
                } else {
                    kept.join(", ")
                },
            });
        };
        DesiredState::parse(&text).map_err(|cause| StoreError::Corrupt { path, cause })
    }

    /// Commits the document of generation `to` again, as a new generation, which it returns.
    pub fn rollback(&mut self, to: Generation) -> Result<Generation> {
        let state = self.read_generation(to)?;
        self.commit(&state)
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    fn history_dir(&self) -> PathBuf {
        self.dir.join(HISTORY_DIR)
    }

    /// After a crash: the current generation must be in the history, and a hand-placed
    /// document without a generation line becomes a generation.
    fn recover_current(&mut self) -> Result<()> {
        let path = self.state_path();
        let Some(text) = self.read_text(&path)? else {
            return Ok(());
        };
        match parse_header(&text) {
            Some((generation, _)) => {
                let name = history_name(generation);
                let copy = self.history_dir().join(&name);
                if self.read_text(&copy)?.is_none() {
                    tracing::info!(%generation, "copying the current generation into the history");
                    self.write_atomically(&self.history_dir(), &name, &text)?;
                }
            }
            None => {
                // Not written by hostd. If it is valid, it becomes the next generation; if not,
                // it stays as it is and `current` reports why.
                if let Ok(state) = DesiredState::parse(&text) {
                    let generation = self.commit(&state)?;
                    tracing::info!(%generation, "adopted a state.toml written by hand");
                }
            }
        }
        Ok(())
    }

    /// The highest generation in `state.toml` or the history.
    fn newest_generation(&self) -> Result<Option<Generation>> {
        let current = self
            .read_text(&self.state_path())?
            .and_then(|text| parse_header(&text))
            .map(|(generation, _)| generation);
        let kept = self.history_generations()?.last().copied();
        Ok(current.max(kept))
    }

    /// Generations with a file under `history/`, ascending.
    fn history_generations(&self) -> Result<Vec<Generation>> {
        let dir = self.history_dir();
        let names = self.fs.list(&dir).map_err(|e| StoreError::List {
            path: dir.clone(),
            cause: e.into(),
        })?;
        let mut generations: Vec<Generation> = names
            .iter()
            .filter_map(|name| name.strip_suffix(".toml"))
            .filter(|number| number.chars().all(|c| c.is_ascii_digit()))
            .filter_map(|number| number.parse().ok())
            .map(Generation)
            .collect();
        generations.sort();
        Ok(generations)
    }

    /// Keeps the newest [`HISTORY_KEPT`] generations. Best effort: the commit is already
    /// durable, and a file a failed or undone removal leaves is removed next time.
    fn prune_history(&self, current: Generation) {
        let generations = match self.history_generations() {
            Ok(generations) => generations,
            Err(error) => {
                tracing::warn!(%error, "cannot prune the history");
                return;
            }
        };
        let excess = generations.len().saturating_sub(HISTORY_KEPT);
        for generation in generations.into_iter().take(excess) {
            if generation == current {
                continue;
            }
            let path = self.history_dir().join(history_name(generation));
            if let Err(error) = self.fs.remove(&path) {
                tracing::warn!(path = %path.display(), %error, "cannot remove an old generation");
            }
        }
    }

    /// Temporary files are `.<name>.tmp`; one that exists at open belongs to a write a crash
    /// interrupted before its rename, so nothing refers to it.
    fn remove_temporary_files(&self, dir: &Path) -> Result<()> {
        let names = self.fs.list(dir).map_err(|e| StoreError::List {
            path: dir.to_path_buf(),
            cause: e.into(),
        })?;
        for name in names {
            if name.starts_with('.') && name.ends_with(".tmp") {
                let path = dir.join(&name);
                tracing::info!(path = %path.display(), "removing a temporary file left by a crash");
                self.fs.remove(&path).map_err(|e| StoreError::Remove {
                    path: path.clone(),
                    cause: e.into(),
                })?;
            }
        }
        Ok(())
    }

    /// Temporary file, write, fsync, rename, fsync of the directory (see the module's docs).
    fn write_atomically(&self, dir: &Path, name: &str, text: &str) -> Result<()> {
        let target = dir.join(name);
        let temporary = dir.join(format!(".{name}.tmp"));
        self.fs
            .write(&temporary, text.as_bytes())
            .map_err(|e| StoreError::Write {
                path: temporary.clone(),
                cause: e.into(),
            })?;
        self.fs
            .sync_file(&temporary)
            .map_err(|e| StoreError::Sync {
                path: temporary.clone(),
                cause: e.into(),
            })?;
        self.fs
            .rename(&temporary, &target)
            .map_err(|e| StoreError::Rename {
                from: temporary.clone(),
                to: target.clone(),
                cause: e.into(),
            })?;
        self.fs.sync_dir(dir).map_err(|e| StoreError::Sync {
            path: dir.to_path_buf(),
            cause: e.into(),
        })
    }

    fn read_text(&self, path: &Path) -> Result<Option<String>> {
        let bytes = self.fs.read(path).map_err(|e| StoreError::Read {
            path: path.to_path_buf(),
            cause: e.into(),
        })?;
        bytes
            .map(|bytes| {
                String::from_utf8(bytes).map_err(|_| corrupt(path.to_path_buf(), "not UTF-8 text"))
            })
            .transpose()
    }
}

fn corrupt(path: PathBuf, why: &str) -> StoreError {
    StoreError::Corrupt {
        path,
        cause: Invalid {
            errors: vec![FieldError::new("", why)],
        },
    }
}

fn history_name(generation: Generation) -> String {
    format!("{generation}.toml")
}

/// The file's text: two comment lines, then the document.
fn render(generation: Generation, committed_at: SystemTime, state: &DesiredState) -> String {
    let seconds = committed_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    format!(
        "{HEADER_PREFIX}{generation}{HEADER_TIME}{seconds} (seconds since 1970, UTC).\n\
         # hostd writes this file and keeps earlier generations in history/: change it through cairnctl.\n\
         {}",
        state.to_toml()
    )
}

/// The generation and commit time from a file's first line.
fn parse_header(text: &str) -> Option<(Generation, SystemTime)> {
    let line = text.lines().next()?;
    let (generation, rest) = line.strip_prefix(HEADER_PREFIX)?.split_once(HEADER_TIME)?;
    let (seconds, _) = rest.split_once(' ')?;
    let generation = generation.parse().ok()?;
    let seconds = seconds.parse().ok()?;
    Some((
        Generation(generation),
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds),
    ))
}
