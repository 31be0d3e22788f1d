//! `cairnctl net`: the network as the box has it, and guests' ports attached and detached.

use cairn_api::Host1Proxy;
use cairn_api::net::{NetView, Section};
use clap::Subcommand;
use serde_json::json;

use crate::CtlError;

#[derive(Debug, Subcommand)]
pub(crate) enum NetCommand {
    /// Everything below.
    Show,
    /// The board's LAN ports: link, cable, MAC, PCI address, bond or vSwitch.
    Port,
    /// Bonds: mode, link monitoring, primary, members.
    Bond,
    /// vSwitches and what is attached to them.
    Vswitch,
    /// VLAN interfaces.
    Vlan,
    /// The management address: addresses, default route, DNS servers.
    Address,
    /// Guests' ports on the vSwitches (hostd makes them for guests; attach and detach by
    /// hand to wire an outside VMM or to test a VLAN).
    Tap {
        #[command(subcommand)]
        command: Option<TapCommand>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TapCommand {
    /// The guest ports, their vSwitch and VLAN.
    List,
    /// Put a guest port (created when missing) on a vSwitch.
    Attach {
        /// The port's interface name (at most 15 characters).
        tap: String,
        /// A vSwitch of the committed document.
        #[arg(long)]
        vswitch: String,
        /// The VLAN (1 to 4094) the guest's untagged frames are on; the native VLAN without.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=4094))]
        vlan: Option<u16>,
    },
    /// Delete a guest port.
    Detach { tap: String },
}

impl NetCommand {
    fn section(&self) -> Section {
        match self {
            Self::Tap { .. } => Section::Taps,
            Self::Show => Section::All,
            Self::Port => Section::Ports,
            Self::Bond => Section::Bonds,
            Self::Vswitch => Section::VSwitches,
            Self::Vlan => Section::Vlans,
            Self::Address => Section::Address,
        }
    }
}

pub(crate) async fn run(
    host: &Host1Proxy<'_>,
    command: &NetCommand,
    json: bool,
) -> Result<String, CtlError> {
    match command {
        NetCommand::Tap {
            command: Some(TapCommand::Attach { tap, vswitch, vlan }),
        } => {
            let done = host.tap_attach(tap, vswitch, vlan.unwrap_or(0)).await?;
            Ok(tap_done(&done, json))
        }
        NetCommand::Tap {
            command: Some(TapCommand::Detach { tap }),
        } => {
            let done = host.tap_detach(tap).await?;
            Ok(tap_done(&done, json))
        }
        NetCommand::Show
        | NetCommand::Port
        | NetCommand::Bond
        | NetCommand::Vswitch
        | NetCommand::Vlan
        | NetCommand::Address
        | NetCommand::Tap {
            command: None | Some(TapCommand::List),
        } => {
            let view: NetView =
                serde_json::from_str(&host.net_show().await?).map_err(CtlError::BadAnswer)?;
            if json {
                Ok(view.json(command.section()).to_string())
            } else {
                Ok(view.render(command.section()))
            }
        }
    }
}

/// What an attach or a detach did.
fn tap_done(done: &[String], json: bool) -> String {
    if json {
        json!({ "actions": done }).to_string()
    } else if done.is_empty() {
        "nothing to do: the port is already there".to_string()
    } else {
        done.iter()
            .map(|a| format!("done: {a}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
