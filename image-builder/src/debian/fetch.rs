//! Downloading the locked `.deb`s into a local cache.
//!
//! Each file is streamed to a temporary name in the cache directory while being hashed, and
//! renamed to `<name>_<version>_<arch>.deb` only when its size and SHA-256 match the lock: the
//! cache never holds a file under its final name that was not verified, and a kernel package
//! (~100 MB) is never held in memory. A file already in the cache is hashed again before use;
//! if it no longer matches (disk trouble, a hand-edited cache) it is downloaded afresh.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::DebianError;
use super::http::{Fetched, Http, hex_digest};
use super::lock::{Lock, LockedPackage};
use super::mirror::Mirror;
use super::progress::{Progress, TaskGuard};

/// Read size while streaming to disk and hashing.
const CHUNK: usize = 256 * 1024;

/// Makes sure every locked package is in `cache_dir`, verified; returns their paths in
/// lock order.
pub fn fetch(
    mirror: &Mirror,
    lock: &Lock,
    cache_dir: &Path,
    progress: &dyn Progress,
) -> Result<Vec<PathBuf>, DebianError> {
    // File names and URLs are built from the lock: check it even if the caller built it.
    lock.validate("the lock given to fetch")?;
    std::fs::create_dir_all(cache_dir).map_err(|source| DebianError::Cache {
        path: cache_dir.to_owned(),
        source,
    })?;
    // Created on first download only, so a fully cached build needs no network at all.
    let mut http: Option<Http> = None;
    let mut paths = Vec::with_capacity(lock.packages.len());
    for package in &lock.packages {
        let path = cache_dir.join(package.cache_file_name());
        if !cached_copy_is_valid(&path, package, progress)? {
            let client = match &mut http {
                Some(client) => client,
                None => http.insert(Http::new()?),
            };
            download(client, mirror, package, &path, progress)?;
        }
        paths.push(path);
    }
    Ok(paths)
}

/// `true` if `path` holds exactly the locked file. A mismatching file is removed.
fn cached_copy_is_valid(
    path: &Path,
    package: &LockedPackage,
    progress: &dyn Progress,
) -> Result<bool, DebianError> {
    let cache_error = |source| DebianError::Cache {
        path: path.to_owned(),
        source,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(cache_error(source)),
    };
    let task = TaskGuard(progress.start(
        &format!("checking cached {}", package.cache_file_name()),
        Some(package.size),
    ));
    let (size, sha256) = copy_hashing(file, std::io::sink(), None, &task)
        .map_err(|failure| cache_error(failure.into_io()))?;
    if size == package.size && sha256 == package.sha256 {
        return Ok(true);
    }
    std::fs::remove_file(path).map_err(cache_error)?;
    Ok(false)
}

fn download(
    http: &Http,
    mirror: &Mirror,
    package: &LockedPackage,
    path: &Path,
    progress: &dyn Progress,
) -> Result<(), DebianError> {
    let url = mirror.url(&package.filename);
    let body = match http.get(&url)? {
        Fetched::Found(response) => response,
        Fetched::NotFound => {
            return Err(DebianError::PackageVanished {
                package: package.name.clone(),
                version: package.version.clone(),
                url,
            });
        }
    };
    let task = TaskGuard(progress.start(&package.filename, Some(package.size)));
    store_verified(body, &url, package, path, &task)
}

/// Streams `body` to a temporary file beside `path` and renames it to `path` only if it has
/// the locked size and SHA-256. On any failure the temporary file is removed.
pub(crate) fn store_verified(
    body: impl Read,
    url: &str,
    package: &LockedPackage,
    path: &Path,
    task: &TaskGuard,
) -> Result<(), DebianError> {
    let directory = path.parent().unwrap_or(Path::new("."));
    let cache_error = |source| DebianError::Cache {
        path: directory.to_owned(),
        source,
    };
    let mut temporary = tempfile::Builder::new()
        .prefix(".partial-")
        .suffix(".deb")
        .tempfile_in(directory)
        .map_err(cache_error)?;
    let (size, sha256) = copy_hashing(body, temporary.as_file_mut(), Some(package.size), task)
        .map_err(|failure| match failure {
            CopyFailure::Read(source) => DebianError::ReadBody {
                url: url.to_owned(),
                source,
            },
            CopyFailure::Write(source) => cache_error(source),
            CopyFailure::TooLong(received) => DebianError::SizeMismatch {
                package: package.name.clone(),
                version: package.version.clone(),
                expected: package.size,
                actual: received,
            },
        })?;
    if size != package.size {
        return Err(DebianError::SizeMismatch {
            package: package.name.clone(),
            version: package.version.clone(),
            expected: package.size,
            actual: size,
        });
    }
    if sha256 != package.sha256 {
        return Err(DebianError::ChecksumMismatch {
            package: package.name.clone(),
            version: package.version.clone(),
            expected: package.sha256.clone(),
            actual: sha256,
        });
    }
    // No fsync: a file cut short by a crash fails the re-hash on the next run and is
    // fetched again, so durability would only cost time.
    temporary
        .persist(path)
        .map_err(|error| cache_error(error.error))?;
    Ok(())
}

enum CopyFailure {
    Read(std::io::Error),
    Write(std::io::Error),
    /// More bytes arrived than the limit allows (the count received so far).
    TooLong(u64),
}

impl CopyFailure {
    fn into_io(self) -> std::io::Error {
        match self {
            CopyFailure::Read(error) | CopyFailure::Write(error) => error,
            CopyFailure::TooLong(size) => std::io::Error::other(format!("more than {size} bytes")),
        }
    }
}

/// Copies `from` to `to` in chunks, hashing and reporting progress; stops as soon as more
/// than `limit` bytes arrive, so a wrong file cannot fill the disk.
fn copy_hashing(
    mut from: impl Read,
    mut to: impl Write,
    limit: Option<u64>,
    task: &TaskGuard,
) -> Result<(u64, String), CopyFailure> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(CopyFailure::Read(error)),
        };
        total += read as u64;
        if limit.is_some_and(|limit| total > limit) {
            return Err(CopyFailure::TooLong(total));
        }
        hasher.update(&buffer[..read]);
        to.write_all(&buffer[..read]).map_err(CopyFailure::Write)?;
        task.advance(read as u64);
    }
    to.flush().map_err(CopyFailure::Write)?;
    Ok((total, hex_digest(hasher)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::progress::NoProgress;

    const CONTENT: &[u8] = b"!<arch>\nnot really a package, but bytes with a known hash\n";

    fn package_for(content: &[u8]) -> LockedPackage {
        let mut hasher = Sha256::new();
        hasher.update(content);
        LockedPackage {
            name: "busybox-static".to_owned(),
            version: "1:1.37.0-6+b9".to_owned(),
            architecture: "amd64".to_owned(),
            filename: "pool/main/b/busybox/busybox-static_1.37.0-6+b9_amd64.deb".to_owned(),
            size: content.len() as u64,
            sha256: hex_digest(hasher),
        }
    }

    fn task() -> TaskGuard {
        TaskGuard(NoProgress.start("test", None))
    }

    fn file_count(dir: &Path) -> usize {
        std::fs::read_dir(dir).expect("lists").count()
    }

    #[test]
    fn stores_a_matching_download() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let package = package_for(CONTENT);
        let path = dir.path().join(package.cache_file_name());
        store_verified(CONTENT, "http://mirror.invalid/x", &package, &path, &task())
            .expect("matches");
        assert_eq!(std::fs::read(&path).expect("stored"), CONTENT);
        assert_eq!(file_count(dir.path()), 1);
    }

    #[test]
    fn checksum_mismatch_names_package_hashes_and_the_fix() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let package = package_for(CONTENT);
        let path = dir.path().join(package.cache_file_name());
        let mut corrupted = CONTENT.to_vec();
        corrupted[10] ^= 1;
        let error = store_verified(
            corrupted.as_slice(),
            "http://mirror.invalid/x",
            &package,
            &path,
            &task(),
        )
        .expect_err("hash differs");
        let DebianError::ChecksumMismatch {
            ref package,
            ref expected,
            ref actual,
            ..
        } = error
        else {
            panic!("expected ChecksumMismatch, got {error:?}");
        };
        assert_eq!(package, "busybox-static");
        assert_ne!(expected, actual);
        let message = error.to_string();
        for needle in [
            "busybox-static",
            expected.as_str(),
            actual.as_str(),
            "make lock",
        ] {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        assert_eq!(file_count(dir.path()), 0, "nothing is left in the cache");
    }

    #[test]
    fn longer_download_is_cut_off() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let package = package_for(CONTENT);
        let path = dir.path().join(package.cache_file_name());
        let longer = [CONTENT, b"extra"].concat();
        assert!(matches!(
            store_verified(
                longer.as_slice(),
                "http://mirror.invalid/x",
                &package,
                &path,
                &task()
            ),
            Err(DebianError::SizeMismatch { .. })
        ));
        assert_eq!(file_count(dir.path()), 0);
    }

    #[test]
    fn fully_cached_lock_needs_no_network() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let package = package_for(CONTENT);
        std::fs::write(dir.path().join(package.cache_file_name()), CONTENT).expect("seed cache");
        let lock = Lock {
            suite: "trixie".to_owned(),
            packages: vec![package.clone()],
        };
        // `.invalid` never resolves: this passes only if nothing is downloaded.
        let mirror = Mirror::new("http://mirror.invalid/debian", "test").expect("valid");
        let paths = fetch(&mirror, &lock, dir.path(), &NoProgress).expect("served from cache");
        assert_eq!(paths, [dir.path().join(package.cache_file_name())]);
    }

    #[test]
    fn corrupted_cache_entry_is_discarded() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let package = package_for(CONTENT);
        let path = dir.path().join(package.cache_file_name());
        std::fs::write(&path, b"truncated").expect("seed cache");
        assert!(!cached_copy_is_valid(&path, &package, &NoProgress).expect("checks"));
        assert!(!path.exists());
    }

    #[test]
    fn vanished_version_message_says_to_relock() {
        let error = DebianError::PackageVanished {
            package: "linux-image-6.12.94+deb13-amd64".to_owned(),
            version: "6.12.94-1".to_owned(),
            url: "http://mirror.invalid/debian/pool/main/l/x.deb".to_owned(),
        };
        let message = error.to_string();
        assert!(message.contains("vanished from the archive"));
        assert!(message.contains("make lock"));
        assert!(message.contains("http://mirror.invalid/debian/pool/main/l/x.deb"));
    }
}
