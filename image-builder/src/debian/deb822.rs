//! A small parser for deb822, the "RFC 822-like" format of Debian's `Release`/`InRelease`
//! files, `Packages` indexes and apt's `*.sources` files.
//!
//! Why our own and not a crate: we need one narrow thing — paragraphs of `Field: value`
//! lines with continuation lines — over a *stream* (the amd64 `Packages` index is 57 MB
//! decompressed, and we keep only a few fields of each paragraph). The maintained crates
//! (`deb822-lossless`, `debian-control`) are lossless editors built on a syntax tree that
//! holds the whole file; that is the wrong shape here and a large dependency for ~100 lines.
//!
//! Rules implemented (deb822(5)): paragraphs are separated by lines that are empty or only
//! whitespace; a line starting with space or tab continues the previous field; a line starting
//! with `#` is a comment; field names are case-insensitive and may not repeat in a paragraph.
//! A continuation line is kept as `"\n"` + the line without its surrounding whitespace, which
//! is what every multi-line field we read (`SHA256`, `Description`, folded `Depends`) needs.

use std::io::BufRead;

/// One paragraph: its fields in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paragraph {
    /// 1-based line number of the paragraph's first field, for error messages.
    pub line: usize,
    fields: Vec<(String, String)>,
}

impl Paragraph {
    /// The value of `name` (compared case-insensitively, as deb822 requires).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Why a deb822 document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Deb822Error {
    #[error("Line {line}: {reason}")]
    Syntax { line: usize, reason: &'static str },
    #[error("Reading line {line} failed")]
    Read {
        line: usize,
        #[source]
        source: std::io::Error,
    },
}

/// Streams paragraphs out of a reader, one at a time.
pub struct Paragraphs<R> {
    reader: R,
    line: usize,
    buffer: String,
    failed: bool,
}

impl<R: BufRead> Paragraphs<R> {
    pub fn new(reader: R) -> Self {
        Paragraphs {
            reader,
            line: 0,
            buffer: String::new(),
            failed: false,
        }
    }

    fn next_paragraph(&mut self) -> Result<Option<Paragraph>, Deb822Error> {
        let mut paragraph: Option<Paragraph> = None;
        loop {
            self.buffer.clear();
            let read =
                self.reader
                    .read_line(&mut self.buffer)
                    .map_err(|source| Deb822Error::Read {
                        line: self.line + 1,
                        source,
                    })?;
            if read == 0 {
                return Ok(paragraph);
            }
            self.line += 1;
            let text = self.buffer.trim_end_matches(['\n', '\r']);

            if text.trim().is_empty() {
                if paragraph.is_some() {
                    return Ok(paragraph);
                }
                continue;
            }
            if text.starts_with('#') {
                continue;
            }
            if text.starts_with([' ', '\t']) {
                let Some((_, value)) = paragraph.as_mut().and_then(|p| p.fields.last_mut()) else {
                    return Err(Deb822Error::Syntax {
                        line: self.line,
                        reason: "continuation line without a field before it",
                    });
                };
                value.push('\n');
                value.push_str(text.trim());
                continue;
            }
            let Some((name, value)) = text.split_once(':') else {
                return Err(Deb822Error::Syntax {
                    line: self.line,
                    reason: "expected `Field: value`",
                });
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(Deb822Error::Syntax {
                    line: self.line,
                    reason: "invalid field name",
                });
            }
            let paragraph = paragraph.get_or_insert_with(|| Paragraph {
                line: self.line,
                fields: Vec::new(),
            });
            if paragraph.get(name).is_some() {
                return Err(Deb822Error::Syntax {
                    line: self.line,
                    reason: "field appears twice in one paragraph",
                });
            }
            paragraph
                .fields
                .push((name.to_owned(), value.trim().to_owned()));
        }
    }
}

impl<R: BufRead> Iterator for Paragraphs<R> {
    type Item = Result<Paragraph, Deb822Error>;

    fn next(&mut self) -> Option<Self::Item> {
        // After an error the reader is at an unknown position: stop instead of producing
        // paragraphs that may be fragments.
        if self.failed {
            return None;
        }
        let next = self.next_paragraph().transpose();
        if matches!(next, Some(Err(_))) {
            self.failed = true;
        }
        next
    }
}

/// Parses a whole document held in memory.
pub fn parse_str(text: &str) -> Result<Vec<Paragraph>, Deb822Error> {
    Paragraphs::new(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paragraphs_and_continuation_lines() {
        let text = "\
Package: libc6
Version: 2.41-12
Depends: libgcc-s1,
 libidn2-0 (>= 2.0)
Description: GNU C Library: Shared libraries
 Contains the standard libraries.
 .
 More text.

\t
Package: busybox-static
Section: shells
";
        let paragraphs = parse_str(text).expect("valid deb822");
        assert_eq!(paragraphs.len(), 2);
        let libc = &paragraphs[0];
        assert_eq!(libc.line, 1);
        assert_eq!(libc.get("package"), Some("libc6"));
        assert_eq!(libc.get("Depends"), Some("libgcc-s1,\nlibidn2-0 (>= 2.0)"));
        assert_eq!(
            libc.get("Description"),
            Some(
                "GNU C Library: Shared libraries\nContains the standard libraries.\n.\nMore text."
            )
        );
        assert_eq!(paragraphs[1].line, 11);
        assert_eq!(paragraphs[1].get("Section"), Some("shells"));
        assert_eq!(paragraphs[1].get("Version"), None);
    }

    #[test]
    fn field_with_empty_first_line_collects_its_lines() {
        let text = "SHA256:\n abc 12 main/x\n def 34 main/y\r\nCodename: trixie\r\n";
        let paragraphs = parse_str(text).expect("valid deb822");
        assert_eq!(
            paragraphs[0].get("SHA256"),
            Some("\nabc 12 main/x\ndef 34 main/y")
        );
        assert_eq!(paragraphs[0].get("Codename"), Some("trixie"));
    }

    #[test]
    fn comments_and_surrounding_blank_lines_are_ignored() {
        let text =
            "\n\n# apt sources\nTypes: deb\n# inside\nURIs: http://mirror.invalid/debian\n\n\n";
        let paragraphs = parse_str(text).expect("valid deb822");
        assert_eq!(paragraphs.len(), 1);
        assert_eq!(
            paragraphs[0].get("URIs"),
            Some("http://mirror.invalid/debian")
        );
    }

    #[test]
    fn empty_document_has_no_paragraphs() {
        assert!(parse_str("").expect("empty is valid").is_empty());
        assert!(parse_str("\n \n").expect("blank is valid").is_empty());
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let cases = [
            (
                " orphan\n",
                1,
                "continuation line without a field before it",
            ),
            ("Package: a\nnot a field\n", 2, "expected `Field: value`"),
            (
                "Package: a\npackage: b\n",
                2,
                "field appears twice in one paragraph",
            ),
            ("Bad Name: x\n", 1, "invalid field name"),
        ];
        for (text, want_line, want_reason) in cases {
            match parse_str(text) {
                Err(Deb822Error::Syntax { line, reason }) => {
                    assert_eq!((line, reason), (want_line, want_reason), "{text:?}");
                }
                other => panic!("{text:?}: expected a syntax error, got {other:?}"),
            }
        }
    }

    #[test]
    fn iteration_stops_after_an_error() {
        let mut paragraphs = Paragraphs::new("Package: a\n\n oops\n\nPackage: b\n".as_bytes());
        assert!(matches!(paragraphs.next(), Some(Ok(_))));
        assert!(matches!(paragraphs.next(), Some(Err(_))));
        assert!(paragraphs.next().is_none());
    }
}
