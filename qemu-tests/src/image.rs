//! Where the built image is, as docs/image-contract.md names its files.
//!
//! A missing image is an error, never a skip: `make test` builds the image first, so a
//! test run without one means the build step was bypassed or failed.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Overrides the image directory (default `<workspace>/build/image`).
pub const IMAGE_DIR_ENV: &str = "CAIRN_IMAGE_DIR";

pub const KERNEL_FILE: &str = "vmlinuz";
pub const INITRAMFS_FILE: &str = "initramfs.img";
pub const DISK_FILE: &str = "cairn.img";
/// The tests' Debian tools (`make test-tools`: dnsmasq, fio); not part of the appliance.
pub const TEST_TOOLS_FILE: &str = "test-tools.cpio";

#[derive(Debug, Error)]
pub enum ImageError {
    #[error(
        "The appliance image is missing: {missing} not found in {dir}. Run `make image` first \
         (or set {IMAGE_DIR_ENV} to a directory holding vmlinuz, initramfs.img and cairn.img)"
    )]
    Missing { dir: PathBuf, missing: String },
    #[error(
        "The test tool archive {path} is missing. Run `make test-tools` (`make test` and `make bench` do)"
    )]
    MissingTestTools { path: PathBuf },
}

/// The workspace root, known at compile time (this crate lives one level below it).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// The three build outputs the tests boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub dir: PathBuf,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub disk: PathBuf,
}

impl Image {
    /// The test tool archive beside the image (dnsmasq, fio); an error, not a skip,
    /// when it was not built.
    pub fn test_tools(&self) -> Result<PathBuf, ImageError> {
        let path = self.dir.join(TEST_TOOLS_FILE);
        if path.is_file() {
            Ok(path)
        } else {
            Err(ImageError::MissingTestTools { path })
        }
    }

    /// The image in `CAIRN_IMAGE_DIR`, or in `<workspace>/build/image`.
    pub fn from_env() -> Result<Self, ImageError> {
        let dir = std::env::var_os(IMAGE_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(
                || workspace_root().join("build").join("image"),
                PathBuf::from,
            );
        Self::in_dir(&dir)
    }

    /// The image in `dir`; every file must exist. Paths are made absolute so QEMU and
    /// qemu-img find them whatever their working directory.
    pub fn in_dir(dir: &Path) -> Result<Self, ImageError> {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        let dir = dir.as_path();
        let image = Self {
            dir: dir.to_owned(),
            kernel: dir.join(KERNEL_FILE),
            initramfs: dir.join(INITRAMFS_FILE),
            disk: dir.join(DISK_FILE),
        };
        let missing: Vec<&str> = [
            (&image.kernel, KERNEL_FILE),
            (&image.initramfs, INITRAMFS_FILE),
            (&image.disk, DISK_FILE),
        ]
        .into_iter()
        .filter(|(path, _)| !path.is_file())
        .map(|(_, name)| name)
        .collect();
        if missing.is_empty() {
            Ok(image)
        } else {
            Err(ImageError::Missing {
                dir: dir.to_owned(),
                missing: missing.join(", "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_listed_with_the_make_target() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(KERNEL_FILE), b"k").expect("kernel");
        let message = Image::in_dir(dir.path())
            .expect_err("incomplete")
            .to_string();
        assert!(
            message.contains("initramfs.img, cairn.img not found"),
            "{message}"
        );
        assert!(message.contains("make image"), "{message}");
    }

    #[test]
    fn a_complete_directory_is_accepted() {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in [KERNEL_FILE, INITRAMFS_FILE, DISK_FILE] {
            std::fs::write(dir.path().join(name), b"x").expect("file");
        }
        let image = Image::in_dir(dir.path()).expect("complete");
        assert_eq!(image.disk, dir.path().join("cairn.img"));
        assert!(image.kernel.is_absolute());
    }

    #[test]
    fn the_default_directory_is_under_the_workspace() {
        assert!(workspace_root().join("Cargo.toml").is_file());
    }
}
