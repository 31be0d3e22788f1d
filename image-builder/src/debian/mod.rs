//! A small Debian archive client: enough to turn `packages.toml` into a signed, pinned
//! `packages.lock`, download exactly those `.deb`s, and unpack them into an image root.
//!
//! ```text
//! resolve:  InRelease ──OpenPGP──▶ SHA256 list ──▶ Packages.xz (amd64 + all) ──▶ closure ──▶ Lock
//! fetch:    Lock ──▶ <mirror>/<pool path> ──SHA-256──▶ cache/<name>_<version>_<arch>.deb
//! extract:  .deb ──ar──▶ data.tar.{xz,zst,gz} ──tar──▶ dest_root (confined)
//! ```
//!
//! The chain of trust is the archive's own: the keys in `image-builder/keys/` verify
//! `InRelease`, which fixes the indexes' SHA-256, which fix each package's SHA-256, which the
//! lock records. Transport security is not needed (plain HTTP mirrors work) and the mirror is
//! never named in the repository: it comes from `CAIRN_DEBIAN_MIRROR` or the host's apt
//! sources ([`Mirror::from_environment`]).
//!
//! Why not the `debian-packaging` crate: it verifies no signatures, its built-in keys end at
//! Debian 11, it buffers whole `.deb`s in memory, it does not build with a fresh lock file,
//! and its last release is from 2024. The parts used here are small or maintained crates.
//!
//! Layout, one job per file: `mirror` (which mirror), `http` (transport), `keyring` and
//! `inrelease` (trust), `deb822`, `version`, `relation`, `index` (reading the archive's
//! formats), `request` (packages.toml), `resolve` (the pure planner), `lock`, `fetch`, `deb`.

mod archive;
mod deb;
mod deb822;
mod error;
mod fetch;
mod http;
mod index;
mod inrelease;
mod keyring;
mod lock;
mod mirror;
mod progress;
mod relation;
mod request;
mod resolve;
mod version;

#[cfg(test)]
mod live_test;

use std::path::PathBuf;

pub use {
    deb::extract,
    error::DebianError,
    fetch::fetch,
    lock::Lock,
    mirror::Mirror,
    progress::{Progress, ProgressTask},
    request::PackageRequest,
};

use http::Http;
use index::Index;
use keyring::Keyring;

/// `image-builder/packages.toml`, the list of packages the image needs.
pub fn request_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packages.toml")
}

/// `image-builder/packages.lock`, the pinned result of [`resolve`].
pub fn lock_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packages.lock")
}

/// `image-builder/packages-test.lock`: the tests' packages (`image-builder test-tools`).
pub fn test_lock_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packages-test.lock")
}

/// Resolves `request` against the mirror: verified InRelease → checked `Packages` indexes
/// for the architecture and for `all` → the requested packages plus their library closure.
pub fn resolve(
    mirror: &Mirror,
    request: &PackageRequest,
    progress: &dyn Progress,
) -> Result<Lock, DebianError> {
    resolve_from(mirror, request, &request.suite, progress)
}

/// [`resolve`], reading the release from `dists/<dist>/` instead of `dists/<codename>/`.
/// `dist` may be an alias such as `stable`; the signed `Codename` must still be the
/// request's, and the keys are the codename's. Useful when a mirror is caught half-way
/// through a point-release update under one of its names.
pub fn resolve_from(
    mirror: &Mirror,
    request: &PackageRequest,
    dist: &str,
    progress: &dyn Progress,
) -> Result<Lock, DebianError> {
    let keyring = Keyring::for_codename(&request.suite)?;
    let http = Http::new()?;
    let release = archive::fetch_release(&http, mirror, dist, &request.suite, &keyring, progress)?;
    let mut index = Index::default();
    for architecture in [request.architecture.as_str(), "all"] {
        let path = format!("{}/binary-{architecture}/Packages.xz", request.component);
        archive::load_index(&http, mirror, dist, &release, &path, &mut index, progress)?;
    }
    let packages = resolve::plan(&index, request)?;
    Ok(Lock {
        suite: request.suite.clone(),
        packages,
    })
}
