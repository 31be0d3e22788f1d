//! The package index: `Packages` paragraphs reduced to what resolution and the lock need.
//!
//! Trixie's Release says `No-Support-for-Architecture-all: Packages`: `Architecture: all`
//! packages are listed only in `binary-all/Packages`, so the index is built from both
//! `binary-<arch>` and `binary-all`. Only the fields we use are kept (the amd64 index is
//! 57 MB of text, mostly descriptions); `Depends`/`Pre-Depends` stay as text and are parsed
//! only for the few packages the resolver visits.

use std::collections::HashMap;

use super::deb822::{Deb822Error, Paragraph};
use super::error::DebianError;
use super::inrelease::is_sha256;
use super::lock::is_pool_path;
use super::relation::{self, Relation, is_package_name};
use super::version::DebVersion;

/// One binary package of the index.
#[derive(Debug, Clone)]
pub struct IndexPackage {
    pub name: String,
    pub version: DebVersion,
    /// The version exactly as the archive writes it (for the lock and file names).
    pub version_text: String,
    pub architecture: String,
    /// `Section`, without a `contrib/` or `non-free/` prefix.
    pub section: String,
    pub depends: String,
    pub pre_depends: String,
    pub provides: Vec<Relation>,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

/// All packages of the indexes read, looked up by name and by what they provide.
///
/// An entry with a malformed field is set aside rather than failing the whole index: one odd
/// package among 100,000 must not block images that never use it. The resolver refuses to
/// decide anything that involves a set-aside name (see [`Index::rejected`]).
#[derive(Debug, Default)]
pub struct Index {
    packages: Vec<IndexPackage>,
    by_name: HashMap<String, Vec<usize>>,
    provided_by: HashMap<String, Vec<(usize, Option<DebVersion>)>>,
    rejected: HashMap<String, String>,
}

impl Index {
    /// Adds every paragraph of one `Packages` file; `url` names it in errors.
    pub fn add_paragraphs(
        &mut self,
        paragraphs: impl Iterator<Item = Result<Paragraph, Deb822Error>>,
        url: &str,
    ) -> Result<usize, DebianError> {
        let mut added = 0;
        for paragraph in paragraphs {
            let paragraph = paragraph.map_err(|source| DebianError::ParseIndex {
                url: url.to_owned(),
                source,
            })?;
            match package_from(&paragraph) {
                Ok(package) => {
                    self.insert(package);
                    added += 1;
                }
                // Without a usable name there is nothing to set aside: the file is broken.
                Err(reason) if !paragraph.get("Package").is_some_and(is_package_name) => {
                    return Err(DebianError::InvalidIndexEntry {
                        url: url.to_owned(),
                        line: paragraph.line,
                        reason,
                    });
                }
                Err(reason) => {
                    let name = paragraph.get("Package").unwrap_or_default().to_owned();
                    self.rejected
                        .insert(name, format!("{url} line {}: {reason}", paragraph.line));
                }
            }
        }
        Ok(added)
    }

    fn insert(&mut self, package: IndexPackage) {
        let at = self.packages.len();
        self.by_name
            .entry(package.name.clone())
            .or_default()
            .push(at);
        for provided in &package.provides {
            let version = provided.constraint.as_ref().map(|(_, v)| v.clone());
            self.provided_by
                .entry(provided.name.clone())
                .or_default()
                .push((at, version));
        }
        self.packages.push(package);
    }

    /// Every version of the package called `name`.
    pub fn by_name(&self, name: &str) -> impl Iterator<Item = &IndexPackage> {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .map(|&at| &self.packages[at])
    }

    /// Why the entry for `name` was set aside, if it was.
    pub fn rejected(&self, name: &str) -> Option<&str> {
        self.rejected.get(name).map(String::as_str)
    }

    /// Every package that provides `name`, with the version it provides (if any).
    pub fn providers(
        &self,
        name: &str,
    ) -> impl Iterator<Item = (&IndexPackage, Option<&DebVersion>)> {
        self.provided_by
            .get(name)
            .into_iter()
            .flatten()
            .map(|(at, version)| (&self.packages[*at], version.as_ref()))
    }
}

fn package_from(paragraph: &Paragraph) -> Result<IndexPackage, String> {
    let field = |name: &str| {
        paragraph
            .get(name)
            .ok_or_else(|| format!("it has no {name} field"))
    };
    let name = field("Package")?;
    if !is_package_name(name) {
        return Err(format!("`{name}` is not a valid package name"));
    }
    let version_text = field("Version")?;
    let version = DebVersion::parse(version_text)
        .ok_or_else(|| format!("{name}: `{version_text}` is not a valid version"))?;
    let filename = field("Filename")?;
    if !is_pool_path(filename) {
        return Err(format!("{name}: `{filename}` is not a pool path"));
    }
    let size = field("Size")?
        .parse()
        .map_err(|_| format!("{name}: Size is not a number"))?;
    let sha256 = field("SHA256")?;
    if !is_sha256(sha256) {
        return Err(format!("{name}: malformed SHA256"));
    }
    let provides = relation::parse_provides(paragraph.get("Provides").unwrap_or_default())
        .map_err(|reason| format!("{name}: Provides: {reason}"))?;
    let section = paragraph.get("Section").unwrap_or_default();
    Ok(IndexPackage {
        name: name.to_owned(),
        version,
        version_text: version_text.to_owned(),
        architecture: field("Architecture")?.to_owned(),
        section: section.rsplit('/').next().unwrap_or(section).to_owned(),
        depends: paragraph.get("Depends").unwrap_or_default().to_owned(),
        pre_depends: paragraph.get("Pre-Depends").unwrap_or_default().to_owned(),
        provides,
        filename: filename.to_owned(),
        size,
        sha256: sha256.to_owned(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::debian::deb822::Paragraphs;

    pub(crate) fn index_from(text: &str) -> Index {
        let mut index = Index::default();
        index
            .add_paragraphs(Paragraphs::new(text.as_bytes()), "fixture")
            .expect("fixture index is valid");
        index
    }

    #[test]
    fn keeps_the_fields_resolution_needs() {
        let index = index_from(include_str!("testdata/Packages-fixture"));
        let kernel: Vec<_> = index.by_name("linux-image-6.12.117+deb13-amd64").collect();
        assert_eq!(kernel.len(), 1);
        assert_eq!(kernel[0].section, "kernel");
        assert_eq!(kernel[0].size, 104_857_600);
        assert!(kernel[0].filename.starts_with("pool/main/l/"));
        let providers: Vec<_> = index
            .providers("linux-image-generic")
            .map(|(p, _)| p.name.as_str())
            .collect();
        assert_eq!(providers, ["linux-image-amd64"]);
        assert_eq!(index.by_name("no-such-package").count(), 0);
    }

    #[test]
    fn sets_aside_entries_that_could_escape_the_cache_or_the_mirror() {
        let text = "Package: evil\nVersion: 1\nArchitecture: all\nFilename: pool/../../etc/passwd\n\
                    Size: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000000\n\n\
                    Package: good\nVersion: 1\nArchitecture: all\nFilename: pool/main/g/good_1_all.deb\n\
                    Size: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000000\n";
        let mut index = Index::default();
        let added = index
            .add_paragraphs(Paragraphs::new(text.as_bytes()), "fixture")
            .expect("one bad entry does not fail the index");
        assert_eq!(added, 1);
        assert_eq!(index.by_name("evil").count(), 0);
        let reason = index.rejected("evil").expect("remembered");
        assert!(reason.contains("fixture line 1") && reason.contains("not a pool path"));
        assert_eq!(index.by_name("good").count(), 1);
    }

    #[test]
    fn entry_without_a_name_fails_the_index() {
        let text = "Version: 1\nArchitecture: all\n";
        let mut index = Index::default();
        assert!(matches!(
            index.add_paragraphs(Paragraphs::new(text.as_bytes()), "fixture"),
            Err(DebianError::InvalidIndexEntry { line: 1, .. })
        ));
    }
}
