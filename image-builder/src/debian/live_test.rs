//! The one test that uses the real Debian archive: a temporary stand-in for
//! `image-builder lock` + `image-builder build`'s download and unpack steps, until the CLI
//! exists. Run it with
//! `cargo test -p image-builder live_archive -- --ignored --nocapture`.
//! It rewrites `image-builder/packages.lock`, fills `~/.cache/cairn/debs` and unpacks into
//! `/tmp/debroot` (or `$CAIRN_DEBROOT`). `CAIRN_DEBIAN_DIST=stable` reads the release from
//! `dists/stable/` instead of `dists/<codename>/` (see [`super::resolve_from`]).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{
    Lock, Mirror, PackageRequest, Progress, ProgressTask, extract, fetch, lock_path, request_path,
    resolve, resolve_from,
};

/// Prints one line per finished task: enough to see where the time goes.
struct LinePrinter;

struct LineTask {
    what: String,
    started: Instant,
    bytes: Cell<u64>,
}

impl Progress for LinePrinter {
    fn start(&self, what: &str, _total_bytes: Option<u64>) -> Box<dyn ProgressTask> {
        Box::new(LineTask {
            what: what.to_owned(),
            started: Instant::now(),
            bytes: Cell::new(0),
        })
    }
}

impl ProgressTask for LineTask {
    fn advance(&self, bytes: u64) {
        self.bytes.set(self.bytes.get() + bytes);
    }
    fn finish(&self) {
        eprintln!(
            "  {:>12} bytes {:>6.1} s  {}",
            self.bytes.get(),
            self.started.elapsed().as_secs_f64(),
            self.what
        );
    }
}

/// The error and its causes on one line, as the CLI will print them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME is set for a test run by a user");
    base.join("cairn/debs")
}

/// Every file or link under `root` whose name is `name`, relative to `root`.
fn find(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable tree").flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if entry.file_name() == name {
                found.push(path.strip_prefix(root).expect("below root").to_owned());
            }
            if is_dir {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
#[ignore = "downloads ~120 MB from the Debian mirror of this host's apt config (or CAIRN_DEBIAN_MIRROR) and rewrites packages.lock"]
fn live_archive_resolve_fetch_extract() {
    let started = Instant::now();
    let mirror = Mirror::from_environment().expect("a mirror is configured");
    let request = PackageRequest::read(&request_path()).expect("packages.toml is valid");

    let resolved = match std::env::var("CAIRN_DEBIAN_DIST") {
        Ok(dist) => {
            eprintln!("resolving dists/{dist} against the configured mirror …");
            resolve_from(&mirror, &request, &dist, &LinePrinter)
        }
        Err(_) => {
            eprintln!(
                "resolving dists/{} against the configured mirror …",
                request.suite
            );
            resolve(&mirror, &request, &LinePrinter)
        }
    };
    let lock = resolved.unwrap_or_else(|error| panic!("resolve failed: {}", chain(&error)));
    lock.write(&lock_path()).expect("writes packages.lock");
    assert_eq!(Lock::read(&lock_path()).expect("reads back"), lock);
    let resolved = started.elapsed();

    eprintln!("fetching into {} …", cache_dir().display());
    let fetch_started = Instant::now();
    let debs = fetch(&mirror, &lock, &cache_dir(), &LinePrinter)
        .unwrap_or_else(|error| panic!("fetch failed: {}", chain(&error)));
    let fetched = fetch_started.elapsed();

    let root = std::env::var_os("CAIRN_DEBROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/debroot"));
    if root.exists() {
        std::fs::remove_dir_all(&root).expect("clears the previous extraction");
    }
    let extract_started = Instant::now();
    let mut entries = 0;
    for deb in &debs {
        entries += extract(deb, &root).expect("extracts").len();
    }
    let extracted = extract_started.elapsed();

    let kernel = lock.kernel_release().expect("a concrete kernel is locked");
    let total: u64 = lock.packages.iter().map(|p| p.size).sum();
    println!("kernel release: {kernel}");
    println!("locked packages ({}):", lock.packages.len());
    for package in &lock.packages {
        println!(
            "  {:<40} {:<28} {:>11} bytes",
            package.name, package.version, package.size
        );
    }
    println!("total download size: {total} bytes");
    println!(
        "time: resolve {:.1} s, fetch {:.1} s, extract {:.1} s ({entries} entries), total {:.1} s",
        resolved.as_secs_f64(),
        fetched.as_secs_f64(),
        extracted.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    let vmlinuz = root.join(format!("boot/vmlinuz-{kernel}"));
    let modules = root.join(format!("usr/lib/modules/{kernel}"));
    println!("{}: {}", vmlinuz.display(), vmlinuz.is_file());
    println!("{}: {}", modules.display(), modules.is_dir());
    let mut missing = Vec::new();
    for name in ["systemd-bootx64.efi", "mkfs.btrfs", "mke2fs", "busybox"] {
        let found = find(&root, name);
        println!("{name}: {found:?}");
        if found.is_empty() {
            missing.push(name);
        }
    }
    assert!(
        vmlinuz.is_file() && modules.is_dir() && missing.is_empty(),
        "missing: {missing:?}"
    );
}
