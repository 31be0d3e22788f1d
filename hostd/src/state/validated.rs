//! A value that passed validation, and can be made no other way: what the store commits and
//! an apply acts on, so neither checks again. To change one, take the value out, edit it, and
//! validate it again.

use std::ops::Deref;

use super::{DesiredState, Invalid};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated<T>(T);

impl<T> Validated<T> {
    /// The value, to edit; only validating it again makes it `Validated` once more.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Validated<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl Default for Validated<DesiredState> {
    /// The empty document, valid by construction.
    fn default() -> Self {
        Self(DesiredState::default())
    }
}

impl DesiredState {
    /// Parses a document: every pass of validation runs in the parse, so the result is
    /// validated without a second look.
    pub fn parse(text: &str) -> Result<Validated<Self>, Invalid> {
        Self::from_toml(text).map(Validated)
    }

    /// Validates a document built or edited in code.
    pub fn validated(self) -> Result<Validated<Self>, Invalid> {
        self.validate()?;
        Ok(Validated(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_valid_document_becomes_validated() {
        let parsed = DesiredState::parse("version = 1\nhostname = \"nas1\"\n").expect("valid");
        assert_eq!(parsed.hostname.as_ref().map(|h| h.as_str()), Some("nas1"));
        let mut edited = parsed.into_inner();
        edited.version = 2;
        let refused = edited.validated().expect_err("a wrong version");
        assert_eq!(
            refused.errors[0].to_string(),
            "version: unsupported version 2 (expected 1)"
        );
        assert!(DesiredState::parse("version = 2\n").is_err());
        assert_eq!(
            *Validated::<DesiredState>::default(),
            DesiredState::default()
        );
    }
}
