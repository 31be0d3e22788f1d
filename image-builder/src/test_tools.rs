//! `image-builder test-tools`: Debian tools for tests, never for the appliance image, as an
//! uncompressed newc archive the test peer VM (dnsmasq) or the bench's appliance (fio)
//! appends to its initramfs (the kernel unpacks concatenated archives in order, later
//! files over earlier ones).
//!
//! The packages come from their own lock (`image-builder/packages-test.lock`, resolved from
//! `packages-test.toml` by the same `lock` command), are fetched and hash-checked like the
//! image's, and each tool goes in with its interpreter and library closure, taken from the
//! packages by the same code that fills the appliance root (`rootfs::install_tools`). Which
//! tools is a list (`--tool dnsmasq --tool fio`), so the next test tool is one package
//! name and one word in the Makefile.
//!
//! The archive keeps the image's merged-/usr links (`sbin -> usr/sbin`, …): a directory
//! entry in their place would replace the link when the kernel unpacks it over the image.

use std::fs;
use std::path::{Path, PathBuf};

use crate::assemble::{elf, initramfs, rootfs};
use crate::debian;
use crate::error::BuildError;

pub struct TestToolsOptions {
    pub lock_path: PathBuf,
    pub cache_dir: PathBuf,
    pub work_dir: PathBuf,
    pub out: PathBuf,
    pub tools: Vec<String>,
    pub source_date_epoch: i64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn fresh_dir(path: &Path) -> Result<(), BuildError> {
    if path.exists() {
        fs::remove_dir_all(path).map_err(io(path))?;
    }
    fs::create_dir_all(path).map_err(io(path))
}

/// Builds the archive; returns its size in bytes.
pub fn build(options: &TestToolsOptions) -> Result<u64, BuildError> {
    let lock = debian::Lock::read(&options.lock_path)?;
    let mirror = debian::Mirror::from_environment()?;
    let progress = crate::progress::IndicatifProgress;
    eprintln!("fetching {} locked test packages", lock.packages.len());
    let debs = debian::fetch(&mirror, &lock, &options.cache_dir, &progress)?;
    let debroot = options.work_dir.join("test-debroot");
    fresh_dir(&debroot)?;
    for deb in &debs {
        debian::extract(deb, &debroot)?;
    }
    let root = options.work_dir.join("test-root");
    fresh_dir(&root)?;
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        rootfs::install_symlink(target, &root.join(link))?;
    }
    for dir in ["usr/bin", "usr/sbin", "usr/lib64"] {
        let path = root.join(dir);
        fs::create_dir_all(&path).map_err(io(&path))?;
    }
    let tools: Vec<&str> = options.tools.iter().map(String::as_str).collect();
    rootfs::install_tools(&debroot, &root, &tools)?;

    // Every ELF file in the archive must find what it needs inside it.
    let entries = initramfs::list_entries(&root)?;
    let files: Vec<PathBuf> = entries
        .iter()
        .filter(|entry| matches!(entry.kind, initramfs::EntryKind::File { .. }))
        .map(|entry| PathBuf::from(&entry.path))
        .collect();
    elf::check_image(&root, &files).map_err(rootfs::RootfsError::from)?;

    if let Some(parent) = options.out.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let staged = options.out.with_extension("cpio.partial");
    let file = fs::File::create(&staged).map_err(io(&staged))?;
    let mtime = u32::try_from(options.source_date_epoch.max(0)).unwrap_or(u32::MAX);
    let bytes = crate::progress::ByteProgress::new(
        "writing test-tools.cpio",
        initramfs::content_size(&entries),
    );
    let mut writer = initramfs::write_cpio(
        &root,
        &entries,
        mtime,
        std::io::BufWriter::new(file),
        &bytes,
    )?;
    bytes.finish();
    std::io::Write::flush(&mut writer).map_err(io(&staged))?;
    drop(writer);
    fs::rename(&staged, &options.out).map_err(io(&options.out))?;
    Ok(fs::metadata(&options.out).map_or(0, |m| m.len()))
}
