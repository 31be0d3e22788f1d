//! The builder's errors: each says what failed and what to do about it.

use std::path::PathBuf;

use crate::assemble::disk::DiskError;
use crate::assemble::esp::EspError;
use crate::assemble::initramfs::InitramfsError;
use crate::assemble::modules::ModuleError;
use crate::assemble::rootfs::RootfsError;
use crate::debian::DebianError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Debian(#[from] DebianError),
    #[error("cannot pick the kernel modules")]
    Modules(#[source] ModuleError),
    #[error("cannot lay out the image root")]
    Rootfs(#[from] RootfsError),
    #[error("cannot write the initramfs")]
    Initramfs(#[from] InitramfsError),
    #[error("cannot make the EFI system partition")]
    Esp(#[from] EspError),
    #[error("cannot write the disk image")]
    Disk(#[from] DiskError),
    #[error("cannot use {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the locked packages hold no kernel (boot/vmlinuz-*); is linux-image-amd64 in image-builder/packages.toml?"
    )]
    NoKernel,
    #[error("the locked packages hold several kernels ({versions:?}); lock exactly one")]
    SeveralKernels { versions: Vec<String> },
    #[error("the lock names kernel {locked} but its package holds {found}; run `make lock`")]
    KernelMismatch { locked: String, found: String },
    #[error("{path} is missing; is systemd-boot-efi in image-builder/packages.toml?")]
    NoSystemdBoot { path: PathBuf },
    #[error("{what} {path} does not exist; {hint}")]
    InputMissing {
        what: &'static str,
        path: PathBuf,
        hint: &'static str,
    },
}
