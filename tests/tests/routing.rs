//! Sticky routing across 4 agents: a function stays on its home node while under the load
//! bound, through any lb; overflows to its own next nodes when the home node is loaded past
//! the bound; moves to the next node, without a failed call, when the home node dies; and the
//! dead node is committed down and leaves the routing table.

use fjord_core::hashing::preference_order;
use fjord_tests::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn node_of(answer: &Answer) -> String {
    answer.header("x-fjord-node").unwrap_or_default().to_string()
}

async fn get(url: &str) -> Answer {
    http("GET", url, b"", &[]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_sticks_to_its_home_overflows_in_its_own_order_and_survives_the_home_dying() {
    let mut platform = Platform::start(4).await;
    assert!(platform
        .deploy_example("sticky", "sleep", "concurrency: 1\nmax: 50\nmemory_mib: 32\n")
        .status
        .success());
    let nodes: Vec<String> = (0..4).map(|i| format!("node-{i}")).collect();
    // Every agent offers the same memory, so equal weights: the order is the plain one.
    let order: Vec<String> = preference_order("sticky", &nodes)
        .into_iter()
        .map(|i| nodes[i].clone())
        .collect();
    platform.invoke_when_routable("sticky", "?ms=1", b"", &[]).await;

    // One at a time: always home, through either of two lbs (the order comes from shared state).
    let second_port = free_port();
    let _second_lb = start_lb(
        platform.dir.path(),
        &platform.token_file,
        platform.control_plane_port,
        second_port,
    );
    let second_url = format!("http://127.0.0.1:{second_port}/function/sticky?ms=1");
    eventually("the second lb to route", Duration::from_secs(20), || async {
        http("GET", &second_url, b"", &[])
            .await
            .ok()
            .filter(|a| a.status == 200)
            .map(|_| ())
    })
    .await;
    for _ in 0..20 {
        for url in [platform.lb_url("/function/sticky?ms=1"), second_url.clone()] {
            let answer = get(&url).await;
            assert_eq!(answer.status, 200);
            assert_eq!(node_of(&answer), order[0], "a lone call left its home node");
        }
    }

    // 16 slow calls at once: the home node takes its bounded share, the rest go to the next
    // nodes in this function's own order, the last of them getting the least.
    let url = platform.lb_url("/function/sticky?ms=1500");
    let calls = (0..16).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { get(&url).await })
    });
    let mut served: HashMap<String, usize> = HashMap::new();
    for answer in futures::future::join_all(calls).await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        *served.entry(node_of(&answer)).or_default() += 1;
    }
    let count = |n: &str| served.get(n).copied().unwrap_or(0);
    eprintln!("order {order:?}, served {served:?}");
    assert!(served.len() >= 3, "the load did not spread: {served:?}");
    assert!(
        count(&order[0]) >= count(&order[3]) && count(&order[1]) >= count(&order[3]),
        "{served:?}"
    );
    assert!(
        count(&order[3]) < count(&order[0]),
        "overflow did not follow the function's order: {served:?}"
    );

    // The home node dies: the next call goes to the next node in order, and none fail.
    let home = order[0].trim_start_matches("node-").parse::<usize>().unwrap();
    platform.agents[home].kill9();
    let killed_at = Instant::now();
    for _ in 0..20 {
        let answer = get(&platform.lb_url("/function/sticky?ms=1")).await;
        assert_eq!(
            answer.status,
            200,
            "a call failed after the home node died: {}",
            answer.text()
        );
        assert_eq!(node_of(&answer), order[1]);
    }
    let metrics = get(&platform.lb_url("/metrics")).await.text();
    assert_eq!(
        metric_value::<u64>(&metrics, "fjord_lb_ejections_total"),
        Some(1),
        "{metrics}"
    );

    // The control plane commits the silent node down once its heartbeats stop (3 s here).
    eventually("the dead node to be marked down", Duration::from_secs(20), || async {
        let out = platform.fjord(&["nodes", "--json"]);
        let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        nodes
            .as_array()?
            .iter()
            .any(|n| n["id"] == order[0] && n["state"] == "down")
            .then_some(())
    })
    .await;
    eprintln!("node marked down {:?} after the kill", killed_at.elapsed());
    assert!(
        killed_at.elapsed() >= Duration::from_secs(2),
        "marked down before its heartbeat timeout"
    );
}
