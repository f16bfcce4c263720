//! Scheduled functions on a real 3-member control plane and a real nats-server: each tick of a
//! `* * * * *` schedule is enqueued exactly once, across leader kills, and a bad expression is
//! refused at deploy naming its entry.
//!
//! The members run with `--test-cron-minute 5s`: one minute of a schedule lasts 5 s, so three
//! minutes of ticks take 15 s. A failover (about 2 s with a 600 ms election timeout) is shorter
//! than such a minute, so no tick is missed; a tick missed for longer would fire once, late.

use fjord_events::queue::{Queue, QueueConfig};
use fjord_tests::*;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(5);

async fn queue(nats: &Nats) -> Queue {
    let config = QueueConfig::from_flags(&[format!("nats://127.0.0.1:{}", nats.port)], Some(&nats.token_file), 1)
        .unwrap()
        .unwrap();
    Queue::connect(&config).await.expect("the test reaches nats")
}

/// The ticks fired for `function` (the minutes in the call ids, ascending) and how many
/// messages the queue holds for it (no worker takes them: no lb runs). A tick enqueued twice
/// would be two messages for one record.
async fn fired(queue: &Queue, function: &str) -> (Vec<u64>, u64) {
    // Messages first: a tick fired between the two reads adds a record, never a message.
    let stored = queue.depth(function).await.expect("depth").queued;
    let records = queue.list(function, None, 1000).await.expect("listing calls");
    let mut minutes: Vec<u64> = records
        .iter()
        .map(|r| {
            assert_eq!(r.trigger, "cron", "{r:?}");
            r.id.strip_prefix("cron-")
                .and_then(|m| m.parse().ok())
                .unwrap_or_else(|| panic!("a scheduled call's id is cron-MINUTE: {r:?}"))
        })
        .collect();
    minutes.sort_unstable();
    (minutes, stored)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_per_tick_across_leader_kills() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path()).await;
    let mut extra = nats.flags();
    extra.extend(["--test-cron-minute".to_string(), "5s".to_string()]);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut members = Members::start(3, &extra).await;
    let queue = queue(&nats).await;

    // A bad expression is refused, naming the entry, and nothing is stored.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: tick\ncommand: [\"/bin/true\"]\nschedule: [\"@daily\", \"*/0 * * * *\"]\n",
    )
    .unwrap();
    let out = members.fjord_at(&members.all_urls(), &["deploy", "-f", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad schedule deployed");
    assert!(stderr.contains("schedule[1]"), "the error names the entry: {stderr}");
    let listed = members.fjord_at(&members.all_urls(), &["list", "--json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&listed.stdout).unwrap(),
        serde_json::json!([]),
        "nothing stored"
    );

    let spec = dir.path().join("tick.yaml");
    std::fs::write(
        &spec,
        "name: tick\ncommand: [\"/bin/true\"]\nschedule: [\"* * * * *\"]\n",
    )
    .unwrap();
    let out = members.fjord_at(&members.all_urls(), &["deploy", "-f", spec.to_str().unwrap()]);
    assert!(out.status.success(), "deploy: {}", String::from_utf8_lossy(&out.stderr));

    // The first tick after the deploy.
    let (first, _) = eventually("the first scheduled call", MINUTE * 3, || async {
        let (minutes, stored) = fired(&queue, "tick").await;
        minutes.first().map(|m| (*m, stored))
    })
    .await;

    // Kill the leader twice while the schedule runs.
    for _ in 0..2 {
        let leader = members.leader_seen_by_others(None).expect("a leader");
        members.kill(leader);
        eventually("a new leader", Duration::from_secs(20), || async {
            members.leader_seen_by_others(Some(leader)).filter(|l| *l != leader)
        })
        .await;
        members.start_member(leader);
        tokio::time::sleep(MINUTE / 2).await;
    }

    // Three minutes from the first tick: exactly the ticks first, first+1, first+2 (and the
    // one a slow check may see next), each stored once.
    let (minutes, stored) = eventually("three minutes of ticks", MINUTE * 6, || async {
        let (minutes, stored) = fired(&queue, "tick").await;
        (minutes.iter().filter(|m| **m < first + 3).count() == 3).then_some((minutes, stored))
    })
    .await;
    let in_three: Vec<u64> = minutes.iter().copied().filter(|m| *m < first + 3).collect();
    assert_eq!(
        in_three,
        vec![first, first + 1, first + 2],
        "one call per tick, none missed"
    );
    let mut distinct = minutes.clone();
    distinct.dedup();
    assert_eq!(distinct, minutes, "no tick has two records");
    assert!(
        stored <= minutes.len() as u64 && stored + 1 >= minutes.len() as u64,
        "each tick stored once: {stored} messages for {} ticks ({minutes:?})",
        minutes.len()
    );
    // Consecutive: no gap and no repeat after the kills either.
    for pair in minutes.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "ticks {minutes:?}");
    }

    // `fjord describe` shows the schedule, its next run after its last, and the calls waiting.
    let described = eventually("describe to show the queue", Duration::from_secs(10), || async {
        let out = members.fjord_at(&members.all_urls(), &["describe", "tick", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["queue"]["queued"].as_u64()? >= 3).then_some(v)
    })
    .await;
    assert_eq!(described["spec"]["schedule"], serde_json::json!(["* * * * *"]));
    let (next, last) = (
        described["next_run_ms"].as_u64().expect("a next run"),
        described["last_fired_ms"].as_u64().expect("a last fired tick"),
    );
    assert!(
        next > last && next - last <= MINUTE.as_millis() as u64,
        "next {next}, last {last}"
    );
    assert!(described["queue"]["oldest_age_ms"].as_u64().unwrap() >= MINUTE.as_millis() as u64);
}
