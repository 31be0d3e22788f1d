//! `image-builder build`: locked packages in, image files out.
//!
//! fetch (cached, hash-checked) → extract → pick modules → lay out the root → initramfs →
//! ESP → GPT disk → manifest. Each step either finishes or stops the build with an error
//! that names what to do; outputs are written under a temporary name and renamed at the
//! end, so a failed build never leaves a half-written image where the tests look.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::assemble::modules::{ModuleError, ModuleIndex};
use crate::assemble::{disk, esp, initramfs, rootfs};
use crate::debian;
use crate::error::BuildError;

pub struct BuildOptions {
    pub out_dir: PathBuf,
    pub work_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub lock_path: PathBuf,
    pub init: PathBuf,
    pub hostd: PathBuf,
    pub console: PathBuf,
    pub cairnctl: PathBuf,
    pub cloud_hypervisor: Option<PathBuf>,
    pub hypervisor_fw: Option<PathBuf>,
    pub zstd_level: i32,
    pub source_date_epoch: i64,
    pub version: String,
    pub kernel_command_line: String,
}

#[derive(Debug, Serialize)]
pub struct Manifest {
    pub version: String,
    pub kernel_version: String,
    pub source_date_epoch: i64,
    pub packages: Vec<String>,
    pub modules_kept: usize,
    pub modules_builtin: Vec<String>,
    pub elf_files_checked: usize,
    pub vmlinuz_bytes: u64,
    pub initramfs_bytes: u64,
    pub initramfs_uncompressed_bytes: u64,
    pub disk_bytes: u64,
    pub disk_allocated_bytes: u64,
    pub cloud_hypervisor: bool,
    pub hypervisor_fw: bool,
    pub build_seconds: f64,
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

/// The one kernel the packages brought: `boot/vmlinuz-<version>`.
fn find_kernel(debroot: &Path) -> Result<(String, PathBuf), BuildError> {
    let boot = debroot.join("boot");
    let mut kernels: Vec<String> = fs::read_dir(&boot)
        .map_err(io(&boot))?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
        .filter_map(|name| name.strip_prefix("vmlinuz-").map(str::to_string))
        .collect();
    kernels.sort();
    match kernels.as_slice() {
        [version] => Ok((version.clone(), boot.join(format!("vmlinuz-{version}")))),
        [] => Err(BuildError::NoKernel),
        many => Err(BuildError::SeveralKernels {
            versions: many.to_vec(),
        }),
    }
}

fn read_optional(path: &Path) -> Result<String, BuildError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(BuildError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).map(|m| m.blocks() * 512).unwrap_or(0)
}

pub fn build(options: &BuildOptions) -> Result<Manifest, BuildError> {
    let started = Instant::now();
    let lock = debian::Lock::read(&options.lock_path)?;
    let mirror = debian::Mirror::from_environment()?;
    let progress = crate::progress::IndicatifProgress;
    eprintln!("fetching {} locked packages", lock.packages.len());
    let debs = debian::fetch(&mirror, &lock, &options.cache_dir, &progress)?;

    let debroot = options.work_dir.join("debroot");
    fresh_dir(&debroot)?;
    eprintln!("extracting {} packages", debs.len());
    for deb in &debs {
        debian::extract(deb, &debroot)?;
    }

    let (kernel_version, kernel_path) = find_kernel(&debroot)?;
    if let Some(locked) = lock.kernel_release()
        && locked != kernel_version
    {
        return Err(BuildError::KernelMismatch {
            locked: locked.to_string(),
            found: kernel_version,
        });
    }
    let modules_dir = rootfs::modules_dir(&debroot, &kernel_version);
    eprintln!("reading the modinfo of every module of kernel {kernel_version}");
    let module_index = ModuleIndex::from_modinfo(
        rootfs::read_all_modinfo(&modules_dir)?,
        &read_optional(&modules_dir.join("modules.builtin"))?,
    );
    let wanted: Vec<(String, String)> = board_configs::all_image_modules()
        .into_iter()
        .map(|name| (name, "board-configs".to_string()))
        .collect();
    let selection = module_index
        .select(&wanted, &kernel_version)
        .map_err(|error: ModuleError| BuildError::Modules(error))?;
    eprintln!(
        "kernel {kernel_version}: keeping {} modules ({} requested ones are built in)",
        selection.modules.len(),
        selection.builtin.len()
    );

    let root = options.work_dir.join("root");
    fresh_dir(&root)?;
    let elf_files_checked = rootfs::assemble(
        &root,
        &rootfs::RootInputs {
            debroot: &debroot,
            kernel_version: &kernel_version,
            module_index: &module_index,
            modules: &selection,
            own: rootfs::OwnBinaries {
                init: &options.init,
                hostd: &options.hostd,
                console: &options.console,
                cairnctl: &options.cairnctl,
                cloud_hypervisor: options.cloud_hypervisor.as_deref(),
                hypervisor_fw: options.hypervisor_fw.as_deref(),
            },
            version: &options.version,
            source_date_epoch: options.source_date_epoch,
        },
    )?;

    fs::create_dir_all(&options.out_dir).map_err(io(&options.out_dir))?;
    let staged = |name: &str| options.out_dir.join(format!(".{name}.partial"));
    let mtime = u32::try_from(options.source_date_epoch.max(0)).unwrap_or(u32::MAX);
    let (initramfs_uncompressed, initramfs_bytes) =
        initramfs::write_initramfs(&root, &staged("initramfs.img"), mtime, options.zstd_level)?;
    fs::copy(&kernel_path, staged("vmlinuz")).map_err(io(&kernel_path))?;

    let systemd_boot = debroot.join("usr/lib/systemd/boot/efi/systemd-bootx64.efi");
    if !systemd_boot.exists() {
        return Err(BuildError::NoSystemdBoot { path: systemd_boot });
    }
    let esp_staging = options.work_dir.join("esp");
    fresh_dir(&esp_staging)?;
    let esp_files = esp::stage(
        &esp_staging,
        &esp::EspContents {
            systemd_boot_efi: &systemd_boot,
            kernel: &staged("vmlinuz"),
            initramfs: &staged("initramfs.img"),
            version: &options.version,
            kernel_command_line: &options.kernel_command_line,
        },
        options.source_date_epoch,
    )?;
    let esp_image = options.work_dir.join("esp.img");
    eprintln!("writing the EFI system partition");
    esp::make_fat_image(
        &esp_image,
        disk::ESP_SIZE_MIB,
        &esp_staging,
        &esp_files,
        options.source_date_epoch,
    )?;
    eprintln!("writing the GPT disk image");
    disk::write_disk(&staged("cairn.img"), &esp_image, options.source_date_epoch)?;

    for name in ["vmlinuz", "initramfs.img", "cairn.img"] {
        let target = options.out_dir.join(name);
        fs::rename(staged(name), &target).map_err(io(&target))?;
    }
    let disk_path = options.out_dir.join("cairn.img");
    let manifest = Manifest {
        version: options.version.clone(),
        kernel_version,
        source_date_epoch: options.source_date_epoch,
        packages: lock
            .packages
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect(),
        modules_kept: selection.modules.len(),
        modules_builtin: selection.builtin.clone(),
        elf_files_checked,
        vmlinuz_bytes: fs::metadata(options.out_dir.join("vmlinuz"))
            .map(|m| m.len())
            .unwrap_or(0),
        initramfs_bytes,
        initramfs_uncompressed_bytes: initramfs_uncompressed,
        disk_bytes: disk::total_size(),
        disk_allocated_bytes: allocated_bytes(&disk_path),
        cloud_hypervisor: options.cloud_hypervisor.is_some(),
        hypervisor_fw: options.hypervisor_fw.is_some(),
        build_seconds: started.elapsed().as_secs_f64(),
    };
    let manifest_path = options.out_dir.join("manifest.json");
    let text = serde_json::to_string_pretty(&manifest).expect("the manifest is plain data");
    fs::write(&manifest_path, text + "\n").map_err(io(&manifest_path))?;
    Ok(manifest)
}
