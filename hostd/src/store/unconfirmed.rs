//! The marker of a safe apply still waiting for its management link: `unconfirmed.toml`
//! beside `state.toml`, naming the generation to go back to.
//!
//! A safe apply commits before it acts, so a hostd killed (or a box that lost power) inside
//! the confirm window would otherwise come back into a network change nobody confirmed —
//! possibly the one that cut the administrator off. Like a router's confirmed commit, a
//! restart inside the window therefore counts as "not confirmed": on start-up hostd sees the
//! marker and commits the generation it names again before it reconciles.
//!
//! The marker is written (durably) before the commit and removed after the confirmation or
//! the rollback, so every crash point is covered: before the commit the current generation
//! already is the one to go back to and nothing changes; after it, the marker takes it back.

use super::{Filesystem, Generation, Result, StateStore, StoreError, corrupt};

const MARKER_FILE: &str = "unconfirmed.toml";
const MARKER_HEADER: &str = "# Cairn: an apply that was waiting for its management link to be \
confirmed; hostd goes back to this generation if it starts while this file exists\n";
const BACK_TO_KEY: &str = "back_to = ";
/// `back_to` when there was no document before: going back means committing the empty one.
const NO_GENERATION: &str = "\"empty\"";

/// What the marker says: the generation that was current before the unconfirmed apply, or
/// `None` when there was none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unconfirmed {
    pub back_to: Option<Generation>,
}

impl<F: Filesystem> StateStore<F> {
    /// Durably records that an apply which must be confirmed is about to commit.
    pub fn mark_unconfirmed(&self, back_to: Option<Generation>) -> Result<()> {
        let value = back_to.map_or_else(|| NO_GENERATION.to_string(), |g| g.to_string());
        let text = format!("{MARKER_HEADER}{BACK_TO_KEY}{value}\n");
        self.write_atomically(&self.dir, MARKER_FILE, &text)
    }

    /// The marker left by an apply that neither confirmed nor rolled back.
    pub fn unconfirmed(&self) -> Result<Option<Unconfirmed>> {
        let path = self.dir.join(MARKER_FILE);
        let Some(text) = self.read_text(&path)? else {
            return Ok(None);
        };
        let value = text
            .lines()
            .find_map(|line| line.strip_prefix(BACK_TO_KEY))
            .map(str::trim);
        let back_to = match value {
            Some(NO_GENERATION) => None,
            Some(number) => match number.parse::<u64>() {
                Ok(number) => Some(Generation::new(number)),
                Err(_) => return Err(corrupt(path, "back_to is not a generation number")),
            },
            None => return Err(corrupt(path, "it has no back_to line")),
        };
        Ok(Some(Unconfirmed { back_to }))
    }

    /// Removes the marker: the apply was confirmed or already rolled back.
    pub fn clear_unconfirmed(&self) -> Result<()> {
        let path = self.dir.join(MARKER_FILE);
        if self.read_text(&path)?.is_none() {
            return Ok(());
        }
        self.fs.remove(&path).map_err(|e| StoreError::Remove {
            path: path.clone(),
            cause: e.into(),
        })?;
        self.fs.sync_dir(&self.dir).map_err(|e| StoreError::Sync {
            path: self.dir.clone(),
            cause: e.into(),
        })
    }
}
