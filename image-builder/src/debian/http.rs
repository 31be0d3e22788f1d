//! The HTTP side: a blocking `reqwest` client, and bounded, hashed reads of a response body.
//!
//! Why reqwest (blocking) and not ureq 3: reqwest reads `http_proxy`/`https_proxy`/`no_proxy`
//! per scheme and talks to an HTTP proxy in absolute form (`GET http://host/path`). ureq 3
//! sends every request, plain HTTP included, through `CONNECT`, which apt-cacher-ng and
//! default Squid setups — the usual proxies in front of Debian mirrors — refuse for port 80.
//!
//! Plain `http://` mirrors are fine and expected: nothing fetched is trusted for arriving over
//! TLS. `InRelease` is verified with OpenPGP against the keys in `image-builder/keys/`, the
//! indexes are checked against SHA-256 sums inside it, and every `.deb` against the SHA-256 in
//! the lock. (On networks that intercept HTTPS, rustls rejects the re-signed certificates, so
//! plain HTTP is also the one that works there.)

use std::io::Read;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::error::DebianError;
use super::progress::TaskGuard;

/// Connecting should be quick; a mirror that does not answer in this time is not going to.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// reqwest's blocking timeout applies to each phase and each body read, not to the whole
/// transfer, so a 100 MB kernel package on a slow line is fine: only a stall this long fails.
const STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Read size for streaming bodies to disk or to the hasher.
const CHUNK: usize = 64 * 1024;

pub(crate) struct Http {
    client: reqwest::blocking::Client,
}

/// The outcome of a GET that reached the server.
pub(crate) enum Fetched {
    Found(reqwest::blocking::Response),
    /// HTTP 404 or 410: callers turn this into a message that fits what was missing.
    NotFound,
}

impl Http {
    pub(crate) fn new() -> Result<Http, DebianError> {
        let client = reqwest::blocking::Client::builder()
            .user_agent(concat!("cairn-image-builder/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(STALL_TIMEOUT)
            .build()
            .map_err(|source| DebianError::HttpClient { source })?;
        Ok(Http { client })
    }

    pub(crate) fn get(&self, url: &str) -> Result<Fetched, DebianError> {
        let response = self
            .client
            .get(url)
            .send()
            .map_err(|source| DebianError::Download {
                url: url.to_owned(),
                source,
            })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Ok(Fetched::NotFound);
        }
        if !status.is_success() {
            return Err(DebianError::HttpStatus {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        Ok(Fetched::Found(response))
    }
}

/// Lower-case hex SHA-256, the form Debian's indexes use.
pub(crate) fn hex_digest(hasher: Sha256) -> String {
    format!("{:x}", hasher.finalize())
}

/// Reads a whole body into memory, refusing more than `limit` bytes so that a broken or
/// hostile mirror cannot make us allocate without bound. Only for metadata (InRelease,
/// compressed indexes of a few MB); packages are streamed to disk by `fetch`.
pub(crate) fn read_limited(
    mut body: impl Read,
    url: &str,
    limit: u64,
    task: &TaskGuard,
) -> Result<(Vec<u8>, String), DebianError> {
    let mut data = Vec::new();
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let read = body
            .read(&mut buffer)
            .map_err(|source| DebianError::ReadBody {
                url: url.to_owned(),
                source,
            })?;
        if read == 0 {
            break;
        }
        let chunk = &buffer[..read];
        if data.len() as u64 + read as u64 > limit {
            return Err(DebianError::TooLarge {
                url: url.to_owned(),
                limit,
            });
        }
        hasher.update(chunk);
        data.extend_from_slice(chunk);
        task.advance(read as u64);
    }
    Ok((data, hex_digest(hasher)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::progress::{NoProgress, Progress};

    #[test]
    fn read_limited_hashes_and_bounds() {
        let task = TaskGuard(NoProgress.start("test", None));
        let (data, sha) =
            read_limited(&b"abc"[..], "http://x.invalid/a", 3, &task).expect("within the limit");
        assert_eq!(data, b"abc");
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(matches!(
            read_limited(&b"abcd"[..], "http://x.invalid/a", 3, &task),
            Err(DebianError::TooLarge { limit: 3, .. })
        ));
    }
}
