//! The storage part of the desired state: Btrfs volumes over whole NAS drives.
//!
//! A volume names its drives by stable path and picks a Btrfs profile for data and one for
//! metadata. The checks here are the ones that need no look at the hardware: enough drives for
//! the profile, no drive in two volumes, and metadata at least as redundant as data (losing
//! metadata loses the whole volume, so weaker metadata would make the data's redundancy moot).
//!
//! A volume may have an SSD cache (`cache = { mode = "read-only", drives = [...] }`): a
//! read-write cache holds writes the HDDs do not have yet, so it needs two SSDs mirrored;
//! a read-only cache holds copies only, so one SSD will do.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

use super::document;
use super::error::{Errors, expected_one_of};
use super::values::{DrivePath, ObjectName, ValueError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StorageSpec {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

impl StorageSpec {
    pub fn is_empty(&self) -> bool {
        self.volumes.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub name: ObjectName,
    pub drives: Vec<DrivePath>,
    pub data_profile: Profile,
    pub metadata_profile: Profile,
    /// Whether hostd may overwrite drives that hold something it did not create (a
    /// partition table, another filesystem). Without it such a drive is refused, so that a
    /// typo in a drive path cannot erase a disk.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub wipe: bool,
    /// The admin's consent to raid5/raid6 data despite [`PARITY_RISK`].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force_parity_raid: bool,
    /// A scrub every this many days (1 to [`MAX_SCRUB_DAYS`]); none: on demand only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrub_every_days: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,
}

/// An SSD cache in front of a volume's HDDs (bcache, see `storage::cache`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cache {
    pub mode: CacheMode,
    pub drives: Vec<DrivePath>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CacheMode {
    /// Reads are cached, writes go to the HDDs only (bcache `writearound`): the SSD holds
    /// nothing the HDDs lack, so losing it loses nothing.
    ReadOnly,
    /// Writes land on the SSDs first and are written back later (bcache `writeback`): the
    /// SSDs hold the only copy of recent writes, so they are mirrored.
    ReadWrite,
}

impl CacheMode {
    pub const NAMES: &'static [&'static str] = &["read-only", "read-write"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only",
            Self::ReadWrite => "read-write",
        }
    }

    /// The SSDs the mode needs.
    pub fn min_drives(self) -> usize {
        match self {
            Self::ReadOnly => 1,
            Self::ReadWrite => 2,
        }
    }
}

impl TryFrom<&str> for CacheMode {
    type Error = ValueError;
    fn try_from(text: &str) -> Result<Self, ValueError> {
        match text {
            "read-only" => Ok(Self::ReadOnly),
            "read-write" => Ok(Self::ReadWrite),
            _ => Err(ValueError::UnknownChoice {
                what: "cache mode",
                value: text.to_string(),
                expected: Self::NAMES,
            }),
        }
    }
}

impl fmt::Display for CacheMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CacheMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Btrfs block-group profiles, named as `mkfs.btrfs -d/-m` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Profile {
    Single,
    Dup,
    Raid0,
    Raid1,
    Raid1c3,
    Raid1c4,
    Raid10,
    /// Parity RAID: accepted for data only with `force_parity_raid` (see [`PARITY_RISK`]).
    Raid5,
    Raid6,
}

/// Why parity profiles need the admin's explicit consent: Btrfs raid5/6 still has the
/// write hole (a stripe half-written at a crash or power cut can lose data written just
/// before it, and a degraded scrub can make it worse), which its own documentation says.
/// A year: a longer interval is no schedule worth the name, and reading every block of a
/// large volume once a year is already the least a NAS should do.
pub const MAX_SCRUB_DAYS: u16 = 366;

pub const PARITY_RISK: &str = "Btrfs raid5 and raid6 can lose data written just before a crash or power cut (the parity write hole)";

impl Profile {
    pub const ALL: [Profile; 7] = [
        Self::Single,
        Self::Dup,
        Self::Raid0,
        Self::Raid1,
        Self::Raid1c3,
        Self::Raid1c4,
        Self::Raid10,
    ];
    pub const NAMES: &'static [&'static str] = &[
        "single", "dup", "raid0", "raid1", "raid1c3", "raid1c4", "raid10",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Dup => "dup",
            Self::Raid0 => "raid0",
            Self::Raid1 => "raid1",
            Self::Raid1c3 => "raid1c3",
            Self::Raid1c4 => "raid1c4",
            Self::Raid10 => "raid10",
            Self::Raid5 => "raid5",
            Self::Raid6 => "raid6",
        }
    }

    pub fn is_parity(self) -> bool {
        matches!(self, Self::Raid5 | Self::Raid6)
    }

    /// Drives the profile needs. The kernel accepts raid0 on one drive and raid10 on two, but
    /// those degenerate layouts give none of the striping the names promise, so Cairn asks for
    /// the layouts' natural minimum.
    pub fn min_drives(self) -> usize {
        match self {
            Self::Single | Self::Dup => 1,
            Self::Raid0 | Self::Raid1 => 2,
            Self::Raid1c3 => 3,
            Self::Raid1c4 | Self::Raid10 => 4,
            // The kernel takes raid5 on 2 and raid6 on 3 drives, which is raid1 and raid1c3
            // with extra work; a stripe of data plus parity starts at these.
            Self::Raid5 => 3,
            Self::Raid6 => 4,
        }
    }

    /// How many drives may fail without losing what the profile holds. dup keeps two copies
    /// but on one drive, so it survives bad sectors, not a lost drive.
    pub fn drive_losses_survived(self) -> usize {
        match self {
            Self::Single | Self::Dup | Self::Raid0 => 0,
            Self::Raid1 | Self::Raid10 | Self::Raid5 => 1,
            Self::Raid1c3 | Self::Raid6 => 2,
            Self::Raid1c4 => 3,
        }
    }
}

impl TryFrom<&str> for Profile {
    type Error = ValueError;
    fn try_from(text: &str) -> Result<Self, ValueError> {
        if let Some(profile) = Self::ALL.into_iter().find(|p| p.as_str() == text) {
            return Ok(profile);
        }
        match text {
            "raid5" => return Ok(Self::Raid5),
            "raid6" => return Ok(Self::Raid6),
            _ => {}
        }
        Err(ValueError::UnknownChoice {
            what: "profile",
            value: text.to_string(),
            expected: Self::NAMES,
        })
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Profile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Converts every value of the document's storage table; returns the volumes that converted
/// and their positions in the document.
pub(super) fn convert(doc: &document::Storage, errors: &mut Errors) -> (StorageSpec, Vec<usize>) {
    let mut spec = StorageSpec::default();
    let mut positions = Vec::new();
    for (i, volume) in doc.volumes.iter().enumerate() {
        let path = format!("storage.volumes[{i}]");
        let name = errors.check(
            format!("{path}.name"),
            ObjectName::try_from(volume.name.as_str()),
        );
        let drives = errors.check_all(
            &format!("{path}.drives"),
            volume
                .drives
                .iter()
                .map(|d| DrivePath::try_from(d.as_str())),
        );
        let data_profile = errors.check(
            format!("{path}.data_profile"),
            Profile::try_from(volume.data_profile.as_str()),
        );
        let metadata_profile = errors.check(
            format!("{path}.metadata_profile"),
            Profile::try_from(volume.metadata_profile.as_str()),
        );
        let scrub_every_days = match volume.scrub_every_days {
            None => Some(None),
            Some(days) => match u16::try_from(days) {
                Ok(days @ 1..=MAX_SCRUB_DAYS) => Some(Some(days)),
                _ => {
                    errors.push(
                        format!("{path}.scrub_every_days"),
                        format!(
                            "{days} is out of range (expected 1 to {MAX_SCRUB_DAYS} days; leave it out for scrubs on demand only)"
                        ),
                    );
                    None
                }
            },
        };
        let cache = match &volume.cache {
            None => Some(None),
            Some(cache) => {
                let mode = errors.check(
                    format!("{path}.cache.mode"),
                    CacheMode::try_from(cache.mode.as_str()),
                );
                let drives = errors.check_all(
                    &format!("{path}.cache.drives"),
                    cache.drives.iter().map(|d| DrivePath::try_from(d.as_str())),
                );
                mode.zip(drives)
                    .map(|(mode, drives)| Some(Cache { mode, drives }))
            }
        };
        if let (
            Some(name),
            Some(drives),
            Some(data_profile),
            Some(metadata_profile),
            Some(scrub_every_days),
            Some(cache),
        ) = (
            name,
            drives,
            data_profile,
            metadata_profile,
            scrub_every_days,
            cache,
        ) {
            spec.volumes.push(Volume {
                name,
                drives,
                data_profile,
                metadata_profile,
                wipe: volume.wipe,
                force_parity_raid: volume.force_parity_raid,
                scrub_every_days,
                cache,
            });
            positions.push(i);
        }
    }
    (spec, positions)
}

/// Checks between volumes and within each: names, drives, profiles.
pub(super) fn check_relations(volumes: &[(usize, &Volume)], errors: &mut Errors) {
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut owner: BTreeMap<&str, &ObjectName> = BTreeMap::new();
    for &(i, volume) in volumes {
        let path = format!("storage.volumes[{i}]");
        if let Some(first) = names.get(volume.name.as_str()) {
            errors.push(
                format!("{path}.name"),
                format!(
                    "{:?} is already the name of storage.volumes[{first}] (expected a name of its own)",
                    volume.name.as_str()
                ),
            );
        } else {
            names.insert(volume.name.as_str(), i);
        }

        for (j, drive) in volume.drives.iter().enumerate() {
            let drive_path = format!("{path}.drives[{j}]");
            if volume.drives[..j].contains(drive) {
                errors.push(
                    drive_path,
                    format!("{drive} is listed twice in this volume"),
                );
            } else if let Some(other) = owner.get(drive.as_str()) {
                errors.push(
                    drive_path,
                    format!(
                        "{drive} is already in volume {other} (expected each drive in one volume at most)"
                    ),
                );
            } else {
                owner.insert(drive.as_str(), &volume.name);
            }
        }

        let count = volume.drives.len();
        if count == 0 {
            errors.push(
                format!("{path}.drives"),
                "empty (expected at least one drive)",
            );
        } else {
            for (field, profile) in [
                ("data_profile", volume.data_profile),
                ("metadata_profile", volume.metadata_profile),
            ] {
                if count < profile.min_drives() {
                    errors.push(
                        format!("{path}.drives"),
                        format!(
                            "{count} drive{} too few for {field} {profile} (expected at least {})",
                            if count == 1 { " is" } else { "s are" },
                            profile.min_drives()
                        ),
                    );
                }
            }
        }

        check_parity(&path, volume, errors);

        let data_losses = volume.data_profile.drive_losses_survived();
        if volume.metadata_profile.drive_losses_survived() < data_losses {
            let stronger = Profile::ALL
                .into_iter()
                .filter(|p| p.drive_losses_survived() >= data_losses);
            errors.push(
                format!("{path}.metadata_profile"),
                format!(
                    "{} is less redundant than data_profile {}, and losing metadata loses the volume ({})",
                    volume.metadata_profile,
                    volume.data_profile,
                    expected_one_of(stronger, "profile")
                ),
            );
        }

        if let Some(cache) = &volume.cache {
            check_cache(&path, volume, cache, &mut owner, errors);
        }
    }
}

/// Parity RAID: never for metadata (a torn metadata stripe loses the volume, and raid1 or
/// raid1c3 cost little since metadata is small); for data only with the admin's consent.
fn check_parity(path: &str, volume: &Volume, errors: &mut Errors) {
    let offered = || {
        let names: Vec<&str> = Profile::ALL.iter().map(|p| p.as_str()).collect();
        names.join(", ")
    };
    if volume.metadata_profile.is_parity() {
        errors.push(
            format!("{path}.metadata_profile"),
            format!(
                "{} is refused for metadata: {PARITY_RISK}, and metadata lost is the volume lost (expected raid1 or raid1c3 beside parity data; offered: {})",
                volume.metadata_profile,
                offered()
            ),
        );
    }
    if volume.data_profile.is_parity() && !volume.force_parity_raid {
        errors.push(
            format!("{path}.data_profile"),
            format!(
                "{} is refused unless the volume says force_parity_raid = true: {PARITY_RISK} (expected one of: {}, or the force key to take the risk)",
                volume.data_profile,
                offered()
            ),
        );
    }
}

/// A cache's own checks: enough SSDs for its mode, none listed twice or used elsewhere.
/// `owner` is shared with the volumes' drives, so a drive cannot be both.
fn check_cache<'a>(
    path: &str,
    volume: &'a Volume,
    cache: &'a Cache,
    owner: &mut BTreeMap<&'a str, &'a ObjectName>,
    errors: &mut Errors,
) {
    for (j, drive) in cache.drives.iter().enumerate() {
        let drive_path = format!("{path}.cache.drives[{j}]");
        if cache.drives[..j].contains(drive) {
            errors.push(drive_path, format!("{drive} is listed twice in this cache"));
        } else if let Some(other) = owner.get(drive.as_str()) {
            let what = if *other == &volume.name && volume.drives.contains(drive) {
                format!(
                    "{drive} is a drive of this volume (expected an SSD of its own for the cache)"
                )
            } else {
                format!(
                    "{drive} is already used by volume {other} (expected an SSD no volume or cache uses)"
                )
            };
            errors.push(drive_path, what);
        } else {
            owner.insert(drive.as_str(), &volume.name);
        }
    }
    let count = cache.drives.len();
    if count == 0 {
        errors.push(
            format!("{path}.cache.drives"),
            "empty (expected at least one SSD)",
        );
    } else if count < cache.mode.min_drives() {
        errors.push(
            format!("{path}.cache.drives"),
            format!(
                "{count} SSD is too few for a read-write cache (expected 2, mirrored: a read-write cache holds writes the HDDs do not have yet, so losing its only SSD would lose them; use mode = \"read-only\" for one SSD)"
            ),
        );
    }
}
