//! `image-builder/packages.lock`: the exact Debian packages an image is built from.
//!
//! The lock is what makes a build repeatable: `build` downloads exactly these files and
//! checks each against its SHA-256, so the network is only trusted to deliver bytes. It
//! records pool paths, not URLs (the mirror is a property of the build host), and no dates,
//! so re-running `make lock` against an unchanged archive gives a byte-identical file.
//! Everything in it is validated on load, because names and paths become file names in the
//! cache and URLs on the mirror.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::DebianError;
use super::inrelease::is_sha256;
use super::relation::is_package_name;
use super::version::DebVersion;

/// The lock file's format version; bump when the fields change meaning.
const LOCK_VERSION: u32 = 1;

const HEADER: &str = "\
# Debian packages the Cairn image (packages.lock) or its test peer (packages-test.lock) is
# built from, pinned by SHA-256. Generated from the .toml of the same name by `make lock`
# (image-builder lock): do not edit.
# Refresh with `make lock` when Debian publishes a point release: superseded versions then
# disappear from the mirrors and `make image` reports them as vanished.
";

/// The resolved package set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub suite: String,
    pub packages: Vec<LockedPackage>,
}

/// One package, pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Path below the mirror's base URL, e.g. `pool/main/b/busybox/busybox-static_….deb`.
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

/// The on-disk shape: `version` first, then one `[[package]]` table per package.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockDocument {
    version: u32,
    suite: String,
    #[serde(default, rename = "package")]
    packages: Vec<LockedPackage>,
}

impl Lock {
    /// Reads and validates a lock file.
    pub fn read(path: &Path) -> Result<Lock, DebianError> {
        let text = std::fs::read_to_string(path).map_err(|source| DebianError::ReadLock {
            path: path.to_owned(),
            source,
        })?;
        let document: LockDocument =
            toml::from_str(&text).map_err(|source| DebianError::ParseLock {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        if document.version != LOCK_VERSION {
            return Err(DebianError::InvalidLock {
                origin: path.display().to_string(),
                reason: format!(
                    "format version {} is not the supported {LOCK_VERSION}",
                    document.version
                ),
            });
        }
        let lock = Lock {
            suite: document.suite,
            packages: document.packages,
        };
        lock.validate(&path.display().to_string())?;
        Ok(lock)
    }

    /// The file's text: header comment, then TOML with packages sorted by name.
    pub fn to_toml(&self) -> Result<String, DebianError> {
        let mut packages = self.packages.clone();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        let document = LockDocument {
            version: LOCK_VERSION,
            suite: self.suite.clone(),
            packages,
        };
        let body =
            toml::to_string(&document).map_err(|source| DebianError::SerializeLock { source })?;
        Ok(format!("{HEADER}\n{body}"))
    }

    /// Writes the lock atomically: a temporary file in the same directory, flushed to disk,
    /// then renamed over the old one, so an interrupted run never leaves half a lock.
    pub fn write(&self, path: &Path) -> Result<(), DebianError> {
        self.validate("the lock being written")?;
        let text = self.to_toml()?;
        let error = |source| DebianError::WriteLock {
            path: path.to_owned(),
            source,
        };
        let directory = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut temporary = tempfile::Builder::new()
            .prefix(".packages.lock.")
            .tempfile_in(directory)
            .map_err(error)?;
        temporary.write_all(text.as_bytes()).map_err(error)?;
        temporary.as_file().sync_all().map_err(error)?;
        // The lock is committed to git: give it the usual 0644, not tempfile's 0600.
        std::fs::set_permissions(temporary.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(error)?;
        temporary.persist(path).map_err(|e| error(e.error))?;
        Ok(())
    }

    /// The kernel release the lock pins (e.g. `6.12.117+deb13-amd64`), from the name of
    /// the concrete `linux-image-<release>` package; it is also the modules directory name.
    pub fn kernel_release(&self) -> Option<&str> {
        self.packages.iter().find_map(|p| {
            p.name
                .strip_prefix("linux-image-")
                .filter(|release| release.starts_with(|c: char| c.is_ascii_digit()))
        })
    }

    /// Checks every field that later becomes part of a path or URL.
    pub fn validate(&self, origin: &str) -> Result<(), DebianError> {
        let invalid = |reason: String| DebianError::InvalidLock {
            origin: origin.to_owned(),
            reason,
        };
        if !is_safe_word(&self.suite) {
            return Err(invalid(format!(
                "suite {:?} is not a suite name",
                self.suite
            )));
        }
        let mut names = std::collections::BTreeSet::new();
        for package in &self.packages {
            package.validate().map_err(&invalid)?;
            if !names.insert(package.name.as_str()) {
                return Err(invalid(format!("{} is listed twice", package.name)));
            }
        }
        Ok(())
    }
}

impl LockedPackage {
    fn validate(&self) -> Result<(), String> {
        if !is_package_name(&self.name) {
            return Err(format!("{:?} is not a package name", self.name));
        }
        if DebVersion::parse(&self.version).is_none() {
            return Err(format!(
                "{}: {:?} is not a version",
                self.name, self.version
            ));
        }
        if !is_safe_word(&self.architecture) {
            return Err(format!("{}: bad architecture", self.name));
        }
        if !is_pool_path(&self.filename) {
            return Err(format!(
                "{}: {:?} is not a pool path",
                self.name, self.filename
            ));
        }
        if !is_sha256(&self.sha256) {
            return Err(format!("{}: malformed sha256", self.name));
        }
        Ok(())
    }

    /// Name in the download cache. Same scheme as apt's `/var/cache/apt/archives`:
    /// `<name>_<version>_<arch>.deb` with the epoch colon escaped as `%3a`.
    pub fn cache_file_name(&self) -> String {
        format!(
            "{}_{}_{}.deb",
            self.name,
            self.version.replace(':', "%3a"),
            self.architecture
        )
    }
}

fn is_safe_word(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A relative path under `pool/` with no `.`/`..`/empty components and only the characters
/// Debian uses in pool file names, so it is safe both in a URL and on disk.
pub fn is_pool_path(path: &str) -> bool {
    path.starts_with("pool/")
        && path.split('/').all(|component| {
            !component.is_empty()
                && component != "."
                && component != ".."
                && component
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-._~".contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Lock {
        Lock {
            suite: "trixie".to_owned(),
            packages: vec![
                LockedPackage {
                    name: "busybox-static".to_owned(),
                    version: "1:1.37.0-6+b9".to_owned(),
                    architecture: "amd64".to_owned(),
                    filename: "pool/main/b/busybox/busybox-static_1.37.0-6+b9_amd64.deb"
                        .to_owned(),
                    size: 955_316,
                    sha256: "a".repeat(64),
                },
                LockedPackage {
                    name: "linux-image-6.12.117+deb13-amd64".to_owned(),
                    version: "6.12.117-1".to_owned(),
                    architecture: "amd64".to_owned(),
                    filename: "pool/main/l/linux-signed-amd64/linux-image-6.12.117+deb13-amd64_6.12.117-1_amd64.deb".to_owned(),
                    size: 104_857_600,
                    sha256: "b".repeat(64),
                },
            ],
        }
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("packages.lock");
        let lock = sample();
        lock.write(&path).expect("writes");
        let text = std::fs::read_to_string(&path).expect("reads back");
        assert!(text.starts_with("# Debian packages"));
        assert!(text.contains("`make lock`"));
        assert!(text.contains("[[package]]\nname = \"busybox-static\""));
        assert!(!text.contains("http"), "the lock holds no URLs");
        assert_eq!(Lock::read(&path).expect("parses"), lock);
        // Writing again replaces the file and yields the same bytes.
        lock.write(&path).expect("rewrites");
        assert_eq!(std::fs::read_to_string(&path).expect("reads"), text);
        let leftovers = std::fs::read_dir(dir.path()).expect("lists").count();
        assert_eq!(leftovers, 1, "no temporary files are left behind");
    }

    #[test]
    fn output_is_sorted_by_name() {
        let mut lock = sample();
        lock.packages.reverse();
        let text = lock.to_toml().expect("serialises");
        let busybox = text.find("busybox-static").expect("present");
        let kernel = text.find("linux-image").expect("present");
        assert!(busybox < kernel);
    }

    #[test]
    fn kernel_release_comes_from_the_concrete_package() {
        assert_eq!(sample().kernel_release(), Some("6.12.117+deb13-amd64"));
    }

    #[test]
    fn cache_names_escape_the_epoch() {
        assert_eq!(
            sample().packages[0].cache_file_name(),
            "busybox-static_1%3a1.37.0-6+b9_amd64.deb"
        );
    }

    #[test]
    fn refuses_unsafe_or_unknown_content() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("packages.lock");
        let good = sample().to_toml().expect("serialises");
        let cases = [
            good.replace("pool/main/b/busybox/", "pool/../../"),
            good.replace("name = \"busybox-static\"", "name = \"../x\""),
            good.replace(&"a".repeat(64), "xyz"),
            good.replace("version = 1\n", "version = 2\n"),
            good.replace(
                "suite = \"trixie\"",
                "suite = \"trixie\"\nmirror = \"http://x\"",
            ),
        ];
        for text in cases {
            std::fs::write(&path, &text).expect("writes");
            assert!(
                matches!(
                    Lock::read(&path),
                    Err(DebianError::InvalidLock { .. } | DebianError::ParseLock { .. })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn pool_paths() {
        assert!(is_pool_path(
            "pool/main/l/linux/linux-image_6.12-1_amd64.deb"
        ));
        for bad in [
            "/pool/x.deb",
            "pool/../x",
            "pool//x",
            "main/x.deb",
            "pool/a b",
            "pool/%2e%2e/x",
        ] {
            assert!(!is_pool_path(bad), "{bad}");
        }
    }
}
