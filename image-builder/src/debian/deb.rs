//! Unpacking a `.deb` into a directory that becomes the image root, without dpkg.
//!
//! A `.deb` is an `ar` archive: `debian-binary` (`2.0`), `control.tar.*` (maintainer
//! scripts, ignored: nothing is "installed", we only take files), `data.tar.{xz,zst,gz}` (the
//! files). Read with the `ar`, `tar`, `xz2`, `zstd` and `flate2` crates, streaming: the kernel
//! package's data is never in memory whole.
//!
//! The package is input from outside, so every entry is checked before anything is written:
//! - a path with `..`, or an absolute one, is refused (the whole package fails);
//! - nothing is written *through* a symlink: if any existing parent directory of an entry
//!   is a symlink, the package is refused. dpkg would follow it (that is how merged-usr
//!   `/lib -> usr/lib` works on a live system), but following safely means resolving links
//!   as if chrooted, and no package we install ships files below another package's link;
//! - an existing file or symlink at an entry's path is replaced, never written through.
//!
//! Kept: regular files with their permission bits (setuid included), directories, symlinks
//! with their target verbatim (an absolute target such as `/usr/lib/…` is meant for the image
//! root and is harmless here because we never follow links), and hard links, as copies of
//! the file they point to. Not kept: owners (the image writer makes everything root-owned)
//! and times (the image writer clamps them to SOURCE_DATE_EPOCH). Device nodes and FIFOs are
//! refused: no package we install has them, and the image's /dev is devtmpfs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::error::DebianError;

/// Unpacks the files of `deb` below `dest_root`; returns the paths written, relative to
/// `dest_root`, in archive order.
pub fn extract(deb: &Path, dest_root: &Path) -> Result<Vec<PathBuf>, DebianError> {
    let read_error = |source| DebianError::ReadDeb {
        deb: deb.to_owned(),
        source,
    };
    let not_a_deb = |reason: &str| DebianError::NotADeb {
        deb: deb.to_owned(),
        reason: reason.to_owned(),
    };
    let file = File::open(deb).map_err(read_error)?;
    let mut archive = ar::Archive::new(BufReader::new(file));
    let mut format_checked = false;

    while let Some(member) = archive.next_entry() {
        let mut member = member.map_err(read_error)?;
        // GNU ar ends member names with `/`; dpkg-deb does not, but accept both.
        let name = String::from_utf8_lossy(member.header().identifier())
            .trim_end_matches('/')
            .to_owned();
        if name == "debian-binary" {
            let mut version = String::new();
            member
                .by_ref()
                .take(16)
                .read_to_string(&mut version)
                .map_err(read_error)?;
            if !version.starts_with("2.") {
                return Err(not_a_deb("debian-binary is not format 2.x"));
            }
            format_checked = true;
            continue;
        }
        if !name.starts_with("data.tar") {
            continue; // control.tar.*, and signature members some tools add.
        }
        if !format_checked {
            return Err(not_a_deb("data.tar comes before debian-binary"));
        }
        let data: Box<dyn Read + '_> = match name.as_str() {
            "data.tar" => Box::new(member),
            "data.tar.xz" => Box::new(xz2::read::XzDecoder::new_multi_decoder(member)),
            "data.tar.zst" => {
                Box::new(zstd::stream::read::Decoder::new(member).map_err(read_error)?)
            }
            "data.tar.gz" => Box::new(flate2::read::GzDecoder::new(member)),
            _ => return Err(not_a_deb(&format!("unsupported data member {name}"))),
        };
        return unpack(data, deb, dest_root);
    }
    Err(not_a_deb("it has no data.tar member"))
}

/// Writes every entry of the data tarball below `root`.
fn unpack(data: impl Read, deb: &Path, root: &Path) -> Result<Vec<PathBuf>, DebianError> {
    let read_error = |source| DebianError::ReadDeb {
        deb: deb.to_owned(),
        source,
    };
    let mut archive = tar::Archive::new(data);
    let mut written = Vec::new();
    // Directory modes are applied at the end: a 0555 directory must still take its files.
    let mut directories: Vec<(PathBuf, u32)> = Vec::new();

    for entry in archive.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        let raw_path = entry.path().map_err(read_error)?.into_owned();
        let relative = confined(&raw_path).ok_or_else(|| DebianError::UnsafePath {
            deb: deb.to_owned(),
            entry: raw_path.display().to_string(),
        })?;
        if relative.as_os_str().is_empty() {
            continue; // `./`, the root itself.
        }
        let target = root.join(&relative);
        let write_error = |source| DebianError::Extract {
            deb: deb.to_owned(),
            path: target.clone(),
            source,
        };
        refuse_symlinked_parents(root, &relative, deb)?;
        let mode = entry.header().mode().map_err(read_error)? & 0o7777;

        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(meta) if meta.is_dir() => {}
                    Ok(_) => {
                        return Err(DebianError::UnsafePath {
                            deb: deb.to_owned(),
                            entry: raw_path.display().to_string(),
                        });
                    }
                    Err(_) => fs::create_dir_all(&target).map_err(write_error)?,
                }
                directories.push((relative.clone(), mode));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                prepare_parent_and_slot(&target).map_err(write_error)?;
                // create_new: if something appeared at the path anyway, fail, never follow it.
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&target)
                    .map_err(write_error)?;
                io::copy(&mut entry, &mut out).map_err(write_error)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(write_error)?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(read_error)?
                    .ok_or_else(|| DebianError::NotADeb {
                        deb: deb.to_owned(),
                        reason: format!("symlink {} has no target", raw_path.display()),
                    })?
                    .into_owned();
                prepare_parent_and_slot(&target).map_err(write_error)?;
                std::os::unix::fs::symlink(&link, &target).map_err(write_error)?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(read_error)?
                    .map(|link| link.into_owned())
                    .unwrap_or_default();
                let source_relative = confined(&link)
                    .filter(|path| !path.as_os_str().is_empty())
                    .ok_or_else(|| DebianError::UnsafePath {
                        deb: deb.to_owned(),
                        entry: format!("{} (hard link to {})", raw_path.display(), link.display()),
                    })?;
                refuse_symlinked_parents(root, &source_relative, deb)?;
                let source = root.join(&source_relative);
                // Only a regular file extracted earlier may be the source: copying through a
                // symlink could read a file of the build host into the image.
                let is_file = fs::symlink_metadata(&source).is_ok_and(|meta| meta.is_file());
                if !is_file {
                    return Err(DebianError::UnsafePath {
                        deb: deb.to_owned(),
                        entry: format!("{} (hard link to {})", raw_path.display(), link.display()),
                    });
                }
                prepare_parent_and_slot(&target).map_err(write_error)?;
                fs::copy(&source, &target).map_err(write_error)?;
            }
            other => {
                return Err(DebianError::UnsupportedEntry {
                    deb: deb.to_owned(),
                    entry: raw_path.display().to_string(),
                    kind: format!("{other:?}"),
                });
            }
        }
        written.push(relative);
    }

    // Deepest first, so that making a parent read-only cannot block a child's chmod.
    for (directory, mode) in directories.iter().rev() {
        let path = root.join(directory);
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).map_err(|source| {
            DebianError::Extract {
                deb: deb.to_owned(),
                path: path.clone(),
                source,
            }
        })?;
    }
    Ok(written)
}

/// The entry's path relative to the root, or `None` if it is absolute or has `..`.
fn confined(path: &Path) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(relative)
}

/// Fails if an existing parent directory of `relative` (below `root`) is a symlink or not a
/// directory; missing parents are fine (they will be created as real directories).
fn refuse_symlinked_parents(root: &Path, relative: &Path, deb: &Path) -> Result<(), DebianError> {
    let mut current = root.to_owned();
    let parents = relative.parent().into_iter().flat_map(Path::components);
    for component in parents {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(DebianError::UnsafePath {
                    deb: deb.to_owned(),
                    entry: format!(
                        "{} (its parent {} is a symlink or a file)",
                        relative.display(),
                        current.display()
                    ),
                });
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(DebianError::Extract {
                    deb: deb.to_owned(),
                    path: current,
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Creates the parent directories of `target` and removes a file or symlink already at
/// `target` (a later package replaces an earlier one's file, as dpkg would).
fn prepare_parent_and_slot(target: &Path) -> io::Result<()> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a directory is in the way",
        )),
        Ok(_) => fs::remove_file(target),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    enum Item<'a> {
        Dir(&'a str, u32),
        File(&'a str, &'a [u8], u32),
        Symlink(&'a str, &'a str),
        HardLink(&'a str, &'a str),
        Fifo(&'a str),
    }

    /// A tarball built header by header, so that tests can also write the malicious paths
    /// `tar::Builder` would refuse.
    fn tarball(items: &[Item<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for item in items {
            let mut header = tar::Header::new_gnu();
            let (path, kind, data, mode): (&str, tar::EntryType, &[u8], u32) = match item {
                Item::Dir(path, mode) => (path, tar::EntryType::Directory, b"", *mode),
                Item::File(path, data, mode) => (path, tar::EntryType::Regular, data, *mode),
                Item::Symlink(path, target) | Item::HardLink(path, target) => {
                    header.set_link_name(target).expect("link name fits");
                    let kind = if matches!(item, Item::Symlink(..)) {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    };
                    (path, kind, b"", 0o777)
                }
                Item::Fifo(path) => (path, tar::EntryType::Fifo, b"", 0o644),
            };
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, data).expect("append");
        }
        builder.into_inner().expect("finish tar")
    }

    fn write_deb(dir: &Path, member: &str, tar: &[u8]) -> PathBuf {
        let data = match member {
            "data.tar.xz" => {
                let mut encoder = xz2::write::XzEncoder::new(Vec::new(), 1);
                encoder.write_all(tar).expect("compress");
                encoder.finish().expect("compress")
            }
            "data.tar.zst" => zstd::encode_all(tar, 1).expect("compress"),
            "data.tar.gz" => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(tar).expect("compress");
                encoder.finish().expect("compress")
            }
            _ => tar.to_vec(),
        };
        let path = dir.join("test.deb");
        let mut builder = ar::Builder::new(File::create(&path).expect("create deb"));
        for (name, content) in [
            ("debian-binary", &b"2.0\n"[..]),
            ("control.tar.xz", b"ignored"),
            (member, &data),
        ] {
            let header = ar::Header::new(name.as_bytes().to_vec(), content.len() as u64);
            builder.append(&header, content).expect("append member");
        }
        path
    }

    fn sample_items() -> Vec<Item<'static>> {
        vec![
            Item::Dir("./", 0o755),
            Item::Dir("./usr/", 0o755),
            Item::Dir("./usr/bin/", 0o755),
            Item::File("./usr/bin/busybox", b"\x7fELF busybox", 0o755),
            Item::File("./usr/bin/su", b"setuid", 0o4755),
            Item::Symlink("./usr/bin/sh", "busybox"),
            Item::Symlink("./usr/bin/abs", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            Item::HardLink("./usr/bin/ash", "./usr/bin/busybox"),
            Item::Dir("./usr/share/", 0o555),
            Item::File("./usr/share/readonly-dir-file", b"x", 0o644),
        ]
    }

    #[test]
    fn extracts_files_links_and_modes_from_each_compression() {
        for member in ["data.tar.xz", "data.tar.zst", "data.tar.gz", "data.tar"] {
            let dir = tempfile::tempdir().expect("temporary directory");
            let root = dir.path().join("root");
            let deb = write_deb(dir.path(), member, &tarball(&sample_items()));
            let written = extract(&deb, &root).expect("extracts");
            assert!(
                written.contains(&PathBuf::from("usr/bin/busybox")),
                "{member}"
            );
            assert!(!written.iter().any(|p| p.as_os_str().is_empty()));

            let busybox = root.join("usr/bin/busybox");
            assert_eq!(fs::read(&busybox).expect("file"), b"\x7fELF busybox");
            let mode = |p: &Path| {
                fs::symlink_metadata(p)
                    .expect("exists")
                    .permissions()
                    .mode()
            };
            assert_eq!(mode(&busybox) & 0o7777, 0o755);
            assert_eq!(mode(&root.join("usr/bin/su")) & 0o7777, 0o4755);
            assert_eq!(
                fs::read_link(root.join("usr/bin/sh")).expect("symlink"),
                Path::new("busybox")
            );
            // Absolute targets are kept as they are: they are meant for the image root.
            assert_eq!(
                fs::read_link(root.join("usr/bin/abs")).expect("symlink"),
                Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6")
            );
            // The hard link became an independent copy.
            let ash = root.join("usr/bin/ash");
            assert!(fs::symlink_metadata(&ash).expect("exists").is_file());
            assert_eq!(fs::read(&ash).expect("file"), b"\x7fELF busybox");
            assert_eq!(mode(&root.join("usr/share")) & 0o777, 0o555);
            // Let the temporary directory be removed.
            fs::set_permissions(root.join("usr/share"), fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
    }

    #[test]
    fn extracting_again_replaces_files_and_links() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path().join("root");
        let items = [
            Item::File("./usr/bin/tool", b"one", 0o755),
            Item::Symlink("./usr/bin/link", "tool"),
        ];
        let deb = write_deb(dir.path(), "data.tar.xz", &tarball(&items));
        extract(&deb, &root).expect("first");
        extract(&deb, &root).expect("second run over the same root");
        assert_eq!(fs::read(root.join("usr/bin/tool")).expect("file"), b"one");
    }

    #[test]
    fn refuses_path_traversal() {
        let cases: Vec<Vec<Item<'_>>> = vec![
            vec![Item::File("./../escaped", b"x", 0o644)],
            vec![Item::File("usr/../../escaped", b"x", 0o644)],
            vec![Item::File("/etc/escaped", b"x", 0o644)],
            vec![Item::Symlink("./../escaped", "x")],
            vec![
                Item::File("./usr/f", b"x", 0o644),
                Item::HardLink("./usr/h", "../../etc/passwd"),
            ],
        ];
        for items in cases {
            let dir = tempfile::tempdir().expect("temporary directory");
            let root = dir.path().join("a/root");
            let deb = write_deb(dir.path(), "data.tar.xz", &tarball(&items));
            match extract(&deb, &root) {
                Err(DebianError::UnsafePath { .. }) => {}
                other => panic!("expected UnsafePath, got {other:?}"),
            }
            assert!(!dir.path().join("a/escaped").exists());
            assert!(!dir.path().join("escaped").exists());
        }
    }

    #[test]
    fn never_writes_through_a_symlink() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).expect("mkdir");
        let root = dir.path().join("root");
        let outside_text = outside.to_str().expect("utf-8 temp path");
        // A link to a host directory, then a file "inside" it.
        let items = [
            Item::Symlink("./usr/lib", outside_text),
            Item::File("./usr/lib/evil.so", b"x", 0o644),
        ];
        let deb = write_deb(dir.path(), "data.tar.xz", &tarball(&items));
        assert!(matches!(
            extract(&deb, &root),
            Err(DebianError::UnsafePath { .. })
        ));
        assert!(!outside.join("evil.so").exists());

        // A file replacing a symlink to a host file replaces the link, not the host file.
        let host_file = dir.path().join("host-file");
        fs::write(&host_file, b"host").expect("write");
        let host_text = host_file.to_str().expect("utf-8 temp path");
        let items = [
            Item::Symlink("./etc-link", host_text),
            Item::File("./etc-link", b"package", 0o644),
        ];
        let deb = write_deb(dir.path(), "data.tar.xz", &tarball(&items));
        let root = dir.path().join("root2");
        extract(&deb, &root).expect("extracts");
        assert_eq!(fs::read(&host_file).expect("host file"), b"host");
        assert_eq!(fs::read(root.join("etc-link")).expect("file"), b"package");

        // A hard link may not copy a host file in through a symlink.
        let items = [
            Item::Symlink("./hostlink", host_text),
            Item::HardLink("./copy", "./hostlink"),
        ];
        let deb = write_deb(dir.path(), "data.tar.xz", &tarball(&items));
        assert!(matches!(
            extract(&deb, &dir.path().join("root3")),
            Err(DebianError::UnsafePath { .. })
        ));
    }

    #[test]
    fn refuses_special_files_and_non_debs() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let deb = write_deb(dir.path(), "data.tar.xz", &tarball(&[Item::Fifo("./fifo")]));
        assert!(matches!(
            extract(&deb, &dir.path().join("root")),
            Err(DebianError::UnsupportedEntry { .. })
        ));
        let not_deb = dir.path().join("not.deb");
        fs::write(&not_deb, b"!<arch>\n").expect("write");
        assert!(matches!(
            extract(&not_deb, &dir.path().join("root")),
            Err(DebianError::NotADeb { .. })
        ));
        let bzip = write_deb(dir.path(), "data.tar.bz2", b"x");
        assert!(matches!(
            extract(&bzip, &dir.path().join("root")),
            Err(DebianError::NotADeb { .. })
        ));
    }
}
