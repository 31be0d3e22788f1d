//! A guest's port on a vSwitch: a persistent tap, enslaved to the vSwitch's bridge, on one
//! VLAN (untagged towards the guest) or on the native VLAN.
//!
//! Guest ports are not in the network document: they come and go with guests, and the
//! guests subsystem asks for them through [`plan_attach`] and [`plan_detach`] (and the admin
//! through `cairnctl net tap`). The kernel is their record: the network planner leaves taps
//! where they are and reads their VLANs to know what each uplink must carry
//! (`bridge_vlans.rs`), so a restarted hostd needs no list of its own.

use std::fmt;

use super::action::NetAction;
use super::bridge_vlans::{self, NATIVE_VLAN};
use super::observe::BridgeVlan;
use super::observe::{LinkKind, NetObserved};
use crate::state::{InterfaceName, NetworkSpec, VlanId};

/// What the guests subsystem asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapRequest {
    pub tap: InterfaceName,
    pub vswitch: String,
    pub vlan: Option<VlanId>,
}

pub use cairn_api::net::TapView;
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TapError {
    #[error("unknown vSwitch {name:?} (the document's vSwitches are: {known})")]
    UnknownVSwitch { name: String, known: String },
    #[error(
        "vSwitch {0:?} is in the document but not on the box yet (see `cairnctl status` for why the last apply or reconcile failed)"
    )]
    VSwitchMissing(String),
    #[error(
        "{0:?} exists and is not a tap; a guest port needs a name of its own (for example vm-<guest>-<n>)"
    )]
    NotATap(String),
    #[error("there is no guest port named {0:?} (see `cairnctl net tap`)")]
    NoSuchTap(String),
}

impl fmt::Display for TapRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on vSwitch {}", self.tap, self.vswitch)?;
        match self.vlan {
            Some(vlan) => write!(f, " (VLAN {vlan})"),
            None => Ok(()),
        }
    }
}

/// Pure: the actions that put the tap on the vSwitch and VLAN asked for, creating it when
/// it does not exist and moving it when it is elsewhere.
pub fn plan_attach(
    request: &TapRequest,
    spec: &NetworkSpec,
    observed: &NetObserved,
) -> Result<Vec<NetAction>, TapError> {
    let bridge = request.vswitch.as_str();
    let Some(vswitch) = spec.vswitches.iter().find(|v| v.name.as_str() == bridge) else {
        let known: Vec<&str> = spec.vswitches.iter().map(|v| v.name.as_str()).collect();
        return Err(TapError::UnknownVSwitch {
            name: bridge.to_string(),
            known: if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            },
        });
    };
    if !observed
        .get(bridge)
        .is_some_and(|link| matches!(link.kind, LinkKind::Bridge { .. }))
    {
        return Err(TapError::VSwitchMissing(bridge.to_string()));
    }
    let tap = request.tap.as_str();
    let existing = observed.get(tap);
    if let Some(link) = existing
        && link.kind != LinkKind::Tap
    {
        return Err(TapError::NotATap(tap.to_string()));
    }

    let mut actions = Vec::new();
    if existing.is_none() {
        actions.push(NetAction::CreateTap {
            name: tap.to_string(),
        });
    }
    let controller = existing.and_then(|link| link.controller.clone());
    let on_bridge = controller.as_deref() == Some(bridge);
    if !on_bridge {
        if let Some(other) = controller {
            actions.push(NetAction::Release {
                port: tap.to_string(),
                controller: other,
            });
        }
        actions.push(NetAction::Enslave {
            port: tap.to_string(),
            controller: bridge.to_string(),
        });
    }

    // A port that joins a bridge starts on the native VLAN, untagged.
    let had: Vec<BridgeVlan> = if on_bridge {
        observed
            .bridge_vlans
            .iter()
            .filter(|row| row.port == tap)
            .cloned()
            .collect()
    } else {
        vec![BridgeVlan {
            port: tap.to_string(),
            vid: NATIVE_VLAN,
            pvid: true,
            untagged: true,
        }]
    };
    let wanted = request.vlan.map_or(NATIVE_VLAN, VlanId::get);
    if !had
        .iter()
        .any(|row| row.vid == wanted && row.pvid && row.untagged)
    {
        actions.push(NetAction::AddBridgeVlan {
            bridge: bridge.to_string(),
            port: tap.to_string(),
            vid: wanted,
            untagged: true,
        });
    }
    for row in had.iter().filter(|row| row.vid != wanted) {
        actions.push(NetAction::DelBridgeVlan {
            bridge: bridge.to_string(),
            port: tap.to_string(),
            vid: row.vid,
            untagged: row.untagged,
        });
    }

    if let Some(uplink) = &vswitch.uplink
        && wanted != NATIVE_VLAN
        && !bridge_vlans::tagged_vids(&observed.bridge_vlans, uplink.as_str()).contains(&wanted)
    {
        actions.push(NetAction::AddBridgeVlan {
            bridge: bridge.to_string(),
            port: uplink.to_string(),
            vid: wanted,
            untagged: false,
        });
    }
    if !existing.is_some_and(|link| link.up) {
        actions.push(NetAction::SetUp {
            name: tap.to_string(),
        });
    }
    Ok(actions)
}

/// Pure: deleting the tap (which takes it off its bridge), then the uplink VLANs nothing
/// needs any more, as the network planner would find them.
pub fn plan_detach(
    tap: &str,
    spec: &NetworkSpec,
    observed: &NetObserved,
) -> Result<Vec<NetAction>, TapError> {
    match observed.get(tap) {
        Some(link) if link.kind == LinkKind::Tap => {}
        _ => return Err(TapError::NoSuchTap(tap.to_string())),
    }
    let mut actions = vec![NetAction::DeleteTap {
        name: tap.to_string(),
    }];
    let remaining: Vec<_> = observed
        .links
        .iter()
        .filter(|link| link.name != tap)
        .cloned()
        .collect();
    actions.extend(bridge_vlans::plan(
        spec,
        &remaining,
        &observed.bridge_vlans,
        &|_, _| false,
    ));
    Ok(actions)
}

/// Every tap on the box, with its vSwitch and VLAN.
pub fn view(observed: &NetObserved) -> Vec<TapView> {
    observed
        .links
        .iter()
        .filter(|link| link.kind == LinkKind::Tap)
        .map(|link| TapView {
            name: link.name.clone(),
            vswitch: link.controller.clone(),
            vlan: observed
                .bridge_vlans
                .iter()
                .find(|row| row.port == link.name && row.pvid)
                .map(|row| row.vid)
                .filter(|vid| *vid != NATIVE_VLAN),
            in_use: link.carrier == Some(true),
        })
        .collect()
}

#[cfg(test)]
mod tests;
