//! The `cairn.*` keys of the kernel command line (see docs/image-contract.md).
//!
//! Keys with a dot are never handed to init as arguments or environment (the kernel
//! takes them for module parameters), so /proc/cmdline is the only place to read them.

use std::io;
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    /// `cairn.board=NAME`; an empty value counts as absent.
    pub board: Option<String>,
    /// `cairn.slot=a|b`, only reported: the boot loader already chose.
    pub slot: Option<String>,
    /// `cairn.debug=shell`: an emergency shell instead of powering off.
    pub debug_shell: bool,
    /// `cairn.debug=verbose`: debug-level messages on the console.
    pub verbose: bool,
}

pub fn read(proc_root: &Path) -> io::Result<Cmdline> {
    let text = std::fs::read_to_string(proc_root.join("cmdline"))?;
    Ok(parse(&text))
}

pub fn parse(text: &str) -> Cmdline {
    let mut cmdline = Cmdline::default();
    // Later values win, as they do for the kernel's own parameters.
    for (key, value) in split_params(text) {
        let value = value.unwrap_or_default();
        match key.as_str() {
            "cairn.board" => cmdline.board = Some(value).filter(|v| !v.is_empty()),
            "cairn.slot" => cmdline.slot = Some(value).filter(|v| !v.is_empty()),
            "cairn.debug" => {
                let words: Vec<&str> = value.split(',').map(str::trim).collect();
                cmdline.debug_shell = words.contains(&"shell");
                cmdline.verbose = words.contains(&"verbose");
            }
            _ => {}
        }
    }
    cmdline
}

/// Splits like the kernel's `next_arg`: white space separates, double quotes group and
/// are dropped, and `--` ends the kernel's part (the rest is init's argv).
fn split_params(text: &str) -> Vec<(String, Option<String>)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
        .into_iter()
        .take_while(|w| w != "--")
        .map(|w| match w.split_once('=') {
            Some((key, value)) => (key.to_owned(), Some(value.to_owned())),
            None => (w, None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, Cmdline)] = &[
            ("console=ttyS0,115200\n", Cmdline::default()),
            (
                "console=ttyS0,115200 cairn.board=ds918plus\n",
                Cmdline {
                    board: Some("ds918plus".into()),
                    ..Cmdline::default()
                },
            ),
            (
                "cairn.board=a cairn.board=b",
                Cmdline {
                    board: Some("b".into()),
                    ..Cmdline::default()
                },
            ),
            ("cairn.board= quiet", Cmdline::default()),
            ("cairn.board", Cmdline::default()),
            (
                "cairn.debug=shell cairn.slot=b",
                Cmdline {
                    debug_shell: true,
                    slot: Some("b".into()),
                    ..Cmdline::default()
                },
            ),
            (
                "cairn.debug=verbose,shell",
                Cmdline {
                    debug_shell: true,
                    verbose: true,
                    ..Cmdline::default()
                },
            ),
            ("cairn.debug=shellfish", Cmdline::default()),
            ("xcairn.board=a", Cmdline::default()),
            (
                "root=/dev/ram0 \"cairn.board=qemu-x86_64\"",
                Cmdline {
                    board: Some("qemu-x86_64".into()),
                    ..Cmdline::default()
                },
            ),
            ("quiet -- cairn.board=after-dashes", Cmdline::default()),
            ("", Cmdline::default()),
        ];
        for (text, want) in cases {
            assert_eq!(&parse(text), want, "{text:?}");
        }
    }

    #[test]
    fn quotes_group_white_space() {
        assert_eq!(
            split_params("a=\"x y\" b\tc=1"),
            vec![
                ("a".to_owned(), Some("x y".to_owned())),
                ("b".to_owned(), None),
                ("c".to_owned(), Some("1".to_owned())),
            ]
        );
    }
}
