//! Progress bars for the long steps (downloads, compression), on stderr, hidden when
//! stderr is not a terminal so CI logs stay readable.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct ByteProgress {
    bar: ProgressBar,
}

impl ByteProgress {
    pub fn new(what: &str, total: u64) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("the template is a constant and valid")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(what.to_string());
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            // One line at the start and one at the end instead of a redraw per chunk.
            eprintln!("{what}: {} MiB", total / (1024 * 1024));
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        ByteProgress { bar }
    }

    #[cfg(test)]
    pub fn hidden() -> Self {
        ByteProgress {
            bar: ProgressBar::hidden(),
        }
    }

    pub fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl crate::debian::ProgressTask for ByteProgress {
    fn advance(&self, bytes: u64) {
        ByteProgress::advance(self, bytes);
    }
    fn finish(&self) {
        ByteProgress::finish(self);
    }
}

/// The archive client's progress seam, drawn with indicatif.
pub struct IndicatifProgress;

impl crate::debian::Progress for IndicatifProgress {
    fn start(&self, what: &str, total_bytes: Option<u64>) -> Box<dyn crate::debian::ProgressTask> {
        Box::new(ByteProgress::new(what, total_bytes.unwrap_or(0)))
    }
}
