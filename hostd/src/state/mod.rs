//! The desired state: one TOML document saying what the appliance should be (its host name,
//! network, storage and guests), read from `/config/desired/state.toml` or sent over the API.
//!
//! A document is accepted or refused as a whole, in three passes:
//! 1. shape (`document.rs`): serde with `deny_unknown_fields`, values still plain strings and
//!    integers; a shape error stops here, since nothing after it can be trusted;
//! 2. values (the subsystem modules): every string and number becomes a validated type
//!    (`values.rs`); each wrong one adds an error and its item is left out of pass 3;
//! 3. relations: names unique, references that resolve, ports in one bond at most, enough
//!    drives for a profile… References resolve against every name the document declares,
//!    even on an item with a wrong value elsewhere, so a wrong bond mode does not also report
//!    the VLAN on that bond as pointing at nothing.
//!
//! Every error of passes 2 and 3 is reported, each as `path: what is wrong (what is right)`.
//! The validated [`DesiredState`] is what planners consume; its fields are public so tests can
//! build one. What the store commits and an apply acts on is a [`Validated`] document, made
//! only by [`DesiredState::parse`] or [`DesiredState::validated`] (which re-runs pass 3 on a
//! value built or edited in code), so nothing downstream validates again. The
//! validated types only serialise (to write the document back); reading always goes through
//! the document layer, whose every table has `deny_unknown_fields`.

mod document;
mod error;
mod guests;
mod management;
mod network;
mod storage;
mod validated;
mod values;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

pub use error::{FieldError, Invalid};
pub use guests::{
    Autostart, DiskSource, GuestBoot, GuestDisk, GuestNic, GuestSpec, MAX_DISKS, RestartPolicy,
};
pub use management::{IpPrefix, Management};
pub use network::{Bond, BondMode, LacpRate, NetworkSpec, VSwitch, Vlan, XmitHashPolicy};
pub use storage::{Cache, CacheMode, PARITY_RISK, Profile, StorageSpec, Volume};
pub use validated::Validated;
pub use values::{
    AutostartDelaySeconds, AutostartOrder, CpuWeight, DiskSizeMib, GuestFile, ThreadIndex,
};
pub use values::{
    DrivePath, Hostname, InterfaceName, MacAddress, MemoryMib, MiimonMs, ObjectName, PortName,
    ValueError, VcpuCount, VlanId,
};

use self::error::Errors;

/// The document's format version. A future format gets a new number and a conversion, so an
/// old hostd refuses a newer document instead of misreading it.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredState {
    pub version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Hostname>,
    #[serde(skip_serializing_if = "NetworkSpec::is_empty")]
    pub network: NetworkSpec,
    #[serde(skip_serializing_if = "StorageSpec::is_empty")]
    pub storage: StorageSpec,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guests: Vec<GuestSpec>,
}

impl Default for DesiredState {
    /// Nothing declared: what a fresh appliance starts from.
    fn default() -> Self {
        Self {
            version: VERSION,
            hostname: None,
            network: NetworkSpec::default(),
            storage: StorageSpec::default(),
            guests: Vec::new(),
        }
    }
}

impl DesiredState {
    /// Parses and validates a document, reporting every error it can find.
    pub fn from_toml(text: &str) -> Result<Self, Invalid> {
        let doc = document::read(text).map_err(|error| Invalid {
            errors: vec![error],
        })?;
        let mut errors = Errors::default();
        if doc.version != i64::from(VERSION) {
            errors.push(
                "version",
                format!("unsupported version {} (expected {VERSION})", doc.version),
            );
        }
        let hostname = errors
            .check_optional("hostname", doc.hostname.as_deref().map(Hostname::try_from))
            .flatten();
        let (network, network_positions) = network::convert(&doc.network, &mut errors);
        let (storage, volume_positions) = storage::convert(&doc.storage, &mut errors);
        let (guests, guest_positions) = guests::convert(&doc.guests, &mut errors);

        let declared = Declared::from_document(&doc);
        check_relations(
            &network::Indexed::new(&network, &network_positions),
            &indexed(&storage.volumes, &volume_positions),
            &indexed(&guests, &guest_positions),
            &declared,
            &mut errors,
        );
        errors.into_result()?;
        Ok(Self {
            version: VERSION,
            hostname,
            network,
            storage,
            guests,
        })
    }

    /// Re-checks a state built in code (the checks values cannot carry in their types).
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut errors = Errors::default();
        if self.version != VERSION {
            errors.push(
                "version",
                format!("unsupported version {} (expected {VERSION})", self.version),
            );
        }
        let all = |n: usize| (0..n).collect::<Vec<usize>>();
        check_relations(
            &network::Indexed::new(&self.network, &network::Positions::of(&self.network)),
            &indexed(&self.storage.volumes, &all(self.storage.volumes.len())),
            &indexed(&self.guests, &all(self.guests.len())),
            &Declared::from_state(self),
            &mut errors,
        );
        errors.into_result()
    }

    /// The document as TOML; [`DesiredState::from_toml`] reads it back to an equal value.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect(
            "every field is a string, an integer, a table or a list of them, which TOML holds",
        )
    }
}

fn indexed<'a, T>(items: &'a [T], positions: &[usize]) -> Vec<(usize, &'a T)> {
    positions.iter().copied().zip(items).collect()
}

fn check_relations(
    network: &network::Indexed<'_>,
    volumes: &[(usize, &Volume)],
    guests: &[(usize, &GuestSpec)],
    declared: &Declared,
    errors: &mut Errors,
) {
    network::check_relations(network, declared, errors);
    storage::check_relations(volumes, errors);
    guests::check_relations(guests, declared, errors);
}

/// Every name the document declares, valid or not: what references are resolved against.
#[derive(Debug, Default)]
pub(crate) struct Declared {
    pub bonds: BTreeSet<String>,
    pub vswitches: BTreeSet<String>,
    /// `<parent>.<id>` of every VLAN.
    pub vlan_interfaces: BTreeSet<String>,
    pub volumes: BTreeSet<String>,
    /// Port → the first bond that lists it.
    pub bond_of_port: BTreeMap<String, String>,
}

impl Declared {
    fn from_document(doc: &document::Document) -> Self {
        let mut declared = Self::default();
        for bond in &doc.network.bonds {
            declared.add_bond(&bond.name, bond.members.iter().map(String::as_str));
        }
        for vswitch in &doc.network.vswitches {
            declared.vswitches.insert(vswitch.name.clone());
        }
        for vlan in &doc.network.vlans {
            declared
                .vlan_interfaces
                .insert(format!("{}.{}", vlan.parent, vlan.id));
        }
        for volume in &doc.storage.volumes {
            declared.volumes.insert(volume.name.clone());
        }
        declared
    }

    fn from_state(state: &DesiredState) -> Self {
        let mut declared = Self::default();
        for bond in &state.network.bonds {
            declared.add_bond(bond.name.as_str(), bond.members.iter().map(|m| m.as_str()));
        }
        for vswitch in &state.network.vswitches {
            declared.vswitches.insert(vswitch.name.to_string());
        }
        for vlan in &state.network.vlans {
            declared.vlan_interfaces.insert(vlan.interface_name());
        }
        for volume in &state.storage.volumes {
            declared.volumes.insert(volume.name.to_string());
        }
        declared
    }

    /// The one place the rule lives: a port listed by several bonds belongs to the first.
    fn add_bond<'a>(&mut self, name: &str, members: impl Iterator<Item = &'a str>) {
        self.bonds.insert(name.to_owned());
        for member in members {
            self.bond_of_port
                .entry(member.to_owned())
                .or_insert_with(|| name.to_owned());
        }
    }
}
