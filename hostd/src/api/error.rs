//! The only file of hostd that knows `org.cairn.Error.*`: the one exhaustive match from each
//! typed error of hostd to the wire error ([`HostError`], defined in cairn-api, the contract
//! the client shares). A new variant of
//! [`CoreError`] or [`GuestError`] does not compile until it is given its wire name here.
//!
//! The name decides what a client makes of it: cairnctl exits 2 for the caller's mistakes
//! ([`HostError::is_bad_input`]) and 1 for failures. The message is the error with its causes
//! on one line ([`chain`]), except for a refused document, whose path-level messages come one
//! per line.

use crate::core::guest_admin::GuestAdminError;
use crate::core::{CoreError, LinkWait};
use crate::error::chain;
use crate::guests::error::GuestError;
use crate::jobs::NotRunning;
use crate::network::taps::TapError;

pub use cairn_api::HostError;

impl From<CoreError> for HostError {
    fn from(error: CoreError) -> Self {
        Self::from(&error)
    }
}

impl From<&CoreError> for HostError {
    /// The one place core errors become wire errors (jobs keep theirs, so this maps a
    /// borrowed one).
    fn from(error: &CoreError) -> Self {
        let text = chain(error);
        match error {
            CoreError::Refused(invalid) => {
                let lines: Vec<String> = invalid.errors.iter().map(ToString::to_string).collect();
                Self::Invalid(lines.join("\n"))
            }
            CoreError::BadValue { .. }
            | CoreError::NoMissingDrive { .. }
            | CoreError::NotAMember { .. }
            | CoreError::NoSuchDrive { .. }
            | CoreError::BootDrive { .. }
            | CoreError::NotBlank { .. }
            | CoreError::CannotRemove { .. }
            | CoreError::GuestFiles { .. } => Self::Invalid(text),
            CoreError::UnknownBoard { .. }
            | CoreError::UnknownGeneration { .. }
            | CoreError::NoSuchVolume { .. }
            | CoreError::NotMounted { .. }
            | CoreError::NoSuchGuest { .. } => Self::NotFound(text),
            CoreError::Store(_) => Self::Storage(text),
            CoreError::Observe(_)
            | CoreError::NoDrives { .. }
            | CoreError::Measure(_)
            | CoreError::NoUsedLine { .. } => Self::System(text),
            CoreError::Act(_) | CoreError::Apply { .. } | CoreError::Storage(_) => {
                Self::ApplyFailed(text)
            }
            CoreError::Cancelled { .. } => Self::Cancelled(text),
            CoreError::Unconfirmed { why, .. } => match why {
                LinkWait::Cancelled { .. } => Self::Cancelled(text),
                LinkWait::NoLink { .. } | LinkWait::NoLease { .. } => Self::ApplyFailed(text),
            },
            CoreError::ApplyBusy { .. } | CoreError::StorageBusy { .. } => Self::Busy(text),
            CoreError::DropsRunningGuests { .. } => Self::WrongState(text),
            CoreError::Subvolume(subvolume) => {
                if subvolume.0.is_bad_input() {
                    Self::Invalid(text)
                } else {
                    Self::ApplyFailed(text)
                }
            }
            CoreError::Tap(tap) => match tap {
                TapError::NoSuchTap(_) => Self::NotFound(text),
                TapError::UnknownVSwitch { .. }
                | TapError::VSwitchMissing(_)
                | TapError::NotATap(_) => Self::Invalid(text),
            },
        }
    }
}

impl From<GuestAdminError> for HostError {
    fn from(error: GuestAdminError) -> Self {
        match error {
            GuestAdminError::Core(core) => Self::from(core),
            GuestAdminError::Guest(guest) => Self::from(guest),
            GuestAdminError::Unfinished(join) => Self::unfinished(&join),
        }
    }
}

impl From<GuestError> for HostError {
    /// The one place guest errors become wire errors; a core error the supervisor met on
    /// its way keeps its own kind (a volume that is not mounted is `NotFound`).
    fn from(error: GuestError) -> Self {
        let text = chain(&error);
        match error {
            // The core is the only implementation of the guests' `CoreServices` in hostd,
            // so its answer is a `CoreError`; anything else (a test double) is a failure.
            GuestError::Core(service) => match service.downcast_ref::<CoreError>() {
                Some(core) => Self::from(core),
                None => Self::ApplyFailed(text),
            },
            GuestError::NotFound(_) => Self::NotFound(text),
            GuestError::WrongState { .. } | GuestError::ShuttingDown => Self::WrongState(text),
            GuestError::Refused(_) => Self::Refused(text),
            GuestError::Files { .. } => Self::Invalid(text),
            GuestError::NoHypervisor(_)
            | GuestError::Api { .. }
            | GuestError::StartFailed { .. }
            | GuestError::Unfinished(_) => Self::ApplyFailed(text),
        }
    }
}

impl From<NotRunning> for HostError {
    fn from(error: NotRunning) -> Self {
        Self::Invalid(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guests::core_services::ServiceError;

    #[test]
    fn a_volume_that_is_not_mounted_reaches_a_guest_client_as_not_found() {
        let not_mounted = CoreError::NotMounted {
            volume: "tank".into(),
            path: "/mnt/volumes/0".into(),
        };
        let error = HostError::from(GuestError::from(ServiceError::new(not_mounted)));
        assert!(
            matches!(&error, HostError::NotFound(m)
                if m == "Volume tank is not mounted at /mnt/volumes/0 (see `cairnctl status` and `cairnctl storage volume`)"),
            "{error:?}"
        );
        assert!(error.is_bad_input());
        assert_eq!(error.name(), "org.cairn.Error.NotFound");
        let unknown = HostError::from(GuestError::from(ServiceError::new(
            CoreError::NoSuchVolume {
                name: "pool".into(),
                known: vec!["tank".into()],
            },
        )));
        assert!(
            matches!(&unknown, HostError::NotFound(m)
                if m == r#"There is no volume "pool" in the committed document (it has: tank)"#),
            "{unknown:?}"
        );
    }

    #[test]
    fn a_failed_start_is_a_failure_with_its_step_and_a_refused_one_the_callers_mistake() {
        use crate::guests::execute::LaunchError;
        use crate::guests::plan::Refused;
        let failed = HostError::from(GuestError::StartFailed {
            name: "g1".into(),
            source: LaunchError::ExitedAtOnce,
        });
        assert!(
            matches!(&failed, HostError::ApplyFailed(m)
                if m == r#"Guest "g1" did not start: cloud-hypervisor exited at once"#),
            "{failed:?}"
        );
        assert!(!failed.is_bad_input());
        let stopping = HostError::from(GuestError::from(Refused::ShuttingDown));
        assert_eq!(stopping.name(), "org.cairn.Error.WrongState");
        assert!(stopping.is_bad_input());
    }

    #[test]
    fn a_link_window_cancelled_is_cancelled_and_one_that_timed_out_failed() {
        let unconfirmed = |why| CoreError::Unconfirmed {
            why,
            undone: 2,
            not_undone: Vec::new(),
            restored: crate::core::Restored::Unchanged,
        };
        let cancelled = HostError::from(unconfirmed(LinkWait::Cancelled {
            interface: "mgmt".into(),
        }));
        assert!(
            matches!(&cancelled, HostError::Cancelled(m)
                if m == "Rolled back (2 undo steps): cancelled while confirming the management link on mgmt"),
            "{cancelled:?}"
        );
        let timed_out = HostError::from(unconfirmed(LinkWait::NoLink {
            interface: "mgmt".into(),
            seconds: 120,
        }));
        assert!(
            matches!(&timed_out, HostError::ApplyFailed(m)
                if m.ends_with("the management interface mgmt had no link within 120 s")),
            "{timed_out:?}"
        );
    }
}
