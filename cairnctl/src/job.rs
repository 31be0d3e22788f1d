//! `cairnctl job`: the long operations hostd runs, and following one to its end (which
//! `config` and `storage` do for the jobs they start).

use cairn_api::JobView as JobSnapshot;
use cairn_api::{self as api, Host1Proxy, HostError, Job1Proxy, JobState};
use clap::Subcommand;
use zbus::OwnedObjectPath;

use crate::CtlError;

#[derive(Debug, Subcommand)]
pub(crate) enum JobCommand {
    /// The jobs hostd remembers, oldest first.
    List,
    /// One job's state, progress and result.
    Show { id: u64 },
    /// Follow a job's progress until it ends.
    Wait { id: u64 },
    /// Stop a running job at its next step; it rolls back what it did.
    Cancel { id: u64 },
}

/// How often a client asks a job or the log for news: quick enough to feel live on the
/// console, slow enough to cost hostd nothing.
pub(crate) const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

pub(crate) async fn job_proxy<'a>(
    connection: &'a zbus::Connection,
    path: OwnedObjectPath,
) -> Result<Job1Proxy<'a>, CtlError> {
    Job1Proxy::builder(connection)
        .path(path)
        .build()
        .await
        .map_err(|error| CtlError::Host(HostError::ZBus(error)))
}

pub(crate) async fn snapshot(job: &Job1Proxy<'_>) -> Result<JobSnapshot, CtlError> {
    let text = job.snapshot().await?;
    serde_json::from_str(&text).map_err(CtlError::BadAnswer)
}

/// Prints each step of a job as it changes (to stderr, so that `--json` stdout stays one
/// document) until it ends; Ctrl-C asks hostd to cancel it and keeps following the rollback.
pub(crate) async fn follow_job(job: &Job1Proxy<'_>, quiet: bool) -> Result<JobSnapshot, CtlError> {
    let mut last_shown = String::new();
    let mut cancel_asked = false;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let seen = snapshot(job).await?;
        let line = format!("[{}/{}] {}", seen.done, seen.total, seen.step);
        if !quiet && line != last_shown && seen.state == JobState::Running {
            eprintln!("{line}");
            last_shown = line;
        }
        if seen.state != JobState::Running {
            return Ok(seen);
        }
        tokio::select! {
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            result = &mut interrupted, if !cancel_asked => {
                result.map_err(CtlError::Signal)?;
                cancel_asked = true;
                eprintln!("cancelling job {} (it rolls back what it did)…", seen.id);
                // Finished in between is fine: the next snapshot says how it ended.
                let _ = job.cancel().await;
            }
        }
    }
}

pub(crate) async fn run(
    connection: &zbus::Connection,
    host: &Host1Proxy<'_>,
    command: &JobCommand,
    json: bool,
) -> Result<String, CtlError> {
    match command {
        JobCommand::List => {
            let mut jobs = Vec::new();
            for path in host.jobs().await? {
                jobs.push(snapshot(&job_proxy(connection, path).await?).await?);
            }
            Ok(if json {
                serde_json::to_string(&jobs).expect("snapshots are strings and numbers")
            } else if jobs.is_empty() {
                "no jobs since hostd started".to_string()
            } else {
                let mut text = format!(
                    "{:>4}  {:<14} {:<10} {:>7}  step",
                    "id", "kind", "state", "steps"
                );
                for job in &jobs {
                    text.push_str(&format!(
                        "\n{:>4}  {:<14} {:<10} {:>7}  {}",
                        job.id,
                        job.kind,
                        job.state.as_str(),
                        format!("{}/{}", job.done, job.total),
                        job.step
                    ));
                }
                text
            })
        }
        JobCommand::Show { id } | JobCommand::Wait { id } | JobCommand::Cancel { id } => {
            let job = find_job(connection, host, *id).await?;
            let seen = match command {
                JobCommand::Wait { .. } => follow_job(&job, json).await?,
                JobCommand::Cancel { .. } => {
                    job.cancel().await?;
                    follow_job(&job, json).await?
                }
                JobCommand::Show { .. } | JobCommand::List => snapshot(&job).await?,
            };
            Ok(if json {
                serde_json::to_string(&seen).expect("a snapshot is strings and numbers")
            } else {
                human_job(&seen)
            })
        }
    }
}

async fn find_job<'a>(
    connection: &'a zbus::Connection,
    host: &Host1Proxy<'_>,
    id: u64,
) -> Result<Job1Proxy<'a>, CtlError> {
    let wanted = api::job_path(id);
    if !host.jobs().await?.contains(&wanted) {
        return Err(CtlError::Host(HostError::NotFound(format!(
            "No job {id}; `cairnctl job list` shows the jobs hostd remembers"
        ))));
    }
    job_proxy(connection, wanted).await
}

fn human_job(job: &JobSnapshot) -> String {
    let mut text = format!(
        "job {}: {} — {} ({}/{} steps)\nstep: {}",
        job.id,
        job.kind,
        job.state.as_str(),
        job.done,
        job.total,
        job.step
    );
    if !job.result.is_empty() {
        text.push_str(&format!("\nresult: {}", job.result));
    }
    if !job.error.is_empty() {
        text.push_str(&format!("\nerror: {}", job.error));
    }
    text
}
