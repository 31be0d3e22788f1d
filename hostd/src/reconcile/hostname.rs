//! The host name: the first subsystem that acts on the box.
//!
//! Desired: `hostname` in the document, or [`DEFAULT_HOSTNAME`] (what init sets at boot)
//! when the document has none, so that removing the key undoes an earlier change. Observed:
//! `/proc/sys/kernel/hostname`. One action at most.

use std::fmt;
use std::path::Path;

use crate::plan::{Action, Undo};
use crate::state::Hostname;

/// The name init gives the box before hostd runs (`init/src/boot.rs`).
pub const DEFAULT_HOSTNAME: &str = "cairn";

/// Where the kernel shows the current host name.
pub const PROC_HOSTNAME: &str = "/proc/sys/kernel/hostname";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetHostname {
    pub from: String,
    pub to: String,
}

impl fmt::Display for SetHostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "set the host name from {:?} to {:?}", self.from, self.to)
    }
}

impl Action for SetHostname {
    fn undo(&self) -> Undo<Self> {
        Undo::Run(Self {
            from: self.to.clone(),
            to: self.from.clone(),
        })
    }
}

/// The name the document asks for.
pub fn desired(hostname: Option<&Hostname>) -> String {
    hostname.map_or_else(
        || DEFAULT_HOSTNAME.to_string(),
        |name| name.as_str().to_string(),
    )
}

/// Pure: the action that takes `observed` to `desired`, if they differ.
pub fn plan(desired: &str, observed: &str) -> Option<SetHostname> {
    (desired != observed).then(|| SetHostname {
        from: observed.to_string(),
        to: desired.to_string(),
    })
}

/// Reads the current host name from a file shaped like `/proc/sys/kernel/hostname`.
pub fn observe(path: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim_end().to_string())
}

/// Sets the kernel's host name; `sethostname(2)` either takes the whole name or nothing.
pub fn execute(action: &SetHostname) -> nix::Result<()> {
    nix::unistd::sethostname(&action.to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Hostname {
        Hostname::try_from(text.to_string()).expect("a valid host name")
    }

    #[test]
    fn a_different_name_is_one_action_and_its_undo_swaps_back() {
        let action = plan("nas1", "cairn").expect("names differ");
        assert_eq!(
            action.to_string(),
            r#"set the host name from "cairn" to "nas1""#
        );
        assert_eq!(
            action.undo(),
            Undo::Run(SetHostname {
                from: "nas1".into(),
                to: "cairn".into()
            })
        );
    }

    #[test]
    fn the_same_name_needs_nothing() {
        assert_eq!(plan("nas1", "nas1"), None);
    }

    #[test]
    fn a_document_without_a_name_wants_the_default_back() {
        assert_eq!(desired(None), DEFAULT_HOSTNAME);
        assert_eq!(desired(Some(&name("nas1"))), "nas1");
        assert_eq!(
            plan(&desired(None), "nas1"),
            Some(SetHostname {
                from: "nas1".into(),
                to: "cairn".into()
            })
        );
    }

    #[test]
    fn observe_trims_the_kernels_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("hostname");
        std::fs::write(&file, "nas1\n").expect("write");
        assert_eq!(observe(&file).expect("read"), "nas1");
    }
}
