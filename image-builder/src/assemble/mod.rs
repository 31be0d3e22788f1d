//! Turning extracted Debian packages and Cairn's binaries into the image files.

pub mod disk;
pub mod elf;
pub mod esp;
pub mod initramfs;
pub mod modules;
pub mod rootfs;
