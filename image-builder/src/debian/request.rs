//! `image-builder/packages.toml`: which Debian packages the image needs (the input of
//! `make lock`). Strict: unknown keys are errors, names are checked before any download.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use super::error::DebianError;
use super::relation::is_package_name;

const REQUEST_VERSION: u32 = 1;

/// What to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageRequest {
    /// Format version of the file.
    pub version: u32,
    /// Debian release codename, e.g. `trixie`.
    pub suite: String,
    /// Archive component, e.g. `main`.
    pub component: String,
    /// Debian architecture, e.g. `amd64`.
    pub architecture: String,
    /// Packages that only pull in others (`linux-image-amd64`): each is replaced by the
    /// packages it depends on, and is itself not locked (it holds nothing but docs).
    #[serde(default)]
    pub metapackages: Vec<String>,
    /// Packages the image needs. Their shared-library closure is added automatically.
    pub packages: Vec<String>,
}

impl PackageRequest {
    pub fn read(path: &Path) -> Result<PackageRequest, DebianError> {
        let text = std::fs::read_to_string(path).map_err(|source| DebianError::ReadRequest {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates the text of a request; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<PackageRequest, DebianError> {
        let request: PackageRequest =
            toml::from_str(text).map_err(|source| DebianError::ParseRequest {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        request
            .validate()
            .map_err(|reason| DebianError::InvalidRequest {
                path: path.to_owned(),
                reason,
            })?;
        Ok(request)
    }

    fn validate(&self) -> Result<(), String> {
        if self.version != REQUEST_VERSION {
            return Err(format!(
                "version {} is not the supported {REQUEST_VERSION}",
                self.version
            ));
        }
        for (key, value) in [
            ("suite", &self.suite),
            ("component", &self.component),
            ("architecture", &self.architecture),
        ] {
            let word = !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !word {
                return Err(format!("{key} {value:?} is not a plain lower-case word"));
            }
        }
        if self.packages.is_empty() && self.metapackages.is_empty() {
            return Err("it asks for no packages".to_owned());
        }
        let mut seen = BTreeSet::new();
        for name in self.metapackages.iter().chain(&self.packages) {
            if !is_package_name(name) {
                return Err(format!("{name:?} is not a Debian package name"));
            }
            if !seen.insert(name) {
                return Err(format!("{name} is listed twice"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_request_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages.toml");
        let request = PackageRequest::read(&path).expect("packages.toml is valid");
        assert_eq!(request.suite, "trixie");
        assert_eq!(request.metapackages, ["linux-image-amd64"]);
        for needed in [
            "systemd-boot-efi",
            "btrfs-progs",
            "e2fsprogs",
            "busybox-static",
        ] {
            assert!(request.packages.iter().any(|p| p == needed), "{needed}");
        }
        assert!(!request.packages.iter().any(|p| p == "kmod"));
    }

    #[test]
    fn refuses_bad_requests() {
        let base =
            "version = 1\nsuite = \"trixie\"\ncomponent = \"main\"\narchitecture = \"amd64\"\n";
        let cases = [
            format!("{base}packages = [\"Busybox\"]\n"),
            format!("{base}packages = [\"a1\", \"a1\"]\n"),
            format!("{base}packages = []\n"),
            format!("{base}packages = [\"a1\"]\nmirror = \"http://x\"\n"),
            base.replace("version = 1", "version = 7") + "packages = [\"a1\"]\n",
            base.replace("trixie", "../x") + "packages = [\"a1\"]\n",
        ];
        for text in cases {
            assert!(
                matches!(
                    PackageRequest::parse(&text, Path::new("packages.toml")),
                    Err(DebianError::InvalidRequest { .. } | DebianError::ParseRequest { .. })
                ),
                "{text}"
            );
        }
    }
}
