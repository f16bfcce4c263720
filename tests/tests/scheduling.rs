//! The scheduler and the function autoscaler on real processes: a surge of callers scales a
//! function up without a failed request and back down to min and to zero; placements respect
//! capacity, spread over nodes and zones, report what does not fit, and move off a dead node;
//! a drain under steady load loses no request; a draining node that dies is committed drained
//! rather than left draining; a leader failover in the middle of scaling neither loses nor
//! duplicates placements.

use fjord_tests::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

fn json_of(out: &std::process::Output) -> Option<serde_json::Value> {
    out.status.success().then(|| serde_json::from_slice(&out.stdout).ok())?
}

fn describe(platform: &Platform, name: &str) -> Option<serde_json::Value> {
    json_of(&platform.fjord(&["describe", name, "--json"]))
}

/// Instances placed per node, from `fjord describe`.
fn placed_of(status: &serde_json::Value) -> BTreeMap<String, u64> {
    status["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["placed"].as_u64().unwrap_or(0) > 0)
        .map(|i| (i["node"].as_str().unwrap().to_string(), i["placed"].as_u64().unwrap()))
        .collect()
}

fn total(status: &serde_json::Value, field: &str) -> u64 {
    status["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| i[field].as_u64().unwrap_or(0))
        .sum()
}

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_surge_scales_up_without_failures_then_back_to_min_and_to_zero() {
    let platform = Platform::start_with(2, 4096).await;
    // Short windows so the test sees a whole cycle; the defaults are 60 s and 6 s.
    let policy = write_file(
        platform.dir.path(),
        "policy.yaml",
        "autoscaler:\n  stable_window_ms: 6000\n  panic_window_ms: 2000\n",
    );
    let out = platform.fjord(&["policy", "apply", "-f", &policy]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = platform.deploy_example(
        "surge",
        "sleep",
        "concurrency: 1\ntarget_utilization: 1.0\nmin: 1\nmax: 60\nmemory_mib: 32\ncpu_millis: 50\nscale_to_zero_after: 3s\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually("min 1 instance placed and ready", Duration::from_secs(20), || async {
        let status = describe(&platform, "surge")?;
        (total(&status, "placed") == 1 && total(&status, "ready") == 1).then_some(())
    })
    .await;

    // 1 caller, then 50.
    let url = platform.lb_url("/function/surge?ms=200");
    let one = Load::start(url.clone(), 1);
    eventually("the lone caller to be answered", Duration::from_secs(10), || async {
        (!one.results.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    let surge_started = Instant::now();
    let surge = Load::start(url.clone(), 49);
    // The agents start instances on demand as the callers arrive; the autoscaler follows the
    // observed concurrency. Callers pause between calls, so the mean concurrency stays a little
    // under 50: it asks for at least 45, all placed.
    let running = eventually("50 instances running", Duration::from_secs(60), || async {
        let status = describe(&platform, "surge")?;
        (total(&status, "ready") >= 50).then(|| surge_started.elapsed())
    })
    .await;
    let placed = eventually(
        "the placements to follow the surge",
        Duration::from_secs(60),
        || async {
            let status = describe(&platform, "surge")?;
            let desired = status["desired"].as_u64()?;
            (desired >= 45 && total(&status, "placed") == desired).then(|| surge_started.elapsed())
        },
    )
    .await;
    let status = describe(&platform, "surge").unwrap();
    let mut results = surge.finish().await;
    results.extend(one.finish().await);
    assert_no_failure(&results, "the surge");
    let mut latencies: Vec<Duration> = results.iter().map(|(_, latency, _)| *latency).collect();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "surge 1 -> 50 callers of a 200 ms function: {} requests, none failed; 50 instances running after {} ms, \
         at least 45 desired and placed after {} ms; latency p50 {} ms, p99 {} ms",
        results.len(),
        running.as_millis(),
        placed.as_millis(),
        latencies[latencies.len() / 2].as_millis(),
        p99.as_millis()
    );
    assert!(
        placed_of(&status).len() == 2,
        "50 instances should use both nodes: {status}"
    );
    let reasons: Vec<&str> = status["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["reason"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("panic") || r.contains("stable")),
        "the decisions name their reasons: {reasons:?}"
    );

    // Callers gone: back to min (1), then, with min 0, to zero after the idle period.
    eventually("instances back to min", Duration::from_secs(60), || async {
        let status = describe(&platform, "surge")?;
        (status["desired"] == 1 && total(&status, "placed") == 1 && total(&status, "ready") == 1).then_some(())
    })
    .await;
    assert!(platform.fjord(&["scale", "surge", "--min", "0"]).status.success());
    eventually("instances down to zero", Duration::from_secs(30), || async {
        let status = describe(&platform, "surge")?;
        (status["desired"] == 0 && total(&status, "placed") == 0 && total(&status, "ready") == 0).then_some(())
    })
    .await;
    let answer = http("GET", &platform.lb_url("/function/surge?ms=200"), b"", &[])
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.header("x-fjord-cold-start"),
        Some("1"),
        "from zero, a call cold-starts"
    );
}

/// Starts an agent with a zone, against one control plane.
fn agent_in_zone(platform: &Platform, id: &str, zone: &str, memory_mib: u32) -> Daemon {
    start_agent_with(
        platform.dir.path(),
        &platform.token_file,
        platform.control_plane_port,
        free_port(),
        id,
        memory_mib,
        &["--zone", zone],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn placements_fit_capacity_spread_over_zones_report_pending_and_leave_a_dead_node() {
    let mut platform = Platform::start_with(0, 1024).await;
    let mut agents: BTreeMap<&str, Daemon> = BTreeMap::new();
    for (id, zone) in [("a-1", "zone-a"), ("a-2", "zone-a"), ("b-1", "zone-b")] {
        agents.insert(id, agent_in_zone(&platform, id, zone, 1024));
    }
    platform.wait_ready(3).await;

    // Two instances: two nodes, in two zones.
    let out = platform.deploy_example("spread", "sleep", "min: 2\nmemory_mib: 256\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let placed = eventually("2 instances placed", Duration::from_secs(20), || async {
        let placed = placed_of(&describe(&platform, "spread")?);
        (placed.values().sum::<u64>() == 2).then_some(placed)
    })
    .await;
    assert_eq!(placed.len(), 2, "two nodes: {placed:?}");
    assert!(placed.contains_key("b-1"), "two zones, so b-1 holds one: {placed:?}");

    // Five 600 MiB instances on three 1024 MiB nodes (each holding up to 256 MiB of `spread`):
    // one per node fits, two are pending with the reason.
    let out = platform.deploy_example("big", "sleep", "min: 5\nmax: 5\nmemory_mib: 600\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = eventually(
        "3 big instances placed and 2 pending",
        Duration::from_secs(20),
        || async {
            let status = describe(&platform, "big")?;
            let pending: u64 = status["pending"]
                .as_array()?
                .iter()
                .filter_map(|p| p["instances"].as_u64())
                .sum();
            (total(&status, "placed") == 3 && pending == 2).then_some(status)
        },
    )
    .await;
    let reason = status["pending"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("600 MiB"), "the reason names the memory: {reason}");
    let nodes = json_of(&platform.fjord(&["nodes", "--json"])).unwrap();
    for node in nodes.as_array().unwrap() {
        let placed = &node["placed"];
        let memory = placed["spread"].as_u64().unwrap_or(0) * 256 + placed["big"].as_u64().unwrap_or(0) * 600;
        assert!(memory <= 1024, "node {} overcommitted: {memory} MiB placed", node["id"]);
    }
    // The agents run what is placed (prewarm), no more.
    eventually(
        "agents to run the placed instances",
        Duration::from_secs(20),
        || async {
            let status = describe(&platform, "big")?;
            (total(&status, "ready") == 3).then_some(())
        },
    )
    .await;

    // Kill the node holding a `spread` instance in zone a: it is marked down, and its
    // instance is placed again on a live node.
    let victim = placed.keys().find(|n| n.as_str() != "b-1").unwrap().clone();
    agents.get_mut(victim.as_str()).unwrap().kill9();
    let placed = eventually(
        "the dead node's instance placed elsewhere",
        Duration::from_secs(30),
        || async {
            let placed = placed_of(&describe(&platform, "spread")?);
            (placed.values().sum::<u64>() == 2 && !placed.contains_key(&victim)).then_some(placed)
        },
    )
    .await;
    assert_eq!(placed.len(), 2, "still two nodes: {placed:?}");
    let nodes = json_of(&platform.fjord(&["nodes", "--json"])).unwrap();
    let dead = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == victim.as_str())
        .unwrap();
    assert_eq!(dead["state"], "down");

    // The operator forgets the dead node; a live one cannot be removed.
    let live = placed.keys().next().unwrap().clone();
    let refused = platform.fjord(&["nodes", "remove", &live]);
    assert!(!refused.status.success(), "a ready node is not removed");
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains("still heartbeats") || error.contains("is ready"),
        "{error}"
    );
    let removed = platform.fjord(&["nodes", "remove", &victim]);
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    let nodes = json_of(&platform.fjord(&["nodes", "--json"])).unwrap();
    let ids: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert!(
        !ids.contains(&victim.as_str()) && ids.contains(&live.as_str()),
        "{ids:?}"
    );
    platform.control_plane.terminate(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_under_steady_load_loses_no_request() {
    let platform = Platform::start_with(3, 2048).await;
    let out = platform.deploy_example("steady", "sleep", "min: 2\nmax: 20\nconcurrency: 2\nmemory_mib: 64\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let placed = eventually("2 instances placed and ready", Duration::from_secs(20), || async {
        let status = describe(&platform, "steady")?;
        (total(&status, "placed") == 2 && total(&status, "ready") >= 2).then(|| placed_of(&status))
    })
    .await;
    let victim = placed.keys().next().unwrap().clone();

    // Four callers: the lb's bound (c = 1.25 over three equal nodes: at most 2 of 4 in flight on
    // one node) spreads them over both warm nodes, so the node to drain serves its share.
    let callers = 4;
    let load = Load::start(platform.lb_url("/function/steady?ms=20"), callers);
    let served_by_victim = |results: &[(u16, Duration, String)]| {
        results
            .iter()
            .filter(|(status, _, body)| *status == 200 && body.starts_with(&format!("{victim}: ")))
            .count()
    };
    eventually(
        "the load to run, the node to drain serving part of it",
        Duration::from_secs(10),
        || async {
            let results = load.results.lock().unwrap();
            (results.len() > 50 && served_by_victim(&results) > 0).then_some(())
        },
    )
    .await;
    let served_before_drain = served_by_victim(&load.results.lock().unwrap());
    let out = platform.fjord(&["nodes", "drain", &victim, "--timeout", "60s"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "drain: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("drained"), "{stdout}");
    // Some more load after the drain, then stop.
    let before = load.results.lock().unwrap().len();
    eventually("more requests after the drain", Duration::from_secs(10), || async {
        (load.results.lock().unwrap().len() > before + 50).then_some(())
    })
    .await;
    let results = load.finish().await;
    assert_no_failure(&results, "the drain");
    assert!(
        served_before_drain > 0,
        "node {victim} served no request before its drain: the test drained an idle node"
    );
    eprintln!(
        "drain under load: {} requests, none failed; {served_before_drain} served by {victim} before its drain",
        results.len()
    );
    // The autoscaler follows the load: at most `callers` requests in flight or waiting, over
    // instances of concurrency 2 at the default target utilization of 0.7, so it asks for
    // between min (2) and ceil(4 / 1.4) = 3 instances, and the placements follow within a tick.
    let most = (callers as f64 / (2.0 * 0.7)).ceil() as u64;
    let status = describe(&platform, "steady").unwrap();
    let placed = placed_of(&status);
    let instances = placed.values().sum::<u64>();
    assert!((2..=most).contains(&instances), "between 2 and {most} placed: {status}");
    assert!(
        !placed.contains_key(&victim),
        "nothing placed on the drained node: {placed:?}"
    );
    let nodes = json_of(&platform.fjord(&["nodes", "--json"])).unwrap();
    let node = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == victim.as_str())
        .unwrap();
    assert_eq!(node["state"], "drained");
    let running: u64 = node["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ready"].as_u64().unwrap() + f["starting"].as_u64().unwrap())
        .sum();
    assert_eq!(running, 0, "no instance left on the drained node: {node}");

    let out = platform.fjord(&["nodes", "undrain", &victim]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("ready"));
    // Refusals name what is wrong.
    let out = platform.fjord(&["nodes", "drain", "no-such-node"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-node"));
}

/// A CLI process in the background, killed if the test ends before it does.
struct Background(Option<std::process::Child>);

impl Background {
    fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.0.as_mut()?.try_wait().unwrap()
    }

    fn output(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `fjord nodes drain NODE` run in the background, following the drain until it ends.
fn drain_in_background(platform: &Platform, node: &str, timeout: &str) -> Background {
    let child = std::process::Command::new(bin("fjord"))
        .args(["nodes", "drain", node, "--timeout", timeout])
        .env("FJORD_ADDR", platform.control_plane_url())
        .env("FJORD_TOKEN_FILE", &platform.token_file)
        .env_remove("FJORD_TOKEN")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running fjord nodes drain");
    Background(Some(child))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draining_node_that_dies_is_committed_drained() {
    let mut platform = Platform::start_with(2, 1024).await;
    // One 600 MiB instance fits on a 1024 MiB node: one on each, so the one on a draining node
    // has nowhere to go and the drain waits.
    let out = platform.deploy_example("wide", "sleep", "min: 2\nmax: 2\nmemory_mib: 600\ncpu_millis: 50\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually(
        "an instance placed and ready on each node",
        Duration::from_secs(20),
        || async {
            let status = describe(&platform, "wide")?;
            (placed_of(&status).len() == 2 && total(&status, "ready") == 2).then_some(())
        },
    )
    .await;
    let victim = "node-0";
    let mut drain = drain_in_background(&platform, victim, "60s");
    eventually(
        "the instance held on the draining node",
        Duration::from_secs(20),
        || async {
            let status = describe(&platform, "wide")?;
            let held = status["pending"].as_array()?.iter().any(|p| {
                p["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("held on draining node node-0"))
            });
            held.then_some(())
        },
    )
    .await;

    // The node dies mid-drain. Its last heartbeat still shows an instance, but nothing there is
    // reachable: once silent past the heartbeat timeout and its placement gone, it is drained,
    // and the operator's `fjord nodes drain` ends.
    platform.agents[0].kill9();
    let status = eventually("`fjord nodes drain` to end", Duration::from_secs(40), || {
        let ended = drain.try_wait();
        async move { ended }
    })
    .await;
    let out = drain.output();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        status.success(),
        "drain: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("is drained"), "{stdout}");
    let nodes = json_of(&platform.fjord(&["nodes", "--json"])).unwrap();
    let node = nodes.as_array().unwrap().iter().find(|n| n["id"] == victim).unwrap();
    assert_eq!(node["state"], "drained", "{node}");
    let status = describe(&platform, "wide").unwrap();
    assert!(!placed_of(&status).contains_key(victim), "{status}");

    // Back from the dead, it stays drained: the operator's drain still holds.
    platform.agents[0] = start_agent(
        platform.dir.path(),
        &platform.token_file,
        platform.control_plane_port,
        platform.agent_ports[0],
        victim,
        1024,
    );
    let node = eventually("the node heard from again", Duration::from_secs(20), || async {
        let nodes = json_of(&platform.fjord(&["nodes", "--json"]))?;
        let node = nodes.as_array()?.iter().find(|n| n["id"] == victim)?.clone();
        // A fresh heartbeat (the timeout is 3 s; agents report well within it).
        (node["last_heartbeat_ms_ago"].as_u64()? < 1000).then_some(node)
    })
    .await;
    assert_eq!(node["state"], "drained", "{node}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_failover_while_scaling_neither_loses_nor_duplicates_placements() {
    let mut members = Members::start(3, &["--heartbeat-timeout", "3s"]).await;
    let urls = members.all_urls();
    let mut agents = Vec::new();
    for i in 0..2 {
        let id = format!("node-{i}");
        let args: Vec<String> = [
            "--node-id",
            &id,
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--control-plane",
            &urls,
            "--token-file",
            &members.token_file.display().to_string(),
            "--data-dir",
            &members.dir.path().join(&id).display().to_string(),
            "--memory-mib",
            "2048",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = members.dir.path().join(format!("{id}.log"));
        agents.push(Daemon::start(&id, &bin("fjord-node-agent"), &args, log));
    }
    let spec = format!(
        "name: steady\ncommand: [{:?}]\nmin: 3\nmemory_mib: 64\n",
        bin("fjord-sleep").display().to_string()
    );
    let spec = write_file(members.dir.path(), "steady.yaml", &spec);
    let out = members.fjord_at(&urls, &["deploy", "-f", &spec]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let describe = |members: &Members| json_of(&members.fjord_at(&urls, &["describe", "steady", "--json"]));
    eventually("3 instances placed and running", Duration::from_secs(30), || async {
        let status = describe(&members)?;
        (total(&status, "placed") == 3 && total(&status, "ready") == 3).then_some(())
    })
    .await;

    // Scale to 6 and kill the leader at once: the new leader starts from what was committed.
    let leader = members.leader_seen_by_others(None).unwrap();
    let out = members.fjord_at(&urls, &["scale", "steady", "--min", "6"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    members.kill(leader);
    eventually("a new leader", Duration::from_secs(30), || async {
        members.leader_seen_by_others(Some(leader)).filter(|l| *l != leader)
    })
    .await;
    eventually("6 instances placed and running", Duration::from_secs(30), || async {
        let status = describe(&members)?;
        (total(&status, "placed") == 6 && total(&status, "ready") == 6).then_some(())
    })
    .await;
    // And it stays at 6: sample for a few scheduler ticks.
    for _ in 0..10 {
        let status = describe(&members).unwrap();
        assert_eq!(total(&status, "placed"), 6, "{status}");
        assert!(total(&status, "ready") + total(&status, "starting") <= 6, "{status}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Polls `fjord describe NAME` until `check` holds, failing with the last answer after `within`.
async fn wait_for_status(
    platform: &Platform,
    name: &str,
    what: &str,
    within: Duration,
    check: impl Fn(&serde_json::Value) -> bool,
) -> Duration {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < within {
        if let Some(status) = describe(platform, name) {
            if check(&status) {
                return started.elapsed();
            }
            last = Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = platform.control_plane.log_text();
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    panic!(
        "timed out after {within:?} waiting for {what}; last describe: {last:#?}\ncontrol plane log (newest first):\n{}",
        tail.join("\n")
    );
}

/// The decision `fjord describe` shows last, as (desired, reason).
fn last_decision(status: &serde_json::Value) -> Option<(u64, String)> {
    let last = status["decisions"].as_array()?.last()?;
    Some((last["to"].as_u64()?, last["reason"].as_str()?.to_string()))
}

#[tokio::test(flavor = "multi_thread")]
async fn adaptive_keep_alive_gives_a_periodic_function_back_between_calls_and_prewarms_it() {
    let platform = Platform::start_with(1, 2048).await;
    // One-second histogram buckets and three idle times to learn from, so the test learns in
    // a minute (the defaults are one-minute buckets and five idle times).
    let policy = write_file(
        platform.dir.path(),
        "policy.yaml",
        "autoscaler:\n  keep_alive_bucket_ms: 1000\n  keep_alive_min_samples: 3\n",
    );
    let out = platform.fjord(&["policy", "apply", "-f", &policy]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // With the fixed policy this function would hold an instance for 10 minutes after each call.
    let out = platform.deploy_example(
        "periodic",
        "sleep",
        "min: 0\nmemory_mib: 32\ncpu_millis: 50\nscale_to_zero_after: 10m\nkeep_alive: adaptive\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = describe(&platform, "periodic").unwrap();
    assert_eq!(status["spec"]["keep_alive"], "adaptive", "{status}");

    // A call every 12 s. Five calls give the autoscaler three idle times: the first call
    // comes before its first sample, so the second is the first it sees.
    let period = Duration::from_secs(12);
    let url = platform.lb_url("/function/periodic?ms=20");
    let first = platform.invoke_when_routable("periodic", "?ms=20", b"", &[]).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let mut last_call = Instant::now();
    for _ in 0..4 {
        tokio::time::sleep_until((last_call + period).into()).await;
        last_call = Instant::now();
        let answer = http("GET", &url, b"", &[]).await.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
    }

    // Learned: after each call the instance goes at once (not after 10 minutes), and one is
    // started again before the next call, which is then served warm.
    let mut warm_calls = 0;
    for cycle in 0..3 {
        wait_for_status(
            &platform,
            "periodic",
            "the instance to be given back after the call",
            Duration::from_secs(11),
            |status| {
                last_decision(status).is_some_and(|(to, reason)| {
                    to == 0 && reason.contains("adaptive keep-alive: unloaded") && total(status, "ready") == 0
                })
            },
        )
        .await;
        let given_back = last_call.elapsed();
        wait_for_status(
            &platform,
            "periodic",
            "an instance prewarmed for the next call",
            (period + Duration::from_secs(3)).saturating_sub(last_call.elapsed()),
            |status| {
                last_decision(status).is_some_and(|(to, reason)| {
                    to == 1 && reason.contains("adaptive keep-alive: one instance warm") && total(status, "ready") == 1
                })
            },
        )
        .await;
        let prewarmed = last_call.elapsed();
        tokio::time::sleep_until((last_call + period).into()).await;
        last_call = Instant::now();
        let answer = http("GET", &url, b"", &[]).await.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        let cold = answer.header("x-fjord-cold-start").is_some();
        if !cold {
            warm_calls += 1;
        }
        eprintln!(
            "cycle {cycle}: instance given back {} ms after the call, prewarmed {} ms after it; next call {}",
            given_back.as_millis(),
            prewarmed.as_millis(),
            if cold { "cold" } else { "warm" }
        );
    }
    assert_eq!(
        warm_calls, 3,
        "each call after a prewarm is served by the prewarmed instance"
    );
}
