//! What every layer of hostd needs to say about errors, whatever it is: an error printed
//! with its causes on one line ([`chain`]), and a cause that cannot be compared made
//! comparable by its text ([`ByText`]), so the error types that hold one can still derive
//! `PartialEq` and tests can assert exact errors.

use std::fmt;

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

/// A cause that holds something without `PartialEq` (an `io::Error`, a `nix::Error`),
/// compared by its whole chain. Prints and chains exactly like the error it wraps.
#[derive(Debug)]
pub struct ByText<E>(pub E);

impl<E: std::error::Error> PartialEq for ByText<E> {
    fn eq(&self, other: &Self) -> bool {
        chain(&self.0) == chain(&other.0)
    }
}

impl<E: fmt::Display> fmt::Display for ByText<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: std::error::Error> std::error::Error for ByText<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("Cannot write /x")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_joins_every_cause_and_by_text_prints_the_same() {
        let error = Outer(std::io::Error::other("No space left on device"));
        assert_eq!(chain(&error), "Cannot write /x: No space left on device");
        let wrapped = ByText(error);
        assert_eq!(chain(&wrapped), "Cannot write /x: No space left on device");
        assert_eq!(
            wrapped,
            ByText(Outer(std::io::Error::other("No space left on device")))
        );
        assert_ne!(wrapped, ByText(Outer(std::io::Error::other("other"))));
    }
}
