//! hostd's log on the config partition (`/config/logs/hostd.log`), rotated by size.
//!
//! The log must outlive a reboot (the ring in `log_ring.rs` does not) and must never fill the
//! small config partition, which also holds the desired state. So the file is capped: when a
//! write would take `hostd.log` past `max_bytes`, it becomes `hostd.log.1` (`.1` becomes
//! `.2`, …), the oldest beyond `files` is deleted, and a fresh `hostd.log` starts. A record is
//! never split: `tracing`'s fmt layer hands over one whole line per write, and rotation
//! happens between writes.
//!
//! Lines are not fsynced: the journal of ext4 commits within seconds, and an fsync per line
//! would wear the boot device and slow every log call. A power cut may lose the last lines.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing_subscriber::fmt::MakeWriter;

/// Where hostd logs on the appliance.
pub const DEFAULT_PATH: &str = "/config/logs/hostd.log";
/// 1 MiB per file and 5 files: 5 MiB of a config partition of hundreds, and days of normal
/// logging at a few lines per reconcile.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;
pub const DEFAULT_FILES: usize = 5;

/// A log file that rotates itself by size. Not shared: wrap it in [`SharedLogFile`] for
/// `tracing`.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    files: usize,
    file: File,
    size: u64,
}

impl RotatingFile {
    /// Opens `path` for appending (creating its directory), keeping at most `files` files in
    /// all (the current one included, at least one) of at most `max_bytes` each — a single
    /// record longer than that gets a file of its own.
    pub fn open(path: impl Into<PathBuf>, max_bytes: u64, files: usize) -> io::Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            max_bytes,
            files: files.max(1),
            file,
            size,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The name of the `n`-th older file: `hostd.log.1`, `hostd.log.2`, …
    pub fn rotated_path(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// Shifts every file one place older, drops the oldest and starts an empty current file.
    fn rotate(&mut self) -> io::Result<()> {
        let oldest = self.files - 1;
        if oldest == 0 {
            // Only one file is kept: start it again.
            self.file = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&self.path)?;
            self.size = 0;
            return Ok(());
        }
        remove_if_present(&self.rotated_path(oldest))?;
        for n in (1..oldest).rev() {
            rename_if_present(&self.rotated_path(n), &self.rotated_path(n + 1))?;
        }
        fs::rename(&self.path, self.rotated_path(1))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = buf.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.size += len;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// A [`RotatingFile`] shared by every thread that logs; `tracing`'s fmt layer writes through
/// it (`fmt::layer().with_writer(shared)`).
#[derive(Debug, Clone)]
pub struct SharedLogFile {
    inner: Arc<Mutex<RotatingFile>>,
}

impl SharedLogFile {
    pub fn new(file: RotatingFile) -> Self {
        Self {
            inner: Arc::new(Mutex::new(file)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RotatingFile> {
        // A panic in the middle of a write leaves at worst a partial line; logging goes on.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The file, locked for one record.
#[derive(Debug)]
pub struct LockedLogFile<'a>(MutexGuard<'a, RotatingFile>);

impl Write for LockedLogFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for SharedLogFile {
    type Writer = LockedLogFile<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LockedLogFile(self.lock())
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn write_line(file: &mut RotatingFile, line: &str) {
        file.write_all(line.as_bytes()).expect("write to a tempdir");
    }

    #[test]
    fn rotation_shifts_files_and_drops_the_oldest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs/hostd.log");
        // 9-byte lines, 20 bytes per file: two lines per file; 3 files in all.
        let mut file = RotatingFile::open(&path, 20, 3).expect("open");
        for n in 0..7 {
            write_line(&mut file, &format!("line {n:03}\n"));
        }
        assert_eq!(read(&path), "line 006\n");
        assert_eq!(read(&file.rotated_path(1)), "line 004\nline 005\n");
        assert_eq!(read(&file.rotated_path(2)), "line 002\nline 003\n");
        assert!(!file.rotated_path(3).exists(), "lines 0 and 1 were dropped");
    }

    #[test]
    fn a_record_longer_than_the_limit_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hostd.log");
        let mut file = RotatingFile::open(&path, 8, 2).expect("open");
        write_line(&mut file, "short\n");
        write_line(&mut file, "a record far longer than eight bytes\n");
        assert_eq!(read(&path), "a record far longer than eight bytes\n");
        assert_eq!(read(&file.rotated_path(1)), "short\n");
    }

    #[test]
    fn one_file_kept_means_starting_it_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hostd.log");
        let mut file = RotatingFile::open(&path, 10, 1).expect("open");
        write_line(&mut file, "aaaaaaaa\n");
        write_line(&mut file, "bbbbbbbb\n");
        assert_eq!(read(&path), "bbbbbbbb\n");
        assert!(!file.rotated_path(1).exists());
    }

    #[test]
    fn reopening_appends_and_counts_what_is_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hostd.log");
        {
            let mut file = RotatingFile::open(&path, 20, 2).expect("open");
            write_line(&mut file, "boot 1 a\n");
        }
        let mut file = RotatingFile::open(&path, 20, 2).expect("reopen");
        write_line(&mut file, "boot 2 a\n");
        assert_eq!(read(&path), "boot 1 a\nboot 2 a\n");
        write_line(&mut file, "boot 2 b\n"); // 27 bytes would pass 20: rotate first
        assert_eq!(read(&path), "boot 2 b\n");
        assert_eq!(read(&file.rotated_path(1)), "boot 1 a\nboot 2 a\n");
    }

    #[test]
    fn tracing_writes_whole_lines_through_the_shared_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hostd.log");
        let shared = SharedLogFile::new(RotatingFile::open(&path, 4096, 2).expect("open"));
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(shared.clone())
                .with_ansi(false)
                .without_time(),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(generation = 3, "committed");
        });
        let text = read(&path);
        assert!(
            text.ends_with("committed generation=3\n"),
            "unexpected log line: {text:?}"
        );
        assert_eq!(text.lines().count(), 1);
    }
}
