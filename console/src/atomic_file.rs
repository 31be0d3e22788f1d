//! Replacing a small private file so that a crash or power cut leaves either the old or the
//! new contents, never a mix or nothing: write a temporary file beside it (created with the
//! final mode, so the secret is never readable by others), fsync it, rename it over the old
//! one, fsync the directory so the rename itself is durable.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Which step failed; the old file is untouched for every step before `Rename`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CreateDir,
    CreateTemp,
    Write,
    SyncFile,
    Rename,
    SyncDir,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::CreateDir => "create the directory",
            Self::CreateTemp => "create the temporary file",
            Self::Write => "write the temporary file",
            Self::SyncFile => "sync the temporary file",
            Self::Rename => "rename the temporary file over",
            Self::SyncDir => "sync the directory of",
        })
    }
}

#[derive(Debug, Error)]
#[error("Cannot {step} {}", path.display())]
pub struct AtomicWriteError {
    pub step: Step,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The temporary file used for `path`: same directory (rename only is atomic within one
/// file system), a dot name so listings do not show it.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Writes `bytes` to `path` atomically with permission bits `mode`; a missing directory is
/// created with `dir_mode`.
pub fn write(path: &Path, bytes: &[u8], mode: u32, dir_mode: u32) -> Result<(), AtomicWriteError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let fail = |step: Step, path: &Path| {
        let path = path.to_owned();
        move |source| AtomicWriteError { step, path, source }
    };
    DirBuilder::new()
        .recursive(true)
        .mode(dir_mode)
        .create(&dir)
        .map_err(fail(Step::CreateDir, &dir))?;
    let temp = temp_path(path);
    let result = write_temp(&temp, bytes, mode)
        .and_then(|()| fs::rename(&temp, path).map_err(fail(Step::Rename, path)));
    if result.is_err() {
        // Best effort: a leftover is harmless (the next write truncates it) but untidy.
        let _ = fs::remove_file(&temp);
    }
    result?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(fail(Step::SyncDir, &dir))
}

fn write_temp(temp: &Path, bytes: &[u8], mode: u32) -> Result<(), AtomicWriteError> {
    let fail = |step: Step| {
        let path = temp.to_owned();
        move |source| AtomicWriteError { step, path, source }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(temp)
        .map_err(fail(Step::CreateTemp))?;
    // `mode` applies only when the file is created, and the umask may have narrowed it:
    // set it exactly, before the secret is written.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(fail(Step::CreateTemp))?;
    file.write_all(bytes).map_err(fail(Step::Write))?;
    file.sync_all().map_err(fail(Step::SyncFile))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn writes_with_the_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/admin.passwd");
        write(&path, b"one\n", 0o600, 0o700).expect("first write");
        write(&path, b"two\n", 0o600, 0o700).expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"two\n");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(dir.path().join("sub"))
            .expect("stat dir")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin.passwd");
        write(&path, b"old\n", 0o600, 0o700).expect("first write");
        // A non-empty directory where the temporary file goes: creating it fails, as a
        // full or read-only disk would make it fail.
        let blocker = temp_path(&path);
        fs::create_dir(&blocker).expect("mkdir");
        fs::write(blocker.join("x"), b"").expect("fill");
        let error = write(&path, b"new\n", 0o600, 0o700).expect_err("must fail");
        assert_eq!(error.step, Step::CreateTemp);
        assert_eq!(error.path, blocker);
        assert_eq!(fs::read(&path).expect("read"), b"old\n");
    }

    #[test]
    fn a_failed_rename_leaves_the_old_file_and_no_temporary_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The target is a non-empty directory: rename(2) refuses to replace it.
        let path = dir.path().join("target");
        fs::create_dir(&path).expect("mkdir");
        fs::write(path.join("old"), b"old").expect("fill");
        let error = write(&path, b"new\n", 0o600, 0o700).expect_err("must fail");
        assert_eq!(error.step, Step::Rename);
        assert_eq!(fs::read(path.join("old")).expect("read"), b"old");
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn temp_path_is_a_hidden_sibling() {
        assert_eq!(
            temp_path(Path::new("/config/console/admin.passwd")),
            PathBuf::from("/config/console/.admin.passwd.tmp")
        );
    }
}
