//! Debian's OVMF (package `ovmf`): the UEFI firmware for booting `cairn.img` the way a
//! real NAS box does. The 4 MiB builds are the ones Debian 12 ships without Secure Boot
//! keys enrolled; systemd-boot in the image is unsigned.

use std::path::{Path, PathBuf};

use thiserror::Error;

pub const CODE_ENV: &str = "CAIRN_OVMF_CODE";
pub const VARS_ENV: &str = "CAIRN_OVMF_VARS";
pub const DEFAULT_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const DEFAULT_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

#[derive(Debug, Error)]
pub enum OvmfError {
    #[error(
        "OVMF firmware file {0} not found: install Debian's ovmf package (or set {CODE_ENV} and {VARS_ENV})"
    )]
    Missing(PathBuf),
}

/// Firmware code (mapped read-only) and the template of its variable store (copied per VM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ovmf {
    pub code: PathBuf,
    pub vars_template: PathBuf,
}

impl Ovmf {
    pub fn locate() -> Result<Self, OvmfError> {
        let pick = |env: &str, default: &str| {
            std::env::var_os(env)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        Self::at(&pick(CODE_ENV, DEFAULT_CODE), &pick(VARS_ENV, DEFAULT_VARS))
    }

    pub fn at(code: &Path, vars_template: &Path) -> Result<Self, OvmfError> {
        for path in [code, vars_template] {
            if !path.is_file() {
                return Err(OvmfError::Missing(path.to_owned()));
            }
        }
        Ok(Self {
            code: code.to_owned(),
            vars_template: vars_template.to_owned(),
        })
    }
}
