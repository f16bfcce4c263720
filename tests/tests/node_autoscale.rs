//! Node autoscaling end to end with a `command` capacity provider whose machines are real
//! node-agent processes on loopback (tests/scripts/process-provider.py): under a surge a new
//! node joins, placements spread onto it and no request fails; under quiet the node is drained,
//! then exactly that machine is terminated, with no failed request. A static fleet too small for
//! the demand says so: in the group's status, in a warning, and in the leader's metrics.

use fjord_tests::*;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn provider_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/process-provider.py")
        .display()
        .to_string()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The provider's call log: (unix ms, call).
fn calls(state_dir: &Path) -> Vec<(u64, String)> {
    std::fs::read_to_string(state_dir.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (at, call) = l.split_once(' ')?;
            Some((at.parse().ok()?, call.to_string()))
        })
        .collect()
}

fn groups(platform: &Platform) -> Option<serde_json::Value> {
    let out = platform.fjord(&["nodes", "groups", "--json"]);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).ok())?
}

/// Kills every agent the provider started, whatever the test's outcome.
struct Machines(std::path::PathBuf);

impl Drop for Machines {
    fn drop(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.0.join("state.json")) else {
            return;
        };
        let Ok(state) = serde_json::from_str::<serde_json::Value>(&text) else {
            return;
        };
        for machine in state["machines"].as_array().into_iter().flatten() {
            if let Some(pid) = machine["pid"].as_u64() {
                let _ = std::process::Command::new("kill")
                    .arg("-9")
                    .arg(pid.to_string())
                    .status();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_surge_adds_a_node_and_quiet_removes_it_without_a_failed_request() {
    let platform = Platform::start_full(0, 1024, &[], &["--node-autoscale-interval", "300ms"]).await;
    let state_dir = platform.dir.path().join("provider");
    std::fs::create_dir_all(&state_dir).unwrap();
    let _machines = Machines(state_dir.clone());
    let command = [
        "python3".to_string(),
        provider_script(),
        state_dir.display().to_string(),
        bin("fjord-node-agent").display().to_string(),
        platform.control_plane_url(),
        platform.token_file.display().to_string(),
        "1024".into(),
    ];
    // The fleet starts with one machine.
    let out = std::process::Command::new(&command[0])
        .args(&command[1..])
        .args(["set-desired", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    platform.wait_ready(1).await;

    let command_yaml = command.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ");
    let policy = format!(
        "autoscaler:\n  stable_window_ms: 4000\n  panic_window_ms: 1000\n\
         node_groups:\n  - name: sim\n    provider: command\n    command: [{command_yaml}]\n    min_nodes: 1\n    max_nodes: 2\n\
         \x20   scale_out_window_ms: 1000\n    scale_in_window_ms: 3000\n    scale_out_cooldown_ms: 1000\n    scale_in_cooldown_ms: 1000\n"
    );
    let policy_file = platform.dir.path().join("policy.yaml");
    std::fs::write(&policy_file, policy).unwrap();
    let out = platform.fjord(&["policy", "apply", "-f", policy_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // One 400 MiB instance fits twice on a 1024 MiB node; three callers of a 300 ms function
    // want three.
    let out = platform.deploy_example(
        "work",
        "sleep",
        "min: 1\nmax: 4\nconcurrency: 1\ntarget_utilization: 1.0\nmemory_mib: 400\ncpu_millis: 50\nscale_to_zero_after: 2s\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    platform.invoke_when_routable("work", "?ms=1", b"", &[]).await;

    let surge = Load::start(platform.lb_url("/function/work?ms=300"), 3);
    let pressure_seen = eventually(
        "instances pending for lack of room",
        Duration::from_secs(30),
        || async {
            let out = platform.fjord(&["describe", "work", "--json"]);
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let pending: u64 = status["pending"]
                .as_array()?
                .iter()
                .filter_map(|p| p["instances"].as_u64())
                .sum();
            (pending > 0).then(now_ms)
        },
    )
    .await;
    let scaled_at = eventually(
        "the provider to be asked for 2 machines",
        Duration::from_secs(30),
        || async {
            calls(&state_dir)
                .into_iter()
                .find(|(_, call)| call == "set-desired 2")
                .map(|(at, _)| at)
        },
    )
    .await;
    // While waiting for the new node's first answer, note when it registered (the control plane
    // lists it), to split machine start from what the platform does after.
    let registered_at = std::sync::Mutex::new(None);
    let served_at = eventually("a request served by the new node", Duration::from_secs(60), || async {
        if registered_at.lock().unwrap().is_none() {
            let out = platform.fjord(&["nodes", "--json"]);
            if String::from_utf8_lossy(&out.stdout).contains("\"sim-2\"") {
                *registered_at.lock().unwrap() = Some(now_ms());
            }
        }
        let results = surge.results.lock().unwrap();
        results
            .iter()
            .any(|(status, _, body)| *status == 200 && body.contains("sim-2"))
            .then(now_ms)
    })
    .await;
    let registered_at = registered_at.into_inner().unwrap().unwrap_or(served_at);
    eventually("the group to count 2 nodes", Duration::from_secs(30), || async {
        (groups(&platform)?[0]["nodes"].as_array()?.len() == 2).then_some(())
    })
    .await;
    eventually(
        "placements to spread onto the new node",
        Duration::from_secs(30),
        || async {
            let out = platform.fjord(&["describe", "work", "--json"]);
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            status["instances"]
                .as_array()?
                .iter()
                .any(|i| i["node"] == "sim-2" && i["placed"].as_u64().unwrap_or(0) > 0)
                .then_some(())
        },
    )
    .await;
    let results = surge.finish().await;
    assert_no_failure(&results, "the surge");
    eprintln!(
        "node autoscaling: pending seen -> set-desired after {} ms; set-desired -> the new node registered after \
         {} ms (machine start); registered -> its first request served after {} ms (placement, prewarm, routing; \
         at most one CLI poll late); {} requests, none failed",
        scaled_at.saturating_sub(pressure_seen),
        registered_at.saturating_sub(scaled_at),
        served_at.saturating_sub(registered_at),
        results.len()
    );

    // Quiet: one light caller. The emptiest node is drained, then exactly it is terminated.
    let quiet = Load::start(platform.lb_url("/function/work?ms=5"), 1);
    let terminated = eventually("a node drained then terminated", Duration::from_secs(90), || async {
        calls(&state_dir)
            .into_iter()
            .find_map(|(_, call)| call.strip_prefix("terminate ").map(str::to_string))
    })
    .await;
    let group = eventually("the group back to one node", Duration::from_secs(30), || async {
        let group = groups(&platform)?;
        (group[0]["nodes"].as_array()?.len() == 1).then_some(group)
    })
    .await;
    let actions: Vec<String> = group[0]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["action"].as_str().unwrap().to_string())
        .collect();
    let drain = actions.iter().position(|a| a == &format!("drain node {terminated}"));
    let terminate = actions
        .iter()
        .position(|a| a == &format!("terminate node {terminated}"));
    assert!(
        matches!((drain, terminate), (Some(d), Some(t)) if d < t),
        "the terminated node was drained first: {actions:?}"
    );
    // A few more calls on the remaining node, then stop.
    let before = quiet.results.lock().unwrap().len();
    eventually("calls after the scale-in", Duration::from_secs(10), || async {
        (quiet.results.lock().unwrap().len() > before + 20).then_some(())
    })
    .await;
    let results = quiet.finish().await;
    assert_no_failure(&results, "the scale-in");
    eprintln!(
        "scale-in: {} requests during the drain and termination of {terminated}, none failed",
        results.len()
    );
}

/// The value of one series (name with its labels) in a Prometheus text exposition.
fn sample(metrics: &str, series: &str) -> Option<u64> {
    metric_value(metrics, series)
}

/// The leader's metrics, when it answers.
async fn scrape(url: &str) -> Option<String> {
    let answer = http("GET", url, b"", &[]).await.ok()?;
    (answer.status == 200).then(|| answer.text())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_static_fleet_too_small_for_the_demand_says_so_in_its_status_a_warning_and_metrics() {
    let metrics_listen = format!("127.0.0.1:{}", free_port());
    let metrics_url = format!("http://{metrics_listen}/metrics");
    let platform = Platform::start_full(
        2,
        1024,
        &[],
        &[
            "--node-autoscale-interval",
            "300ms",
            "--metrics-listen",
            &metrics_listen,
        ],
    )
    .await;
    let policy = "node_groups:\n  - name: vps\n    provider: static\n    nodes: [node-0, node-1]\n    min_nodes: 1\n\
                  \x20   max_nodes: 5\n    scale_out_window_ms: 500\n";
    let policy_file = platform.dir.path().join("policy.yaml");
    std::fs::write(&policy_file, policy).unwrap();
    let out = platform.fjord(&["policy", "apply", "-f", policy_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // One 600 MiB instance fits on a 1024 MiB node: of four, two are placed and two (1200 MiB)
    // wait for room the fleet of two cannot make.
    let out = platform.deploy_example("wide", "sleep", "min: 4\nmax: 4\nmemory_mib: 600\ncpu_millis: 50\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let unplaceable = "fjord_node_group_unplaceable_memory_mib{group=\"vps\"}";
    let metrics = eventually(
        "the leader's metrics to show 1200 MiB the fleet cannot place",
        Duration::from_secs(30),
        || async {
            let metrics = scrape(&metrics_url).await?;
            (sample(&metrics, unplaceable)? == 1200).then_some(metrics)
        },
    )
    .await;
    for (series, value) in [
        ("fjord_node_group_desired{group=\"vps\"}", 2),
        ("fjord_node_group_nodes{group=\"vps\"}", 2),
        ("fjord_node_group_max{group=\"vps\"}", 2),
        ("fjord_pending_instances", 2),
        ("fjord_raft_is_leader", 1),
    ] {
        assert_eq!(sample(&metrics, series), Some(value), "{series} in:\n{metrics}");
    }
    assert!(
        sample(&metrics, "fjord_raft_term").is_some_and(|term| term >= 1),
        "{metrics}"
    );

    // `fjord nodes groups` names the fleet's limit and what to do.
    let status = eventually("the group's status", Duration::from_secs(10), || async {
        let group = groups(&platform)?[0].clone();
        let status = group["status"].as_str()?.to_string();
        status.contains("static fleet is full at 2 nodes").then_some(status)
    })
    .await;
    assert!(status.contains("2 instances pending"), "{status}");
    assert!(status.contains("add machines"), "{status}");
    // A warning names the group, the memory and the fleet's size, once for as long as that holds.
    let warning = "node group vps cannot make room for";
    let log = platform.control_plane.log_text();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(warning)).collect();
    assert_eq!(warnings.len(), 1, "one warning per change: {warnings:#?}");
    assert!(
        warnings[0].contains("WARN")
            && warnings[0].contains("1200 MiB")
            && warnings[0].contains("static fleet is full at 2 nodes"),
        "{}",
        warnings[0]
    );

    eprintln!("static fleet too small: status `{status}`; warning: {}", warnings[0]);

    // The demand changes: one instance (600 MiB) waits now; one more warning says so.
    let out = platform.fjord(&["scale", "wide", "--min", "3", "--max", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually("the metrics to show 600 MiB", Duration::from_secs(30), || async {
        (sample(&scrape(&metrics_url).await?, unplaceable)? == 600).then_some(())
    })
    .await;
    let log = platform.control_plane.log_text();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(warning)).collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings[1].contains("600 MiB"), "{}", warnings[1]);

    // The demand fits: nothing is beyond the fleet any more.
    let out = platform.fjord(&["scale", "wide", "--min", "2", "--max", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metrics = eventually(
        "the metrics to show nothing unplaceable",
        Duration::from_secs(30),
        || async {
            let metrics = scrape(&metrics_url).await?;
            (sample(&metrics, unplaceable)? == 0).then_some(metrics)
        },
    )
    .await;
    assert_eq!(sample(&metrics, "fjord_pending_instances"), Some(0), "{metrics}");
    eventually("the all-clear in the log", Duration::from_secs(10), || async {
        platform
            .control_plane
            .log_text()
            .contains("node group vps: no pending instance waits beyond its max any more")
            .then_some(())
    })
    .await;
}
