//! Guests' ports on the vSwitches: outside the document, but through the same observe,
//! plan and act-with-undo as an apply, so a failed attach leaves nothing behind.

use super::{Core, CoreError};
use crate::error::ByText;
use crate::network::taps::{self, TapRequest};
use crate::plan;
use crate::state::{InterfaceName, VlanId};
use crate::store::Filesystem;
use crate::system::{System, SystemAction};

impl<S: System, F: Filesystem> Core<S, F> {
    /// Puts a guest's tap on a vSwitch of the committed document, on `vlan` or the native
    /// VLAN. Returns the actions run (none when it already was there).
    pub fn attach_tap(
        &mut self,
        tap: &str,
        vswitch: &str,
        vlan: Option<u16>,
    ) -> Result<Vec<String>, CoreError> {
        let request = TapRequest {
            tap: InterfaceName::try_from(tap).map_err(|error| CoreError::BadValue {
                field: "tap",
                error,
            })?,
            vswitch: vswitch.to_string(),
            vlan: vlan
                .map(|id| {
                    VlanId::new(id).map_err(|error| CoreError::BadValue {
                        field: "vlan",
                        error,
                    })
                })
                .transpose()?,
        };
        let spec = self
            .current()?
            .map(|(_, s)| s.into_inner().network)
            .unwrap_or_default();
        let observed = self.system.observe()?;
        let actions = taps::plan_attach(&request, &spec, &observed.network)?;
        let done = self.run_net(&actions)?;
        tracing::info!("guest port {request} attached");
        Ok(done)
    }

    /// Deletes a guest's tap and the uplink VLANs only it needed.
    pub fn detach_tap(&mut self, tap: &str) -> Result<Vec<String>, CoreError> {
        let spec = self
            .current()?
            .map(|(_, s)| s.into_inner().network)
            .unwrap_or_default();
        let observed = self.system.observe()?;
        let actions = taps::plan_detach(tap, &spec, &observed.network)?;
        let done = self.run_net(&actions)?;
        tracing::info!("guest port {tap} detached");
        Ok(done)
    }

    fn run_net(&mut self, actions: &[crate::network::NetAction]) -> Result<Vec<String>, CoreError> {
        let actions: Vec<SystemAction> =
            actions.iter().cloned().map(SystemAction::Network).collect();
        plan::apply(&actions, &mut self.system)
            .map(|done| done.iter().map(ToString::to_string).collect())
            .map_err(|failure| CoreError::Act(Box::new(ByText(failure))))
    }
}
