//! Guests' definitions as whole operations: adding one to the committed document, and
//! deleting a stopped one with its ports and, when asked, its disks. The supervisor says
//! whether a guest runs; the core changes the document; this joins them so that the bus's
//! `Guests1` only parses, calls and maps.

use super::{CoreError, LiveCore, SharedCore};
use crate::guests::error::GuestError;
use crate::guests::observe::file_kind;
use crate::guests::supervisor::Supervisor;

/// Why a guest operation failed: the core's refusal, or the supervisor's.
#[derive(Debug, thiserror::Error)]
pub enum GuestAdminError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Guest(#[from] GuestError),
    /// The blocking thread running the core's part ended without an answer (it panicked).
    #[error("The guest operation did not finish")]
    Unfinished(#[source] tokio::task::JoinError),
}

/// The daemon's guest definitions: the shared core and the supervisor.
#[derive(Debug, Clone)]
pub struct GuestAdmin {
    core: SharedCore,
    supervisor: Supervisor,
}

impl GuestAdmin {
    pub fn new(core: SharedCore, supervisor: Supervisor) -> Self {
        Self { core, supervisor }
    }

    /// Runs `work` on the core on a blocking thread: it commits to the store and may touch
    /// the drives and netlink.
    async fn on_core<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut LiveCore) -> Result<T, CoreError> + Send + 'static,
    ) -> Result<T, GuestAdminError> {
        let core = std::sync::Arc::clone(&self.core);
        Ok(
            tokio::task::spawn_blocking(move || work(&mut core.blocking_lock()))
                .await
                .map_err(GuestAdminError::Unfinished)??,
        )
    }

    /// Adds a guest (the keys of one `[[guests]]` table) to the committed document as a new
    /// generation, which it returns; refused as a whole, with every wrong field, when the
    /// document would not validate or a file it names is not there.
    pub async fn create(&self, guest: &str) -> Result<u64, GuestAdminError> {
        let (core, guest) = (std::sync::Arc::clone(&self.core), guest.to_string());
        let generation =
            tokio::task::spawn_blocking(move || core.blocking_lock().add_guest(&guest, &file_kind))
                .await
                .map_err(GuestAdminError::Unfinished)??;
        Ok(generation)
    }

    /// Deletes a stopped guest from the document (a new generation, returned), its ports,
    /// and with `remove_disks` its subvolume and every file in it; then the supervisor
    /// forgets it. Refused while it runs.
    pub async fn delete(&self, name: &str, remove_disks: bool) -> Result<u64, GuestAdminError> {
        let state = self.supervisor.state(name);
        if state.is_active() {
            return Err(GuestError::WrongState {
                name: name.to_string(),
                state,
                wanted: "stop it before deleting it (cairnctl vm stop)",
            }
            .into());
        }
        let owned = name.to_string();
        let generation = self
            .on_core(move |core| core.delete_guest(&owned, remove_disks))
            .await?;
        self.supervisor.forget(name)?;
        tracing::info!("guest {name} deleted");
        Ok(generation)
    }
}
