//! What is wrong with a desired-state document, said field by field.
//!
//! A change is refused as a whole and every error is reported at once, each with the path of
//! its field in the document (`network.bonds[0].mode`) and what would be right, so an admin
//! fixes a document in one round instead of one error per try. [`FieldError`] is that one
//! line; [`Invalid`] is the refusal carrying all of them.

use std::fmt;

/// One wrong field: `path: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where in the document, in the form `network.bonds[0].members[1]` (indices from 0).
    /// Empty for an error about the document as a whole (a TOML syntax error).
    pub path: String,
    /// What is wrong and, in parentheses, what would be right.
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A document refused, with every reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    pub errors: Vec<FieldError>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.errors.len();
        write!(
            f,
            "Invalid desired state ({count} error{})",
            if count == 1 { "" } else { "s" }
        )?;
        for error in &self.errors {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}

/// Collects the errors of one validation pass.
#[derive(Debug, Default)]
pub(crate) struct Errors(Vec<FieldError>);

impl Errors {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl fmt::Display) {
        self.0.push(FieldError::new(path, message));
    }

    /// Keeps the value or records the error at `path`.
    pub(crate) fn check<T, E: fmt::Display>(
        &mut self,
        path: impl Into<String>,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(path, error);
                None
            }
        }
    }

    /// For an optional field: `Some(None)` when absent, `Some(Some(value))` when valid and
    /// `None` (error recorded) when wrong.
    pub(crate) fn check_optional<T, E: fmt::Display>(
        &mut self,
        path: impl Into<String>,
        result: Option<Result<T, E>>,
    ) -> Option<Option<T>> {
        match result {
            None => Some(None),
            Some(result) => self.check(path, result).map(Some),
        }
    }

    /// Checks every element of a list; `None` when any is wrong (each error recorded).
    pub(crate) fn check_all<T, E: fmt::Display>(
        &mut self,
        path: &str,
        results: impl IntoIterator<Item = Result<T, E>>,
    ) -> Option<Vec<T>> {
        let checked: Vec<Option<T>> = results
            .into_iter()
            .enumerate()
            .map(|(i, result)| self.check(format!("{path}[{i}]"), result))
            .collect();
        checked.into_iter().collect()
    }

    pub(crate) fn into_result(self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid { errors: self.0 })
        }
    }
}

/// "expected one of: a, b" for the parenthesis of a message, or a note that there is nothing
/// to pick from.
pub(crate) fn expected_one_of<I, T>(items: I, what: &str) -> String
where
    I: IntoIterator<Item = T>,
    T: fmt::Display,
{
    let names: Vec<String> = items.into_iter().map(|item| item.to_string()).collect();
    if names.is_empty() {
        format!("no {what} is declared")
    } else {
        format!("expected one of: {}", names.join(", "))
    }
}
