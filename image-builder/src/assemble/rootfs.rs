//! Laying out the appliance root (what becomes the initramfs) in a staging directory.
//!
//! Only named files are taken from the extracted Debian packages: the tools hostd calls,
//! their libraries (found by ELF needs, inside the packages, never on the build host) and
//! the kept kernel modules. Everything else in the image is Cairn's own.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use super::elf::{self, ElfError};
use super::modules::{ModInfo, ModuleError, ModuleIndex, Selection, installed_path, parse_modinfo};

/// Debian tools the appliance runs, by file name; found under the usual bin directories of
/// the extracted packages and installed at the same path.
pub const TOOLS: &[&str] = &[
    "busybox",     // the emergency and admin shell, and the small utilities it brings
    "mke2fs",      // formats the blank config partition on first boot
    "e2fsck",      // checks the config partition before it is mounted
    "mkfs.btrfs",  // creates volumes
    "btrfs",       // manages volumes, devices, scrub and balance
    "make-bcache", // writes bcache superblocks: HDD members (backing) and cache SSDs
    "mdadm",       // creates, assembles and stops the md array under a cache's SSDs
    "dbus-daemon", // the system bus broker hostd's API is on (config: DBUS_SYSTEM_CONF)
    "dbus-send",   // a stock bus client: introspect and call hostd from the console
    "busctl",      // the standard tool to introspect and call hostd's API (from systemd)
];

/// Libraries the tools load with dlopen(3), so that no DT_NEEDED entry names them and the
/// library closure cannot find them: glibc's pthread_cancel loads libgcc_s for unwinding,
/// and `btrfs scrub start -B` cancels its progress thread when the scrub ends (without it
/// the tool aborts with "libgcc_s.so.1 must be installed for pthread_cancel to work").
pub const DLOPENED: &[&str] = &["usr/lib/x86_64-linux-gnu/libgcc_s.so.1"];

/// Where the broker's configuration goes; init starts `dbus-daemon` with it.
pub const DBUS_SYSTEM_CONF_PATH: &str = "etc/cairn/dbus-system.conf";

/// The system bus: a socket under /run, EXTERNAL (uid) authentication only, and access that is
/// root-only by policy: only uid 0 may connect, own names and send. No `<user>`: the image has
/// no messagebus user, so the broker stays root like every other service. No service
/// directories: nothing is bus-activated.
pub const DBUS_SYSTEM_CONF: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- Written by the Cairn image builder: the appliance's system bus, root-only by policy. -->
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <deny user="*"/>
    <allow user="root"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
  <policy user="root">
    <allow own="*"/>
    <allow send_type="method_call"/>
  </policy>
  <limit name="max_completed_connections">64</limit>
</busconfig>
"#;

/// busybox applets linked into /usr/bin: what an admin in `shell` and the tests expect.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "ash", "basename", "cat", "cp", "cut", "date", "df", "dirname", "dmesg", "du", "echo",
    "env", "false", "find", "free", "grep", "head", "hexdump", "hostname", "kill", "less", "ln",
    "ls", "lsmod", "mkdir", "mount", "mv", "pidof", "ps", "readlink", "rm", "sed", "seq", "sleep",
    "sort", "stat", "sync", "tail", "test", "top", "touch", "tr", "true", "ts", "umount", "uname",
    "usleep", "vi", "wc",
];

const TOOL_DIRS: [&str; 4] = ["usr/sbin", "usr/bin", "sbin", "bin"];

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("cannot write {path} in the image root")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the locked packages do not contain the tool `{tool}`; add its package to image-builder/packages.toml and run `make lock`"
    )]
    ToolMissing { tool: String },
    #[error("{path} is a symlink loop or points outside the package tree")]
    BadSymlink { path: PathBuf },
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error(transparent)]
    Module(ModuleError),
    #[error("a worker reading kernel modules panicked")]
    WorkerPanicked,
}

/// Cairn's own binaries and optional guest parts.
pub struct OwnBinaries<'a> {
    pub init: &'a Path,
    pub hostd: &'a Path,
    pub console: &'a Path,
    pub cairnctl: &'a Path,
    pub cloud_hypervisor: Option<&'a Path>,
    pub hypervisor_fw: Option<&'a Path>,
}

pub struct RootInputs<'a> {
    pub debroot: &'a Path,
    pub kernel_version: &'a str,
    pub module_index: &'a ModuleIndex,
    pub modules: &'a Selection,
    pub own: OwnBinaries<'a>,
    pub version: &'a str,
    pub source_date_epoch: i64,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RootfsError + '_ {
    move |source| RootfsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Follows symlinks inside `root` as the image would (absolute targets are relative to
/// `root`), returning the real file's path.
pub fn resolve_in_root(root: &Path, path: &Path) -> Result<PathBuf, RootfsError> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        let Ok(metadata) = fs::symlink_metadata(&current) else {
            return Ok(current);
        };
        if !metadata.file_type().is_symlink() {
            return Ok(current);
        }
        let target = fs::read_link(&current).map_err(io_error(&current))?;
        let next = if target.is_absolute() {
            root.join(target.strip_prefix("/").unwrap_or(&target))
        } else {
            current.parent().unwrap_or(root).join(target)
        };
        current = normalize(&next);
        if !current.starts_with(root) {
            return Err(RootfsError::BadSymlink {
                path: path.to_path_buf(),
            });
        }
    }
    Err(RootfsError::BadSymlink {
        path: path.to_path_buf(),
    })
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Copies a real file (after resolving links) to `target`, with a reduced mode.
fn install_file(source: &Path, target: &Path, executable: bool) -> Result<(), RootfsError> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    fs::copy(source, target).map_err(io_error(source))?;
    let mode = if executable { 0o755 } else { 0o644 };
    fs::set_permissions(target, fs::Permissions::from_mode(mode)).map_err(io_error(target))
}

pub fn install_symlink(target: &str, link: &Path) -> Result<(), RootfsError> {
    if let Some(parent) = link.parent() {
        fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let _ = fs::remove_file(link);
    symlink(target, link).map_err(io_error(link))
}

fn write_text(path: &Path, text: &str) -> Result<(), RootfsError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    fs::write(path, text).map_err(io_error(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).map_err(io_error(path))
}

pub fn find_tool(debroot: &Path, tool: &str) -> Option<PathBuf> {
    TOOL_DIRS
        .iter()
        .map(|dir| PathBuf::from(dir).join(tool))
        .find(|relative| debroot.join(relative).exists())
}

/// Copies Debian `tools` (by file name, from the usual bin directories of `debroot`) to
/// the same paths under `root`, with their interpreter and the library closure their ELF
/// headers ask for, all taken from `debroot`, never from the build host. The appliance's
/// root and the test peer's tool archive are both made this way.
pub fn install_tools(debroot: &Path, root: &Path, tools: &[&str]) -> Result<(), RootfsError> {
    let mut tool_sources = Vec::new();
    for tool in tools {
        let relative = find_tool(debroot, tool).ok_or_else(|| RootfsError::ToolMissing {
            tool: tool.to_string(),
        })?;
        let real = resolve_in_root(debroot, &debroot.join(&relative))?;
        install_file(&real, &root.join(&relative), true)?;
        tool_sources.push(real);
    }
    let libraries = elf::library_closure(debroot, &tool_sources)?;
    let mut interpreters = Vec::new();
    for source in &tool_sources {
        if let Some(needs) = elf::read_needs(source)?
            && let Some(interpreter) = needs.interpreter
            && !interpreters.contains(&interpreter)
        {
            interpreters.push(interpreter);
        }
    }
    for interpreter in &interpreters {
        // /lib64/… in the binary; /usr/lib64/… in the merged tree of the image.
        let relative = interpreter.trim_start_matches('/');
        // Packages unpacked without base-files have no /lib64 -> usr/lib64 link yet.
        let candidate = [PathBuf::from(relative), Path::new("usr").join(relative)]
            .into_iter()
            .map(|path| debroot.join(path))
            .find(|path| fs::symlink_metadata(path).is_ok())
            .ok_or_else(|| ElfError::Unsatisfied {
                binary: "the Debian tools".to_string(),
                library: interpreter.clone(),
            })?;
        let in_debroot = resolve_in_root(debroot, &candidate)?;
        let target = root.join("usr").join(relative.trim_start_matches("usr/"));
        install_file(&in_debroot, &target, true)?;
    }
    for (soname, location) in &libraries {
        let real = resolve_in_root(debroot, location)?;
        install_file(
            &real,
            &root.join("usr/lib/x86_64-linux-gnu").join(soname),
            true,
        )?;
    }
    Ok(())
}

/// Builds the whole root under `root` (which must be empty); returns the number of ELF
/// files whose needs were checked.
pub fn assemble(root: &Path, inputs: &RootInputs) -> Result<usize, RootfsError> {
    // Merged /usr, as Debian trixie: the interpreter path /lib64/ld-linux-x86-64.so.2
    // baked into every binary resolves through these links.
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        install_symlink(target, &root.join(link))?;
    }
    for dir in [
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "config",
        "root",
        "var",
        "etc/cairn",
        "usr/bin",
        "usr/sbin",
        "usr/lib64",
    ] {
        let path = root.join(dir);
        fs::create_dir_all(&path).map_err(io_error(&path))?;
    }

    // Cairn's own binaries: static, or the build stops here.
    let own = &inputs.own;
    for (source, target, label) in [
        (own.init, "init", "init"),
        (own.hostd, "usr/bin/hostd", "hostd"),
        (own.console, "usr/bin/cairn-console", "cairn-console"),
        (own.cairnctl, "usr/bin/cairnctl", "cairnctl"),
    ] {
        elf::require_static(source, label)?;
        install_file(source, &root.join(target), true)?;
    }
    if let Some(vmm) = own.cloud_hypervisor {
        elf::require_static(vmm, "cloud-hypervisor")?;
        install_file(vmm, &root.join("usr/libexec/cairn/cloud-hypervisor"), true)?;
    }
    if let Some(firmware) = own.hypervisor_fw {
        install_file(firmware, &root.join("usr/share/cairn/hypervisor-fw"), false)?;
    }

    install_tools(inputs.debroot, root, TOOLS)?;
    for location in DLOPENED {
        let real = resolve_in_root(inputs.debroot, &inputs.debroot.join(location))?;
        install_file(&real, &root.join(location), true)?;
    }
    for applet in BUSYBOX_APPLETS {
        let link = root.join("usr/bin").join(applet);
        if !link.exists() {
            install_symlink("busybox", &link)?;
        }
    }

    install_modules(root, inputs)?;
    write_etc(root, inputs)?;

    // Every ELF file in the image must find what it needs inside the image.
    let mut files = Vec::new();
    for item in walkdir::WalkDir::new(root).sort_by_file_name() {
        let item = item.map_err(|error| RootfsError::Io {
            path: root.to_path_buf(),
            source: error.into(),
        })?;
        if item.file_type().is_file() {
            let relative = item
                .path()
                .strip_prefix(root)
                .expect("walkdir yields paths under its root")
                .to_path_buf();
            if !relative.starts_with("usr/lib/modules") {
                files.push(relative);
            }
        }
    }
    Ok(elf::check_image(root, &files)?)
}

fn install_modules(root: &Path, inputs: &RootInputs) -> Result<(), RootfsError> {
    let source_dir = modules_dir(inputs.debroot, inputs.kernel_version);
    let target_dir = root.join("usr/lib/modules").join(inputs.kernel_version);
    for path in inputs.modules.modules.values() {
        let source = source_dir.join(path);
        let target = target_dir.join(installed_path(path));
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        decompress_module(&source, &target)?;
    }
    write_text(
        &target_dir.join("modules.dep"),
        &inputs.module_index.render_dep(inputs.modules),
    )?;
    write_text(
        &target_dir.join("modules.alias"),
        &inputs.module_index.render_alias(inputs.modules),
    )?;
    write_text(
        &target_dir.join("modules.builtin"),
        &inputs.module_index.render_builtin(),
    )?;
    Ok(())
}

/// Debian's module tree: under /usr/lib on trixie (merged /usr), /lib before it.
pub fn modules_dir(debroot: &Path, kernel_version: &str) -> PathBuf {
    let merged = debroot.join("usr/lib/modules").join(kernel_version);
    if merged.exists() {
        merged
    } else {
        debroot.join("lib/modules").join(kernel_version)
    }
}

/// The `.modinfo` of every module under `modules_dir`, read on all cores (decompressing
/// ~4,000 modules is most of this step).
pub fn read_all_modinfo(modules_dir: &Path) -> Result<Vec<ModInfo>, RootfsError> {
    let mut paths = Vec::new();
    for item in walkdir::WalkDir::new(modules_dir.join("kernel")).sort_by_file_name() {
        let item = item.map_err(|error| RootfsError::Io {
            path: modules_dir.to_path_buf(),
            source: error.into(),
        })?;
        let name = item.file_name().to_string_lossy();
        if item.file_type().is_file() && name.contains(".ko") {
            paths.push(item.path().to_path_buf());
        }
    }
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = paths.len().div_ceil(workers).max(1);
    let results: Vec<Result<Vec<ModInfo>, RootfsError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|path| {
                            let bytes = read_module(path)?;
                            let relative = path
                                .strip_prefix(modules_dir)
                                .expect("walkdir yields paths under its root")
                                .to_string_lossy()
                                .into_owned();
                            parse_modinfo(&relative, &bytes).map_err(RootfsError::Module)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or(Err(RootfsError::WorkerPanicked)))
            .collect()
    });
    let mut all = Vec::new();
    for result in results {
        all.extend(result?);
    }
    Ok(all)
}

fn read_module(source: &Path) -> Result<Vec<u8>, RootfsError> {
    let input = fs::File::open(source).map_err(io_error(source))?;
    let name = source.to_string_lossy();
    let mut bytes = Vec::new();
    let read = if name.ends_with(".xz") {
        std::io::Read::read_to_end(&mut xz2::read::XzDecoder::new(input), &mut bytes)
    } else if name.ends_with(".zst") {
        zstd::Decoder::new(input)
            .and_then(|mut decoder| std::io::Read::read_to_end(&mut decoder, &mut bytes))
    } else {
        let mut input = input;
        std::io::Read::read_to_end(&mut input, &mut bytes)
    };
    read.map_err(io_error(source))?;
    Ok(bytes)
}

fn decompress_module(source: &Path, target: &Path) -> Result<(), RootfsError> {
    let bytes = read_module(source)?;
    fs::write(target, bytes).map_err(io_error(target))?;
    fs::set_permissions(target, fs::Permissions::from_mode(0o644)).map_err(io_error(target))
}

fn write_etc(root: &Path, inputs: &RootInputs) -> Result<(), RootfsError> {
    write_text(&root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    write_text(&root.join("etc/group"), "root:x:0:\n")?;
    write_text(&root.join("etc/hostname"), "cairn\n")?;
    write_text(&root.join(DBUS_SYSTEM_CONF_PATH), DBUS_SYSTEM_CONF)?;
    write_text(
        &root.join("etc/os-release"),
        &format!(
            "NAME=Cairn\nID=cairn\nVERSION_ID={}\nPRETTY_NAME=\"Cairn {}\"\n",
            inputs.version, inputs.version
        ),
    )?;
    write_text(
        &root.join("etc/cairn/image.toml"),
        &format!(
            "# Written by the image builder; read by init, hostd and `make bench`.\nversion = \"{}\"\nkernel_version = \"{}\"\nsource_date_epoch = {}\ncloud_hypervisor = {}\nhypervisor_fw = {}\n",
            inputs.version,
            inputs.kernel_version,
            inputs.source_date_epoch,
            inputs.own.cloud_hypervisor.is_some(),
            inputs.own.hypervisor_fw.is_some()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root_even_when_absolute() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("usr/lib/x86_64-linux-gnu")).expect("mkdir");
        fs::create_dir_all(root.join("usr/lib64")).expect("mkdir");
        fs::write(root.join("usr/lib/x86_64-linux-gnu/ld.so"), b"x").expect("write");
        symlink(
            "/usr/lib/x86_64-linux-gnu/ld.so",
            root.join("usr/lib64/ld-linux.so"),
        )
        .expect("link");
        let resolved =
            resolve_in_root(root, &root.join("usr/lib64/ld-linux.so")).expect("resolves");
        assert_eq!(resolved, root.join("usr/lib/x86_64-linux-gnu/ld.so"));
    }

    #[test]
    fn symlink_escaping_the_root_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        fs::create_dir_all(&root).expect("mkdir");
        symlink("../../../etc/passwd", root.join("escape")).expect("link");
        assert!(matches!(
            resolve_in_root(&root, &root.join("escape")),
            Err(RootfsError::BadSymlink { .. })
        ));
    }

    #[test]
    fn bus_config_is_root_only_without_a_user_switch() {
        let conf = DBUS_SYSTEM_CONF;
        assert!(conf.contains("<listen>unix:path=/run/dbus/system_bus_socket</listen>"));
        assert!(conf.contains("<auth>EXTERNAL</auth>"));
        assert!(!conf.contains("<user>"), "the image has no messagebus user");
        let deny_all = conf.find(r#"<deny user="*"/>"#).expect("everyone denied");
        let allow_root = conf.find(r#"<allow user="root"/>"#).expect("root allowed");
        assert!(deny_all < allow_root, "the later rule wins");
        assert!(!conf.contains("servicedir"), "nothing is bus-activated");
    }

    #[test]
    fn tools_are_found_in_any_bin_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("sbin")).expect("mkdir");
        fs::write(dir.path().join("sbin/mke2fs"), b"x").expect("write");
        assert_eq!(
            find_tool(dir.path(), "mke2fs"),
            Some(PathBuf::from("sbin/mke2fs"))
        );
        assert_eq!(find_tool(dir.path(), "absent"), None);
    }
}
