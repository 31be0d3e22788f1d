//! Pure: the host name the document asks for, and the action that gets there.

use super::action::SetHostname;
use crate::state::Hostname;

/// The name init gives the appliance before hostd runs (`init/src/boot.rs`).
pub const DEFAULT_HOSTNAME: &str = "cairn";

/// The name the document asks for.
pub fn desired(hostname: Option<&Hostname>) -> String {
    hostname.map_or_else(
        || DEFAULT_HOSTNAME.to_string(),
        |name| name.as_str().to_string(),
    )
}

/// The action that takes `observed` to `desired`, if they differ.
pub fn plan(desired: &str, observed: &str) -> Option<SetHostname> {
    (desired != observed).then(|| SetHostname {
        from: observed.to_string(),
        to: desired.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Hostname {
        Hostname::try_from(text.to_string()).expect("a valid host name")
    }

    #[test]
    fn a_different_name_is_one_action() {
        assert_eq!(
            plan("nas1", "cairn"),
            Some(SetHostname {
                from: "cairn".into(),
                to: "nas1".into()
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
}
