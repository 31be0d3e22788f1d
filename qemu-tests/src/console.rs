//! The serial console, driven expect-style.
//!
//! A reader thread appends everything the guest sends to a shared transcript and wakes
//! waiters through a condition variable: [`Console::wait_for`] blocks until its text has
//! arrived or its deadline has passed, with no sleeps and no polling.
//!
//! The transcript is the text a person would read: carriage returns, ANSI escape
//! sequences (firmware and shell line editing are full of them) and other control
//! characters are dropped, and UTF-8 split across reads is reassembled. The exact bytes
//! are in QEMU's `console.log`.
//!
//! A cursor marks how far the test has consumed. A successful wait moves it past the
//! match, so one line never satisfies two waits. Output arrives from several writers at
//! once (init's messages land in the middle of a shell command's output), so
//! [`Console::position`] and [`Console::seek`] let a test look again at what arrived
//! while it waited for something else.
//!
//! Two ways to match: [`Console::wait_for`] searches the stream as it is, partial last
//! line included (needed for prompts, which end without a newline); [`Console::wait_for_line`]
//! applies the pattern to complete lines only, so a regex capturing a number at the end of
//! a line never sees half of it.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use regex::Regex;
use thiserror::Error;

/// How many transcript lines an error carries: enough to see the last boot messages or
/// the failing command without flooding the test output.
pub const TAIL_LINES: usize = 40;

#[derive(Debug, Error)]
pub enum ConsoleError {
    #[error(
        "Timed out after {waited:?} waiting for {pattern} on the serial console; its last lines:\n{tail}"
    )]
    Timeout {
        pattern: String,
        waited: Duration,
        tail: String,
    },
    #[error(
        "The serial console closed (QEMU exited?) while waiting for {pattern}; its last lines:\n{tail}"
    )]
    Closed { pattern: String, tail: String },
    #[error("Cannot write to the serial console")]
    Write(#[source] io::Error),
    #[error("Cannot set up the serial console reader")]
    Setup(#[source] io::Error),
}

/// What to look for: literal text, or a regex (line-anchored `^`/`$` work with
/// [`Console::wait_for_line`]).
#[derive(Debug, Clone)]
pub enum Pattern {
    Literal(String),
    Regex(Regex),
}

impl From<&str> for Pattern {
    fn from(text: &str) -> Self {
        Self::Literal(text.to_owned())
    }
}

impl From<String> for Pattern {
    fn from(text: String) -> Self {
        Self::Literal(text)
    }
}

impl From<Regex> for Pattern {
    fn from(regex: Regex) -> Self {
        Self::Regex(regex)
    }
}

impl From<&Regex> for Pattern {
    fn from(regex: &Regex) -> Self {
        Self::Regex(regex.clone())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Literal(text) => write!(f, "{text:?}"),
            Self::Regex(regex) => write!(f, "/{}/", regex.as_str()),
        }
    }
}

impl Pattern {
    /// Byte range of the match in `haystack` and its capture groups.
    fn find(&self, haystack: &str) -> Option<(usize, usize, Vec<Option<String>>)> {
        match self {
            Self::Literal(text) => haystack
                .find(text.as_str())
                .map(|start| (start, start + text.len(), vec![Some(text.clone())])),
            Self::Regex(regex) => regex.captures(haystack).and_then(|caps| {
                let whole = caps.get(0)?;
                let groups = caps
                    .iter()
                    .map(|g| g.map(|m| m.as_str().to_owned()))
                    .collect();
                Some((whole.start(), whole.end(), groups))
            }),
        }
    }

    fn names(&self) -> Vec<Option<String>> {
        match self {
            Self::Literal(_) => vec![None],
            Self::Regex(regex) => regex
                .capture_names()
                .map(|n| n.map(str::to_owned))
                .collect(),
        }
    }
}

/// A successful wait: where it matched in the transcript and what the groups captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    start: usize,
    end: usize,
    groups: Vec<Option<String>>,
    names: Vec<Option<String>>,
    line: Option<String>,
}

impl Match {
    /// The matched text (group 0).
    pub fn as_str(&self) -> &str {
        self.get(0).unwrap_or_default()
    }

    /// Capture group `index` (0 is the whole match).
    pub fn get(&self, index: usize) -> Option<&str> {
        self.groups.get(index)?.as_deref()
    }

    /// Named capture group.
    pub fn name(&self, name: &str) -> Option<&str> {
        let index = self.names.iter().position(|n| n.as_deref() == Some(name))?;
        self.get(index)
    }

    /// The whole line, for matches made by [`Console::wait_for_line`].
    pub fn line(&self) -> Option<&str> {
        self.line.as_deref()
    }

    /// Transcript offset where the match (for line matches: the line) starts.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Transcript offset just past the match (for line matches: past the newline).
    pub fn end(&self) -> usize {
        self.end
    }
}

#[derive(Default)]
struct State {
    text: String,
    /// Set once the reader has stopped: EOF (QEMU exited) or a read error.
    closed: Option<String>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves the text intact; keep using it
        // so the teardown can still print the transcript.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The guest's serial console.
pub struct Console {
    writer: UnixStream,
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
    cursor: usize,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// Takes over a connected stream (QEMU's serial socket, or one end of a
    /// `UnixStream::pair()` in tests) and starts reading it.
    pub fn new(stream: UnixStream) -> Result<Self, ConsoleError> {
        let reader_stream = stream.try_clone().map_err(ConsoleError::Setup)?;
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let reader = std::thread::Builder::new()
            .name("serial-console".into())
            .spawn(move || read_loop(reader_stream, &thread_shared))
            .map_err(ConsoleError::Setup)?;
        Ok(Self {
            writer: stream,
            shared,
            reader: Some(reader),
            cursor: 0,
        })
    }

    /// Waits until `pattern` appears after the cursor, anywhere in the stream (a partial
    /// last line included), and moves the cursor past it.
    pub fn wait_for(
        &mut self,
        pattern: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<Match, ConsoleError> {
        let pattern = pattern.into();
        let cursor = self.cursor;
        let found = self.wait_until(&pattern, timeout, |text| {
            let (start, end, groups) = pattern.find(&text[cursor..])?;
            Some(Match {
                start: cursor + start,
                end: cursor + end,
                groups,
                names: pattern.names(),
                line: None,
            })
        })?;
        self.cursor = found.end;
        Ok(found)
    }

    /// Waits until a complete line after the cursor matches `pattern`, and moves the
    /// cursor past that line. The pattern sees one line at a time, without its newline.
    pub fn wait_for_line(
        &mut self,
        pattern: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<Match, ConsoleError> {
        let pattern = pattern.into();
        // Lines already checked in an earlier wake-up of this wait need no second look.
        let mut from = self.cursor;
        let found = self.wait_until(&pattern, timeout, |text| {
            let complete = text[from..].rfind('\n').map(|i| from + i + 1)?;
            let mut line_start = from;
            for line in text[from..complete].split_inclusive('\n') {
                let body = line.strip_suffix('\n').unwrap_or(line);
                if let Some((_, _, groups)) = pattern.find(body) {
                    return Some(Match {
                        start: line_start,
                        end: line_start + line.len(),
                        groups,
                        names: pattern.names(),
                        line: Some(body.to_owned()),
                    });
                }
                line_start += line.len();
            }
            from = complete;
            None
        })?;
        self.cursor = found.end;
        Ok(found)
    }

    fn wait_until<F>(
        &self,
        pattern: &Pattern,
        timeout: Duration,
        mut check: F,
    ) -> Result<Match, ConsoleError>
    where
        F: FnMut(&str) -> Option<Match>,
    {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut state = self.shared.lock();
        loop {
            if let Some(found) = check(&state.text) {
                return Ok(found);
            }
            if state.closed.is_some() {
                return Err(ConsoleError::Closed {
                    pattern: pattern.to_string(),
                    tail: tail_of(&state.text, TAIL_LINES),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ConsoleError::Timeout {
                    pattern: pattern.to_string(),
                    waited: now - started,
                    tail: tail_of(&state.text, TAIL_LINES),
                });
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Sends bytes as typed, without a newline.
    pub fn send(&mut self, text: &str) -> Result<(), ConsoleError> {
        self.writer
            .write_all(text.as_bytes())
            .and_then(|()| self.writer.flush())
            .map_err(ConsoleError::Write)
    }

    /// Sends one line. `\n` rather than `\r`: a tty with ICRNL (the default) and a raw
    /// one both take it as the end of the line.
    pub fn send_line(&mut self, line: &str) -> Result<(), ConsoleError> {
        self.send(&format!("{line}\n"))
    }

    /// The cursor: everything before it has been consumed by earlier waits.
    pub fn position(&self) -> usize {
        self.cursor
    }

    /// Moves the cursor, e.g. back to a [`Console::position`] taken before a command
    /// whose asynchronous effects should be looked for from there.
    pub fn seek(&mut self, position: usize) {
        let len = self.shared.lock().text.len();
        self.cursor = position.min(len);
    }

    /// Moves the cursor to the end of what has arrived so far.
    pub fn skip_to_end(&mut self) {
        self.cursor = self.shared.lock().text.len();
    }

    /// Everything received so far (normalised text).
    pub fn transcript(&self) -> String {
        self.shared.lock().text.clone()
    }

    /// Transcript text between two offsets (as returned by [`Match::start`]/[`Match::end`]).
    pub fn slice(&self, start: usize, end: usize) -> String {
        let state = self.shared.lock();
        let end = end.min(state.text.len());
        state
            .text
            .get(start.min(end)..end)
            .unwrap_or_default()
            .to_owned()
    }

    /// The last `lines` lines of the transcript.
    pub fn tail(&self, lines: usize) -> String {
        tail_of(&self.shared.lock().text, lines)
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        // Wakes the reader (read returns 0) so it can be joined; errors only mean the
        // socket is already gone.
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn read_loop(mut stream: UnixStream, shared: &Shared) {
    let mut normalizer = Normalizer::default();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break "end of stream".to_owned(),
            Ok(n) => {
                let text = normalizer.push(&buf[..n]);
                if !text.is_empty() {
                    shared.lock().text.push_str(&text);
                    shared.changed.notify_all();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break format!("read error: {e}"),
        }
    };
    shared.lock().closed = Some(closed);
    shared.changed.notify_all();
}

fn tail_of(text: &str, lines: usize) -> String {
    let mut start = text.len();
    // Count back over `lines` newlines, ignoring a trailing one.
    let trimmed = text.strip_suffix('\n').unwrap_or(text);
    let mut seen = 0;
    for (i, c) in trimmed.char_indices().rev() {
        if c == '\n' {
            seen += 1;
            if seen == lines {
                start = i + 1;
                break;
            }
        }
    }
    if seen < lines {
        start = 0;
    }
    text[start..].to_owned()
}

/// Where the escape-sequence filter is between two reads.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Start,
    /// In a CSI sequence (`ESC [` … final byte 0x40–0x7e).
    Csi,
    /// In an OSC string (`ESC ]` … BEL or `ESC \`).
    Osc,
    /// ESC seen inside an OSC string.
    OscEsc,
    /// One more byte to skip (`ESC (` / `ESC )` charset designations).
    SkipOne,
}

/// Turns the raw byte stream into readable text, keeping state across reads.
#[derive(Debug, Default)]
struct Normalizer {
    /// Bytes of a UTF-8 sequence cut by the end of the previous read.
    pending: Vec<u8>,
    escape: Escape,
}

impl Normalizer {
    fn push(&mut self, bytes: &[u8]) -> String {
        let decoded = self.decode(bytes);
        let mut out = String::with_capacity(decoded.len());
        for c in decoded.chars() {
            self.escape = match (self.escape, c) {
                (Escape::None, '\u{1b}') => Escape::Start,
                (Escape::None, '\n' | '\t') => {
                    out.push(c);
                    Escape::None
                }
                // CR, BEL, backspace, DEL and the rest: not text.
                (Escape::None, c) if c.is_control() => Escape::None,
                (Escape::None, c) => {
                    out.push(c);
                    Escape::None
                }
                (Escape::Start, '[') => Escape::Csi,
                (Escape::Start, ']') => Escape::Osc,
                (Escape::Start, '(' | ')') => Escape::SkipOne,
                (Escape::Start, _) | (Escape::SkipOne, _) => Escape::None,
                (Escape::Csi, '\u{40}'..='\u{7e}') => Escape::None,
                (Escape::Csi, _) => Escape::Csi,
                (Escape::Osc, '\u{7}') => Escape::None,
                (Escape::Osc, '\u{1b}') => Escape::OscEsc,
                (Escape::Osc, _) => Escape::Osc,
                (Escape::OscEsc, '\\') => Escape::None,
                (Escape::OscEsc, _) => Escape::Osc,
            };
        }
        out
    }

    fn decode(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    out.push_str(text);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                        // Cut short by the end of this read: finish it next time.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Console, UnixStream) {
        let (ours, guest) = UnixStream::pair().expect("socketpair");
        (Console::new(ours).expect("console"), guest)
    }

    fn regex(re: &str) -> Regex {
        Regex::new(re).expect("test regex")
    }

    #[test]
    fn normalizer_strips_escapes_and_cr_across_split_reads() {
        let mut n = Normalizer::default();
        let mut out = String::new();
        // "é" is 0xc3 0xa9: split between reads, as is the CSI sequence.
        for chunk in [
            &b"boot \xc3"[..],
            b"\xa9\x1b[",
            b"1;32mok\x1b[0m\r\n",
            b"\x1b(Bx\x07\x08y\x1b]0;title\x07z\n",
        ] {
            out.push_str(&n.push(chunk));
        }
        assert_eq!(out, "boot éok\nxyz\n");
    }

    #[test]
    fn normalizer_replaces_invalid_utf8() {
        let mut n = Normalizer::default();
        assert_eq!(n.push(b"a\xffb\n"), "a\u{fffd}b\n");
    }

    #[test]
    fn wait_for_matches_text_split_over_several_writes() {
        let (mut console, mut guest) = pair();
        let writer = std::thread::spawn(move || {
            for part in [
                "cairn-init: RE",
                "ADY board=qemu",
                "-x86_64 init=1.5\r\n",
                "cairn> ",
            ] {
                guest.write_all(part.as_bytes()).expect("write");
                std::thread::yield_now();
            }
            guest
        });
        let ready = console
            .wait_for_line(
                regex(r"READY board=(?P<board>\S+) init=(\S+)$"),
                Duration::from_secs(5),
            )
            .expect("ready line");
        assert_eq!(ready.name("board"), Some("qemu-x86_64"));
        assert_eq!(ready.get(2), Some("1.5"));
        assert_eq!(
            ready.line(),
            Some("cairn-init: READY board=qemu-x86_64 init=1.5")
        );
        // The prompt has no newline: only the stream matcher sees it.
        console
            .wait_for("cairn> ", Duration::from_secs(5))
            .expect("prompt");
        drop(writer.join());
    }

    #[test]
    fn line_matcher_does_not_see_a_partial_line() {
        let (mut console, mut guest) = pair();
        guest.write_all(b"total=1.2").expect("write");
        let early = console.wait_for_line(regex(r"total=(\S+)$"), Duration::from_millis(200));
        assert!(
            matches!(early, Err(ConsoleError::Timeout { .. })),
            "{early:?}"
        );
        guest.write_all(b"34\n").expect("write");
        let line = console
            .wait_for_line(regex(r"total=(\S+)$"), Duration::from_secs(5))
            .expect("complete line");
        assert_eq!(line.get(1), Some("1.234"));
    }

    #[test]
    fn a_match_is_consumed_and_seek_looks_back() {
        let (mut console, mut guest) = pair();
        guest.write_all(b"one\ntwo\none\n").expect("write");
        let first = console
            .wait_for_line("one", Duration::from_secs(5))
            .expect("first");
        let second = console
            .wait_for_line("one", Duration::from_secs(5))
            .expect("second");
        assert!(second.start() > first.start());
        assert!(matches!(
            console.wait_for_line("one", Duration::from_millis(100)),
            Err(ConsoleError::Timeout { .. })
        ));
        console.seek(first.end());
        let two = console
            .wait_for_line("two", Duration::from_secs(5))
            .expect("two after seek");
        assert_eq!(console.slice(two.start(), two.end()), "two\n");
    }

    #[test]
    fn timeout_error_carries_the_last_forty_lines() {
        let (mut console, mut guest) = pair();
        let lines: String = (1..=50).map(|i| format!("line {i}\n")).collect();
        guest.write_all(lines.as_bytes()).expect("write");
        console
            .wait_for_line("line 50", Duration::from_secs(5))
            .expect("all lines in");
        let err = console
            .wait_for("never", Duration::from_millis(50))
            .expect_err("must time out");
        let message = err.to_string();
        assert!(message.contains("\"never\""), "{message}");
        assert!(message.contains("line 11\n"), "{message}");
        assert!(!message.contains("line 10\n"), "{message}");
        assert!(message.ends_with("line 50\n"), "{message}");
    }

    #[test]
    fn closed_stream_ends_the_wait_at_once() {
        let (mut console, guest) = pair();
        drop(guest);
        let started = Instant::now();
        let err = console
            .wait_for("anything", Duration::from_secs(30))
            .expect_err("closed");
        assert!(matches!(err, ConsoleError::Closed { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn send_line_reaches_the_guest() {
        let (mut console, mut guest) = pair();
        console.send_line("echo hi").expect("send");
        let mut buf = [0u8; 8];
        guest.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"echo hi\n");
    }

    #[test]
    fn tail_of_counts_lines_from_the_end() {
        assert_eq!(tail_of("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail_of("a\nb\nc", 2), "b\nc");
        assert_eq!(tail_of("a\n", 5), "a\n");
        assert_eq!(tail_of("", 5), "");
    }
}
