//! The document's shape, as serde reads it from TOML.
//!
//! Why a second set of types beside the validated ones: serde stops at the first value it
//! cannot convert, but the issue asks for every error of a document at once. So serde only
//! checks the shape here — which tables and keys exist (`deny_unknown_fields`), which are
//! required, and whether a value is a string, an integer or a list — and every value stays a
//! plain `String` or `i64`. The subsystem modules then convert each value to its validated
//! type, collecting one [`FieldError`] per wrong value, and the relation checks run over
//! everything that converted.
//!
//! A shape error still stops serde at the first one; its path comes from
//! `serde_path_to_error` and its message is rewritten into the document's own format
//! (`network.bonds[0].speed: unknown field (expected one of: name, mode, …)`).

use serde::Deserialize;

use super::error::FieldError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Document {
    pub version: i64,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default)]
    pub guests: Vec<Guest>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Network {
    #[serde(default)]
    pub bonds: Vec<Bond>,
    #[serde(default)]
    pub vswitches: Vec<VSwitch>,
    #[serde(default)]
    pub vlans: Vec<Vlan>,
    #[serde(default)]
    pub management: Option<Management>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Management {
    pub interface: String,
    #[serde(default)]
    pub dhcp4: bool,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub confirm_s: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Bond {
    pub name: String,
    pub mode: String,
    pub members: Vec<String>,
    #[serde(default)]
    pub miimon_ms: Option<i64>,
    #[serde(default)]
    pub primary: Option<String>,
    #[serde(default)]
    pub lacp_rate: Option<String>,
    #[serde(default)]
    pub xmit_hash_policy: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VSwitch {
    pub name: String,
    #[serde(default)]
    pub uplink: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Vlan {
    pub parent: String,
    pub id: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Storage {
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Volume {
    pub name: String,
    pub drives: Vec<String>,
    pub data_profile: String,
    pub metadata_profile: String,
    #[serde(default)]
    pub wipe: bool,
    #[serde(default)]
    pub force_parity_raid: bool,
    #[serde(default)]
    pub scrub_every_days: Option<i64>,
    #[serde(default)]
    pub cache: Option<Cache>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cache {
    pub mode: String,
    pub drives: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Guest {
    pub name: String,
    pub vcpus: i64,
    pub memory_mib: i64,
    #[serde(default)]
    pub volume: Option<String>,
    #[serde(default)]
    pub nics: Vec<Nic>,
    #[serde(default)]
    pub disks: Vec<Disk>,
    #[serde(default)]
    pub boot: Option<Boot>,
    #[serde(default)]
    pub autostart: Option<Autostart>,
    #[serde(default)]
    pub reserved_threads: Vec<i64>,
    #[serde(default)]
    pub cpu_weight: Option<i64>,
    #[serde(default)]
    pub restart: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Nic {
    pub vswitch: String,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub vlan: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Disk {
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub size_mib: Option<i64>,
    #[serde(default)]
    pub readonly: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Boot {
    #[serde(default)]
    pub kernel: Option<String>,
    #[serde(default)]
    pub initramfs: Option<String>,
    #[serde(default)]
    pub cmdline: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Autostart {
    #[serde(default)]
    pub order: i64,
    #[serde(default)]
    pub delay_s: i64,
}

/// Reads the document's shape, or says where and why it is not a desired-state document.
pub(crate) fn read(text: &str) -> Result<Document, FieldError> {
    let deserializer =
        toml::Deserializer::parse(text).map_err(|error| syntax_error(text, &error))?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        shape_error(&path, error.inner().message())
    })
}

/// Reads the keys of one `[[guests]]` table as guest number `index` of a document: its
/// errors carry the document's paths (`guests[2].vcpus`), a syntax error the path `guest`.
pub(crate) fn read_guest(text: &str, index: usize) -> Result<Guest, FieldError> {
    let at = format!("guests[{index}]");
    let deserializer = toml::Deserializer::parse(text)
        .map_err(|error| FieldError::new("guest", error.message().trim_end()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." {
            at.clone()
        } else {
            format!("{at}.{path}")
        };
        shape_error(&path, error.inner().message())
    })
}

fn syntax_error(text: &str, error: &toml::de::Error) -> FieldError {
    let message = error.message().trim_end().replace('`', "\"");
    let Some(span) = error.span() else {
        return FieldError::new("", format!("not valid TOML: {message}"));
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    FieldError::new(
        "",
        format!("not valid TOML at line {line}, column {column}: {message}"),
    )
}

/// Rewrites serde's messages into the document's format. `path` is serde_path_to_error's,
/// `.` for the document's top level. An unknown field's path already ends with its name; a
/// missing field is reported at the table that lacks it, so its name is added.
fn shape_error(path: &str, message: &str) -> FieldError {
    let join = |field: &str| {
        if path == "." {
            field.to_string()
        } else {
            format!("{path}.{field}")
        }
    };
    if let Some((field, expected)) = parse_unknown_field(message) {
        let expected = if expected.is_empty() {
            "expected no fields here".to_string()
        } else {
            format!("expected one of: {}", expected.join(", "))
        };
        let path = if path == "." { field.as_str() } else { path };
        return FieldError::new(path, format!("unknown field ({expected})"));
    }
    if let Some(field) = backticked(message, "missing field ") {
        return FieldError::new(join(&field), "missing (this field is required)");
    }
    // Type mismatches ("invalid type: string \"x\", expected a sequence") read well already;
    // only serde's backticks become quotes.
    let path = if path == "." { "" } else { path };
    FieldError::new(path, message.trim_end().replace('`', "\""))
}

/// serde's `unknown field `x`, expected one of `a`, `b``, `… expected `a` or `b``, or
/// `… there are no fields`: the field and the names it expected.
fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let field = backticked(message, "unknown field ")?;
    let rest = message.get("unknown field ``".len() + field.len()..)?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((field, expected))
}

/// The name in backticks right after `prefix`.
fn backticked(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    let end = rest.find('`')?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_unknown_field_messages_are_rewritten() {
        assert_eq!(
            parse_unknown_field("unknown field `speed`, expected one of `name`, `mode`"),
            Some(("speed".to_string(), vec!["name".into(), "mode".into()]))
        );
        assert_eq!(
            parse_unknown_field("unknown field `x`, expected `a` or `b`"),
            Some(("x".to_string(), vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            parse_unknown_field("unknown field `x`, there are no fields"),
            Some(("x".to_string(), vec![]))
        );
        assert_eq!(parse_unknown_field("invalid type: string"), None);
    }

    #[test]
    fn missing_and_type_errors_name_the_field() {
        assert_eq!(
            shape_error("network.bonds[0]", "missing field `mode`").to_string(),
            "network.bonds[0].mode: missing (this field is required)"
        );
        assert_eq!(
            shape_error(".", "missing field `version`").to_string(),
            "version: missing (this field is required)"
        );
        assert_eq!(
            shape_error(
                "guests[0].vcpus",
                "invalid type: string \"two\", expected i64"
            )
            .to_string(),
            "guests[0].vcpus: invalid type: string \"two\", expected i64"
        );
    }
}
