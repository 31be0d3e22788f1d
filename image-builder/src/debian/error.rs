//! The one error type of the Debian archive client: a variant per operation that can fail,
//! each message saying what failed and what to do about it; the cause is the `#[source]` and
//! is not repeated in the message (the CLI prints the whole chain once).

use std::path::PathBuf;

use super::deb822::Deb822Error;

#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    // --- Mirror selection -------------------------------------------------------------------
    #[error(
        "No Debian mirror found: none of {searched:?} has a `deb` source for a Debian release \
         (bookworm, trixie, forky, sid, …). Set CAIRN_DEBIAN_MIRROR to a mirror's base URL, \
         e.g. CAIRN_DEBIAN_MIRROR=http://<mirror>/debian"
    )]
    NoMirror { searched: Vec<PathBuf> },
    #[error("Invalid Debian mirror URL {url:?} (from {origin}): {reason}")]
    InvalidMirror {
        url: String,
        origin: String,
        reason: &'static str,
    },
    #[error("Cannot read apt sources {path}")]
    ReadAptSources {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot parse apt sources {path}")]
    ParseAptSources {
        path: PathBuf,
        #[source]
        source: Deb822Error,
    },

    // --- The request (packages.toml) --------------------------------------------------------
    #[error("Cannot read the package list {path}")]
    ReadRequest {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot parse the package list {path}")]
    ParseRequest {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("Invalid package list {path}: {reason}")]
    InvalidRequest { path: PathBuf, reason: String },

    // --- HTTP ---------------------------------------------------------------------------------
    #[error("Cannot set up the HTTP client")]
    HttpClient {
        #[source]
        source: reqwest::Error,
    },
    #[error("Download of {url} failed (network or proxy problem; check http_proxy and the mirror)")]
    Download {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Reading {url} failed mid-way (network or proxy problem; run the command again)")]
    ReadBody {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url} answered HTTP {status}")]
    HttpStatus { url: String, status: u16 },
    #[error(
        "{url} does not exist (HTTP 404): is {mirror} a Debian mirror that carries dists/{dist}?"
    )]
    MetadataNotFound {
        url: String,
        mirror: String,
        dist: String,
    },
    #[error("{url} is larger than the {limit} bytes expected; refusing to read more")]
    TooLarge { url: String, limit: u64 },

    // --- Signature check --------------------------------------------------------------------
    #[error("The built-in Debian archive key {file} cannot be loaded")]
    LoadKey {
        file: &'static str,
        #[source]
        source: Box<pgp::errors::Error>,
    },
    #[error("The built-in Debian archive key {file} is unusable: {reason}")]
    InvalidKey { file: &'static str, reason: String },
    #[error(
        "No archive keys are shipped for Debian release {codename:?}: add its archive keys to \
         image-builder/keys/ and to the keyring table in src/debian/keyring.rs"
    )]
    NoKeysForRelease { codename: String },
    #[error("{url} is not a valid OpenPGP clear-signed Release file")]
    ParseInRelease {
        url: String,
        #[source]
        source: Box<pgp::errors::Error>,
    },
    #[error(
        "{url} carries no valid signature from a trusted Debian archive key (signed by: {signers}); \
         refusing to use it. The mirror may serve a forged or broken file, or the keys in \
         image-builder/keys/ are out of date"
    )]
    Untrusted { url: String, signers: String },
    #[error(
        "{url} has a signature by trusted key {key} that does NOT verify: the file was altered \
         after signing. Do not use this mirror until this is explained"
    )]
    BadSignature {
        url: String,
        key: String,
        #[source]
        source: Box<pgp::errors::Error>,
    },

    // --- Release file and indexes -----------------------------------------------------------
    #[error("Invalid Release file from {url}: {reason}")]
    InvalidRelease { url: String, reason: String },
    #[error(
        "{url} is signed for Codename {codename:?} (Suite {suite_field:?}), not {expected:?}: \
         the mirror serves another release under this name; refusing it"
    )]
    WrongSuite {
        url: String,
        expected: String,
        codename: String,
        suite_field: String,
    },
    #[error("The signed Release file lists no {path}: the mirror does not carry it")]
    IndexNotListed { path: String },
    #[error(
        "{url} does not match the signed Release file (expected {expected_size} bytes, SHA-256 \
         {expected}; got {actual_size} bytes, SHA-256 {actual}). The mirror is probably in the \
         middle of an update: try again later, or set CAIRN_DEBIAN_MIRROR to another mirror"
    )]
    IndexMismatch {
        url: String,
        expected: String,
        expected_size: u64,
        actual: String,
        actual_size: u64,
    },
    #[error("Cannot decompress or parse the index {url}")]
    ParseIndex {
        url: String,
        #[source]
        source: Deb822Error,
    },
    #[error("Index {url}: package entry at line {line} is unusable: {reason}")]
    InvalidIndexEntry {
        url: String,
        line: usize,
        reason: String,
    },

    // --- Resolution ---------------------------------------------------------------------------
    #[error(
        "Package {name} is not in {suite}/{component} for {architecture} (or all): check the \
         name in packages.toml"
    )]
    PackageNotFound {
        name: String,
        suite: String,
        component: String,
        architecture: String,
    },
    #[error(
        "Package {name} is needed, but its index entry is unusable ({reason}); if the archive \
         is at fault, avoid the package in packages.toml or wait for Debian to fix it"
    )]
    UnusableEntry { name: String, reason: String },
    #[error("Package {package} {version} has an unparsable {field} field: {reason}")]
    InvalidRelationField {
        package: String,
        version: String,
        field: &'static str,
        reason: String,
    },
    #[error(
        "Package {package} {version} needs `{dependency}`, which nothing in the index satisfies"
    )]
    Unsatisfiable {
        package: String,
        version: String,
        dependency: String,
    },
    #[error(
        "Package {name} would be needed in two versions ({first} and {second}); the index is \
         inconsistent"
    )]
    ConflictingVersions {
        name: String,
        first: String,
        second: String,
    },

    // --- Lock file ------------------------------------------------------------------------------
    #[error("Cannot read the lock file {path} (run `make lock` to create it)")]
    ReadLock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot parse the lock file {path} (run `make lock` to regenerate it)")]
    ParseLock {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("Invalid lock file {origin}: {reason} (run `make lock` to regenerate it)")]
    InvalidLock { origin: String, reason: String },
    #[error("Cannot serialise the lock file")]
    SerializeLock {
        #[source]
        source: toml::ser::Error,
    },
    #[error("Cannot write the lock file {path}")]
    WriteLock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    // --- Package download -------------------------------------------------------------------
    #[error("Cannot use the package cache {path}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{package} {version} vanished from the archive ({url} answers 404): Debian removes \
         superseded versions at point releases. Run `make lock` to refresh packages.lock"
    )]
    PackageVanished {
        package: String,
        version: String,
        url: String,
    },
    #[error(
        "{package} {version}: downloaded file has SHA-256 {actual}, the lock expects {expected}. \
         If the archive changed, run `make lock`; otherwise the mirror or the network corrupted it"
    )]
    ChecksumMismatch {
        package: String,
        version: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{package} {version}: downloaded {actual} bytes, the lock expects {expected}. If the \
         archive changed, run `make lock`; otherwise the mirror or the network cut it short"
    )]
    SizeMismatch {
        package: String,
        version: String,
        expected: u64,
        actual: u64,
    },

    // --- .deb extraction --------------------------------------------------------------------
    #[error("Cannot read the package {deb}")]
    ReadDeb {
        deb: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{deb} is not a Debian binary package: {reason}")]
    NotADeb { deb: PathBuf, reason: String },
    #[error("{deb} contains {entry:?}, which would be written outside the target directory")]
    UnsafePath { deb: PathBuf, entry: String },
    #[error("{deb} contains {entry:?} of a kind the image cannot hold ({kind})")]
    UnsupportedEntry {
        deb: PathBuf,
        entry: String,
        kind: String,
    },
    #[error("Cannot write {path} while extracting {deb}")]
    Extract {
        deb: PathBuf,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
