//! `fjord deploy`, `list`, `describe`, `remove`, `scale`, `nodes`, `status`, `logs`: the Admin
//! API as commands, with tables for people and `--json` for scripts.

use crate::connect::{explain, ConnectArgs};
use crate::output::outln;
use fjord_core::duration::format_duration;
use fjord_core::FunctionSpec;
use fjord_decisions::policy::DEFAULTABLE_FIELDS;
use fjord_proto::v1 as pb;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

fn spec_json(spec: &pb::FunctionSpec) -> serde_json::Value {
    // Names only: a stored secret's value never leaves the control plane, and inline values of
    // an earlier version come back blank.
    let mut secret_names: Vec<&String> = spec.secret_names.iter().chain(spec.secrets.keys()).collect();
    secret_names.sort();
    json!({
        "name": spec.name,
        "image": spec.image,
        "command": spec.command,
        "env": spec.env.iter().collect::<std::collections::BTreeMap<_, _>>(),
        "secrets": secret_names,
        "memory_mib": spec.memory_mib,
        "cpu_millis": spec.cpu_millis,
        "timeout": format_duration(Duration::from_millis(spec.timeout_ms)),
        "concurrency": spec.concurrency,
        "min": spec.min_instances,
        "max": spec.max_instances,
        "target_utilization": spec.target_utilization,
        "scale_to_zero_after": format_duration(Duration::from_millis(spec.scale_to_zero_after_ms)),
        "keep_alive": if spec.keep_alive.is_empty() { "fixed" } else { spec.keep_alive.as_str() },
        "labels": spec.labels.iter().collect::<std::collections::BTreeMap<_, _>>(),
        "async": spec.async_policy.as_ref().map(|a| json!({
            "concurrency": a.concurrency,
            "max_attempts": a.max_attempts,
            "min_backoff": format_duration(Duration::from_millis(a.min_backoff_ms)),
            "max_backoff": format_duration(Duration::from_millis(a.max_backoff_ms)),
            "max_age": format_duration(Duration::from_millis(a.max_age_ms)),
        })),
        "schedule": spec.schedule,
    })
}

fn status_json(status: &pb::FunctionStatus) -> serde_json::Value {
    let record = status.record.clone().unwrap_or_default();
    let spec = record.spec.unwrap_or_default();
    json!({
        "name": spec.name,
        "revision": record.revision,
        "image_ref": record.image_ref,
        "created_at_ms": record.created_at_ms,
        "updated_at_ms": record.updated_at_ms,
        "spec": spec_json(&spec),
        "desired": status.desired,
        "instances": status.instances.iter().map(|i| json!({
            "node": i.node_id, "placed": i.placed, "ready": i.ready, "busy": i.busy, "starting": i.starting,
            "image_state": i.image_state, "pulled_bytes": i.pulled_bytes, "image_bytes": i.image_bytes,
            "image_error": i.image_error,
        })).collect::<Vec<_>>(),
        "pending": status.pending.iter().map(|p| json!({
            "instances": p.instances, "reason": p.reason,
        })).collect::<Vec<_>>(),
        "decisions": status.decisions.iter().map(|d| json!({
            "at_ms": d.at_ms, "from": d.from, "to": d.to, "reason": d.reason,
            "stable_concurrency": d.stable_concurrency, "panic_concurrency": d.panic_concurrency,
        })).collect::<Vec<_>>(),
        "next_run_ms": (status.next_run_ms > 0).then_some(status.next_run_ms),
        "last_fired_ms": (status.last_fired_ms > 0).then_some(status.last_fired_ms),
        "queue": status.queue.as_ref().map(|q| if q.known {
            json!({"queued": q.queued, "in_flight": q.in_flight, "oldest_age_ms": q.oldest_age_ms})
        } else {
            json!({"error": q.error})
        }),
    })
}

fn print_json(value: &serde_json::Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

/// Reads the file `fjord deploy -f` names; `-` is standard input.
fn read_text(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        Ok(std::io::read_to_string(std::io::stdin())?)
    } else {
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))
    }
}

/// Parses a `fjord.yaml`; also returns the scaling fields it leaves out, which the cluster
/// policy's defaults fill in.
/// Its `build:` section is `fjord build`'s, never stored: it is taken out first.
fn read_spec(path: &Path, text: &str) -> anyhow::Result<(FunctionSpec, Vec<String>)> {
    let (_, text) =
        fjord_build::plan::split_build_section(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let text = text.as_ref();
    let spec = FunctionSpec::from_yaml(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let keys: Vec<String> = match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
        Ok(serde_yaml_ng::Value::Mapping(map)) => map.keys().filter_map(|k| k.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    };
    Ok((spec, defaulted_fields(|field| keys.iter().any(|k| k == field))))
}

/// The policy-defaultable fields that `set` says the file did not set.
fn defaulted_fields(set: impl Fn(&str) -> bool) -> Vec<String> {
    DEFAULTABLE_FIELDS
        .iter()
        .filter(|field| !set(field))
        .map(|field| field.to_string())
        .collect()
}

/// `fjord deploy -f FILE`: a `fjord.yaml`, or an OpenFaaS stack file (all its functions, or
/// those `filters` select). `tag` replaces the tag of each image (`fjord up --tag`).
pub async fn deploy(
    connect: &ConnectArgs,
    file: &Path,
    filters: &[String],
    json: bool,
    wait: Option<Duration>,
    tag: Option<&str>,
) -> anyhow::Result<()> {
    let text = read_text(file)?;
    let file_name = file.file_name().and_then(|n| n.to_str());
    if fjord_openfaas::stack::is_stack_file(file_name, &text) {
        return deploy_stack(connect, file, &text, filters, json, wait, tag).await;
    }
    if !filters.is_empty() {
        anyhow::bail!(
            "--filter selects functions of an OpenFaaS stack file; {} is a fjord.yaml (one function)",
            file.display()
        );
    }
    let (mut spec, defaulted) = read_spec(file, &text)?;
    if let Some(tag) = tag {
        spec.image = retagged(&spec.image, tag);
    }
    let mut admin = connect.admin().await?;
    let status = deploy_one(&mut admin, &spec, defaulted).await?;
    if json {
        print_json(&status_json(&status));
    } else {
        print_deployed(&spec.name, &status);
    }
    if let Some(timeout) = wait {
        crate::deploy_wait::wait(&mut admin, &spec.name, timeout).await?;
    }
    Ok(())
}

async fn deploy_one(
    admin: &mut crate::connect::Admin,
    spec: &FunctionSpec,
    defaulted: Vec<String>,
) -> anyhow::Result<pb::FunctionStatus> {
    Ok(admin
        .deploy(pb::DeployRequest {
            spec: Some(spec.into()),
            defaulted,
        })
        .await
        .map_err(explain)?
        .into_inner())
}

fn print_deployed(name: &str, status: &pb::FunctionStatus) {
    let record = status.record.clone().unwrap_or_default();
    let image = record.spec.as_ref().map(|s| s.image.clone()).unwrap_or_default();
    if record.image_ref.is_empty() {
        outln!("deployed {name} (revision {})", record.revision);
    } else {
        outln!(
            "deployed {name} (revision {}): {} pinned to {image}",
            record.revision,
            record.image_ref
        );
    }
}

/// Deploys the functions of an OpenFaaS stack file. Every selected function is translated and
/// validated before the first is deployed, so a mistake anywhere deploys nothing; each key
/// Fjord does not honour is named on stderr.
async fn deploy_stack(
    connect: &ConnectArgs,
    file: &Path,
    text: &str,
    filters: &[String],
    json: bool,
    wait: Option<Duration>,
    tag: Option<&str>,
) -> anyhow::Result<()> {
    use fjord_openfaas::stack::Stack;
    let shown = file.display();
    let warn = |notice: &fjord_openfaas::stack::Notice| eprintln!("warning: {shown}: {notice}");
    let stack = Stack::parse(text, &|name| std::env::var(name).ok()).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    stack.notices().iter().for_each(warn);
    let names = stack.select(filters).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    // Environment files are named relative to the stack file, as faas-cli run beside it sees them.
    let base_dir = match file.parent() {
        Some(dir) if file != Path::new("-") && !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut translations = Vec::new();
    for name in names {
        let mut translation = stack
            .translate(name, &base_dir)
            .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        if let Some(tag) = tag {
            translation.spec.image = retagged(&translation.spec.image, tag);
        }
        translation.notices.iter().for_each(warn);
        translations.push(translation);
    }
    let mut admin = connect.admin().await?;
    let mut statuses = Vec::new();
    for translation in &translations {
        let spec = &translation.spec;
        let defaulted = defaulted_fields(|field| translation.set_fields.contains(&field));
        let status = deploy_one(&mut admin, spec, defaulted).await.map_err(|e| {
            let done: Vec<&str> = translations[..statuses.len()]
                .iter()
                .map(|t| t.spec.name.as_str())
                .collect();
            let done = if done.is_empty() {
                "none deployed".to_string()
            } else {
                format!("deployed before it: {}", done.join(", "))
            };
            anyhow::anyhow!("{shown}: deploying {}: {e} ({done})", spec.name)
        })?;
        if !json {
            print_deployed(&spec.name, &status);
        }
        statuses.push(status);
    }
    if json {
        print_json(&serde_json::Value::Array(statuses.iter().map(status_json).collect()));
    }
    if let Some(timeout) = wait {
        for translation in &translations {
            crate::deploy_wait::wait(&mut admin, &translation.spec.name, timeout).await?;
        }
    }
    Ok(())
}

/// `image` with its tag replaced by `tag`.
fn retagged(image: &str, tag: &str) -> String {
    format!("{}:{tag}", fjord_build::plan::image_repository(image))
}

fn instance_counts(status: &pb::FunctionStatus) -> (u32, u32, u32) {
    status
        .instances
        .iter()
        .fold((0, 0, 0), |(r, b, s), i| (r + i.ready, b + i.busy, s + i.starting))
}

pub async fn list(connect: &ConnectArgs, json: bool) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    let functions = crate::listing::functions(&mut admin).await?;
    if json {
        print_json(&serde_json::Value::Array(functions.iter().map(status_json).collect()));
        return Ok(());
    }
    if functions.is_empty() {
        outln!("no functions deployed; deploy one with `fjord deploy -f fjord.yaml`");
        return Ok(());
    }
    outln!(
        "{:<24} {:>8} {:>7} {:>6} {:>9} {:>8} {:>11} {:>9}",
        "NAME",
        "REVISION",
        "READY",
        "BUSY",
        "MEMORY",
        "TIMEOUT",
        "CONCURRENCY",
        "MIN/MAX"
    );
    for f in &functions {
        let record = f.record.clone().unwrap_or_default();
        let spec = record.spec.unwrap_or_default();
        let (ready, busy, _) = instance_counts(f);
        outln!(
            "{:<24} {:>8} {:>7} {:>6} {:>6}MiB {:>8} {:>11} {:>9}",
            spec.name,
            record.revision,
            ready,
            busy,
            spec.memory_mib,
            format_duration(Duration::from_millis(spec.timeout_ms)),
            spec.concurrency,
            format!("{}/{}", spec.min_instances, spec.max_instances)
        );
    }
    Ok(())
}

pub async fn describe(connect: &ConnectArgs, name: &str, json: bool) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    let status = admin
        .get_function(pb::GetFunctionRequest { name: name.into() })
        .await
        .map_err(explain)?
        .into_inner();
    let value = status_json(&status);
    if json {
        print_json(&value);
        return Ok(());
    }
    outln!("name:      {}", value["name"].as_str().unwrap_or_default());
    outln!("revision:  {}", value["revision"]);
    if let Some(image_ref) = value["image_ref"].as_str().filter(|r| !r.is_empty()) {
        outln!(
            "image:     {image_ref}, resolved at deploy to {}",
            value["spec"]["image"].as_str().unwrap_or_default()
        );
    }
    outln!("spec:");
    let spec_yaml = serde_yaml_ng::to_string(&value["spec"]).unwrap_or_default();
    for line in spec_yaml.lines() {
        outln!("  {line}");
    }
    let (ready, _, starting) = instance_counts(&status);
    outln!(
        "instances: desired {}, ready {ready}, starting {starting}",
        status.desired
    );
    if status.instances.is_empty() {
        outln!("  none placed or running (the next call starts one)");
    }
    for i in &status.instances {
        outln!(
            "  node {:<20} desired {:>3}  ready {:>3}  busy {:>3}  starting {:>3}",
            i.node_id,
            i.placed,
            i.ready,
            i.busy,
            i.starting
        );
    }
    for p in &status.pending {
        outln!("  pending {:>3}: {}", p.instances, p.reason);
    }
    if let Some(q) = &status.queue {
        if q.known {
            let oldest = if q.oldest_age_ms > 0 {
                format!(
                    ", oldest {} old",
                    format_duration(Duration::from_millis(q.oldest_age_ms))
                )
            } else {
                String::new()
            };
            outln!("queue:     {} waiting, {} in flight{oldest}", q.queued, q.in_flight);
        } else if !q.error.is_empty() {
            outln!("queue:     unknown ({})", q.error);
        }
    }
    if status.next_run_ms > 0 {
        let last = if status.last_fired_ms > 0 {
            format!(
                " (last fired {})",
                fjord_decisions::schedule::format_utc_minute(status.last_fired_ms)
            )
        } else {
            String::new()
        };
        outln!(
            "schedule:  next run {}{last}",
            fjord_decisions::schedule::format_utc_minute(status.next_run_ms)
        );
    }
    if !status.decisions.is_empty() {
        outln!("scaling decisions (newest last):");
        for d in &status.decisions {
            outln!(
                "  {} {:>3} -> {:<3} {} (concurrency: stable {:.1}, panic {:.1})",
                format_timestamp(d.at_ms),
                d.from,
                d.to,
                d.reason,
                d.stable_concurrency,
                d.panic_concurrency
            );
        }
    }
    Ok(())
}

pub async fn remove(connect: &ConnectArgs, name: &str) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    admin
        .remove_function(pb::RemoveFunctionRequest { name: name.into() })
        .await
        .map_err(explain)?;
    outln!("removed {name}");
    Ok(())
}

pub async fn scale(connect: &ConnectArgs, name: &str, min: Option<u32>, max: Option<u32>) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    let status = admin
        .scale(pb::ScaleRequest {
            name: name.into(),
            min_instances: min,
            max_instances: max,
        })
        .await
        .map_err(explain)?
        .into_inner();
    let spec = status.record.and_then(|r| r.spec).unwrap_or_default();
    outln!("scaled {name}: min {} max {}", spec.min_instances, spec.max_instances);
    Ok(())
}

pub async fn nodes(connect: &ConnectArgs, json: bool) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    let answer = crate::listing::nodes(&mut admin).await?;
    let (nodes, groups) = (answer.nodes, answer.groups);
    // Heartbeats carry no CPU figure: a node's CPU in use is its instances (ready or starting)
    // at their function's cpu_millis, as placement counts it.
    let cpu_by_function: std::collections::HashMap<String, u32> = crate::listing::functions(&mut admin)
        .await?
        .into_iter()
        .filter_map(|f| {
            let spec = f.record?.spec?;
            Some((spec.name, spec.cpu_millis))
        })
        .collect();
    let used_cpu_millis = |n: &pb::NodeStatus| -> u64 {
        n.functions
            .iter()
            .map(|f| u64::from(f.ready + f.starting) * u64::from(cpu_by_function.get(&f.name).copied().unwrap_or(0)))
            .sum()
    };
    if json {
        let value: Vec<_> = nodes
            .iter()
            .map(|n| {
                let info = n.info.clone().unwrap_or_default();
                json!({
                    "id": info.id, "state": n.state, "invoke_addr": info.invoke_addr, "runtime": info.runtime,
                    "zone": info.zone, "memory_mib": info.memory_mib, "cpu_millis": info.cpu_millis,
                    "reserved_memory_mib": n.reserved_memory_mib, "used_cpu_millis": used_cpu_millis(n),
                    "in_flight": n.in_flight,
                    "last_heartbeat_ms_ago": n.last_heartbeat_ms_ago,
                    "functions": n.functions.iter().map(|f| json!({
                        "name": f.name, "revision": f.revision, "ready": f.ready, "busy": f.busy,
                        "starting": f.starting, "in_flight": f.in_flight, "waiting": f.waiting,
                    })).collect::<Vec<_>>(),
                    "placed": n.placed.iter().collect::<std::collections::BTreeMap<_, _>>(),
                })
            })
            .collect();
        print_json(&serde_json::Value::Array(value));
        return Ok(());
    }
    for g in &groups {
        outln!(
            "group {} ({}): desired {}, machines {}, nodes {} (min {}, max {})",
            g.name,
            g.provider,
            g.desired,
            g.instances,
            g.nodes.len(),
            g.min_nodes,
            g.max_nodes
        );
        outln!("  now: {}", g.status);
        for d in g.decisions.iter().rev().take(5).rev() {
            outln!("  {} {}: {}", format_timestamp(d.at_ms), d.action, d.reason);
        }
    }
    if nodes.is_empty() {
        outln!("no nodes registered; start a node agent (fjord dev starts one)");
        return Ok(());
    }
    outln!(
        "{:<20} {:<9} {:<22} {:<8} {:<10} {:>16} {:>16} {:>9} {:>15}",
        "NODE",
        "STATE",
        "ADDRESS",
        "RUNTIME",
        "ZONE",
        "MEMORY USED/ALL",
        "CPU USED/ALL",
        "IN FLIGHT",
        "INSTANCES/PLACED"
    );
    for n in &nodes {
        let info = n.info.clone().unwrap_or_default();
        let instances: u32 = n.functions.iter().map(|f| f.ready + f.starting).sum();
        let placed: u32 = n.placed.values().sum();
        outln!(
            "{:<20} {:<9} {:<22} {:<8} {:<10} {:>16} {:>16} {:>9} {:>15}",
            info.id,
            n.state,
            info.invoke_addr,
            info.runtime,
            if info.zone.is_empty() { "-" } else { info.zone.as_str() },
            format!("{}/{} MiB", n.reserved_memory_mib, info.memory_mib),
            format!("{}/{}m", used_cpu_millis(n), info.cpu_millis),
            n.in_flight,
            format!("{instances}/{placed}")
        );
    }
    Ok(())
}

/// `fjord nodes groups`: the node groups the node autoscaler sizes.
pub async fn groups(connect: &ConnectArgs, json: bool) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    let groups = crate::listing::nodes(&mut admin).await?.groups;
    if json {
        let value: Vec<_> = groups
            .iter()
            .map(|g| {
                json!({
                    "name": g.name, "provider": g.provider, "min_nodes": g.min_nodes, "max_nodes": g.max_nodes,
                    "desired": g.desired, "instances": g.instances, "nodes": g.nodes, "status": g.status,
                    "decisions": g.decisions.iter().map(|d| json!({
                        "at_ms": d.at_ms, "action": d.action, "reason": d.reason,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        print_json(&serde_json::Value::Array(value));
        return Ok(());
    }
    if groups.is_empty() {
        outln!("no node groups; add node_groups to the policy (fjord policy apply -f FILE)");
        return Ok(());
    }
    for g in &groups {
        outln!(
            "group {} ({}): desired {}, machines {}, nodes {} (min {}, max {})",
            g.name,
            g.provider,
            g.desired,
            g.instances,
            g.nodes.len(),
            g.min_nodes,
            g.max_nodes
        );
        outln!("  now: {}", g.status);
        for d in &g.decisions {
            outln!("  {} {}: {}", format_timestamp(d.at_ms), d.action, d.reason);
        }
    }
    Ok(())
}

pub async fn status(connect: &ConnectArgs, json: bool) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    let s = admin.status(pb::StatusRequest {}).await.map_err(explain)?.into_inner();
    if json {
        print_json(&json!({
            "this_member": s.this_member, "leader_id": s.leader_id, "term": s.term,
            "commit_index": s.commit_index, "applied_index": s.applied_index,
            "snapshot_index": s.snapshot_index, "purged_index": s.purged_index,
            "members": s.members.iter().map(|m| json!({"id": m.id, "addr": m.addr, "role": m.role})).collect::<Vec<_>>(),
            "functions": s.functions, "nodes_ready": s.nodes_ready, "nodes_total": s.nodes_total,
        }));
        return Ok(());
    }
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    outln!(
        "control plane: member {} answering, leader {}, term {}",
        s.this_member,
        opt(s.leader_id),
        s.term
    );
    outln!(
        "log:           commit index {}, applied index {}",
        opt(s.commit_index),
        opt(s.applied_index)
    );
    outln!("members:");
    for m in &s.members {
        outln!("  {:>3}  {:<10} {}", m.id, m.role, m.addr);
    }
    outln!("functions:     {}", s.functions);
    outln!("nodes:         {} ready of {}", s.nodes_ready, s.nodes_total);
    Ok(())
}

pub async fn logs(connect: &ConnectArgs, name: &str, tail: u32, json: bool) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    let reply = admin
        .logs(pb::LogsRequest {
            name: name.into(),
            tail,
        })
        .await
        .map_err(explain)?
        .into_inner();
    if json {
        print_json(&json!({
            "lines": reply.lines.iter().map(|l| json!({
                "node": l.node_id, "instance": l.instance_id, "stream": l.stream,
                "timestamp_ms": l.timestamp_ms, "line": l.line,
            })).collect::<Vec<_>>(),
            "errors": reply.errors,
        }));
        return Ok(());
    }
    for l in &reply.lines {
        outln!(
            "{} {} {:<8} {}",
            format_timestamp(l.timestamp_ms),
            l.instance_id,
            l.stream,
            l.line
        );
    }
    for e in &reply.errors {
        eprintln!("warning: {e}");
    }
    if reply.lines.is_empty() {
        eprintln!("no log lines for {name} yet (logs are kept per node while the agent runs)");
    }
    Ok(())
}

/// `HH:MM:SS.mmm` UTC: enough to order lines by eye.
pub fn format_timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        ms % 1000
    )
}

pub async fn add_member(connect: &ConnectArgs, id: u64, addr: &str) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    admin
        .add_member(pb::AddMemberRequest { id, addr: addr.into() })
        .await
        .map_err(explain)?;
    outln!("member {id} ({addr}) joined as a voter");
    status(connect, false).await
}

pub async fn remove_member(connect: &ConnectArgs, id: u64) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    admin
        .remove_member(pb::RemoveMemberRequest { id })
        .await
        .map_err(explain)?;
    outln!("member {id} removed; stop its process, and never reuse id {id}");
    status(connect, false).await
}
