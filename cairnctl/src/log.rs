//! `cairnctl log`: hostd's recent log, once or following.

use std::io::Write;

use cairn_api::{Host1Proxy, WireLogRecord};
use clap::Args;
use serde_json::json;

use crate::CtlError;
use crate::job::POLL_INTERVAL;

#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// Keep printing new records until interrupted (Ctrl-C).
    #[arg(short, long)]
    follow: bool,
    /// Print only the last N records first.
    #[arg(short = 'n', long, value_name = "N")]
    lines: Option<usize>,
}

pub(crate) async fn run(host: &Host1Proxy<'_>, args: &LogArgs, json: bool) -> Result<(), CtlError> {
    print_log(host, args.follow, args.lines, json).await
}

/// Records asked for per call while following.
const LOG_BATCH: u32 = 500;

async fn print_log(
    host: &Host1Proxy<'_>,
    follow: bool,
    last: Option<usize>,
    json: bool,
) -> Result<(), CtlError> {
    let mut since = 0;
    let mut first = true;
    loop {
        let (next, mut records) = host.log(since, LOG_BATCH).await?;
        if first && let Some(keep) = last {
            // Only the tail of what is there now: fetch it all, then cut.
            let mut all = records;
            let mut next_all = next;
            loop {
                let (more_next, more) = host.log(next_all, LOG_BATCH).await?;
                if more.is_empty() {
                    break;
                }
                all.extend(more);
                next_all = more_next;
            }
            records = all.split_off(all.len().saturating_sub(keep));
            since = next_all;
        } else {
            if let Some(gap_end) = records.first().map(|record| record.0)
                && gap_end > since
                && !first
            {
                eprintln!(
                    "cairnctl: {} records were dropped from the ring before they could be read",
                    gap_end - since
                );
            }
            since = next;
        }
        first = false;
        let mut stdout = std::io::stdout().lock();
        for record in &records {
            let line = if json {
                log_json(record).to_string()
            } else {
                human_log(record)
            };
            if writeln!(stdout, "{line}").is_err() {
                return Ok(()); // `| head`
            }
        }
        drop(stdout);
        if records.len() == LOG_BATCH as usize {
            continue; // more waiting right now
        }
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn log_json(record: &WireLogRecord) -> serde_json::Value {
    let (sequence, micros, level, target, message) = record;
    json!({
        "sequence": sequence,
        "time_us": micros,
        "level": level,
        "target": target,
        "message": message,
    })
}

fn human_log(record: &WireLogRecord) -> String {
    let (_, micros, level, target, message) = record;
    format!(
        "{}.{:03} {level:>5} {target}: {message}",
        cairn_api::utc::readable(micros / 1_000_000),
        micros % 1_000_000 / 1000
    )
}
