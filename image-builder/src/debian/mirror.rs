//! Which Debian mirror to use. No mirror is written into the repository: builders behind
//! different networks use different mirrors (or a local apt cache), and the build host's apt
//! configuration already names one that works there.
//!
//! Order: `CAIRN_DEBIAN_MIRROR`, then the first `deb` source in the host's apt configuration
//! (`/etc/apt/sources.list`, then `sources.list.d/*.list` and `*.sources` in name order, as apt
//! reads them) whose suite is a Debian release codename. The suite check skips the security
//! archive (`bookworm-security` lives on a different tree without `trixie`) and third-party
//! repositories (`nodistro`, `cloud-sdk-bookworm`).

use std::fmt;
use std::path::{Path, PathBuf};

use super::deb822;
use super::error::DebianError;

/// The environment variable that overrides the apt configuration.
pub const MIRROR_ENV: &str = "CAIRN_DEBIAN_MIRROR";

/// Release codenames whose archive layout we understand (the suite names apt sources use).
/// `bullseye` and `duke` are here so that an older or newer build host is still recognised.
const DEBIAN_CODENAMES: &[&str] = &["bullseye", "bookworm", "trixie", "forky", "duke", "sid"];

/// A Debian archive mirror: the base URL under which `dists/` and `pool/` live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    base: String,
}

impl Mirror {
    /// Checks and normalises a base URL such as `http://host/debian/`.
    pub fn new(url: &str, origin: &str) -> Result<Mirror, DebianError> {
        let invalid = |reason| DebianError::InvalidMirror {
            url: url.to_owned(),
            origin: origin.to_owned(),
            reason,
        };
        let trimmed = url.trim().trim_end_matches('/');
        let rest = trimmed
            .strip_prefix("http://")
            .or_else(|| trimmed.strip_prefix("https://"))
            .ok_or_else(|| invalid("only http:// and https:// mirrors are supported"))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(invalid("the URL has no host"));
        }
        if trimmed.contains(['?', '#', ' ']) {
            return Err(invalid(
                "a mirror base URL has no query, fragment or spaces",
            ));
        }
        Ok(Mirror {
            base: trimmed.to_owned(),
        })
    }

    /// `CAIRN_DEBIAN_MIRROR` if set, else the first Debian source in the host's apt config.
    pub fn from_environment() -> Result<Mirror, DebianError> {
        Self::from_sources(std::env::var(MIRROR_ENV).ok(), Path::new("/etc/apt"))
    }

    /// [`Mirror::from_environment`] with its inputs passed in, so tests can use fixtures.
    pub fn from_sources(env_value: Option<String>, apt_dir: &Path) -> Result<Mirror, DebianError> {
        if let Some(url) = env_value.filter(|value| !value.trim().is_empty()) {
            return Mirror::new(&url, MIRROR_ENV);
        }
        let files = apt_source_files(apt_dir)?;
        for file in &files {
            let text = match std::fs::read_to_string(file) {
                Ok(text) => text,
                // sources.list itself is optional on current Debian (deb822 files replace it).
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(DebianError::ReadAptSources {
                        path: file.clone(),
                        source,
                    });
                }
            };
            let found = if file.extension().is_some_and(|e| e == "sources") {
                first_in_deb822(&text).map_err(|source| DebianError::ParseAptSources {
                    path: file.clone(),
                    source,
                })?
            } else {
                first_in_one_line_format(&text)
            };
            if let Some(url) = found {
                return Mirror::new(&url, &file.display().to_string());
            }
        }
        Err(DebianError::NoMirror { searched: files })
    }

    /// The URL of a path below the mirror, e.g. `dists/trixie/InRelease`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

/// The files apt reads, in apt's order.
fn apt_source_files(apt_dir: &Path) -> Result<Vec<PathBuf>, DebianError> {
    let mut files = vec![apt_dir.join("sources.list")];
    let parts = apt_dir.join("sources.list.d");
    let entries = match std::fs::read_dir(&parts) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(source) => {
            return Err(DebianError::ReadAptSources {
                path: parts,
                source,
            });
        }
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| DebianError::ReadAptSources {
                path: parts.clone(),
                source,
            })?
            .path();
        // apt ignores every other name (`*.disabled`, `*.save`, editor backups): so do we.
        if path
            .extension()
            .is_some_and(|e| e == "list" || e == "sources")
        {
            found.push(path);
        }
    }
    found.sort();
    files.extend(found);
    Ok(files)
}

fn is_debian_suite(suite: &str) -> bool {
    let codename = suite.strip_suffix("-updates").unwrap_or(suite);
    DEBIAN_CODENAMES.contains(&codename)
}

fn is_http(uri: &str) -> bool {
    uri.starts_with("http://") || uri.starts_with("https://")
}

/// `deb [options] URI suite component…` lines.
fn first_in_one_line_format(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default().trim();
        let rest = line.strip_prefix("deb")?;
        if !rest.starts_with(char::is_whitespace) {
            return None; // `deb-src`, or not a source line at all.
        }
        let rest = rest.trim_start();
        // Options are one bracketed group: `[arch=amd64 signed-by=/usr/share/…]`.
        let rest = match rest.strip_prefix('[') {
            Some(options) => options.split_once(']')?.1,
            None => rest,
        };
        let mut words = rest.split_whitespace();
        let uri = words.next()?;
        let suite = words.next()?;
        (is_http(uri) && is_debian_suite(suite)).then(|| uri.to_owned())
    })
}

/// deb822 `*.sources` stanzas: `Types:`, `URIs:`, `Suites:`, optional `Enabled: no`.
fn first_in_deb822(text: &str) -> Result<Option<String>, deb822::Deb822Error> {
    for stanza in deb822::parse_str(text)? {
        let enabled = stanza
            .get("Enabled")
            .is_none_or(|value| !value.eq_ignore_ascii_case("no"));
        let is_deb = stanza
            .get("Types")
            .is_some_and(|types| types.split_whitespace().any(|t| t == "deb"));
        let has_debian_suite = stanza
            .get("Suites")
            .is_some_and(|suites| suites.split_whitespace().any(is_debian_suite));
        if !(enabled && is_deb && has_debian_suite) {
            continue;
        }
        let uris = stanza.get("URIs").unwrap_or_default();
        if let Some(uri) = uris.split_whitespace().find(|uri| is_http(uri)) {
            return Ok(Some(uri.to_owned()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apt_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(dir.path().join("sources.list.d")).expect("mkdir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write fixture");
        }
        dir
    }

    #[test]
    fn environment_wins_and_is_normalised() {
        let dir = apt_dir(&[(
            "sources.list",
            "deb http://apt.invalid/debian trixie main\n",
        )]);
        let mirror = Mirror::from_sources(Some("http://env.invalid/debian/".into()), dir.path())
            .expect("valid mirror");
        assert_eq!(
            mirror.url("dists/trixie/InRelease"),
            "http://env.invalid/debian/dists/trixie/InRelease"
        );
    }

    #[test]
    fn deb822_sources_skip_security_third_party_and_disabled() {
        let dir = apt_dir(&[
            (
                "sources.list.d/a-thirdparty.sources",
                "Types: deb\nURIs: https://thirdparty.invalid/node\nSuites: nodistro\nComponents: main\n",
            ),
            (
                "sources.list.d/debian.sources",
                "Types: deb\nURIs: http://security.invalid/debian-security\nSuites: bookworm-security\n\n\
                 Types: deb-src\nURIs: http://src.invalid/debian\nSuites: trixie\n\n\
                 Enabled: no\nTypes: deb\nURIs: http://off.invalid/debian\nSuites: trixie\n\n\
                 # the archive\nTypes: deb\nURIs: cdrom:/x http://main.invalid/debian\nSuites: bookworm bookworm-updates\n",
            ),
            (
                "sources.list.d/old.list.disabled",
                "deb http://disabled.invalid/debian trixie main\n",
            ),
        ]);
        let mirror = Mirror::from_sources(None, dir.path()).expect("a mirror is configured");
        assert_eq!(mirror.to_string(), "http://main.invalid/debian");
    }

    #[test]
    fn one_line_format_with_options_and_updates_suite() {
        let dir = apt_dir(&[
            (
                "sources.list",
                "# comment\ndeb-src http://src.invalid/debian trixie main\n\
                 deb https://cloud.invalid/apt cloud-sdk-bookworm main\n\
                 deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://list.invalid/debian/ trixie-updates main # trailing\n",
            ),
            (
                "sources.list.d/z.sources",
                "Types: deb\nURIs: http://later.invalid/debian\nSuites: trixie\n",
            ),
        ]);
        let mirror = Mirror::from_sources(None, dir.path()).expect("a mirror is configured");
        assert_eq!(mirror.to_string(), "http://list.invalid/debian");
    }

    #[test]
    fn nothing_usable_tells_the_user_to_set_the_variable() {
        let dir = apt_dir(&[(
            "sources.list.d/debian.sources",
            "Types: deb\nURIs: http://security.invalid/debian-security\nSuites: trixie-security\n",
        )]);
        let error = Mirror::from_sources(Some(String::new()), dir.path())
            .expect_err("no Debian source is configured");
        assert!(matches!(error, DebianError::NoMirror { ref searched } if searched.len() == 2));
        assert!(error.to_string().contains("CAIRN_DEBIAN_MIRROR"));
    }

    #[test]
    fn refuses_non_http_mirrors() {
        for bad in [
            "ftp://x.invalid/debian",
            "file:///srv/debian",
            "http://",
            "http://x/d?y",
        ] {
            assert!(
                matches!(
                    Mirror::new(bad, MIRROR_ENV),
                    Err(DebianError::InvalidMirror { .. })
                ),
                "{bad} should be refused"
            );
        }
    }
}
