//! init's messages: `cairn-init: <message>` lines on /dev/console.
//!
//! Tests and `make bench` match these lines, so the format is fixed here and nowhere
//! else: no level, no timestamp (the kernel's own clock is the reference; see the READY
//! line), no colour. Messages go to fd 2, which [`attach_console`] points at
//! /dev/console; every line is formatted first and written with a single write(2), so
//! services writing to the same console cannot split one.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

pub const PREFIX: &str = "cairn-init: ";

/// Debug messages are shown only with `cairn.debug=verbose`; known after /proc is up.
static VERBOSE: AtomicBool = AtomicBool::new(false);

pub fn set_verbose(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
}

struct Prefixed;

impl<S, N> FormatEvent<S, N> for Prefixed
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        writer.write_str(PREFIX)?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Where lines go: fd 2, or nowhere for debug lines when not verbose.
pub enum Sink {
    Stderr(io::Stderr),
    Discard,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stderr(stderr) => stderr.write(buf),
            Sink::Discard => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stderr(stderr) => stderr.flush(),
            Sink::Discard => Ok(()),
        }
    }
}

struct ConsoleWriter;

impl<'a> MakeWriter<'a> for ConsoleWriter {
    type Writer = Sink;

    fn make_writer(&'a self) -> Sink {
        Sink::Stderr(io::stderr())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Sink {
        if *meta.level() == Level::DEBUG && !VERBOSE.load(Ordering::Relaxed) {
            Sink::Discard
        } else {
            Sink::Stderr(io::stderr())
        }
    }
}

fn subscriber<W>(writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(Level::DEBUG)
        .event_format(Prefixed)
        .with_writer(writer)
        .finish()
}

/// Installs the global subscriber. Call first thing: messages before it are lost.
pub fn install() {
    // Fails only if one is installed already, which leaves logging working.
    let _ = tracing::subscriber::set_global_default(subscriber(ConsoleWriter));
}

/// Points fds 0, 1 and 2 at `/dev/console` (from devtmpfs). The kernel opened the
/// console for init already, but only if the initramfs had a console node; re-opening
/// it here makes that independent of the image, and children inherit it.
pub fn attach_console(dev_root: &Path) -> io::Result<()> {
    attach(&dev_root.join("console"), true)
}

/// Without a console, messages can still reach the kernel log (and so whatever
/// console the kernel has) through /dev/kmsg.
pub fn attach_kmsg(dev_root: &Path) -> io::Result<()> {
    attach(&dev_root.join("kmsg"), false)
}

fn attach(path: &Path, read: bool) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(read)
        .write(true)
        // Never let the console become init's controlling terminal: ctrl-c there must
        // not signal init, and the console service needs it for its own session.
        .custom_flags(nix::libc::O_NOCTTY)
        .open(path)?;
    if read {
        nix::unistd::dup2_stdin(&file)?;
    }
    nix::unistd::dup2_stdout(&file)?;
    nix::unistd::dup2_stderr(&file)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Ok(mut inner) = self.0.lock() {
                inner.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn lines_have_the_prefix_and_nothing_else() {
        let buffer = Buffer::default();
        tracing::subscriber::with_default(subscriber(buffer.clone()), || {
            tracing::info!("board {} ({})", "generic", "default");
            tracing::warn!("unknown board \"x\" on the kernel command line");
            tracing::error!(pid = 7, "with a field");
        });
        let text = String::from_utf8(buffer.0.lock().map(|b| b.clone()).unwrap_or_default())
            .expect("utf-8");
        assert_eq!(
            text,
            "cairn-init: board generic (default)\n\
             cairn-init: unknown board \"x\" on the kernel command line\n\
             cairn-init: with a field pid=7\n"
        );
    }
}
