//! Validated values of the desired-state document.
//!
//! Every string or number whose wrong form would reach the kernel, a path or another program
//! is a type that cannot hold a wrong value: names, drive paths, MAC addresses, VLAN ids,
//! counts and sizes. Each is built with `TryFrom` and its error says what would be right;
//! the document layer (`document.rs`) puts the field's path in front, giving
//! `network.vlans[0].id: 4095 is out of range (expected 1 to 4094)`.
//!
//! Numbers arrive from TOML as `i64`, so the bounded integers convert from `i64`: a negative
//! or huge value gets the same message as any other value out of range.

use std::fmt;

use serde::{Serialize, Serializer};

/// Why a value is refused. The messages are part of the API: tests assert them exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(
        "{0:?} is not a hostname (expected at most 64 characters: labels of 1 to 63 letters, digits or '-' separated by '.', none starting or ending with '-')"
    )]
    Hostname(String),
    #[error(
        "{0:?} is not an interface name (expected 1 to 15 letters, digits, '-', '_' or '.', starting with a letter)"
    )]
    InterfaceName(String),
    #[error("{0:?} is not a port name (expected the board's port names lan1, lan2, …)")]
    PortName(String),
    #[error(
        "{0:?} is not a name (expected 1 to 63 lowercase letters, digits or '-', starting with a letter and not ending with '-')"
    )]
    ObjectName(String),
    #[error(
        "{0:?} is not a guest file (expected a file name in the guest's subvolume, like root.img, or an absolute path without '..', like /volume1/images/vmlinuz)"
    )]
    GuestFile(String),
    #[error(
        "{0:?} is not a stable drive path (expected /dev/disk/by-id/… or /dev/disk/by-path/…; names like /dev/sdb change between boots)"
    )]
    DrivePath(String),
    #[error(
        "{0:?} is not a MAC address (expected six pairs of hex digits separated by ':', like 52:54:00:12:34:56)"
    )]
    MacAddress(String),
    #[error(
        "{0} is a multicast address (expected a unicast address: the first octet's lowest bit clear)"
    )]
    MulticastMac(MacAddress),
    #[error("00:00:00:00:00:00 is not a usable address (expected a unicast address)")]
    ZeroMac,
    #[error("{value} is out of range (expected {min} to {max})")]
    OutOfRange { value: i64, min: i64, max: i64 },
    #[error("unknown {what} {value:?} (expected one of: {})", .expected.join(", "))]
    UnknownChoice {
        what: &'static str,
        value: String,
        expected: &'static [&'static str],
    },
}

/// A string newtype: `TryFrom<&str>` and `TryFrom<String>` run `$check`, Display and
/// Serialize give the string back.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:path, $error:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValueError;
            fn try_from(text: &str) -> Result<Self, ValueError> {
                if $check(text) {
                    Ok(Self(text.to_string()))
                } else {
                    Err($error(text.to_string()))
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValueError;
            fn try_from(text: String) -> Result<Self, ValueError> {
                Self::try_from(text.as_str())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// The appliance's host name (`uname -n`).
    Hostname,
    is_hostname,
    ValueError::Hostname
);
checked_string!(
    /// A network interface the appliance creates: a bond, a vSwitch (bridge), a VLAN's parent.
    InterfaceName,
    is_interface_name,
    ValueError::InterfaceName
);
checked_string!(
    /// A physical port as init names it from the board config: `lan1` … `lanN`.
    PortName,
    is_port_name,
    ValueError::PortName
);
checked_string!(
    /// The name of a volume or a guest: it becomes a directory, a subvolume, a socket path and
    /// possibly the guest's host name, so it stays within what all of them accept.
    ObjectName,
    is_object_name,
    ValueError::ObjectName
);
checked_string!(
    /// A file a guest uses (a disk image, a kernel, an initramfs): a plain name, looked up in
    /// the guest's own subvolume, or an absolute path. Never `..`: a guest definition must
    /// not reach outside what it names.
    GuestFile,
    is_guest_file,
    ValueError::GuestFile
);
checked_string!(
    /// A NAS drive, by a path udev keeps stable across boots and slot changes.
    DrivePath,
    is_drive_path,
    ValueError::DrivePath
);

impl PortName {
    /// The kernel interface the port is: init renames the NIC to the port's name.
    pub fn as_interface(&self) -> InterfaceName {
        InterfaceName(self.0.clone())
    }
}

/// `sethostname(2)` takes at most 64 bytes (`__NEW_UTS_LEN`); labels follow RFC 1123 so that
/// the name also works in DNS and DHCP.
fn is_hostname(text: &str) -> bool {
    const MAX_LEN: usize = 64;
    const MAX_LABEL: usize = 63;
    !text.is_empty()
        && text.len() <= MAX_LEN
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The kernel's IFNAMSIZ is 16 bytes with the terminating NUL. The character set is narrower
/// than the kernel's ('/', ':' and white space are legal there) so that names survive sysfs
/// paths, `ip` output and shell scripts unquoted.
fn is_interface_name(text: &str) -> bool {
    const MAX_LEN: usize = 15;
    text.len() <= MAX_LEN
        && text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `lan` and a number from 1 without a leading zero, as board configs name ports.
fn is_port_name(text: &str) -> bool {
    text.strip_prefix("lan").is_some_and(|number| {
        !number.is_empty()
            && !number.starts_with('0')
            && number.len() <= 3 // no board has a thousand ports
            && number.chars().all(|c| c.is_ascii_digit())
    })
}

/// A DNS label in lowercase (63 characters), so a guest can carry its name as host name.
fn is_object_name(text: &str) -> bool {
    const MAX_LEN: usize = 63;
    text.len() <= MAX_LEN
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && !text.ends_with('-')
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A plain file name, or an absolute path whose components are all plain names.
fn is_guest_file(text: &str) -> bool {
    const PATH_MAX: usize = 1024;
    let plain = |name: &str| {
        !name.is_empty()
            && name != "."
            && name != ".."
            && name.len() <= 255
            && name.chars().all(|c| c.is_ascii_graphic() && c != '/')
    };
    if text.len() > PATH_MAX {
        return false;
    }
    match text.strip_prefix('/') {
        Some(rest) => rest.split('/').all(plain),
        None => plain(text),
    }
}

/// One entry directly under `/dev/disk/by-id/` or `/dev/disk/by-path/`: udev names them
/// after the drive (model and serial) or its slot, and both stay put when the kernel's
/// `sdX` letters move.
fn is_drive_path(text: &str) -> bool {
    const NAME_MAX: usize = 255;
    ["/dev/disk/by-id/", "/dev/disk/by-path/"]
        .iter()
        .filter_map(|dir| text.strip_prefix(dir))
        .any(|entry| {
            !entry.is_empty()
                && entry.len() <= NAME_MAX
                && entry != "."
                && entry != ".."
                && !entry.contains('/')
                && entry.chars().all(|c| c.is_ascii_graphic())
        })
}

/// An Ethernet address a guest NIC may carry: unicast and not all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddress([u8; 6]);

impl MacAddress {
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl TryFrom<&str> for MacAddress {
    type Error = ValueError;
    fn try_from(text: &str) -> Result<Self, ValueError> {
        let malformed = || ValueError::MacAddress(text.to_string());
        let mut octets = [0u8; 6];
        let mut parts = text.split(':');
        for octet in &mut octets {
            let part = parts.next().ok_or_else(malformed)?;
            // from_str_radix alone would also take "+f".
            if part.len() != 2 || !part.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(malformed());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| malformed())?;
        }
        if parts.next().is_some() {
            return Err(malformed());
        }
        let mac = Self(octets);
        if octets == [0; 6] {
            return Err(ValueError::ZeroMac);
        }
        if octets[0] & 1 == 1 {
            return Err(ValueError::MulticastMac(mac));
        }
        Ok(mac)
    }
}

impl TryFrom<String> for MacAddress {
    type Error = ValueError;
    fn try_from(text: String) -> Result<Self, ValueError> {
        Self::try_from(text.as_str())
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Serialize for MacAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An integer newtype limited to `MIN..=MAX`, built from TOML's `i64` or from its own type.
macro_rules! bounded_integer {
    ($(#[$doc:meta])* $name:ident: $repr:ty = $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name($repr);

        impl $name {
            pub const MIN: $repr = $min;
            pub const MAX: $repr = $max;

            pub fn new(value: $repr) -> Result<Self, ValueError> {
                if (Self::MIN..=Self::MAX).contains(&value) {
                    Ok(Self(value))
                } else {
                    Err(Self::out_of_range(i64::try_from(value).unwrap_or(i64::MAX)))
                }
            }

            pub fn get(self) -> $repr {
                self.0
            }

            fn out_of_range(value: i64) -> ValueError {
                ValueError::OutOfRange {
                    value,
                    min: i64::try_from(Self::MIN).expect("the lower bound fits in an i64"),
                    max: i64::try_from(Self::MAX).expect("the upper bound fits in an i64"),
                }
            }
        }

        impl TryFrom<i64> for $name {
            type Error = ValueError;
            fn try_from(value: i64) -> Result<Self, ValueError> {
                <$repr>::try_from(value)
                    .map_err(|_| Self::out_of_range(value))
                    .and_then(Self::new)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(serializer)
            }
        }
    };
}

bounded_integer!(
    /// An IEEE 802.1Q VLAN id: 0 means "priority tag only" and 4095 is reserved.
    VlanId: u16 = 1, 4094
);
bounded_integer!(
    /// vCPUs a guest boots with: cloud-hypervisor's `--cpus boot=` takes a u8.
    VcpuCount: u32 = 1, 255
);
bounded_integer!(
    /// A guest's memory. Below 64 MiB not even a kernel with an initramfs boots; 16 TiB is far
    /// beyond every board, so anything larger is a typo (a size in KiB or bytes).
    MemoryMib: u64 = 64, 16 * 1024 * 1024
);
bounded_integer!(
    /// A bond's link-monitoring interval. 0 would switch monitoring off, and the bond would then
    /// never notice a dead member; beyond a minute a dead link goes unnoticed too long to matter.
    MiimonMs: u32 = 1, 60_000
);
bounded_integer!(
    /// A guest's relative CPU share, cgroup v2's `cpu.weight` range (100 is the default).
    CpuWeight: u16 = 1, 10_000
);
bounded_integer!(
    /// Where a guest comes in the autostart sequence; a thousand places is more guests than
    /// any board holds.
    AutostartOrder: u32 = 0, 1000
);
bounded_integer!(
    /// The pause after an autostarted guest before the next one starts; beyond ten minutes
    /// the boot would look hung.
    AutostartDelaySeconds: u32 = 0, 600
);
bounded_integer!(
    /// The size of a disk file hostd creates when it is missing; 64 TiB is beyond any volume
    /// these boards hold, so anything larger is a unit mistake.
    DiskSizeMib: u64 = 1, 64 * 1024 * 1024
);
bounded_integer!(
    /// A hardware thread (logical CPU) a guest reserves; Linux numbers them from 0, and
    /// 1023 is beyond every board's.
    ThreadIndex: u32 = 0, 1023
);
