//! `fjord calls`: a function's recent asynchronous calls, one call in full, redriving a dead
//! call and cancelling a queued one, through the Admin API (the queue keeps records 7 days).

use crate::connect::{explain, ConnectArgs};
use crate::output::outln;
use fjord_core::duration::format_duration;
use fjord_proto::v1 as pb;
use serde_json::json;
use std::time::Duration;

/// What `fjord calls` does besides listing.
#[derive(clap::Subcommand)]
pub enum CallsCommand {
    /// Show one call: state, attempts, last status or error, timings, callback.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Enqueue a dead call again as a new first attempt (after fixing the function).
    Retry { id: String },
    /// Cancel a call that has not started; its worker drops it unrun.
    Cancel { id: String },
}

/// `fjord calls NAME`.
#[derive(clap::Args)]
pub struct ListArgs {
    /// The function whose calls to list.
    pub name: Option<String>,
    /// Only calls in this state: queued, running, succeeded, failed, dead or cancelled.
    #[arg(long)]
    pub state: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
}

fn call_json(c: &pb::Call) -> serde_json::Value {
    let some = |ms: u64| (ms > 0).then_some(ms);
    json!({
        "id": c.id,
        "function": c.function,
        "state": c.state,
        "attempts": c.attempts,
        "max_attempts": c.max_attempts,
        "trigger": c.trigger,
        "enqueued_ms": c.enqueued_ms,
        "started_ms": some(c.started_ms),
        "finished_ms": some(c.finished_ms),
        "next_attempt_ms": some(c.next_attempt_ms),
        "status": (c.status > 0).then_some(c.status),
        "error": (!c.error.is_empty()).then_some(&c.error),
        "callback_url": (!c.callback_url.is_empty()).then_some(&c.callback_url),
        "callback": (!c.callback.is_empty()).then_some(&c.callback),
    })
}

fn took(c: &pb::Call) -> String {
    if c.started_ms > 0 && c.finished_ms >= c.started_ms {
        format_duration(Duration::from_millis(c.finished_ms - c.started_ms))
    } else {
        "-".into()
    }
}

fn outcome(c: &pb::Call) -> String {
    match (c.status, c.error.is_empty()) {
        (0, true) => "-".into(),
        (0, false) => c.error.clone(),
        (status, true) => status.to_string(),
        (status, false) => format!("{status}: {}", c.error),
    }
}

pub async fn list(connect: &ConnectArgs, args: ListArgs) -> anyhow::Result<()> {
    let Some(name) = args.name else {
        anyhow::bail!("name the function: fjord calls NAME (or fjord calls show|retry|cancel ID)");
    };
    let mut admin = connect.admin().await?;
    let calls = admin
        .list_calls(pb::ListCallsRequest {
            function: name.clone(),
            state: args.state.unwrap_or_default(),
            limit: args.limit,
        })
        .await
        .map_err(explain)?
        .into_inner()
        .calls;
    if args.json {
        let values: Vec<serde_json::Value> = calls.iter().map(call_json).collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&values).expect("JSON values serialize")
        );
        return Ok(());
    }
    if calls.is_empty() {
        outln!("no calls of {name} are recorded (records are kept 7 days)");
        return Ok(());
    }
    outln!(
        "{:<34} {:<10} {:>8} {:<8} {:<20} {:>9}  STATUS",
        "ID",
        "STATE",
        "ATTEMPTS",
        "TRIGGER",
        "ENQUEUED",
        "TOOK"
    );
    for c in &calls {
        outln!(
            "{:<34} {:<10} {:>8} {:<8} {:<20} {:>9}  {}",
            c.id,
            c.state,
            format!("{}/{}", c.attempts, c.max_attempts),
            c.trigger,
            fjord_decisions::schedule::format_utc_minute(c.enqueued_ms),
            took(c),
            outcome(c)
        );
    }
    Ok(())
}

pub async fn run(connect: &ConnectArgs, command: CallsCommand) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    match command {
        CallsCommand::Show { id, json } => {
            let c = admin
                .get_call(pb::CallRequest { id })
                .await
                .map_err(explain)?
                .into_inner();
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&call_json(&c)).expect("JSON values serialize")
                );
                return Ok(());
            }
            outln!("call:      {}", c.id);
            outln!("function:  {}", c.function);
            outln!("state:     {}", c.state);
            outln!("attempts:  {} of {}", c.attempts, c.max_attempts);
            outln!("trigger:   {}", c.trigger);
            outln!("last:      {}", outcome(&c));
            outln!("enqueued:  {}", crate::functions::format_timestamp(c.enqueued_ms));
            if c.started_ms > 0 {
                outln!("started:   {}", crate::functions::format_timestamp(c.started_ms));
            }
            if c.finished_ms > 0 {
                outln!(
                    "finished:  {} (took {})",
                    crate::functions::format_timestamp(c.finished_ms),
                    took(&c)
                );
            }
            if c.next_attempt_ms > 0 {
                outln!("next try:  {}", crate::functions::format_timestamp(c.next_attempt_ms));
            }
            if !c.callback_url.is_empty() {
                let how = if c.callback.is_empty() {
                    "pending"
                } else {
                    c.callback.as_str()
                };
                outln!("callback:  {} ({how})", c.callback_url);
            }
        }
        CallsCommand::Retry { id } => {
            let c = admin
                .retry_call(pb::CallRequest { id })
                .await
                .map_err(explain)?
                .into_inner();
            outln!("call {} of {} queued again (a new first attempt)", c.id, c.function);
        }
        CallsCommand::Cancel { id } => {
            let c = admin
                .cancel_call(pb::CallRequest { id })
                .await
                .map_err(explain)?
                .into_inner();
            outln!("call {} of {} cancelled; it will not run", c.id, c.function);
        }
    }
    Ok(())
}
