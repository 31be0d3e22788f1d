//! Choosing the kernel modules the image carries and writing their index.
//!
//! Debian's module tree is about 100 MB compressed; the boards need a few dozen modules.
//! We keep what `board_configs` asks for plus everything those need, and write a
//! `modules.dep` and `modules.alias` (kmod's text formats) that describe exactly what is
//! kept, so init's coldplug never matches a module that is not there.
//!
//! Debian's kernel package ships no `modules.dep` (depmod writes it at install time), so the
//! index is built from every module's own `.modinfo`: `depends=`, `alias=`, `softdep=`.
//!
//! Soft dependencies (`softdep btrfs pre: crc32c …`) are folded into `modules.dep`: init
//! has no modprobe, and a btrfs without its checksum module cannot mount anything.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The module index of one kernel, read from its `modules.*` files.
#[derive(Debug, Default)]
pub struct ModuleIndex {
    /// Normalised module name → path relative to the modules directory (`kernel/…ko.xz`).
    paths: BTreeMap<String, String>,
    /// Module name → the names it depends on (hard dependencies).
    depends: BTreeMap<String, Vec<String>>,
    /// Module name → soft dependency names (pre and post), as written (maybe aliases).
    softdeps: BTreeMap<String, Vec<String>>,
    /// (pattern, module name) in file order.
    aliases: Vec<(String, String)>,
    /// Names of modules built into the kernel image.
    builtin: BTreeSet<String>,
}

/// What to put in the image.
#[derive(Debug, PartialEq, Eq)]
pub struct Selection {
    /// Kept module names with their source path (relative, possibly `.ko.xz`), sorted.
    pub modules: BTreeMap<String, String>,
    /// Requested names that are built into the kernel: nothing to copy, nothing to load.
    pub builtin: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    #[error(
        "module \"{name}\" (wanted by {wanted_by}) is neither in kernel {kernel}'s modules nor built in; fix the board file or pick a kernel that has it"
    )]
    Unknown {
        name: String,
        wanted_by: String,
        kernel: String,
    },
    #[error("kernel module {path} cannot be read: {message}")]
    BadModule { path: String, message: String },
}

/// `kernel/fs/btrfs/btrfs.ko.xz` → `btrfs`; `-` and `_` are the same to the kernel.
pub fn module_name_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    board_configs::normalize_module_name(stem)
}

/// The path a kept module has inside the image: decompressed, so init needs no decompressor.
pub fn installed_path(source_path: &str) -> String {
    for suffix in [".xz", ".zst", ".gz"] {
        if let Some(stripped) = source_path.strip_suffix(suffix) {
            return stripped.to_string();
        }
    }
    source_path.to_string()
}

/// What one module says about itself in its `.modinfo` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// Path relative to the modules directory (`kernel/…/x.ko.xz`).
    pub path: String,
    pub depends: Vec<String>,
    pub aliases: Vec<String>,
    /// Names from `softdep=pre: a b post: c` (both kinds: init loads them first either way).
    pub softdeps: Vec<String>,
}

/// Reads the NUL-separated `key=value` strings of an uncompressed module's `.modinfo`.
pub fn parse_modinfo(path: &str, module: &[u8]) -> Result<ModInfo, ModuleError> {
    let bad = |message: String| ModuleError::BadModule {
        path: path.to_string(),
        message,
    };
    let elf = goblin::elf::Elf::parse(module).map_err(|error| bad(error.to_string()))?;
    let section = elf
        .section_headers
        .iter()
        .find(|header| elf.shdr_strtab.get_at(header.sh_name) == Some(".modinfo"))
        .ok_or_else(|| bad("no .modinfo section".to_string()))?;
    let start = usize::try_from(section.sh_offset).map_err(|error| bad(error.to_string()))?;
    let size = usize::try_from(section.sh_size).map_err(|error| bad(error.to_string()))?;
    let bytes = module
        .get(start..start.saturating_add(size))
        .ok_or_else(|| bad(".modinfo lies outside the file".to_string()))?;
    let mut info = ModInfo {
        path: path.to_string(),
        ..ModInfo::default()
    };
    for field in bytes.split(|byte| *byte == 0) {
        let Ok(field) = std::str::from_utf8(field) else {
            continue;
        };
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        match key {
            "depends" => info.depends.extend(
                value
                    .split(',')
                    .filter(|name| !name.is_empty())
                    .map(board_configs::normalize_module_name),
            ),
            "alias" => info.aliases.push(value.to_string()),
            "softdep" => info.softdeps.extend(
                value
                    .split_whitespace()
                    .filter(|word| !word.ends_with(':'))
                    .map(str::to_string),
            ),
            _ => {}
        }
    }
    Ok(info)
}

impl ModuleIndex {
    /// The index of every module the kernel package ships, from their own `.modinfo`
    /// (Debian's package has no `modules.dep`: depmod writes it at install time), and the
    /// package's `modules.builtin`.
    pub fn from_modinfo(modules: Vec<ModInfo>, modules_builtin: &str) -> ModuleIndex {
        let mut index = ModuleIndex::default();
        for info in modules {
            let name = module_name_of(&info.path);
            for alias in info.aliases {
                index.aliases.push((alias, name.clone()));
            }
            if !info.softdeps.is_empty() {
                index.softdeps.insert(name.clone(), info.softdeps);
            }
            index.depends.insert(name.clone(), info.depends);
            index.paths.insert(name, info.path);
        }
        // Sorted so the rendered alias file does not depend on directory order.
        index.aliases.sort();
        index.builtin = modules_builtin
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(module_name_of)
            .collect();
        index
    }

    /// A soft dependency names a module or an alias (`crc32c` is an alias of
    /// `crc32c_generic`); the first module that answers to it, as modprobe would pick.
    fn resolve_name(&self, name: &str) -> Option<String> {
        let normalised = board_configs::normalize_module_name(name);
        if self.paths.contains_key(&normalised) {
            return Some(normalised);
        }
        self.aliases
            .iter()
            .find(|(pattern, _)| pattern == name)
            .map(|(_, module)| module.clone())
            .filter(|module| self.paths.contains_key(module))
    }

    /// `wanted` pairs a module name with who asked for it (for the error message).
    pub fn select(
        &self,
        wanted: &[(String, String)],
        kernel: &str,
    ) -> Result<Selection, ModuleError> {
        let mut kept = BTreeMap::new();
        let mut builtin = Vec::new();
        let mut queue = VecDeque::new();
        for (name, wanted_by) in wanted {
            let normalised = board_configs::normalize_module_name(name);
            if self.paths.contains_key(&normalised) {
                queue.push_back(normalised);
            } else if self.builtin.contains(&normalised) {
                builtin.push(normalised);
            } else {
                return Err(ModuleError::Unknown {
                    name: name.clone(),
                    wanted_by: wanted_by.clone(),
                    kernel: kernel.to_string(),
                });
            }
        }
        while let Some(name) = queue.pop_front() {
            let Some(path) = self.paths.get(&name) else {
                continue;
            };
            if kept.insert(name.clone(), path.clone()).is_some() {
                continue;
            }
            for dep in self.dependencies_of(&name) {
                if !kept.contains_key(&dep) {
                    queue.push_back(dep);
                }
            }
        }
        builtin.sort();
        builtin.dedup();
        Ok(Selection {
            modules: kept,
            builtin,
        })
    }

    /// Hard dependencies, then the soft ones that resolve to a module (a soft dependency
    /// that is built in or absent is not needed).
    fn dependencies_of(&self, name: &str) -> Vec<String> {
        let mut deps: Vec<String> = self.depends.get(name).cloned().unwrap_or_default();
        for soft in self.softdeps.get(name).into_iter().flatten() {
            if let Some(module) = self.resolve_name(soft)
                && !deps.contains(&module)
                && module != name
            {
                deps.push(module);
            }
        }
        deps
    }

    /// `modules.dep` for the kept modules, at their installed (decompressed) paths.
    pub fn render_dep(&self, selection: &Selection) -> String {
        let mut out = String::new();
        for (name, path) in &selection.modules {
            let deps: Vec<String> = self
                .dependencies_of(name)
                .iter()
                .filter_map(|dep| selection.modules.get(dep))
                .map(|dep_path| installed_path(dep_path))
                .collect();
            out.push_str(&installed_path(path));
            out.push(':');
            for dep in deps {
                out.push(' ');
                out.push_str(&dep);
            }
            out.push('\n');
        }
        out
    }

    /// `modules.alias` lines of the kept modules only, in the original order.
    pub fn render_alias(&self, selection: &Selection) -> String {
        let mut out = String::from("# Aliases of the modules this image carries.\n");
        for (pattern, module) in &self.aliases {
            if selection.modules.contains_key(module) {
                out.push_str(&format!("alias {pattern} {module}\n"));
            }
        }
        out
    }

    pub fn render_builtin(&self) -> String {
        let mut out = String::new();
        for name in &self.builtin {
            out.push_str(name);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(path: &str, depends: &[&str], aliases: &[&str], softdeps: &[&str]) -> ModInfo {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        ModInfo {
            path: path.to_string(),
            depends: strings(depends),
            aliases: strings(aliases),
            softdeps: strings(softdeps),
        }
    }

    fn index() -> ModuleIndex {
        ModuleIndex::from_modinfo(
            vec![
                info(
                    "kernel/fs/btrfs/btrfs.ko.xz",
                    &["xor", "raid6_pq"],
                    &["fs-btrfs"],
                    &["crc32c", "xxhash64"],
                ),
                info("kernel/crypto/xor.ko.xz", &[], &[], &[]),
                info("kernel/lib/raid6/raid6_pq.ko.xz", &[], &[], &[]),
                info(
                    "kernel/crypto/crc32c_generic.ko.xz",
                    &[],
                    &["crypto-crc32c", "crc32c"],
                    &[],
                ),
                info(
                    "kernel/drivers/net/virtio_net.ko.xz",
                    &["net_failover", "failover"],
                    &["pci:v00001AF4d00001041sv*sd*bc*sc*i*"],
                    &[],
                ),
                info(
                    "kernel/drivers/net/net_failover.ko.xz",
                    &["failover"],
                    &[],
                    &[],
                ),
                info("kernel/net/core/failover.ko.xz", &[], &[], &[]),
                info(
                    "kernel/drivers/net/bonding/bonding.ko.xz",
                    &[],
                    &["rtnl-link-bond"],
                    &[],
                ),
                info(
                    "kernel/drivers/scsi/sd_mod.ko.xz",
                    &[],
                    &["scsi:t-0x00*"],
                    &[],
                ),
            ],
            "kernel/drivers/virtio/virtio_pci.ko\n",
        )
    }

    fn want(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|name| (name.to_string(), "test".to_string()))
            .collect()
    }

    #[test]
    fn names_come_from_file_names_with_dashes_folded() {
        assert_eq!(module_name_of("kernel/net/8021q/8021q.ko.xz"), "8021q");
        assert_eq!(
            module_name_of("kernel/drivers/md/dm-cache.ko.xz"),
            "dm_cache"
        );
        assert_eq!(
            installed_path("kernel/x/dm-cache.ko.xz"),
            "kernel/x/dm-cache.ko"
        );
        assert_eq!(installed_path("kernel/x/plain.ko"), "kernel/x/plain.ko");
    }

    #[test]
    fn selection_follows_hard_and_soft_dependencies() {
        let selection = index().select(&want(&["btrfs"]), "6.12").expect("selects");
        let names: Vec<&str> = selection.modules.keys().map(String::as_str).collect();
        // xxhash64 is a softdep that exists nowhere: optional, silently skipped.
        assert_eq!(names, ["btrfs", "crc32c_generic", "raid6_pq", "xor"]);
    }

    #[test]
    fn builtin_modules_are_noted_not_copied() {
        let selection = index()
            .select(&want(&["virtio-pci", "bonding"]), "6.12")
            .expect("selects");
        assert_eq!(selection.builtin, ["virtio_pci"]);
        assert_eq!(selection.modules.len(), 1);
    }

    #[test]
    fn unknown_module_names_the_asker() {
        let wanted = vec![("nosuch".to_string(), "board ds918plus".to_string())];
        assert_eq!(
            index().select(&wanted, "6.12.1-amd64"),
            Err(ModuleError::Unknown {
                name: "nosuch".to_string(),
                wanted_by: "board ds918plus".to_string(),
                kernel: "6.12.1-amd64".to_string(),
            })
        );
    }

    #[test]
    fn rendered_dep_uses_installed_paths_and_includes_softdeps() {
        let index = index();
        let selection = index.select(&want(&["btrfs"]), "6.12").expect("selects");
        let dep = index.render_dep(&selection);
        assert!(
            dep.contains(
                "kernel/fs/btrfs/btrfs.ko: kernel/crypto/xor.ko kernel/lib/raid6/raid6_pq.ko kernel/crypto/crc32c_generic.ko\n"
            ),
            "{dep}"
        );
        assert!(!dep.contains(".xz"));
        assert!(!dep.contains("virtio_net"));
    }

    #[test]
    fn rendered_alias_keeps_only_kept_modules() {
        let index = index();
        let selection = index
            .select(&want(&["virtio_net"]), "6.12")
            .expect("selects");
        let alias = index.render_alias(&selection);
        assert!(alias.contains("alias pci:v00001AF4d00001041sv*sd*bc*sc*i* virtio_net\n"));
        assert!(!alias.contains("sd_mod"));
        assert!(!alias.contains("bonding"));
    }

    #[test]
    fn modinfo_of_a_non_elf_file_is_an_error_naming_it() {
        let error = parse_modinfo("kernel/x.ko", b"not elf").expect_err("refused");
        assert!(matches!(error, ModuleError::BadModule { ref path, .. } if path == "kernel/x.ko"));
    }
}
