//! Fetching the archive's metadata: the signed `InRelease`, then the `Packages` indexes it
//! vouches for.
//!
//! Indexes are fetched by hash when the Release says `Acquire-By-Hash: yes`
//! (`…/binary-amd64/by-hash/SHA256/<sum>`), as apt does: a mirror that is half-way through
//! an update keeps the files of the previous Release under their hashes, so the index we get
//! is the one our InRelease describes even while `Packages.xz` itself is being replaced. If
//! the by-hash file is missing (some mirrors and proxies lack it) we fall back to the plain
//! name; a mismatch is then reported, never used.

use std::io::BufReader;
use std::time::SystemTime;

use super::deb822::Paragraphs;
use super::error::DebianError;
use super::http::{Fetched, Http, read_limited};
use super::index::Index;
use super::inrelease::{self, IndexFile, Release};
use super::keyring::Keyring;
use super::mirror::Mirror;
use super::progress::{Progress, TaskGuard};

/// Upper bound for `InRelease`. Trixie's is 140 KB; this leaves room for many more
/// architectures and components while keeping a misbehaving server from filling memory.
const INRELEASE_LIMIT: u64 = 16 * 1024 * 1024;

/// Downloads and verifies `dists/<dist>/InRelease`, which must be signed for `codename`.
pub(crate) fn fetch_release(
    http: &Http,
    mirror: &Mirror,
    dist: &str,
    codename: &str,
    keyring: &Keyring,
    progress: &dyn Progress,
) -> Result<Release, DebianError> {
    let url = mirror.url(&format!("dists/{dist}/InRelease"));
    let body = match http.get(&url)? {
        Fetched::Found(response) => response,
        Fetched::NotFound => {
            return Err(DebianError::MetadataNotFound {
                url,
                mirror: mirror.to_string(),
                dist: dist.to_owned(),
            });
        }
    };
    let task = TaskGuard(progress.start(&format!("dists/{dist}/InRelease"), None));
    let (bytes, _sha256) = read_limited(body, &url, INRELEASE_LIMIT, &task)?;
    drop(task);
    // A clear-signed file is text; anything that is not UTF-8 cannot be a valid one.
    let text = String::from_utf8(bytes).map_err(|_| DebianError::InvalidRelease {
        url: url.clone(),
        reason: "it is not UTF-8 text".to_owned(),
    })?;
    let (signed, _signer) = inrelease::verify(&text, &url, keyring, SystemTime::now())?;
    inrelease::parse_release(&signed, &url, codename)
}

/// Downloads one `Packages.xz` listed in `release` (path relative to `dists/<dist>/`),
/// checks it against the signed size and SHA-256, and adds its packages to `index`.
pub(crate) fn load_index(
    http: &Http,
    mirror: &Mirror,
    dist: &str,
    release: &Release,
    path: &str,
    index: &mut Index,
    progress: &dyn Progress,
) -> Result<(), DebianError> {
    let expected = release
        .sha256
        .get(path)
        .ok_or_else(|| DebianError::IndexNotListed {
            path: format!("dists/{dist}/{path}"),
        })?;
    let plain_url = mirror.url(&format!("dists/{dist}/{path}"));
    let mut candidates = Vec::new();
    if release.acquire_by_hash {
        let directory = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        candidates.push(mirror.url(&format!(
            "dists/{dist}/{directory}/by-hash/SHA256/{}",
            expected.sha256
        )));
    }
    candidates.push(plain_url.clone());

    let mut found = None;
    for url in candidates {
        if let Fetched::Found(response) = http.get(&url)? {
            found = Some((url, response));
            break;
        }
    }
    let Some((url, response)) = found else {
        return Err(DebianError::MetadataNotFound {
            url: plain_url,
            mirror: mirror.to_string(),
            dist: dist.to_owned(),
        });
    };

    let task = TaskGuard(progress.start(path, Some(expected.size)));
    // Never read past the signed size: a longer file is the wrong file.
    let (compressed, actual) = read_limited(response, &url, expected.size, &task)?;
    drop(task);
    check_index(&compressed, &actual, expected, &url)?;

    // Decompress while parsing: the decompressed amd64 index is never held in memory whole.
    let decoder = xz2::read::XzDecoder::new_multi_decoder(compressed.as_slice());
    index.add_paragraphs(Paragraphs::new(BufReader::new(decoder)), &url)?;
    Ok(())
}

/// An index is used only if it is exactly the file the signed Release describes.
fn check_index(
    data: &[u8],
    sha256: &str,
    expected: &IndexFile,
    url: &str,
) -> Result<(), DebianError> {
    if sha256 == expected.sha256 && data.len() as u64 == expected.size {
        return Ok(());
    }
    Err(DebianError::IndexMismatch {
        url: url.to_owned(),
        expected: expected.sha256.clone(),
        expected_size: expected.size,
        actual: sha256.to_owned(),
        actual_size: data.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_from_another_release_is_refused_with_advice() {
        // What a mirror half-way through a point release serves: the previous release's
        // binary-all/Packages.xz under the name the new InRelease describes.
        let expected = IndexFile {
            size: 4_534_476,
            sha256: "bb4c324e01a19614b1731a55799c16919babb3f3bca0b472feffdbfb35f20526".to_owned(),
        };
        let stale = vec![0u8; 4_533_564];
        let url = "http://mirror.invalid/debian/dists/trixie/main/binary-all/Packages.xz";
        let error = check_index(
            &stale,
            "55bef3400f6614ac8bfdd05922310d9ff456e458d0bf9a0a201e6d9359144108",
            &expected,
            url,
        )
        .expect_err("mismatch");
        let message = error.to_string();
        for needle in [
            url,
            "bb4c324e",
            "55bef340",
            "4533564",
            "try again later",
            "CAIRN_DEBIAN_MIRROR",
        ] {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        assert!(check_index(&[0u8; 4_534_476], &expected.sha256, &expected, url).is_ok());
    }
}
