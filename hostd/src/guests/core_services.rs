//! What the guests ask of the core: the committed guest definitions, a guest's subvolume,
//! and its ports (taps) on the vSwitches. The core implements [`CoreServices`]
//! (`core/guest_ops.rs`); the guests never name the core, so the two do not import each
//! other.
//!
//! The core's answer to a failed request is kept whole in a [`ServiceError`]: its text is
//! the core's own (it says all there is to say, so it is not wrapped), and the wire layer
//! takes the core's error back out of it ([`ServiceError::downcast_ref`]) to give it its own
//! kind — a volume that is not mounted is "not found" whether `vm start` or `storage` met it.

use std::error::Error;
use std::fmt;
use std::path::PathBuf;

use crate::state::GuestSpec;

/// The core's services to the guests. Blocking calls: the supervisor runs them on
/// blocking threads.
pub trait CoreServices: Send + Sync + 'static {
    /// The guests of the committed document.
    fn guests(&self) -> Result<Vec<GuestSpec>, ServiceError>;
    /// The guest's subvolume on `volume` (created when missing).
    fn subvolume(&self, volume: &str, guest: &str) -> Result<PathBuf, ServiceError>;
    /// Puts the guest's tap on `vswitch`, on `vlan` or the native VLAN.
    fn attach_tap(&self, tap: &str, vswitch: &str, vlan: Option<u16>) -> Result<(), ServiceError>;
}

/// A request to the core that failed, with the core's error inside: prints and chains
/// exactly as that error does.
#[derive(Debug)]
pub struct ServiceError(Box<dyn Error + Send + Sync + 'static>);

impl ServiceError {
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }

    /// The core's error, when it is of type `E` (the wire layer's way to its kind).
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Error for ServiceError {
    /// The inner error's cause, not the inner error: the wrapper is transparent, so a
    /// chain of it does not print the core's message twice.
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("Volume tank is not mounted")]
    struct NotMounted(#[source] std::io::Error);

    #[test]
    fn the_core_error_prints_once_and_can_be_taken_back_out() {
        let error = ServiceError::new(NotMounted(std::io::Error::other("no such device")));
        assert_eq!(chain(&error), "Volume tank is not mounted: no such device");
        assert!(error.downcast_ref::<NotMounted>().is_some());
        assert!(error.downcast_ref::<std::io::Error>().is_none());
    }
}
