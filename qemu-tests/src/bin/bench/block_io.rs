//! Where a bench job's I/O went, from the kernel's block statistics of each layer.

use serde::Serialize;

/// What one layer of the stack did, from the kernel's `/sys/block/<dev>/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct DeviceIo {
    pub read_requests: u64,
    pub read_mib: f64,
    pub write_requests: u64,
    pub write_mib: f64,
}

/// Where a job's I/O went: the HDDs (the volume's bcache backing devices, summed) and the
/// cache device (the SSDs' md mirror). bcache's own hit counters count reads only, and
/// only every 5 s; these say where writes landed too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LayerIo {
    pub hdds: DeviceIo,
    pub cache: DeviceIo,
}

impl DeviceIo {
    /// `/sys/block/<dev>/stat`: reads completed, merged, sectors, ms; writes completed,
    /// merged, sectors, ms; … (Documentation/block/stat.rst; sectors of 512 bytes).
    pub(crate) fn parse_stat(fields: &str) -> Option<Self> {
        let values: Vec<u64> = fields
            .split_whitespace()
            .take(7)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let [reads, _, read_sectors, _, writes, _, write_sectors] = values.as_slice() else {
            return None;
        };
        Some(Self {
            read_requests: *reads,
            read_mib: *read_sectors as f64 * 512.0 / MIB,
            write_requests: *writes,
            write_mib: *write_sectors as f64 * 512.0 / MIB,
        })
    }

    pub(crate) fn add(&mut self, other: Self) {
        self.read_requests += other.read_requests;
        self.read_mib += other.read_mib;
        self.write_requests += other.write_requests;
        self.write_mib += other.write_mib;
    }

    pub(crate) fn since(self, before: Self) -> Self {
        Self {
            read_requests: self.read_requests.saturating_sub(before.read_requests),
            read_mib: self.read_mib - before.read_mib,
            write_requests: self.write_requests.saturating_sub(before.write_requests),
            write_mib: self.write_mib - before.write_mib,
        }
    }
}

pub(crate) const MIB: f64 = 1024.0 * 1024.0;

impl LayerIo {
    /// `IO hdd <stat fields>` and `IO cache <stat fields>` lines (see [`IO_COMMAND`]).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut io = Self::default();
        let mut seen_hdd = false;
        for line in text.lines() {
            let Some(at) = line.find("IO ") else {
                continue;
            };
            let (layer, fields) = line[at + "IO ".len()..].split_once(' ')?;
            let device = DeviceIo::parse_stat(fields)?;
            match layer {
                "hdd" => {
                    seen_hdd = true;
                    io.hdds.add(device);
                }
                "cache" => io.cache.add(device),
                _ => return None,
            }
        }
        seen_hdd.then_some(io)
    }

    pub(crate) fn since(self, before: Self) -> Self {
        Self {
            hdds: self.hdds.since(before.hdds),
            cache: self.cache.since(before.cache),
        }
    }

    pub(crate) fn add(&mut self, other: Self) {
        self.hdds.add(other.hdds);
        self.cache.add(other.cache);
    }
}

/// The block statistics of the backing devices (those with a `cache_mode`) and of the md
/// array under the cache (none before the cache is attached).
pub(crate) const IO_COMMAND: &str = "for d in /sys/block/sd*; do if [ -e $d/bcache/cache_mode ]; then echo \"IO hdd $(cat $d/stat)\"; fi; done; for d in /sys/block/md*; do if [ -e $d/md ]; then echo \"IO cache $(cat $d/stat)\"; fi; done; true";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_statistics_per_layer() {
        // Two backing HDDs and the md mirror, as /sys/block/*/stat prints them (11 to 17
        // fields; the first seven are read).
        let before = LayerIo::parse(
            "IO hdd     104        0    14504      100      375        0   536160     900 0 0 0\n\
             IO hdd 122 0 15072 10 391 0 536672 9 0 0 0\n\
             IO cache 110 0 15192 1 416 0 22164 2 0 0 0\n",
        )
        .expect("three devices");
        assert_eq!(before.hdds.read_requests, 226);
        assert_eq!(before.hdds.write_requests, 766);
        assert!((before.hdds.read_mib - (14504.0 + 15072.0) * 512.0 / MIB).abs() < 1e-9);
        let after = LayerIo::parse(
            "\u{1b}[0mIO hdd 104 0 14504 100 2454 0 552792 900 0 0 0\n\
             IO hdd 122 0 15072 10 2470 0 553304 9 0 0 0\n\
             IO cache 110 0 15192 1 2618 0 42033 2 0 0 0\n",
        )
        .expect("three devices");
        let during = after.since(before);
        assert_eq!(during.hdds.write_requests, 4158);
        assert_eq!(during.cache.write_requests, 2202);
        assert!((during.cache.write_mib - 19869.0 * 512.0 / MIB).abs() < 1e-9);
        // Before the cache is attached there is no md array: the cache layer stays zero.
        let no_cache = LayerIo::parse("IO hdd 1 0 8 0 2 0 16 0 0 0 0").expect("one HDD");
        assert_eq!(no_cache.cache, DeviceIo::default());
        assert_eq!(LayerIo::parse("IO cache 1 0 8 0 2 0 16 0 0 0 0"), None);
        assert_eq!(LayerIo::parse("IO hdd 1 0 8"), None);
        assert_eq!(LayerIo::parse("IO disk 1 0 8 0 2 0 16 0 0 0 0"), None);
    }
}
