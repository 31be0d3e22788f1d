//! `cairnctl config`: the desired state shown, planned, applied, its history and rollback;
//! an apply or a rollback is a job followed to its end.

use std::io::Read;
use std::path::PathBuf;

use cairn_api::JobView as JobSnapshot;
use cairn_api::{Host1Proxy, HostError, JobState};
use clap::Subcommand;
use serde_json::json;
use zbus::OwnedObjectPath;

use crate::CtlError;
use crate::job::{follow_job, job_proxy};

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// The committed document (TOML), headed by its generation.
    Show,
    /// Validate FILE ("-": stdin) and say what applying it would change.
    Plan { file: PathBuf },
    /// Validate FILE ("-": stdin) as a whole, commit it and bring the box to it, showing each
    /// step; Ctrl-C cancels and rolls back.
    Apply { file: PathBuf },
    /// The kept generations, oldest first.
    History,
    /// Apply generation N again, as a new generation.
    Rollback { generation: u64 },
}

impl ConfigCommand {
    /// The document a plan or an apply sends, read before the bus is reached: a bad path is
    /// the caller's mistake whether or not hostd is up.
    pub(crate) fn document(&self) -> Result<Option<String>, CtlError> {
        match self {
            Self::Plan { file } | Self::Apply { file } => Ok(Some(read_document(file)?)),
            Self::Show | Self::History | Self::Rollback { .. } => Ok(None),
        }
    }
}

pub(crate) async fn run(
    connection: &zbus::Connection,
    host: &Host1Proxy<'_>,
    command: &ConfigCommand,
    document: Option<&str>,
    json: bool,
) -> Result<String, CtlError> {
    let out = match command {
        ConfigCommand::Show => {
            let (generation, toml) = host.config_show().await?;
            if json {
                json!({ "generation": generation, "toml": toml }).to_string()
            } else {
                format!("# generation {generation}\n{}", toml.trim_end())
            }
        }
        ConfigCommand::Plan { .. } => {
            let plan = host.config_plan(document.unwrap_or_default()).await?;
            if json {
                json!({ "plan": plan }).to_string()
            } else {
                plan.trim_end().to_string()
            }
        }
        ConfigCommand::Apply { .. } => {
            let path = host.config_apply(document.unwrap_or_default()).await?;
            let applied = follow_apply(connection, path, json).await?;
            if json {
                serde_json::to_string(&applied).expect("an outcome is strings and numbers")
            } else {
                human_applied(&applied, "applied")
            }
        }
        ConfigCommand::History => {
            let history = host.config_history().await?;
            if json {
                let entries: Vec<_> = history
                    .iter()
                    .map(|(g, t)| json!({ "generation": g, "committed_at": t }))
                    .collect();
                serde_json::Value::from(entries).to_string()
            } else if history.is_empty() {
                "no generation committed yet".to_string()
            } else {
                let mut text = String::from("generation  committed (UTC)");
                for (generation, at) in &history {
                    text.push_str(&format!(
                        "\n{generation:>10}  {}",
                        cairn_api::utc::readable(*at)
                    ));
                }
                text
            }
        }
        ConfigCommand::Rollback { generation } => {
            let path = host.config_rollback(*generation).await?;
            let applied = follow_apply(connection, path, json).await?;
            if json {
                serde_json::to_string(&applied).expect("an outcome is strings and numbers")
            } else {
                human_applied(&applied, &format!("rolled back to generation {generation}"))
            }
        }
    };
    Ok(out)
}

/// Follows an apply job to its end and turns its outcome into a result or an error.
async fn follow_apply(
    connection: &zbus::Connection,
    path: OwnedObjectPath,
    quiet: bool,
) -> Result<cairn_api::Applied, CtlError> {
    let job = job_proxy(connection, path).await?;
    let finished = follow_job(&job, quiet).await?;
    job_outcome(&finished)
}

fn job_outcome(finished: &JobSnapshot) -> Result<cairn_api::Applied, CtlError> {
    match finished.state {
        JobState::Succeeded => serde_json::from_str(&finished.result).map_err(CtlError::BadAnswer),
        JobState::Failed | JobState::Cancelled | JobState::Running => Err(CtlError::Host(
            HostError::from_job(&finished.error_name, finished.error.clone()),
        )),
    }
}

fn human_applied(applied: &cairn_api::Applied, what: &str) -> String {
    let mut text = format!("{what}: generation {}", applied.generation);
    if applied.actions.is_empty() {
        text.push_str(
            "
the box already matched; no action needed",
        );
    }
    for action in &applied.actions {
        text.push_str(&format!(
            "
done: {action}"
        ));
    }
    if !applied.recorded_only.is_empty() {
        text.push_str(&format!(
            "
recorded only (an apply does not start or stop guests: `cairnctl vm`, autostart): {}",
            applied.recorded_only.join(", ")
        ));
    }
    text
}

fn read_document(path: &PathBuf) -> Result<String, CtlError> {
    let mut text = String::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|read| text = read)
    };
    result.map_err(|source| CtlError::ReadFile {
        path: path.clone(),
        source,
    })?;
    Ok(text)
}
