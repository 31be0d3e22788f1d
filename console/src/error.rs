//! An error printed with its causes on one line, the console's only shared error helper.
//! The same ten lines as hostd's `error::chain`, copied rather than imported so the console
//! does not link the daemon's library.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("Cannot write /x")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_joins_every_cause() {
        let error = Outer(std::io::Error::other("No space left on device"));
        assert_eq!(chain(&error), "Cannot write /x: No space left on device");
    }
}
