//! `GET /system/logs?name=&tail=&since=&follow=`: a function's log lines as OpenFaaS writes
//! them, one JSON `LogEntry` per line (`application/x-ndjson`), oldest first.
//!
//! The lines come from the Admin `Logs` call (the agents' ring buffers, merged). `tail` is the
//! most lines returned (at most [`MAX_TAIL`]; 0, negative or absent: all the buffers hold, up to
//! that bound), `since` (RFC 3339) drops older lines. `follow=true` then asks again every
//! [`FOLLOW_POLL`] and sends the lines not sent yet, for at most [`FOLLOW_FOR`] and
//! [`FOLLOW_MAX_LINES`] lines, or until the client goes. A line that reaches its buffer later
//! than lines already sent with a newer time stamp is not sent.

use super::auth::Credentials;
use super::control_plane::ControlPlane;
use super::Gateway;
use crate::error::ProxyError;
use bytes::Bytes;
use fjord_daemon::HttpBody;
use fjord_openfaas::gateway::{LogEntry, DEFAULT_NAMESPACE};
use fjord_proto::v1 as pb;
use http::{header, HeaderValue, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The most lines one answer (or one poll while following) asks the control plane for.
pub const MAX_TAIL: u32 = 10_000;
pub const FOLLOW_POLL: Duration = Duration::from_secs(1);
pub const FOLLOW_FOR: Duration = Duration::from_secs(30 * 60);
pub const FOLLOW_MAX_LINES: usize = 100_000;

/// The query, read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogsQuery {
    name: String,
    tail: u32,
    since_ms: u64,
    follow: bool,
}

fn parse_query(query: &str) -> Result<LogsQuery, String> {
    let mut name = None;
    let mut tail = MAX_TAIL;
    let mut since_ms = 0;
    let mut follow = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = value.replace('+', " ");
        let value = percent_encoding::percent_decode_str(&value)
            .decode_utf8()
            .map_err(|_| format!("{key}: not UTF-8 once decoded"))?;
        let value = value.trim();
        match key {
            "name" => name = Some(value.to_string()),
            "tail" if !value.is_empty() => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| format!("tail: {value:?} is not a whole number"))?;
                tail = if n <= 0 {
                    MAX_TAIL
                } else {
                    n.min(i64::from(MAX_TAIL)) as u32
                };
            }
            "since" if !value.is_empty() => {
                since_ms = fjord_core::civil::parse_rfc3339_ms(value).map_err(|e| format!("since: {e}"))?
            }
            "follow" => {
                follow = match value {
                    "" | "true" | "1" | "True" | "TRUE" | "t" | "T" => true,
                    "false" | "0" | "False" | "FALSE" | "f" | "F" => false,
                    other => return Err(format!("follow: {other:?} is not true or false")),
                }
            }
            _ => {}
        }
    }
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or("name: give the function whose logs to read (?name=NAME)")?;
    Ok(LogsQuery {
        name,
        tail,
        since_ms,
        follow,
    })
}

/// Lines the stream has sent, to send each once: the newest time stamp and the lines at it.
#[derive(Default)]
struct Sent {
    newest_ms: u64,
    at_newest: HashSet<(String, String)>,
    count: usize,
}

impl Sent {
    /// The lines of `answer` not sent yet and not older than `since_ms`, as NDJSON.
    fn take(&mut self, name: &str, mut lines: Vec<pb::LogLine>, since_ms: u64) -> Vec<u8> {
        lines.sort_by_key(|l| l.timestamp_ms);
        let mut out = Vec::new();
        for line in lines {
            if line.timestamp_ms < since_ms.max(self.newest_ms) {
                continue;
            }
            let key = (line.instance_id.clone(), line.line.clone());
            if line.timestamp_ms == self.newest_ms && self.at_newest.contains(&key) {
                continue;
            }
            if line.timestamp_ms > self.newest_ms {
                self.newest_ms = line.timestamp_ms;
                self.at_newest.clear();
            }
            self.at_newest.insert(key);
            let entry = LogEntry {
                name: name.to_string(),
                namespace: DEFAULT_NAMESPACE.into(),
                instance: line.instance_id,
                timestamp: fjord_core::civil::format_rfc3339_ms(line.timestamp_ms),
                text: line.line,
            };
            serde_json::to_writer(&mut out, &entry).expect("a log entry serializes");
            out.push(b'\n');
            self.count += 1;
        }
        out
    }
}

async fn fetch(
    control_plane: &ControlPlane,
    credentials: &Credentials,
    name: &str,
    tail: u32,
) -> Result<Vec<pb::LogLine>, ProxyError> {
    let answer = control_plane
        .call(credentials, Some(name), |mut admin| {
            let request = pb::LogsRequest {
                name: name.to_string(),
                tail,
            };
            async move { admin.logs(request).await }
        })
        .await?;
    for error in &answer.errors {
        tracing::debug!(function = %name, %error, "gateway logs: a node could not be asked");
    }
    Ok(answer.lines)
}

impl Gateway {
    pub(super) async fn logs(
        &self,
        credentials: &Credentials,
        request: &Request<Incoming>,
    ) -> Result<Response<HttpBody>, ProxyError> {
        let query = parse_query(request.uri().query().unwrap_or_default())
            .map_err(|reason| ProxyError::BadBody { function: None, reason })?;
        let lines = fetch(&self.control_plane, credentials, &query.name, query.tail).await?;
        let mut sent = Sent::default();
        let first = sent.take(&query.name, lines, query.since_ms);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, fjord_daemon::BoxError>>(16);
        let _ = tx.try_send(Ok(Frame::data(Bytes::from(first))));
        if query.follow {
            let control_plane = Arc::clone(&self.control_plane);
            let credentials = credentials.clone();
            tokio::spawn(async move {
                let until = tokio::time::Instant::now() + FOLLOW_FOR;
                while tokio::time::Instant::now() < until && sent.count < FOLLOW_MAX_LINES {
                    tokio::select! {
                        _ = tokio::time::sleep(FOLLOW_POLL) => {}
                        _ = tx.closed() => return,
                    }
                    let lines = match fetch(&control_plane, &credentials, &query.name, 1_000).await {
                        Ok(lines) => lines,
                        Err(e) => {
                            tracing::debug!(function = %query.name, error = %e, "gateway logs: following ended");
                            return;
                        }
                    };
                    let more = sent.take(&query.name, lines, query.since_ms);
                    if !more.is_empty() && tx.send(Ok(Frame::data(Bytes::from(more)))).await.is_err() {
                        return;
                    }
                }
            });
        }
        let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed();
        let mut response = Response::new(body);
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(instance: &str, timestamp_ms: u64, text: &str) -> pb::LogLine {
        pb::LogLine {
            node_id: "node-0".into(),
            instance_id: instance.into(),
            stream: "stdout".into(),
            timestamp_ms,
            line: text.into(),
        }
    }

    #[test]
    fn the_query_is_read_as_faas_cli_writes_it() {
        let q = parse_query("name=api&tail=5&since=2024-02-29T09%3A00%3A05%2B01%3A00&follow=false").unwrap();
        assert_eq!(
            q,
            LogsQuery {
                name: "api".into(),
                tail: 5,
                since_ms: 1_709_193_605_000,
                follow: false
            }
        );
        let q = parse_query("name=api&tail=-1&follow=true").unwrap();
        assert_eq!((q.tail, q.follow, q.since_ms), (MAX_TAIL, true, 0));
        assert_eq!(parse_query("name=api&tail=99999").unwrap().tail, MAX_TAIL);
        for (query, error) in [
            ("tail=5", "name: give the function"),
            ("name=api&tail=many", "tail: \"many\" is not a whole number"),
            (
                "name=api&since=yesterday",
                "since: \"yesterday\" is not an RFC 3339 time",
            ),
            ("name=api&follow=maybe", "follow: \"maybe\""),
        ] {
            let e = parse_query(query).unwrap_err();
            assert!(e.starts_with(error), "{query}: {e}");
        }
    }

    #[test]
    fn each_line_is_sent_once_in_time_order_and_none_before_since() {
        let mut sent = Sent::default();
        let first = sent.take(
            "api",
            vec![
                line("i-2", 2_000, "b"),
                line("i-1", 1_000, "a"),
                line("i-1", 500, "old"),
            ],
            1_000,
        );
        let text = String::from_utf8(first).unwrap();
        let entries: Vec<LogEntry> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(entries.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(entries[0].timestamp, "1970-01-01T00:00:01Z");
        assert_eq!(
            (entries[1].instance.as_str(), entries[1].namespace.as_str()),
            ("i-2", "openfaas-fn")
        );
        let again = sent.take(
            "api",
            vec![
                line("i-1", 1_000, "a"),
                line("i-2", 2_000, "b"),
                line("i-1", 2_000, "c"),
                line("i-1", 3_000, "d"),
            ],
            1_000,
        );
        let text = String::from_utf8(again).unwrap();
        let texts: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<LogEntry>(l).unwrap().text)
            .collect();
        assert_eq!(texts, ["c", "d"]);
        assert_eq!(sent.count, 4);
    }
}
