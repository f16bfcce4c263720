//! The member's metrics, served at `GET /metrics` on `--metrics-listen` in the Prometheus text
//! format: whether it leads and its term, the instances the scheduler could not place, and per
//! node group its desired size, nodes, max and the memory of pending instances it cannot make
//! room for (at its max, or a full static fleet); per function, the asynchronous calls waiting
//! in the queue, in flight, and the oldest one's age.
//!
//! Scheduling and node-group figures are the leader's soft state: a follower reports 0 pending
//! instances and no node-group series (what it kept from an earlier term is stale). The serving
//! is [`fjord_daemon::serve_http`]'s; this module only renders and routes one path.

use crate::member::Member;
use crate::reports::GroupReport;
use fjord_daemon::{error_response, full_body, HttpBody};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How far above the gRPC port the default metrics port lies: far enough that the members of
/// a cluster on one host (7400, 7401, ...) and the platform's other defaults never meet it.
pub const METRICS_PORT_OFFSET: u16 = 2000;

/// Where `--metrics-listen` serves unless told otherwise: loopback, on `listen`'s port plus
/// [`METRICS_PORT_OFFSET`] (7400 -> 127.0.0.1:9400). Port 0 (any free port) stays 0.
pub fn default_metrics_listen(listen: &str) -> Result<String, String> {
    let port: u16 = listen
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .ok_or_else(|| {
            format!("--listen {listen:?} has no port to derive the metrics port from; pass --metrics-listen")
        })?;
    let metrics_port = match port {
        0 => 0,
        _ => port.checked_add(METRICS_PORT_OFFSET).ok_or_else(|| {
            format!(
                "--listen port {port} leaves no room for the metrics port (--listen's port + {METRICS_PORT_OFFSET}); \
                 pass --metrics-listen ADDR or off"
            )
        })?,
    };
    Ok(format!("127.0.0.1:{metrics_port}"))
}

/// What one scrape reports, read from the member at once.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MetricsSnapshot {
    pub(crate) is_leader: bool,
    pub(crate) term: u64,
    /// Desired instances placed nowhere (the leader's last tick).
    pub(crate) pending_instances: u32,
    /// The leader's node groups, by name.
    pub(crate) groups: BTreeMap<String, GroupReport>,
    /// The leader's last read of the queue, per function.
    pub(crate) queue: BTreeMap<String, fjord_events::queue::Depth>,
}

impl MetricsSnapshot {
    pub(crate) fn of(member: &Member) -> Self {
        let is_leader = member.is_leader();
        MetricsSnapshot {
            is_leader,
            term: member.term(),
            pending_instances: if is_leader {
                member.scheduling.pending_instances()
            } else {
                0
            },
            groups: if is_leader {
                member.node_groups.all()
            } else {
                BTreeMap::new()
            },
            queue: if is_leader {
                member.queue_depths.all()
            } else {
                BTreeMap::new()
            },
        }
    }

    /// The Prometheus text exposition of the snapshot.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, samples: &[(Option<&str>, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (group, value) in samples {
                match group {
                    Some(group) => {
                        let _ = writeln!(out, "{name}{{group=\"{}\"}} {value}", escape_label(group));
                    }
                    None => {
                        let _ = writeln!(out, "{name} {value}");
                    }
                }
            }
        };
        gauge(
            "fjord_raft_is_leader",
            "1 when this member leads the Raft cluster, else 0.",
            &[(None, u64::from(self.is_leader))],
        );
        gauge(
            "fjord_raft_term",
            "The Raft term this member is in.",
            &[(None, self.term)],
        );
        gauge(
            "fjord_pending_instances",
            "Desired function instances the scheduler could place on no node (on the leader; 0 on followers).",
            &[(None, u64::from(self.pending_instances))],
        );
        let per_group = |value: fn(&GroupReport) -> u64| -> Vec<(Option<&str>, u64)> {
            self.groups
                .iter()
                .map(|(name, report)| (Some(name.as_str()), value(report)))
                .collect()
        };
        gauge(
            "fjord_node_group_desired",
            "The node group's desired size, as its provider last reported it.",
            &per_group(|r| u64::from(r.desired)),
        );
        gauge(
            "fjord_node_group_nodes",
            "Registered nodes of the node group.",
            &per_group(|r| r.nodes.len() as u64),
        );
        gauge(
            "fjord_node_group_max",
            "The most nodes the group may have: the lower of its max_nodes and its provider's max (a static fleet's size).",
            &per_group(|r| u64::from(r.effective_max)),
        );
        gauge(
            "fjord_node_group_unplaceable_memory_mib",
            "Memory of pending instances the group cannot make room for because it is at its max; add machines or raise the max.",
            &per_group(|r| r.unplaceable_memory_mib),
        );
        let mut per_function = |name: &str, help: &str, value: fn(&fjord_events::queue::Depth) -> String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (function, depth) in &self.queue {
                let _ = writeln!(
                    out,
                    "{name}{{function=\"{}\"}} {}",
                    escape_label(function),
                    value(depth)
                );
            }
        };
        per_function(
            "fjord_async_queue_depth",
            "Asynchronous calls of the function waiting in the queue, not yet delivered (the leader's last read).",
            |d| d.queued.to_string(),
        );
        per_function(
            "fjord_async_in_flight",
            "Asynchronous calls of the function delivered to a worker and not yet acknowledged.",
            |d| d.in_flight.to_string(),
        );
        per_function(
            "fjord_async_oldest_age_seconds",
            "Age of the function's oldest asynchronous call not yet acknowledged (0: none).",
            |d| format!("{:.3}", d.oldest_age.map_or(0.0, |a| a.as_secs_f64())),
        );
        out
    }
}

/// A label value with `\`, `"` and line feeds escaped, as the text format wants.
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn answer(member: &Member, request: &Request<hyper::body::Incoming>) -> Response<HttpBody> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => {
            let mut response = Response::new(full_body(MetricsSnapshot::of(member).render()));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
            response
        }
        (_, path) => error_response(
            StatusCode::NOT_FOUND,
            &format!("no such path {path:?}: the control plane's metrics are at GET /metrics"),
            None,
        ),
    }
}

/// Serves `/metrics` on `listener` until `shutdown` resolves.
pub(crate) async fn serve(listener: TcpListener, member: Arc<Member>, shutdown: impl Future<Output = ()>) {
    let make_service = move |_peer| {
        let member = member.clone();
        hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let response = answer(&member, &request);
            async move { Ok::<_, Infallible>(response) }
        })
    };
    fjord_daemon::serve_http(
        listener,
        make_service,
        shutdown,
        Duration::from_secs(1),
        Duration::from_secs(10),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn the_default_metrics_port_is_the_grpc_port_plus_2000_on_loopback() {
        assert_eq!(default_metrics_listen("127.0.0.1:7400").unwrap(), "127.0.0.1:9400");
        assert_eq!(default_metrics_listen("127.0.0.1:7401").unwrap(), "127.0.0.1:9401");
        assert_eq!(default_metrics_listen("0.0.0.0:7402").unwrap(), "127.0.0.1:9402");
        assert_eq!(default_metrics_listen("[::1]:7400").unwrap(), "127.0.0.1:9400");
        assert_eq!(default_metrics_listen("127.0.0.1:0").unwrap(), "127.0.0.1:0");
        let too_high = default_metrics_listen("127.0.0.1:65000").unwrap_err();
        assert!(too_high.contains("--metrics-listen"), "{too_high}");
        let no_port = default_metrics_listen("localhost").unwrap_err();
        assert!(no_port.contains("--metrics-listen"), "{no_port}");
    }

    #[test]
    fn renders_the_leaders_groups_and_raft_state() {
        let mut groups = BTreeMap::new();
        groups.insert(
            "vps".to_string(),
            GroupReport {
                provider: "static".into(),
                desired: 2,
                min: 2,
                max: 2,
                effective_max: 2,
                unplaceable_memory_mib: 1200,
                instances: 2,
                nodes: vec!["node-0".into(), "node-1".into()],
                status: "holding".into(),
                updated_at_ms: 1,
            },
        );
        groups.insert(
            "workers".to_string(),
            GroupReport {
                desired: 3,
                max: 10,
                effective_max: 6,
                nodes: vec!["a".into()],
                ..Default::default()
            },
        );
        let text = MetricsSnapshot {
            is_leader: true,
            term: 7,
            pending_instances: 2,
            groups,
            queue: BTreeMap::from([(
                "resize".to_string(),
                fjord_events::queue::Depth {
                    queued: 12,
                    in_flight: 3,
                    oldest_age: Some(Duration::from_millis(1500)),
                },
            )]),
        }
        .render();
        assert_eq!(
            sample(&text, "fjord_async_queue_depth{function=\"resize\"}"),
            Some(12),
            "{text}"
        );
        assert_eq!(sample(&text, "fjord_async_in_flight{function=\"resize\"}"), Some(3));
        assert!(
            text.contains("\nfjord_async_oldest_age_seconds{function=\"resize\"} 1.500\n"),
            "{text}"
        );
        assert_eq!(sample(&text, "fjord_raft_is_leader"), Some(1), "{text}");
        assert_eq!(sample(&text, "fjord_raft_term"), Some(7));
        assert_eq!(sample(&text, "fjord_pending_instances"), Some(2));
        assert_eq!(sample(&text, "fjord_node_group_desired{group=\"vps\"}"), Some(2));
        assert_eq!(sample(&text, "fjord_node_group_nodes{group=\"vps\"}"), Some(2));
        assert_eq!(sample(&text, "fjord_node_group_max{group=\"vps\"}"), Some(2));
        assert_eq!(
            sample(&text, "fjord_node_group_unplaceable_memory_mib{group=\"vps\"}"),
            Some(1200)
        );
        assert_eq!(sample(&text, "fjord_node_group_max{group=\"workers\"}"), Some(6));
        assert_eq!(
            sample(&text, "fjord_node_group_unplaceable_memory_mib{group=\"workers\"}"),
            Some(0)
        );
        // Each family is typed once, before its samples.
        for name in ["fjord_raft_term", "fjord_node_group_desired"] {
            assert_eq!(text.matches(&format!("# TYPE {name} gauge\n")).count(), 1, "{text}");
        }
    }

    #[test]
    fn a_follower_reports_no_group_series() {
        let text = MetricsSnapshot {
            is_leader: false,
            term: 3,
            ..Default::default()
        }
        .render();
        assert_eq!(sample(&text, "fjord_raft_is_leader"), Some(0));
        assert_eq!(sample(&text, "fjord_raft_term"), Some(3));
        assert!(!text.contains("{group="), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
