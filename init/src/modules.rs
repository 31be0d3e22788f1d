//! Kernel modules without modprobe or udev: coldplug plus the board's list.
//!
//! Coldplug reads every `modalias` under /sys/devices, matches it against the image's
//! `modules.alias` (fnmatch patterns, as kmod does), orders each match after its
//! dependencies from `modules.dep` and loads it with `finit_module`. Loading a bus
//! driver (virtio_pci, ahci, …) makes new devices appear, so the scan repeats until a
//! round finds nothing new. Everything here is best effort: a module that does not load
//! is logged and the boot goes on, because a missing driver is better diagnosed from a
//! running appliance than from a machine that powered off.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::kmod::{ModuleInitFlags, finit_module};

use crate::error::{Chain, ModuleError};

/// One scan plus two re-scans: virtio_pci → virtio_blk is the deepest chain of buses on
/// the boards we know (PCI → virtio → block), and a fourth round never found anything.
pub const MAX_ROUNDS: usize = 3;

/// `MODULE_INIT_COMPRESSED_FILE` (Linux 6.4+, not in nix 0.32): lets the kernel
/// decompress `.ko.xz`/`.ko.zst` itself. The image stores modules uncompressed, so this
/// is only for kernels and trees that differ from the contract.
const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

/// Module names treat `-` and `_` as the same character, as the kernel does.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// `kernel/drivers/block/virtio_blk.ko[.xz]` → `virtio_blk`.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    normalize(stem)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Alias {
    pattern: String,
    /// The pattern up to its first wildcard: a cheap filter before fnmatch.
    literal_prefix: String,
    module: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModuleFile {
    path: String,
    deps: Vec<String>,
}

/// The image's module index: modules.alias, modules.dep and modules.builtin.
#[derive(Debug, Default)]
pub struct ModuleIndex {
    dir: PathBuf,
    aliases: Vec<Alias>,
    modules: HashMap<String, ModuleFile>,
    /// `softdep <module> pre: <names>`: loaded before the module although it does not
    /// link against them, typically crypto algorithms it asks the kernel for by name.
    /// Without modprobe the kernel cannot fetch those on demand (ext4 needs crc32c to
    /// mount a filesystem with metadata checksums), so they must be in first.
    soft_pre: HashMap<String, Vec<String>>,
    builtin: HashSet<String>,
}

impl ModuleIndex {
    /// Reads the index of `/usr/lib/modules/<release>` under `root`.
    pub fn read(dir: &Path) -> Result<ModuleIndex, ModuleError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| ModuleError::ReadIndex { path, source })
        };
        let alias = read("modules.alias")?;
        let dep = read("modules.dep")?;
        // Optional: without softdeps some modules load but do not work (see soft_pre).
        let softdep = read("modules.softdep").unwrap_or_default();
        // Optional: only used to stay quiet about modules compiled into the kernel.
        let builtin = read("modules.builtin").unwrap_or_default();
        Ok(ModuleIndex::parse(
            dir,
            &IndexText {
                alias: &alias,
                dep: &dep,
                softdep: &softdep,
                builtin: &builtin,
            },
        ))
    }

    pub fn parse(dir: &Path, text: &IndexText<'_>) -> ModuleIndex {
        ModuleIndex {
            dir: dir.to_owned(),
            aliases: parse_aliases(text.alias),
            modules: parse_deps(text.dep),
            soft_pre: parse_soft_pre(text.softdep),
            builtin: text
                .builtin
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(module_name)
                .collect(),
        }
    }

    /// A module name as it is, or else the modules an alias (`crypto-crc32c`) stands for.
    fn resolve(&self, name: &str) -> Vec<String> {
        let name = normalize(name);
        if self.modules.contains_key(&name) || self.builtin.contains(&name) {
            return vec![name];
        }
        // Aliases keep their dashes: `crypto-crc32c` is not a module name.
        self.matching_modules(&name.replace('_', "-"))
            .into_iter()
            .chain(self.matching_modules(&name))
            .fold(Vec::new(), |mut found, m| {
                if !found.contains(&m) {
                    found.push(m);
                }
                found
            })
    }

    /// Every module whose alias pattern matches `modalias`, in modules.alias order.
    pub fn matching_modules(&self, modalias: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for alias in &self.aliases {
            if modalias.starts_with(&alias.literal_prefix)
                && fnmatch(alias.pattern.as_bytes(), modalias.as_bytes())
                && !found.contains(&alias.module)
            {
                found.push(alias.module.clone());
            }
        }
        found
    }

    pub fn path_of(&self, name: &str) -> Option<PathBuf> {
        self.modules.get(&normalize(name)).map(|m| {
            let path = Path::new(&m.path);
            if path.is_absolute() {
                path.to_owned()
            } else {
                self.dir.join(path)
            }
        })
    }

    /// What to load for `wanted`, dependencies first, each module once and none of
    /// `done`. Names that are neither in modules.dep nor built in come back as unknown.
    pub fn plan(&self, wanted: &[String], done: &HashSet<String>) -> Plan {
        let mut plan = Plan::default();
        let mut visiting = HashSet::new();
        for name in wanted {
            let resolved = self.resolve(name);
            if resolved.is_empty() {
                let name = normalize(name);
                if !plan.unknown.contains(&name) {
                    plan.unknown.push(name);
                }
            }
            for module in resolved {
                self.visit(&module, done, &mut visiting, &mut plan.load);
            }
        }
        plan
    }

    fn visit(
        &self,
        name: &str,
        done: &HashSet<String>,
        visiting: &mut HashSet<String>,
        order: &mut Vec<String>,
    ) {
        if done.contains(name)
            || order.iter().any(|n| n == name)
            // A cycle cannot load anyway; stopping here keeps the walk finite.
            || !visiting.insert(name.to_owned())
        {
            return;
        }
        if self.builtin.contains(name) {
            return;
        }
        for soft in self.soft_pre.get(name).into_iter().flatten() {
            for module in self.resolve(soft) {
                self.visit(&module, done, visiting, order);
            }
        }
        let Some(module) = self.modules.get(name) else {
            return;
        };
        for dep in &module.deps {
            self.visit(dep, done, visiting, order);
        }
        order.push(name.to_owned());
    }
}

/// The text of the index files, as read from the module directory.
#[derive(Debug, Default, Clone, Copy)]
pub struct IndexText<'a> {
    pub alias: &'a str,
    pub dep: &'a str,
    pub softdep: &'a str,
    pub builtin: &'a str,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub load: Vec<String>,
    pub unknown: Vec<String>,
}

fn parse_aliases(text: &str) -> Vec<Alias> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "alias" {
                return None;
            }
            let pattern = words.next()?.to_owned();
            let module = normalize(words.next()?);
            let literal_prefix = pattern
                .split(['*', '?', '[', '\\'])
                .next()
                .unwrap_or_default()
                .to_owned();
            Some(Alias {
                pattern,
                literal_prefix,
                module,
            })
        })
        .collect()
}

fn parse_deps(text: &str) -> HashMap<String, ModuleFile> {
    text.lines()
        .filter_map(|line| {
            let (path, deps) = line.split_once(':')?;
            let path = path.trim();
            if path.is_empty() {
                return None;
            }
            Some((
                module_name(path),
                ModuleFile {
                    path: path.to_owned(),
                    deps: deps.split_whitespace().map(module_name).collect(),
                },
            ))
        })
        .collect()
}

/// `softdep <module> pre: a b post: c`, as kmod reads it: words before `pre:` or
/// `post:` mean nothing. Only `pre:` is kept: `post:` modules are never needed for the
/// module itself to work.
fn parse_soft_pre(text: &str) -> HashMap<String, Vec<String>> {
    let mut soft: HashMap<String, Vec<String>> = HashMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("softdep") {
            continue;
        }
        let Some(module) = words.next().map(normalize) else {
            continue;
        };
        let mut in_pre = false;
        for word in words {
            match word {
                "pre:" => in_pre = true,
                "post:" => in_pre = false,
                name if in_pre => soft
                    .entry(module.clone())
                    .or_default()
                    .push(name.to_owned()),
                _ => {}
            }
        }
    }
    soft
}

/// fnmatch(3) without flags, as kmod matches modules.alias: `*`, `?`, `[...]` (with `!`
/// or `^` negation and ranges) and `\` escapes. Iterative with one backtrack point, so
/// the long `cpu:type:…:feature:*…*` patterns stay linear instead of exponential.
pub fn fnmatch(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after a mismatch: the pattern just past the last `*`, and the
    // text position that star has swallowed up to.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if let Some(step) = match_one(pattern, p, text[t]) {
            match step {
                Step::Star => {
                    backtrack = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                Step::Matched(next) => {
                    p = next;
                    t += 1;
                    continue;
                }
            }
        }
        match backtrack {
            Some((star_next, swallowed)) => {
                p = star_next;
                t = swallowed + 1;
                backtrack = Some((star_next, swallowed + 1));
            }
            None => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

enum Step {
    Star,
    /// The text byte matched; the pattern continues at this index.
    Matched(usize),
}

/// Matches the pattern element at `p` against one text byte; `None` is a mismatch.
fn match_one(pattern: &[u8], p: usize, byte: u8) -> Option<Step> {
    match *pattern.get(p)? {
        b'*' => Some(Step::Star),
        b'?' => Some(Step::Matched(p + 1)),
        b'[' => match bracket(pattern, p, byte) {
            Some((true, next)) => Some(Step::Matched(next)),
            Some((false, _)) => None,
            // No closing bracket: fnmatch takes `[` literally.
            None => (byte == b'[').then_some(Step::Matched(p + 1)),
        },
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == byte).then_some(Step::Matched(p + 2)),
        c => (c == byte).then_some(Step::Matched(p + 1)),
    }
}

/// A bracket expression starting at `pattern[open]`: whether it matches `byte`, and the
/// index after its closing `]`; `None` if it never closes.
fn bracket(pattern: &[u8], open: usize, byte: u8) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let c = *pattern.get(i)?;
        // `]` right after `[` or `[!` is a member, not the end.
        if c == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-')
            && let Some(&hi) = pattern.get(i + 2)
            && hi != b']'
        {
            matched |= (c..=hi).contains(&byte);
            i += 3;
        } else {
            matched |= c == byte;
            i += 1;
        }
    }
}

/// Every distinct `modalias` under `sys_devices` (/sys/devices). Symlinks are not
/// followed: sysfs links back up the tree and would loop.
pub fn read_modaliases(sys_devices: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![sys_devices.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() && entry.file_name() == "modalias" {
                // Unreadable or empty modalias files exist (devices without a driver
                // match); they simply match nothing.
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    let alias = text.trim();
                    if !alias.is_empty() {
                        found.insert(alias.to_owned());
                    }
                }
            }
        }
    }
    found
}

/// Modules already in the kernel: loaded (/proc/modules) or built in with parameters
/// (/sys/module).
pub fn loaded_modules(proc_root: &Path, sys_root: &Path) -> HashSet<String> {
    let mut names: HashSet<String> = std::fs::read_to_string(proc_root.join("modules"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(normalize)
        .collect();
    if let Ok(entries) = std::fs::read_dir(sys_root.join("module")) {
        names.extend(
            entries
                .flatten()
                .map(|e| normalize(&e.file_name().to_string_lossy())),
        );
    }
    names
}

/// The system call behind loading, so tests can record it.
pub trait Loader {
    fn load(&mut self, name: &str, path: &Path) -> Result<(), ModuleError>;
}

pub struct KernelLoader;

impl Loader for KernelLoader {
    fn load(&mut self, name: &str, path: &Path) -> Result<(), ModuleError> {
        let file = File::open(path).map_err(|source| ModuleError::Open {
            path: path.to_owned(),
            source,
        })?;
        let compressed = [".xz", ".zst", ".gz"]
            .iter()
            .any(|ext| path.to_string_lossy().ends_with(ext));
        let flags = if compressed {
            ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE)
        } else {
            ModuleInitFlags::empty()
        };
        match finit_module(&file, c"", flags) {
            // Loaded meanwhile (a dependency of something else, or built in).
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(source) => Err(ModuleError::Load {
                name: name.to_owned(),
                source,
            }),
        }
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub loaded: Vec<String>,
    pub failed: Vec<String>,
    pub rounds: usize,
}

/// Coldplug plus the board's modules, re-scanning until nothing new matches.
/// `done` starts as what the kernel already has and collects every attempt, so no
/// module is tried twice (a failed one would fail again).
pub fn coldplug(
    index: &ModuleIndex,
    sys_devices: &Path,
    board_modules: &[String],
    mut done: HashSet<String>,
    loader: &mut impl Loader,
) -> Summary {
    let mut summary = Summary::default();
    for round in 1..=MAX_ROUNDS {
        let mut wanted: Vec<String> = read_modaliases(sys_devices)
            .iter()
            .flat_map(|alias| index.matching_modules(alias))
            .collect();
        if round == 1 {
            wanted.extend(board_modules.iter().map(|m| normalize(m)));
        }
        let plan = index.plan(&wanted, &done);
        for name in &plan.unknown {
            if !done.contains(name) {
                tracing::warn!("module {name} is not in the image");
                done.insert(name.clone());
            }
        }
        if plan.load.is_empty() {
            break;
        }
        summary.rounds = round;
        for name in plan.load {
            done.insert(name.clone());
            let Some(path) = index.path_of(&name) else {
                continue;
            };
            match loader.load(&name, &path) {
                Ok(()) => {
                    tracing::debug!("loaded module {name}");
                    summary.loaded.push(name);
                }
                Err(err) => {
                    tracing::warn!("{}", Chain(&err));
                    summary.failed.push(name);
                }
            }
        }
    }
    summary
}

/// The running kernel's module directory: `<root>/usr/lib/modules/<release>`.
pub fn module_dir(root: &Path) -> Result<PathBuf, ModuleError> {
    let uts = nix::sys::utsname::uname().map_err(ModuleError::KernelVersion)?;
    Ok(root
        .join("usr/lib/modules")
        .join(uts.release().to_string_lossy().as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000002v* virtio_blk
alias virtio:d00000001v* virtio_net
alias pci:v00008086d00002922sv*sd*bc*sc*i* ahci
alias pci:v*d*sv*sd*bc01sc06i01* ahci
alias cpu:type:x86,ven*fam*mod*:feature:*0081* aesni-intel
alias fs-ext4 ext4
alias acpi*:PNP0A0[38]:* pci_root_fake
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
";

    const DEP: &str = "\
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/virtio_net.ko: kernel/net/core/failover.ko kernel/drivers/net/net_failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/ata/libata.ko:
kernel/drivers/ata/libahci.ko: kernel/drivers/ata/libata.ko
kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko kernel/drivers/ata/libata.ko
kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/fs/mbcache.ko.xz kernel/lib/crc16.ko.xz
kernel/fs/jbd2/jbd2.ko.xz:
kernel/fs/mbcache.ko.xz:
kernel/lib/crc16.ko.xz:
kernel/arch/x86/crypto/aesni-intel.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/crypto/crc32c_generic.ko:
kernel/drivers/cycle_a.ko: kernel/drivers/cycle_b.ko
kernel/drivers/cycle_b.ko: kernel/drivers/cycle_a.ko
";

    const BUILTIN: &str = "kernel/drivers/tty/serial/8250/8250.ko\nkernel/net/bridge/bridge.ko\n";

    const SOFTDEP: &str = "\
# Soft dependencies extracted from modules themselves.
softdep ext4 pre: crypto-crc32c
softdep jbd2 pre: crypto-crc32c
softdep cifs gcm
softdep btrfs pre: crypto-crc32c sha256 post: nosuch
";

    fn index() -> ModuleIndex {
        ModuleIndex::parse(
            Path::new("/lib/modules/6.1.0-test"),
            &IndexText {
                alias: ALIAS,
                dep: DEP,
                softdep: SOFTDEP,
                builtin: BUILTIN,
            },
        )
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn fnmatch_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("a*c", "abbbc", true),
            ("a*c", "ac", true),
            ("a*c", "acb", false),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[abc]x", "bx", true),
            ("[abc]x", "dx", false),
            ("[!abc]x", "dx", true),
            ("[^abc]x", "ax", false),
            ("[a-f]1", "e1", true),
            ("[a-f]1", "g1", false),
            ("[]a]", "]", true),
            ("[!]]", "]", false),
            ("[a-]", "-", true),
            ("[unclosed", "[unclosed", true),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("*a*b*c*", "xaxbxcx", true),
            ("*a*b*c*", "xaxcxbx", false),
            (
                "pci:v00001AF4d*sv*sd*bc*sc*i*",
                "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
                true,
            ),
            (
                "pci:v00001AF4d*sv*sd*bc*sc*i*",
                "pci:v00008086d00001001sv00001AF4sd00000002bc01sc00i00",
                false,
            ),
            ("acpi*:PNP0A0[38]:*", "acpi:PNP0A03:", true),
            ("acpi*:PNP0A0[38]:*", "acpi:PNP0A05:", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                fnmatch(pattern.as_bytes(), text.as_bytes()),
                *want,
                "{pattern:?} vs {text:?}"
            );
        }
    }

    #[test]
    fn fnmatch_many_stars_is_fast() {
        let pattern = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let text = "a".repeat(5000);
        assert!(!fnmatch(pattern.as_bytes(), text.as_bytes()));
    }

    #[test]
    fn module_names() {
        assert_eq!(
            module_name("kernel/drivers/block/virtio_blk.ko"),
            "virtio_blk"
        );
        assert_eq!(
            module_name("kernel/arch/x86/crypto/aesni-intel.ko.xz"),
            "aesni_intel"
        );
        assert_eq!(module_name("ext4.ko.zst"), "ext4");
        assert_eq!(normalize("dm-cache"), "dm_cache");
    }

    #[test]
    fn alias_matching() {
        let index = index();
        assert_eq!(
            index.matching_modules("pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"),
            ["virtio_pci"]
        );
        assert_eq!(
            index.matching_modules("virtio:d00000002v00001AF4"),
            ["virtio_blk"]
        );
        // Two patterns for one module: listed once.
        assert_eq!(
            index.matching_modules("pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"),
            ["ahci"]
        );
        assert_eq!(
            index.matching_modules("cpu:type:x86,ven0000fam0006mod003A:feature:,0000,0081,00C1"),
            ["aesni_intel"]
        );
        assert!(index.matching_modules("platform:serial8250").is_empty());
    }

    #[test]
    fn dependencies_load_first_and_once() {
        let plan = index().plan(
            &strings(&["virtio_blk", "virtio_pci", "virtio-net"]),
            &HashSet::new(),
        );
        assert_eq!(
            plan.load,
            [
                "virtio_ring",
                "virtio",
                "virtio_blk",
                "virtio_pci_modern_dev",
                "virtio_pci",
                "failover",
                "net_failover",
                "virtio_net",
            ]
        );
        assert!(plan.unknown.is_empty());
    }

    #[test]
    fn every_dependency_precedes_its_user() {
        let index = index();
        let plan = index.plan(&strings(&["ahci", "ext4", "virtio_net"]), &HashSet::new());
        for (i, name) in plan.load.iter().enumerate() {
            for dep in &index.modules[name].deps {
                let at = plan.load.iter().position(|n| n == dep);
                assert!(at.is_some_and(|at| at < i), "{dep} must load before {name}");
            }
        }
    }

    #[test]
    fn plan_skips_done_and_reports_unknown_but_not_builtin() {
        let done: HashSet<String> = strings(&["virtio", "virtio_ring"]).into_iter().collect();
        let plan = index().plan(
            &strings(&["virtio_blk", "bridge", "nosuch", "nosuch"]),
            &done,
        );
        assert_eq!(plan.load, ["virtio_blk"]);
        assert_eq!(plan.unknown, ["nosuch"]);
    }

    #[test]
    fn soft_dependencies_load_first_through_their_aliases() {
        let plan = index().plan(&strings(&["ext4"]), &HashSet::new());
        assert_eq!(
            plan.load,
            [
                "crc32c_intel",
                "crc32c_generic",
                "jbd2",
                "mbcache",
                "crc16",
                "ext4"
            ]
        );
        let soft = parse_soft_pre(SOFTDEP);
        assert_eq!(soft.get("cifs"), None);
        assert_eq!(
            soft.get("btrfs").map(Vec::as_slice),
            Some(&["crypto-crc32c".to_owned(), "sha256".to_owned()][..])
        );
    }

    #[test]
    fn wanted_aliases_resolve_to_modules() {
        let plan = index().plan(&strings(&["crc32c"]), &HashSet::new());
        assert_eq!(plan.load, ["crc32c_intel", "crc32c_generic"]);
        assert!(plan.unknown.is_empty());
    }

    #[test]
    fn dependency_cycle_terminates() {
        let plan = index().plan(&strings(&["cycle_a"]), &HashSet::new());
        assert_eq!(plan.load, ["cycle_b", "cycle_a"]);
    }

    #[test]
    fn relative_paths_join_the_module_dir() {
        assert_eq!(
            index().path_of("ext4"),
            Some(PathBuf::from(
                "/lib/modules/6.1.0-test/kernel/fs/ext4/ext4.ko.xz"
            ))
        );
        assert_eq!(index().path_of("nosuch"), None);
    }

    /// Records loads and makes devices appear the way a bus driver does.
    struct FakeKernel<'a> {
        devices: &'a Path,
        loaded: Vec<String>,
        refuse: &'a [&'a str],
    }

    impl Loader for FakeKernel<'_> {
        fn load(&mut self, name: &str, _path: &Path) -> Result<(), ModuleError> {
            if self.refuse.contains(&name) {
                return Err(ModuleError::Load {
                    name: name.to_owned(),
                    source: Errno::ENOEXEC,
                });
            }
            self.loaded.push(name.to_owned());
            if name == "virtio_pci" {
                let dir = self.devices.join("pci0000:00/0000:00:04.0/virtio1");
                std::fs::create_dir_all(&dir).expect("fixture dir");
                std::fs::write(dir.join("modalias"), "virtio:d00000002v00001AF4\n")
                    .expect("fixture modalias");
            }
            Ok(())
        }
    }

    #[test]
    fn coldplug_rescans_after_bus_drivers_load() {
        let sys = TempDir::new("coldplug");
        sys.write(
            "devices/pci0000:00/0000:00:04.0/modalias",
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n",
        );
        sys.write(
            "devices/platform/serial8250/modalias",
            "platform:serial8250\n",
        );
        sys.write("devices/virtual/empty/modalias", "");
        let devices = sys.path().join("devices");
        let mut kernel = FakeKernel {
            devices: &devices,
            loaded: Vec::new(),
            refuse: &["crc16"],
        };
        let board = strings(&["ext4", "bridge", "not-here"]);
        let already: HashSet<String> = strings(&["virtio"]).into_iter().collect();
        let summary = coldplug(&index(), &devices, &board, already, &mut kernel);
        assert_eq!(
            kernel.loaded,
            [
                "virtio_pci_modern_dev",
                "virtio_ring",
                "virtio_pci",
                "crc32c_intel",
                "crc32c_generic",
                "jbd2",
                "mbcache",
                "ext4",
                "virtio_blk",
            ]
        );
        assert_eq!(summary.failed, ["crc16"]);
        assert_eq!(summary.rounds, 2);
    }

    #[test]
    fn modaliases_are_found_deep_and_deduplicated() {
        let sys = TempDir::new("modalias");
        sys.write("devices/a/b/c/d/modalias", "x:1\n");
        sys.write("devices/e/modalias", "x:1\n");
        sys.write("devices/f/modalias", "x:2\n");
        let found = read_modaliases(&sys.path().join("devices"));
        assert_eq!(found.into_iter().collect::<Vec<_>>(), ["x:1", "x:2"]);
    }

    #[test]
    fn loaded_modules_from_proc_and_sys() {
        let root = TempDir::new("loaded");
        root.write(
            "proc/modules",
            "virtio_net 57344 0 - Live 0x0\nnet-failover 20480 1 virtio_net, Live 0x0\n",
        );
        std::fs::create_dir_all(root.path().join("sys/module/8250")).expect("fixture dir");
        let names = loaded_modules(&root.path().join("proc"), &root.path().join("sys"));
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        assert_eq!(names, ["8250", "net_failover", "virtio_net"]);
    }

    #[test]
    fn reads_the_index_from_a_directory() {
        let dir = TempDir::new("index");
        dir.write("modules.alias", ALIAS);
        dir.write("modules.dep", DEP);
        let index = ModuleIndex::read(dir.path()).expect("index readable");
        // No modules.builtin in this tree: a built-in name is simply unknown.
        assert_eq!(
            index.plan(&strings(&["bridge"]), &HashSet::new()).unknown,
            ["bridge"]
        );
        assert_eq!(
            index.matching_modules("virtio:d00000001v00001AF4"),
            ["virtio_net"]
        );
        let missing = ModuleIndex::read(&dir.path().join("nope"));
        assert!(matches!(missing, Err(ModuleError::ReadIndex { .. })));
    }
}
