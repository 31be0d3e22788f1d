//! `image-builder`: assembles the Cairn appliance image from locked Debian packages and
//! Cairn's own static binaries. `lock` refreshes the package lock; `build` writes the
//! image files (see docs/image-contract.md).

mod assemble;
mod debian;
mod error;
mod pipeline;
mod progress;
mod test_tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::BuildError;

#[derive(Parser)]
#[command(version, about = "Builds the Cairn appliance image")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Resolves image-builder/packages.toml against Debian's archive and rewrites the lock.
    Lock {
        /// Default: image-builder/packages.toml.
        #[arg(long)]
        packages: Option<PathBuf>,
        /// Default: image-builder/packages.lock.
        #[arg(long)]
        lock: Option<PathBuf>,
        /// The directory under dists/ to read the release from; normally the suite's
        /// codename, `stable` while a mirror is half-way through a point release.
        #[arg(long, env = "CAIRN_DEBIAN_DIST")]
        dist: Option<String>,
    },
    /// Builds vmlinuz, initramfs.img, cairn.img and manifest.json.
    Build(Box<BuildArgs>),
    /// Writes the test tool archive (newc) from the test packages' lock: the tools
    /// named and their libraries. Never part of the appliance image.
    TestTools {
        /// Default: image-builder/packages-test.lock.
        #[arg(long)]
        lock: Option<PathBuf>,
        /// A tool's file name in the packages' bin directories; repeat for several.
        #[arg(long = "tool", required = true)]
        tools: Vec<String>,
        #[arg(long, default_value = "build/image/test-tools.cpio")]
        out: PathBuf,
        #[arg(long, default_value = "build/work")]
        work: PathBuf,
        #[arg(long, env = "CAIRN_CACHE_DIR")]
        cache: Option<PathBuf>,
        #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
        source_date_epoch: i64,
    },
}

#[derive(clap::Args)]
struct BuildArgs {
    #[arg(long, default_value = "build/image")]
    out: PathBuf,
    #[arg(long, default_value = "build/work")]
    work: PathBuf,
    /// Where downloaded packages are kept between builds.
    #[arg(long, env = "CAIRN_CACHE_DIR")]
    cache: Option<PathBuf>,
    /// Default: image-builder/packages.lock.
    #[arg(long)]
    lock: Option<PathBuf>,
    #[arg(long)]
    init: PathBuf,
    #[arg(long)]
    hostd: PathBuf,
    #[arg(long)]
    console: PathBuf,
    /// hostd's command-line client, installed as /usr/bin/cairnctl.
    #[arg(long)]
    cairnctl: PathBuf,
    /// A static cloud-hypervisor binary to include (it is in no package registry).
    #[arg(long, env = "CAIRN_CLOUD_HYPERVISOR")]
    cloud_hypervisor: Option<PathBuf>,
    /// rust-hypervisor-firmware (PVH ELF) to include, for guests booting disk images.
    #[arg(long, env = "CAIRN_HYPERVISOR_FW")]
    hypervisor_fw: Option<PathBuf>,
    #[arg(long, default_value_t = assemble::initramfs::DEFAULT_ZSTD_LEVEL)]
    zstd_level: i32,
    /// Seconds since 1970 stamped on every file; the same value gives the same bytes.
    #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
    source_date_epoch: i64,
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    image_version: String,
    /// Kernel command line of the boot entries (the slot is appended).
    #[arg(long, default_value = "console=tty0 console=ttyS0,115200 loglevel=4")]
    kernel_command_line: String,
}

fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("build/cache"))
        .join("cairn/debs")
}

fn optional_input(
    path: Option<PathBuf>,
    what: &'static str,
) -> Result<Option<PathBuf>, BuildError> {
    match path {
        Some(path) if path.as_os_str().is_empty() => Ok(None),
        Some(path) if !path.exists() => Err(BuildError::InputMissing {
            what,
            path,
            hint: "point the option or environment variable at the binary, or unset it to build without",
        }),
        other => Ok(other),
    }
}

fn run(cli: Cli) -> Result<(), BuildError> {
    match cli.command {
        Command::Lock {
            packages,
            lock,
            dist,
        } => {
            let packages = packages.unwrap_or_else(debian::request_path);
            let lock = lock.unwrap_or_else(debian::lock_path);
            let mirror = debian::Mirror::from_environment()?;
            let request = debian::PackageRequest::read(&packages)?;
            let progress = progress::IndicatifProgress;
            let resolved = match dist {
                Some(dist) => debian::resolve_from(&mirror, &request, &dist, &progress)?,
                None => debian::resolve(&mirror, &request, &progress)?,
            };
            resolved.write(&lock)?;
            eprintln!(
                "locked {} packages from {} into {}",
                resolved.packages.len(),
                resolved.suite,
                lock.display()
            );
            Ok(())
        }
        Command::Build(arguments) => build_image(*arguments),
        Command::TestTools {
            lock,
            tools,
            out,
            work,
            cache,
            source_date_epoch,
        } => {
            let bytes = test_tools::build(&test_tools::TestToolsOptions {
                lock_path: lock.unwrap_or_else(debian::test_lock_path),
                cache_dir: cache.unwrap_or_else(default_cache_dir),
                work_dir: work,
                out: out.clone(),
                tools: tools.clone(),
                source_date_epoch,
            })?;
            eprintln!(
                "test tools ({}) in {}: {:.1} MiB",
                tools.join(", "),
                out.display(),
                mib(bytes)
            );
            Ok(())
        }
    }
}

/// `image-builder build`: checks the inputs, says what is left out, builds, reports.
fn build_image(arguments: BuildArgs) -> Result<(), BuildError> {
    for (what, path) in [
        ("init binary", &arguments.init),
        ("hostd binary", &arguments.hostd),
        ("console binary", &arguments.console),
        ("cairnctl binary", &arguments.cairnctl),
    ] {
        if !path.exists() {
            return Err(BuildError::InputMissing {
                what,
                path: path.clone(),
                hint: "build the workspace first (`make image` does)",
            });
        }
    }
    let cloud_hypervisor = optional_input(arguments.cloud_hypervisor, "cloud-hypervisor")?;
    let hypervisor_fw = optional_input(arguments.hypervisor_fw, "hypervisor firmware")?;
    if cloud_hypervisor.is_none() || hypervisor_fw.is_none() {
        eprintln!(
            "note: building without {}: guests cannot run on this image. Set CAIRN_CLOUD_HYPERVISOR and CAIRN_HYPERVISOR_FW to include them.",
            match (cloud_hypervisor.is_none(), hypervisor_fw.is_none()) {
                (true, true) => "cloud-hypervisor and rust-hypervisor-firmware",
                (true, false) => "cloud-hypervisor",
                _ => "rust-hypervisor-firmware",
            }
        );
    }
    let manifest = pipeline::build(&pipeline::BuildOptions {
        out_dir: arguments.out.clone(),
        work_dir: arguments.work,
        cache_dir: arguments.cache.unwrap_or_else(default_cache_dir),
        lock_path: arguments.lock.unwrap_or_else(debian::lock_path),
        init: arguments.init,
        hostd: arguments.hostd,
        console: arguments.console,
        cairnctl: arguments.cairnctl,
        cloud_hypervisor,
        hypervisor_fw,
        zstd_level: arguments.zstd_level,
        source_date_epoch: arguments.source_date_epoch,
        version: arguments.image_version,
        kernel_command_line: arguments.kernel_command_line,
    })?;
    eprintln!(
        "image ready in {}: kernel {} ({:.1} MiB), initramfs {:.1} MiB ({:.1} MiB unpacked, {} modules), disk {:.0} MiB ({:.1} MiB allocated); {:.1} s",
        arguments.out.display(),
        manifest.kernel_version,
        mib(manifest.vmlinuz_bytes),
        mib(manifest.initramfs_bytes),
        mib(manifest.initramfs_uncompressed_bytes),
        manifest.modules_kept,
        mib(manifest.disk_bytes),
        mib(manifest.disk_allocated_bytes),
        manifest.build_seconds
    );
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The whole cause chain, once, at the top (STYLE §5).
            let mut message = format!("image-builder: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
