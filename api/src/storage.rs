//! What `cairnctl storage drives`, `volume` and `cache` show, how it renders, and the
//! subvolumes `cairnctl storage snapshot list` lists (hostd builds them from an observation).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageView {
    pub drives: Vec<DriveView>,
    pub volumes: Vec<VolumeView>,
    #[serde(default)]
    pub caches: Vec<CacheView>,
}

/// A volume's cache: what the document asks and what bcache runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheView {
    pub volume: String,
    /// The document's mode (`read-only`, `read-write`), `-` when it asks for none.
    pub mode: String,
    /// bcache's mode as the kernel runs it (`writearound`, `writeback`), if attached.
    pub bcache_mode: Option<String>,
    /// `clean`, `dirty` (writes not yet on the HDDs), `not attached`, or `attached but not
    /// in the document`.
    pub state: String,
    /// The SSDs: stable paths when known, else kernel names.
    pub ssds: Vec<String>,
    /// The bcache cache device (`sdd`, `md100`) and, for an array, its level and health.
    pub device: Option<String>,
    pub layout: Option<String>,
    pub dirty_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    /// Hits in percent (rounded down) of all reads and writes bcache looked up, when there
    /// were any.
    pub hit_ratio: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveView {
    /// The name a document uses: by-id when the drive has a serial, else by-path.
    pub path: String,
    pub by_path: Option<String>,
    pub device: String,
    pub slot: Option<String>,
    pub model: String,
    pub serial: String,
    pub size_bytes: u64,
    /// `hdd` or `ssd` (the kernel's rotational flag).
    pub kind: String,
    /// `free`, `volume <name>`, `boot device`, or what it holds.
    pub usage: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeView {
    pub name: String,
    pub mount_point: String,
    /// `mounted`, `degraded`, `not mounted`, `not created`.
    pub state: String,
    pub size_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub data_profile: String,
    pub metadata_profile: String,
    /// `devid: /dev/sdX (path)` or `devid: missing`.
    pub devices: Vec<String>,
    pub missing: u64,
    /// The document's schedule; none: scrubs on demand only.
    #[serde(default)]
    pub scrub_every_days: Option<u16>,
    /// The last scrub's summary ([`super::scrub_records::ScrubRecord::summary`]), filled in
    /// from the kept records by the API.
    #[serde(default)]
    pub last_scrub: Option<String>,
}

/// One subvolume as `cairnctl storage snapshot list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubvolumeEntry {
    pub name: String,
    pub id: u64,
    pub read_only: bool,
    /// The subvolume this one is a snapshot or clone of, when that one still exists.
    pub origin: Option<String>,
    /// Seconds since 1970.
    pub created: u64,
    /// Allocated bytes of its files (see the module's note on sharing).
    pub bytes: u64,
}

fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

impl StorageView {
    pub fn render_drives(&self) -> String {
        if self.drives.is_empty() {
            return "no drives".to_string();
        }
        let mut text = format!(
            "{:<6} {:<8} {:<4} {:>10}  {:<20} {:<16} {:<24} path",
            "slot", "device", "kind", "size", "model", "serial", "use"
        );
        for drive in &self.drives {
            text.push_str(&format!(
                "\n{:<6} {:<8} {:<4} {:>10}  {:<20} {:<16} {:<24} {}",
                drive.slot.as_deref().unwrap_or("-"),
                drive.device.trim_start_matches("/dev/"),
                drive.kind,
                size_text(drive.size_bytes),
                drive.model,
                drive.serial,
                drive.usage,
                drive.path
            ));
        }
        text
    }

    pub fn render_caches(&self) -> String {
        if self.caches.is_empty() {
            return "no caches".to_string();
        }
        let mut text = format!(
            "{:<12} {:<10} {:<12} {:>10} {:>6}  {:<22} ssds",
            "volume", "mode", "state", "dirty", "hits", "device"
        );
        for cache in &self.caches {
            let device = match (&cache.device, &cache.layout) {
                (Some(device), Some(layout)) => format!("{device} ({layout})"),
                (Some(device), None) => device.clone(),
                (None, _) => "-".to_string(),
            };
            text.push_str(&format!(
                "\n{:<12} {:<10} {:<12} {:>10} {:>6}  {:<22} {}",
                cache.volume,
                cache.mode,
                cache.state,
                size_text(cache.dirty_bytes),
                cache
                    .hit_ratio
                    .map_or("-".to_string(), |ratio| format!("{ratio}%")),
                device,
                cache.ssds.join(", ")
            ));
        }
        text
    }

    pub fn render_volumes(&self) -> String {
        if self.volumes.is_empty() {
            return "no volumes in the document".to_string();
        }
        let mut text = String::new();
        for volume in &self.volumes {
            let space = match (volume.size_bytes, volume.used_bytes) {
                (Some(size), Some(used)) => {
                    format!("{} used of {}", size_text(used), size_text(size))
                }
                _ => "-".to_string(),
            };
            text.push_str(&format!(
                "{} at {}: {}\n  profiles: {} data, {} metadata\n  space: {space}\n  devices:\n",
                volume.name,
                volume.mount_point,
                volume.state,
                volume.data_profile,
                volume.metadata_profile
            ));
            for device in &volume.devices {
                text.push_str(&format!("    {device}\n"));
            }
            let schedule = match volume.scrub_every_days {
                Some(days) => format!("every {days} day{}", if days == 1 { "" } else { "s" }),
                None => "on demand".to_string(),
            };
            text.push_str(&format!(
                "  scrub: {schedule}; last: {}\n",
                volume.last_scrub.as_deref().unwrap_or("never")
            ));
        }
        text.trim_end().to_string()
    }
}
