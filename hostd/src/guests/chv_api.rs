//! cloud-hypervisor's REST API (v53.0), the part hostd uses, typed from its documented
//! schema (`vmm/src/api/openapi/cloud-hypervisor.yaml` at tag v53.0) and checked against
//! the serde definitions it is generated from (`vmm/src/vm_config.rs`).
//!
//! Requests are `PUT`/`GET` on `http://localhost/api/v1/<endpoint>`; a success without a
//! body is `204 No Content`, a failure a 4xx/5xx whose body is cloud-hypervisor's error
//! chain as text. Optional fields are left out when unset: cloud-hypervisor's own defaults
//! apply then (the schema's `default:`).

use serde::{Deserialize, Serialize};

/// The endpoints hostd calls, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /vmm.ping` → [`VmmPingResponse`].
    VmmPing,
    /// `GET /vm.info` → [`VmInfo`].
    VmInfo,
    /// `PUT /vm.create` with a [`VmConfig`] → 204.
    VmCreate,
    /// `PUT /vm.boot` → 204.
    VmBoot,
    VmPause,
    VmResume,
    /// `PUT /vm.shutdown`: stops the VM at once (no guest involvement).
    VmShutdown,
    VmReboot,
    /// `PUT /vm.power-button`: the ACPI power button; the guest decides.
    VmPowerButton,
    /// `PUT /vmm.shutdown`: ends the process.
    VmmShutdown,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Self::VmmPing => "/api/v1/vmm.ping",
            Self::VmInfo => "/api/v1/vm.info",
            Self::VmCreate => "/api/v1/vm.create",
            Self::VmBoot => "/api/v1/vm.boot",
            Self::VmPause => "/api/v1/vm.pause",
            Self::VmResume => "/api/v1/vm.resume",
            Self::VmShutdown => "/api/v1/vm.shutdown",
            Self::VmReboot => "/api/v1/vm.reboot",
            Self::VmPowerButton => "/api/v1/vm.power-button",
            Self::VmmShutdown => "/api/v1/vmm.shutdown",
        }
    }

    pub fn method(self) -> &'static str {
        match self {
            Self::VmmPing | Self::VmInfo => "GET",
            Self::VmCreate
            | Self::VmBoot
            | Self::VmPause
            | Self::VmResume
            | Self::VmShutdown
            | Self::VmReboot
            | Self::VmPowerButton
            | Self::VmmShutdown => "PUT",
        }
    }
}

/// `VmmPingResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VmmPingResponse {
    pub version: String,
    #[serde(default)]
    pub build_version: Option<String>,
    #[serde(default)]
    pub pid: Option<i64>,
}

/// `VmState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum VmState {
    Created,
    Running,
    Shutdown,
    Paused,
}

/// `VmInfo`; `config` is kept as JSON (hostd wrote it; it reads back only the state).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VmInfo {
    pub state: VmState,
    pub config: serde_json::Value,
    #[serde(default)]
    pub memory_actual_size: Option<i64>,
}

/// `VmConfig`: what hostd sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmConfig {
    pub cpus: CpusConfig,
    pub memory: MemoryConfig,
    pub payload: PayloadConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub net: Vec<NetConfig>,
    pub serial: ConsoleConfig,
    pub console: ConsoleConfig,
}

/// `CpusConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpusConfig {
    pub boot_vcpus: u32,
    pub max_vcpus: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub affinity: Vec<CpuAffinity>,
}

/// `CpuAffinity`: the host CPUs one vCPU's thread may run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuAffinity {
    pub vcpu: u32,
    pub host_cpus: Vec<u32>,
}

/// `MemoryConfig`; `size` in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryConfig {
    pub size: u64,
}

/// `PayloadConfig`: a firmware, or a kernel with its initramfs and command line.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PayloadConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initramfs: Option<String>,
}

/// `ImageType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ImageType {
    Raw,
}

/// `DiskConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskConfig {
    pub path: String,
    pub readonly: bool,
    /// Always [`ImageType::Raw`]: left out, v53 guesses the format and then refuses writes
    /// to sector 0 of a raw image (LAB-FACTS).
    pub image_type: ImageType,
    pub id: String,
}

/// `NetConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetConfig {
    pub tap: String,
    pub mac: String,
    pub id: String,
}

/// `ConsoleMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConsoleMode {
    Off,
    Socket,
}

/// `SerialConfig` and `ConsoleConfig` (the virtio console), which share these fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleConfig {
    pub mode: ConsoleMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_serialises_as_the_schema_names_it() {
        let config = VmConfig {
            cpus: CpusConfig {
                boot_vcpus: 2,
                max_vcpus: 2,
                affinity: vec![CpuAffinity {
                    vcpu: 0,
                    host_cpus: vec![3],
                }],
            },
            memory: MemoryConfig { size: 128 << 20 },
            payload: PayloadConfig {
                kernel: Some("/k".into()),
                ..PayloadConfig::default()
            },
            disks: vec![DiskConfig {
                path: "/d.img".into(),
                readonly: false,
                image_type: ImageType::Raw,
                id: "disk0".into(),
            }],
            net: Vec::new(),
            serial: ConsoleConfig {
                mode: ConsoleMode::Socket,
                socket: Some("/s".into()),
            },
            console: ConsoleConfig {
                mode: ConsoleMode::Off,
                socket: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&config).expect("serialises"),
            serde_json::json!({
                "cpus": {"boot_vcpus": 2, "max_vcpus": 2, "affinity": [{"vcpu": 0, "host_cpus": [3]}]},
                "memory": {"size": 134217728},
                "payload": {"kernel": "/k"},
                "disks": [{"path": "/d.img", "readonly": false, "image_type": "Raw", "id": "disk0"}],
                "serial": {"mode": "Socket", "socket": "/s"},
                "console": {"mode": "Off"}
            })
        );
    }

    #[test]
    fn vm_info_reads_the_state() {
        let info: VmInfo = serde_json::from_str(
            r#"{"config": {"payload": {}}, "state": "Paused", "memory_actual_size": 1}"#,
        )
        .expect("parses");
        assert_eq!(info.state, VmState::Paused);
    }
}
