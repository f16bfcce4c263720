//! Static stability through control-plane failover: with three members, two agents and an lb,
//! calls keep succeeding while the leader is killed again and again. A new leader has heard
//! from no agent yet; it must keep publishing the nodes it knows until they had time to find it,
//! and the lb must not swap a table with nodes for one without.

use fjord_tests::*;
use std::time::{Duration, Instant};

const KILLS: usize = 5;

#[tokio::test(flavor = "multi_thread")]
async fn calls_through_the_lb_never_fail_while_the_leader_is_killed_five_times() {
    let mut members = Members::start(3, &[]).await;
    let urls = members.all_urls();
    let dir = members.dir.path().to_path_buf();
    let agents: Vec<Daemon> = (1..=2)
        .map(|i| {
            let id = format!("node-{i}");
            let args: Vec<String> = vec![
                "--node-id".into(),
                id.clone(),
                "--listen".into(),
                format!("127.0.0.1:{}", free_port()),
                "--control-plane".into(),
                urls.clone(),
                "--token-file".into(),
                members.token_file.display().to_string(),
                "--data-dir".into(),
                dir.join(&id).display().to_string(),
                "--memory-mib".into(),
                "1024".into(),
            ];
            Daemon::start(&id, &bin("fjord-node-agent"), &args, dir.join(format!("{id}.log")))
        })
        .collect();
    let lb_port = free_port();
    let lb = Daemon::start(
        "lb",
        &bin("fjord-lb"),
        &[
            "--listen".into(),
            format!("127.0.0.1:{lb_port}"),
            "--control-plane".into(),
            urls.clone(),
            "--token-file".into(),
            members.token_file.display().to_string(),
        ],
        dir.join("lb.log"),
    );
    let logs = |members: &Members| -> String {
        members
            .daemons
            .values()
            .chain(&agents)
            .chain([&lb])
            .map(|d| format!("--- {} ---\n{}", d.name, d.log_text()))
            .collect()
    };

    let spec = dir.join("echo.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: echo\ncommand: [{:?}]\nmemory_mib: 64\nmin: 2\nconcurrency: 8\n",
            bin("fjord-echo").display().to_string()
        ),
    )
    .unwrap();
    let out = members.fjord_at(&urls, &["deploy", "-f", spec.to_str().unwrap()]);
    assert!(out.status.success(), "deploy: {}", String::from_utf8_lossy(&out.stderr));
    let url = format!("http://127.0.0.1:{lb_port}/function/echo");
    eventually_or(
        "echo answering through the lb",
        Duration::from_secs(30),
        || async { http("GET", &url, b"", &[]).await.ok().filter(|a| a.status == 200) },
        || logs(&members),
    )
    .await;

    let load = Load::start(url, 4);
    let mut calls_before = 0;
    for round in 1..=KILLS {
        let old = eventually("a leader", Duration::from_secs(20), || async {
            members.leader_seen_by_others(None)
        })
        .await;
        members.kill(old);
        let killed_at = Instant::now();
        let new = eventually_or(
            &format!("round {round}: a new leader after member {old} was killed"),
            Duration::from_secs(20),
            || async { members.leader_seen_by_others(Some(old)).filter(|l| *l != old) },
            || logs(&members),
        )
        .await;
        // The window that matters: the new leader's first heartbeat timeout (5 s by default),
        // while the agents find it. Calls go on through all of it.
        let quiet_until = killed_at + Duration::from_secs(6);
        while Instant::now() < quiet_until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        members.start_member(old);
        members.wait_for_voters(3).await;
        let calls = load.results.lock().unwrap().len();
        assert!(
            calls > calls_before,
            "round {round}: no call was made while member {new} took over"
        );
        calls_before = calls;
    }
    let results = load.finish().await;
    let failed: Vec<_> = results.iter().filter(|(status, _, _)| *status != 200).take(5).collect();
    assert!(
        failed.is_empty(),
        "{} of {} calls failed across {KILLS} leader kills, e.g. {failed:?}\n{}",
        results.iter().filter(|(s, _, _)| *s != 200).count(),
        results.len(),
        logs(&members)
    );
}
