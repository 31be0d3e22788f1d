//! What an ELF binary needs to run: its program interpreter and its DT_NEEDED libraries.
//!
//! The image's libraries come from the locked Debian packages only (never the build host),
//! so before the initramfs is written every binary's needs are resolved inside the image
//! root; a need nobody provides fails the build with the binary and the library named.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ElfNeeds {
    /// `PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`; `None` for static binaries.
    pub interpreter: Option<String>,
    /// DT_NEEDED sonames in file order.
    pub libraries: Vec<String>,
    /// DT_RUNPATH and DT_RPATH entries (systemd's tools find libsystemd-shared through one).
    pub search_paths: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid ELF file: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "{binary} needs {library}, which no locked package provides; add the package that ships it to image-builder/packages.toml and run `make lock`"
    )]
    Unsatisfied { binary: String, library: String },
    #[error(
        "{binary} is dynamically linked (interpreter {interpreter}); Cairn's own binaries must be static so that no library comes from the build host (build them with -C target-feature=+crt-static)"
    )]
    NotStatic { binary: String, interpreter: String },
}

/// `None` when the file is not ELF at all (scripts, data).
pub fn read_needs(path: &Path) -> Result<Option<ElfNeeds>, ElfError> {
    let bytes = fs::read(path).map_err(|source| ElfError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    let elf = goblin::elf::Elf::parse(&bytes).map_err(|error| ElfError::Parse {
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    Ok(Some(ElfNeeds {
        interpreter: elf.interpreter.map(str::to_string),
        libraries: elf.libraries.iter().map(|name| name.to_string()).collect(),
        search_paths: elf
            .runpaths
            .iter()
            .chain(elf.rpaths.iter())
            .flat_map(|paths| paths.split(':'))
            .filter(|path| !path.is_empty())
            .map(str::to_string)
            .collect(),
    }))
}

/// Library directories of an x86-64 Debian system, in the loader's search order.
pub const LIBRARY_DIRS: [&str; 4] = [
    "usr/lib/x86_64-linux-gnu",
    "lib/x86_64-linux-gnu",
    "usr/lib64",
    "usr/lib",
];

/// Finds a soname under `root` (a Debian tree), following the library directories.
pub fn find_library(root: &Path, soname: &str) -> Option<PathBuf> {
    LIBRARY_DIRS
        .iter()
        .map(|dir| root.join(dir).join(soname))
        .find(|candidate| candidate.exists())
}

/// A binary's own search paths as directories under `root`; `$ORIGIN` is the directory of
/// `binary` (a path under `root`).
fn search_dirs(root: &Path, binary: &Path, search_paths: &[String]) -> Vec<PathBuf> {
    let origin = binary.parent().unwrap_or(root);
    search_paths
        .iter()
        .map(|path| {
            if let Some(rest) = path.strip_prefix("$ORIGIN") {
                origin.join(rest.trim_start_matches('/'))
            } else {
                root.join(path.trim_start_matches('/'))
            }
        })
        .collect()
}

/// The library closure of `binaries` (paths inside `source_root`): every soname they need,
/// directly or through other libraries, mapped to where it is in `source_root`. A binary's
/// RUNPATH is searched before the library directories, as the loader does; the image
/// installs every library into the first library directory, where the loader finds it too.
pub fn library_closure(
    source_root: &Path,
    binaries: &[PathBuf],
) -> Result<BTreeMap<String, PathBuf>, ElfError> {
    let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut pending: Vec<(String, PathBuf)> = binaries
        .iter()
        .map(|path| (path.display().to_string(), path.clone()))
        .collect();
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    while let Some((label, path)) = pending.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let Some(needs) = read_needs(&path)? else {
            continue;
        };
        for library in needs.libraries {
            if found.contains_key(&library) {
                continue;
            }
            let own_dirs = search_dirs(source_root, &path, &needs.search_paths);
            let in_own_dirs = own_dirs
                .iter()
                .map(|dir| dir.join(&library))
                .find(|candidate| candidate.exists());
            let Some(location) = in_own_dirs.or_else(|| find_library(source_root, &library)) else {
                return Err(ElfError::Unsatisfied {
                    binary: label,
                    library,
                });
            };
            found.insert(library.clone(), location.clone());
            pending.push((library, location));
        }
    }
    Ok(found)
}

/// Checks, inside the finished image root, that every ELF file's interpreter and
/// libraries are there. `relative` lists the files to check (relative to `image_root`).
pub fn check_image(image_root: &Path, relative: &[PathBuf]) -> Result<usize, ElfError> {
    let mut checked = 0;
    for file in relative {
        let path = image_root.join(file);
        let Some(needs) = read_needs(&path)? else {
            continue;
        };
        checked += 1;
        let binary = format!("/{}", file.display());
        if let Some(interpreter) = &needs.interpreter {
            let inside = image_root.join(interpreter.trim_start_matches('/'));
            if !inside.exists() {
                return Err(ElfError::Unsatisfied {
                    binary,
                    library: interpreter.clone(),
                });
            }
        }
        for library in &needs.libraries {
            if find_library(image_root, library).is_none() {
                return Err(ElfError::Unsatisfied {
                    binary,
                    library: library.clone(),
                });
            }
        }
    }
    Ok(checked)
}

/// Cairn's own binaries must carry no interpreter.
pub fn require_static(path: &Path, label: &str) -> Result<(), ElfError> {
    match read_needs(path)? {
        Some(ElfNeeds {
            interpreter: Some(interpreter),
            ..
        }) => Err(ElfError::NotStatic {
            binary: label.to_string(),
            interpreter,
        }),
        Some(_) => Ok(()),
        None => Err(ElfError::Parse {
            path: path.to_path_buf(),
            message: "not an ELF file".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_binary_itself_has_needs_and_is_found_dynamic_or_static() {
        // The test executable is a real ELF file on every build host; whatever its linking,
        // parsing must succeed and agree with require_static.
        let me = std::env::current_exe().expect("test binary path");
        let needs = read_needs(&me).expect("parses").expect("is ELF");
        let static_check = require_static(&me, "test");
        assert_eq!(needs.interpreter.is_none(), static_check.is_ok());
    }

    #[test]
    fn non_elf_files_have_no_needs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("script");
        fs::write(&script, "#!/bin/sh\necho hi\n").expect("write");
        assert_eq!(read_needs(&script).expect("reads"), None);
    }

    #[test]
    fn a_missing_library_names_the_binary_and_the_library() {
        let dir = tempfile::tempdir().expect("tempdir");
        let me = std::env::current_exe().expect("test binary path");
        let needs = read_needs(&me).expect("parses").expect("is ELF");
        if needs.libraries.is_empty() {
            eprintln!("test binary is static: nothing to resolve");
            return;
        }
        let binary = dir.path().join("usr/bin/tool");
        fs::create_dir_all(binary.parent().expect("parent")).expect("mkdir");
        fs::copy(&me, &binary).expect("copy");
        let error = library_closure(dir.path(), &[binary]).expect_err("empty root");
        match error {
            ElfError::Unsatisfied { binary, library } => {
                assert!(binary.ends_with("usr/bin/tool"), "{binary}");
                assert_eq!(library, needs.libraries[0]);
            }
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn runpaths_resolve_under_the_root_and_origin_under_the_binary() {
        let root = Path::new("/debroot");
        let binary = root.join("usr/bin/busctl");
        let dirs = search_dirs(
            root,
            &binary,
            &[
                "/usr/lib/x86_64-linux-gnu/systemd".into(),
                "$ORIGIN/../lib".into(),
            ],
        );
        assert_eq!(
            dirs,
            [
                PathBuf::from("/debroot/usr/lib/x86_64-linux-gnu/systemd"),
                PathBuf::from("/debroot/usr/bin/../lib"),
            ]
        );
    }
}
