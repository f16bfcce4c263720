//! The Admin API's asynchronous calls (`fjord calls`): list, show, retry (redrive) and cancel,
//! read from and written to the queue. Any member answers; none needs the leader, since the
//! queue, not Raft, holds calls.

use crate::error::ControlPlaneError;
use crate::member::Member;
use fjord_events::{CallRecord, CallState, Queue};
use fjord_proto::v1 as pb;

/// Calls listed when the request names no limit, and the most ever listed.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

fn queue(member: &Member) -> Result<Queue, ControlPlaneError> {
    member.queue.get().ok_or_else(|| {
        ControlPlaneError::Unavailable(if member.queue.configured() {
            "the queue of asynchronous calls (NATS) is not reachable from this control plane yet".into()
        } else {
            "this control plane runs without a queue of asynchronous calls: start it with --nats-url".into()
        })
    })
}

pub(crate) async fn list(
    member: &Member,
    request: pb::ListCallsRequest,
) -> Result<pb::ListCallsResponse, ControlPlaneError> {
    fjord_core::name::check_dns_label(&request.function).map_err(|reason| {
        ControlPlaneError::InvalidRequest(format!("function name {:?}: {reason}", request.function))
    })?;
    let known = member
        .state
        .read(|a| a.cluster.functions.contains_key(&request.function));
    if !known {
        return Err(ControlPlaneError::FunctionNotFound(request.function));
    }
    let state = match request.state.as_str() {
        "" => None,
        text => Some(text.parse::<CallState>().map_err(ControlPlaneError::InvalidRequest)?),
    };
    let limit = match request.limit as usize {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    let records = queue(member)?.list(&request.function, state, limit).await?;
    Ok(pb::ListCallsResponse {
        calls: records.iter().map(call).collect(),
    })
}

pub(crate) async fn get(member: &Member, id: &str) -> Result<pb::Call, ControlPlaneError> {
    Ok(call(&queue(member)?.find(id).await?))
}

pub(crate) async fn retry(member: &Member, id: &str) -> Result<pb::Call, ControlPlaneError> {
    Ok(call(&queue(member)?.redrive(id).await?))
}

pub(crate) async fn cancel(member: &Member, id: &str) -> Result<pb::Call, ControlPlaneError> {
    Ok(call(&queue(member)?.cancel(id).await?))
}

fn call(record: &CallRecord) -> pb::Call {
    pb::Call {
        id: record.id.clone(),
        function: record.function.clone(),
        state: record.state.as_str().to_string(),
        attempts: record.attempts,
        max_attempts: record.max_attempts,
        trigger: record.trigger.clone(),
        enqueued_ms: record.enqueued_ms,
        started_ms: record.started_ms.unwrap_or(0),
        finished_ms: record.finished_ms.unwrap_or(0),
        next_attempt_ms: record.next_attempt_ms.unwrap_or(0),
        status: record.status.map_or(0, u32::from),
        error: record.error.clone().unwrap_or_default(),
        callback_url: record.callback_url.clone().unwrap_or_default(),
        callback: record.callback.clone().unwrap_or_default(),
    }
}
