//! An in-memory [`Filesystem`] that models what a power cut keeps, for crash tests.
//!
//! The model is POSIX's promise and no more (ext4 gives more in some modes, but the store must
//! not rely on that): a file's contents are durable only after `sync_file`, and a directory's
//! entries — creations, renames, removals — only after `sync_dir` of that directory. A power
//! cut ([`MemoryFs::power_cut`]) throws away everything that was not made durable.
//!
//! [`MemoryFs::crash_after`] arms a crash: the n-th mutating call from then on, and every call
//! after it, fails as if the process had died there. A test then calls `power_cut` (the machine
//! lost power) or `restart` (only the process died; the kernel kept its caches) and opens a new
//! store on the same filesystem.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::Filesystem;

/// A handle to one in-memory filesystem; clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryFs {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    dirs: BTreeMap<PathBuf, Dir>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// Every mutating call made, as a readable label, crashed ones included.
    operations: Vec<String>,
    /// Mutating calls still allowed before the simulated crash.
    crash_in: Option<usize>,
    crashed: bool,
}

#[derive(Debug, Default, Clone)]
struct Dir {
    entries: BTreeMap<String, u64>,
    durable_entries: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable_data: Vec<u8>,
}

impl MemoryFs {
    pub fn new() -> Self {
        Self::default()
    }

    /// The `calls`-th mutating call from now (0: the next one) and every later call fail.
    pub fn crash_after(&self, calls: usize) {
        let mut inner = self.lock();
        inner.crash_in = Some(calls);
        inner.crashed = false;
    }

    /// The machine loses power: everything not made durable is gone. Crashes are disarmed.
    pub fn power_cut(&self) {
        let mut inner = self.lock();
        for dir in inner.dirs.values_mut() {
            dir.entries = dir.durable_entries.clone();
        }
        for inode in inner.inodes.values_mut() {
            inode.data = inode.durable_data.clone();
        }
        inner.crash_in = None;
        inner.crashed = false;
    }

    /// Only the process died: the kernel keeps what it was given. Crashes are disarmed.
    pub fn restart(&self) {
        let mut inner = self.lock();
        inner.crash_in = None;
        inner.crashed = false;
    }

    /// The labels of the mutating calls made so far.
    pub fn operations(&self) -> Vec<String> {
        self.lock().operations.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock has failed already; the data is still
        // a consistent model, so later assertions may look at it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a mutating call and fails it if the armed crash has come.
    fn mutate<T>(
        &self,
        label: String,
        change: impl FnOnce(&mut Inner) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut inner = self.lock();
        inner.operations.push(label);
        if inner.crashed {
            return Err(crashed());
        }
        if let Some(remaining) = inner.crash_in {
            if remaining == 0 {
                inner.crashed = true;
                return Err(crashed());
            }
            inner.crash_in = Some(remaining - 1);
        }
        change(&mut inner)
    }
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

/// The directory and the entry name of a file path.
fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
    Ok((dir, name.to_string()))
}

impl Inner {
    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| not_found(dir))
    }

    fn inode_of(&self, path: &Path) -> io::Result<Option<u64>> {
        let (dir, name) = split(path)?;
        let dir = self.dirs.get(&dir).ok_or_else(|| not_found(&dir))?;
        Ok(dir.entries.get(&name).copied())
    }
}

impl Filesystem for MemoryFs {
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let inner = self.lock();
        if inner.crashed {
            return Err(crashed());
        }
        Ok(inner
            .inode_of(path)?
            .and_then(|inode| inner.inodes.get(&inode))
            .map(|inode| inode.data.clone()))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let inner = self.lock();
        if inner.crashed {
            return Err(crashed());
        }
        let entries = inner.dirs.get(dir).ok_or_else(|| not_found(dir))?;
        let subdirs = inner
            .dirs
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_string));
        let mut names: Vec<String> = entries.entries.keys().cloned().chain(subdirs).collect();
        names.sort();
        Ok(names)
    }

    /// Directories are created durable at once: the store makes them once, on open, and a
    /// crash there leaves nothing to compare.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.mutate(format!("create_dir_all {}", dir.display()), |inner| {
            for ancestor in dir.ancestors() {
                inner.dirs.entry(ancestor.to_path_buf()).or_default();
            }
            Ok(())
        })
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.mutate(format!("write {}", path.display()), |inner| {
            let (dir, name) = split(path)?;
            match inner.inode_of(path)? {
                Some(inode) => {
                    inner.inodes.entry(inode).or_default().data = bytes.to_vec();
                }
                None => {
                    let inode = inner.next_inode;
                    inner.next_inode += 1;
                    inner.inodes.insert(
                        inode,
                        Inode {
                            data: bytes.to_vec(),
                            durable_data: Vec::new(),
                        },
                    );
                    inner.dir_mut(&dir)?.entries.insert(name, inode);
                }
            }
            Ok(())
        })
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.mutate(format!("sync_file {}", path.display()), |inner| {
            let inode = inner.inode_of(path)?.ok_or_else(|| not_found(path))?;
            let file = inner.inodes.entry(inode).or_default();
            file.durable_data = file.data.clone();
            Ok(())
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let label = format!("rename {} -> {}", from.display(), to.display());
        self.mutate(label, |inner| {
            let (from_dir, from_name) = split(from)?;
            let (to_dir, to_name) = split(to)?;
            let inode = inner
                .dir_mut(&from_dir)?
                .entries
                .remove(&from_name)
                .ok_or_else(|| not_found(from))?;
            inner.dir_mut(&to_dir)?.entries.insert(to_name, inode);
            Ok(())
        })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.mutate(format!("sync_dir {}", dir.display()), |inner| {
            let dir = inner.dir_mut(dir)?;
            dir.durable_entries = dir.entries.clone();
            Ok(())
        })
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.mutate(format!("remove {}", path.display()), |inner| {
            let (dir, name) = split(path)?;
            inner
                .dir_mut(&dir)?
                .entries
                .remove(&name)
                .map(|_| ())
                .ok_or_else(|| not_found(path))
        })
    }
}
