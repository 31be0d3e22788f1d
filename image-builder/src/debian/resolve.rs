//! From a [`PackageRequest`] and an [`Index`] to the list of packages to lock: a pure
//! function, so all the rules are tested on a small fixture index without a network.
//!
//! Rules:
//! - A metapackage is replaced by the packages its `Pre-Depends`/`Depends` pick, which are
//!   then treated as requested (so `linux-image-amd64` becomes `linux-image-<release>-amd64`).
//! - Requested packages are always included, whatever their section.
//! - From every included package, each `Pre-Depends`/`Depends` group picks one package: the
//!   first alternative that something in the index satisfies — a real package of that name
//!   whose version meets the constraint (the newest such), else a package that `Provides`
//!   the name (a versioned dependency needs a versioned `Provides`, as in dpkg). A group that
//!   nothing satisfies is an error: the index or the request is wrong.
//! - The pick is included (and followed in turn) only if its `Section` is `libs` or
//!   `oldlibs`: the image wants shared libraries, not the tools and maintainer-script
//!   helpers a package needs when dpkg installs it on a full system.

use std::collections::{BTreeMap, VecDeque};

use super::error::DebianError;
use super::index::{Index, IndexPackage};
use super::lock::LockedPackage;
use super::relation::{self, Relation};
use super::request::PackageRequest;

/// Sections whose packages the library closure follows.
const LIBRARY_SECTIONS: &[&str] = &["libs", "oldlibs"];

/// Resolves `request` against `index`; the result is sorted by package name.
pub fn plan(index: &Index, request: &PackageRequest) -> Result<Vec<LockedPackage>, DebianError> {
    let requested = |name: &str| {
        refuse_rejected(index, name)?;
        newest(index, name).ok_or_else(|| DebianError::PackageNotFound {
            name: name.to_owned(),
            suite: request.suite.clone(),
            component: request.component.clone(),
            architecture: request.architecture.clone(),
        })
    };

    let mut roots: Vec<&IndexPackage> = Vec::new();
    for name in &request.metapackages {
        roots.extend(dependencies(index, requested(name)?)?);
    }
    for name in &request.packages {
        roots.push(requested(name)?);
    }

    let mut chosen: BTreeMap<&str, &IndexPackage> = BTreeMap::new();
    let mut queue: VecDeque<&IndexPackage> = VecDeque::new();
    for package in roots {
        if add(&mut chosen, package)? {
            queue.push_back(package);
        }
    }
    while let Some(package) = queue.pop_front() {
        for dependency in dependencies(index, package)? {
            if is_library(dependency) && add(&mut chosen, dependency)? {
                queue.push_back(dependency);
            }
        }
    }

    Ok(chosen
        .into_values()
        .map(|package| LockedPackage {
            name: package.name.clone(),
            version: package.version_text.clone(),
            architecture: package.architecture.clone(),
            filename: package.filename.clone(),
            size: package.size,
            sha256: package.sha256.clone(),
        })
        .collect())
}

/// Adds `package`; `false` if it was already there. Two different versions of one name
/// would make the lock ambiguous, so that is an error rather than a silent choice.
fn add<'a>(
    chosen: &mut BTreeMap<&'a str, &'a IndexPackage>,
    package: &'a IndexPackage,
) -> Result<bool, DebianError> {
    match chosen.get(package.name.as_str()) {
        Some(existing) if existing.version == package.version => Ok(false),
        Some(existing) => Err(DebianError::ConflictingVersions {
            name: package.name.clone(),
            first: existing.version_text.clone(),
            second: package.version_text.clone(),
        }),
        None => {
            chosen.insert(&package.name, package);
            Ok(true)
        }
    }
}

fn refuse_rejected(index: &Index, name: &str) -> Result<(), DebianError> {
    match index.rejected(name) {
        Some(reason) => Err(DebianError::UnusableEntry {
            name: name.to_owned(),
            reason: reason.to_owned(),
        }),
        None => Ok(()),
    }
}

fn is_library(package: &IndexPackage) -> bool {
    LIBRARY_SECTIONS.contains(&package.section.as_str())
}

fn newest<'a>(index: &'a Index, name: &str) -> Option<&'a IndexPackage> {
    index.by_name(name).max_by(|a, b| a.version.cmp(&b.version))
}

/// The package each `Pre-Depends` and `Depends` group of `package` picks.
fn dependencies<'a>(
    index: &'a Index,
    package: &IndexPackage,
) -> Result<Vec<&'a IndexPackage>, DebianError> {
    let mut picked = Vec::new();
    for (field, text) in [
        ("Pre-Depends", &package.pre_depends),
        ("Depends", &package.depends),
    ] {
        let groups = relation::parse_dependencies(text).map_err(|reason| {
            DebianError::InvalidRelationField {
                package: package.name.clone(),
                version: package.version_text.clone(),
                field,
                reason,
            }
        })?;
        for group in groups {
            let mut pick = None;
            for alternative in &group {
                // A set-aside entry might have been the right pick: do not guess past it.
                refuse_rejected(index, &alternative.name)?;
                pick = satisfy(index, alternative);
                if pick.is_some() {
                    break;
                }
            }
            picked.push(pick.ok_or_else(|| DebianError::Unsatisfiable {
                package: package.name.clone(),
                version: package.version_text.clone(),
                dependency: describe(&group),
            })?);
        }
    }
    Ok(picked)
}

/// The package that satisfies one alternative: the newest real package of that name that
/// meets the constraint, else a provider (by name, then newest, so the choice is stable).
fn satisfy<'a>(index: &'a Index, wanted: &Relation) -> Option<&'a IndexPackage> {
    let real = index
        .by_name(&wanted.name)
        .filter(|candidate| wanted.allows(&candidate.version))
        .max_by(|a, b| a.version.cmp(&b.version));
    if real.is_some() {
        return real;
    }
    index
        .providers(&wanted.name)
        .filter(|(_, provided)| match (&wanted.constraint, provided) {
            (None, _) => true,
            (Some(_), Some(version)) => wanted.allows(version),
            (Some(_), None) => false,
        })
        .map(|(provider, _)| provider)
        .min_by(|a, b| a.name.cmp(&b.name).then_with(|| b.version.cmp(&a.version)))
}

fn describe(group: &[Relation]) -> String {
    group
        .iter()
        .map(|relation| match &relation.constraint {
            Some((operator, version)) => format!("{} ({operator} {version})", relation.name),
            None => relation.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::index::tests::index_from;

    fn request(metapackages: &[&str], packages: &[&str]) -> PackageRequest {
        PackageRequest {
            version: 1,
            suite: "trixie".to_owned(),
            component: "main".to_owned(),
            architecture: "amd64".to_owned(),
            metapackages: metapackages.iter().map(|s| (*s).to_owned()).collect(),
            packages: packages.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn fixture() -> Index {
        index_from(include_str!("testdata/Packages-fixture"))
    }

    fn names(locked: &[LockedPackage]) -> Vec<&str> {
        locked.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn resolves_the_image_request() {
        let locked = plan(
            &fixture(),
            &request(
                &["linux-image-amd64"],
                &[
                    "systemd-boot-efi",
                    "btrfs-progs",
                    "e2fsprogs",
                    "busybox-static",
                ],
            ),
        )
        .expect("resolves");
        assert_eq!(
            names(&locked),
            [
                "btrfs-progs",
                "busybox-static",
                "e2fsprogs",
                "gcc-14-base",
                "libblkid1",
                "libc6",
                "libcap-ng-data",
                "libcap-ng0",
                "libcap2",
                "libcom-err2",
                "libext2fs2t64",
                "libgcc-s1",
                "liblegacy1",
                "libudev1",
                "libuuid1",
                "linux-image-6.12.117+deb13-amd64",
                "systemd-boot-efi",
                "zlib1g",
            ]
        );
        let busybox = &locked[1];
        assert_eq!(busybox.version, "1:1.37.0-6+b9");
        assert_eq!(busybox.architecture, "amd64");
        assert!(busybox.filename.starts_with("pool/main/b/busybox-static/"));
    }

    #[test]
    fn metapackage_becomes_the_concrete_kernel() {
        let locked = plan(&fixture(), &request(&["linux-image-amd64"], &[])).expect("resolves");
        // Not the metapackage, not the older kernel, and none of the kernel's tool
        // dependencies (kmod, linux-base, initramfs-tools) or their libraries.
        assert_eq!(names(&locked), ["linux-image-6.12.117+deb13-amd64"]);
        assert_eq!(locked[0].version, "6.12.117-1");
        assert_eq!(locked[0].size, 104_857_600);
    }

    #[test]
    fn closure_follows_only_library_sections() {
        let locked = plan(&fixture(), &request(&[], &["e2fsprogs"])).expect("resolves");
        // logsave (admin) is not followed, so its library libtool-only1 stays out too.
        assert_eq!(
            names(&locked),
            [
                "e2fsprogs",
                "gcc-14-base",
                "libc6",
                "libcom-err2",
                "libext2fs2t64",
                "libgcc-s1"
            ]
        );
    }

    #[test]
    fn requested_packages_are_included_whatever_their_section() {
        // kmod is Section admin: never followed into, but included when asked for, and
        // then its own libraries come along.
        let locked = plan(&fixture(), &request(&[], &["kmod"])).expect("resolves");
        assert_eq!(
            names(&locked),
            ["gcc-14-base", "kmod", "libc6", "libgcc-s1", "libkmod2"]
        );
    }

    #[test]
    fn alternatives_versions_and_provides() {
        let index = fixture();
        let locked = plan(&index, &request(&[], &["btrfs-progs"])).expect("resolves");
        let names = names(&locked);
        // `libmissing0 | libuuid1`: the first alternative is not in the index.
        assert!(names.contains(&"libuuid1"));
        // `libzstd1 (>= 9.0) | zlib1g`: libzstd1 exists but is too old.
        assert!(names.contains(&"zlib1g") && !names.contains(&"libzstd1"));
        // `libblkid-abi (>= 1.0)`: libblkid1 provides it with a version; libblkid-compat
        // (first by name) provides it without one, which a versioned dependency ignores.
        assert!(names.contains(&"libblkid1") && !names.contains(&"libblkid-compat"));
        // Two libudev1 versions: the newest is taken, and its new dependency libcap2 too.
        let udev = locked
            .iter()
            .find(|p| p.name == "libudev1")
            .expect("present");
        assert_eq!(udev.version, "257.13-1~deb13u1");
        assert!(names.contains(&"libcap2"));
        // oldlibs count as libraries; admin tools (adduser) do not.
        assert!(names.contains(&"liblegacy1") && !names.contains(&"adduser"));
        // An Architecture: all library (binary-all) is found like any other.
        assert!(names.contains(&"libcap-ng-data"));
    }

    #[test]
    fn unversioned_provides_satisfies_unversioned_dependency() {
        let index = index_from(
            "Package: needs-abi\nVersion: 1\nArchitecture: amd64\nSection: admin\nDepends: abi-x\n\
             Filename: pool/main/n/needs-abi_1_amd64.deb\nSize: 1\n\
             SHA256: 1111111111111111111111111111111111111111111111111111111111111111\n\n\
             Package: libabi1\nVersion: 2\nArchitecture: amd64\nSection: libs\nProvides: abi-x\n\
             Filename: pool/main/l/libabi1_2_amd64.deb\nSize: 1\n\
             SHA256: 2222222222222222222222222222222222222222222222222222222222222222\n",
        );
        let locked = plan(&index, &request(&[], &["needs-abi"])).expect("resolves");
        assert_eq!(names(&locked), ["libabi1", "needs-abi"]);
    }

    #[test]
    fn set_aside_entries_are_never_guessed_past() {
        let fixture = include_str!("testdata/Packages-fixture");
        // Break libuuid1's entry: btrfs-progs' `libmissing0 | libuuid1` must not silently
        // fall through, and nothing else is affected.
        let broken = fixture.replace(
            "Package: libuuid1\nVersion: 2.41-5",
            "Package: libuuid1\nVersion: x",
        );
        let index = index_from(&broken);
        assert!(plan(&index, &request(&[], &["e2fsprogs"])).is_ok());
        match plan(&index, &request(&[], &["btrfs-progs"])) {
            Err(DebianError::UnusableEntry { name, reason }) => {
                assert_eq!(name, "libuuid1");
                assert!(reason.contains("not a valid version"), "{reason}");
            }
            other => panic!("expected UnusableEntry, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_what_is_missing() {
        let index = fixture();
        match plan(&index, &request(&[], &["no-such-tool"])) {
            Err(DebianError::PackageNotFound { name, .. }) => assert_eq!(name, "no-such-tool"),
            other => panic!("expected PackageNotFound, got {other:?}"),
        }
        // adduser depends on passwd, which the fixture index lacks.
        match plan(&index, &request(&[], &["btrfs-progs", "adduser"])) {
            Err(DebianError::Unsatisfiable {
                package,
                dependency,
                ..
            }) => {
                assert_eq!(
                    (package.as_str(), dependency.as_str()),
                    ("adduser", "passwd")
                );
            }
            other => panic!("expected Unsatisfiable, got {other:?}"),
        }
    }
}
