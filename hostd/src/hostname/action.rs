//! The one action of the host name, its text and its undo.

use std::fmt;

use crate::plan::{Action, Undo};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_both_names_and_the_undo_swaps_them() {
        let action = SetHostname {
            from: "cairn".into(),
            to: "nas1".into(),
        };
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
}
