//! The replicated control plane as real processes on loopback: leader failover, catch-up by
//! snapshot after the log was purged, and membership changes with their refusals.

use fjord_proto::v1 as pb;
use fjord_proto::v1::admin_client::AdminClient;
use fjord_tests::*;
use std::time::{Duration, Instant};

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "fjord failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "fjord succeeded but should not have: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_leader_takes_writes_after_the_leader_is_killed_and_the_old_one_catches_up() {
    let mut members = Members::start(3, &[]).await;
    ok(&members.fjord_at(
        &members.all_urls(),
        &[
            "deploy",
            "-f",
            spec_file(members.dir.path(), "before").to_str().unwrap(),
        ],
    ));

    let old = members.leader_seen_by_others(None).expect("a leader");
    members.kill(old);
    let killed_at = Instant::now();
    let new = eventually("a new leader among the survivors", Duration::from_secs(20), || async {
        members.leader_seen_by_others(Some(old)).filter(|l| *l != old)
    })
    .await;
    // The CLI is given every member; the dead one is skipped.
    let after = spec_file(members.dir.path(), "after");
    eventually(
        "a write to succeed on the new leader",
        Duration::from_secs(20),
        || async {
            members
                .fjord_at(&members.all_urls(), &["deploy", "-f", after.to_str().unwrap()])
                .status
                .success()
                .then_some(())
        },
    )
    .await;
    eprintln!(
        "member {new} leads; first write {:?} after the kill",
        killed_at.elapsed()
    );

    members.start_member(old);
    let leader_applied = members.status(new).unwrap()["applied_index"].as_u64().unwrap();
    eventually("the restarted member to catch up", Duration::from_secs(30), || async {
        let status = members.status(old)?;
        (status["applied_index"].as_u64()? >= leader_applied && status["functions"] == 2 && status["leader_id"] == new)
            .then_some(())
    })
    .await;
    let names = ok(&members.fjord_at(&members.url(old), &["list", "--json"]));
    assert!(names.contains("\"before\"") && names.contains("\"after\""), "{names}");
}

async fn admin(
    url: &str,
) -> AdminClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, impl tonic::service::Interceptor>,
> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    AdminClient::with_interceptor(channel, |mut request: tonic::Request<()>| {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {TEST_TOKEN}").parse().unwrap());
        Ok(request)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_that_missed_10000_writes_catches_up_by_snapshot() {
    let mut members = Members::start(3, &["--snapshot-every", "2000"]).await;
    ok(&members.fjord_at(
        &members.all_urls(),
        &[
            "deploy",
            "-f",
            spec_file(members.dir.path(), "counter").to_str().unwrap(),
        ],
    ));
    let leader = members.leader_seen_by_others(None).unwrap();
    let follower = *members.daemons.keys().find(|id| **id != leader).unwrap();
    let follower_applied = members.status(follower).unwrap()["applied_index"].as_u64().unwrap();
    members.kill(follower);

    // 10,000 committed writes (scale changes), 32 at a time, through the leader.
    let url = members.url(leader);
    let writers = (0..32u32).map(|w| {
        let url = url.clone();
        tokio::spawn(async move {
            let mut client = admin(&url).await;
            // 32 writers x 313 = 10,016 writes.
            for i in 0..313u32 {
                let n = w * 313 + i;
                let request = pb::ScaleRequest {
                    name: "counter".into(),
                    min_instances: Some(0),
                    max_instances: Some(1 + (n % 500)),
                };
                // A write the cluster could not confirm in time, or one sent while the two
                // remaining members elect a leader (a busy machine), is retried with backoff as
                // the error tells a client to: scale is idempotent. A write still failing after
                // a minute is a real failure.
                let (deadline, _) = deadline_within(Duration::from_secs(60));
                let mut backoff = Duration::from_millis(50);
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    match client.scale(request.clone()).await {
                        Ok(_) => break,
                        Err(status)
                            if Instant::now() < deadline
                                && matches!(
                                    status.code(),
                                    tonic::Code::DeadlineExceeded | tonic::Code::Unavailable
                                ) =>
                        {
                            eprintln!("writer {w}: write {i} retried after: {}", status.message());
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                        }
                        Err(status) => panic!("a scale write failed after {attempts} attempts: {status}"),
                    }
                }
            }
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.unwrap();
    }
    let leader_status = eventually("the leader to snapshot and purge", Duration::from_secs(60), || async {
        let s = members.status(leader)?;
        (s["purged_index"].as_u64()? > follower_applied).then_some(s)
    })
    .await;
    assert!(leader_status["applied_index"].as_u64().unwrap() >= follower_applied + 10_000);

    // The entries the follower lacks are gone from every live log: only a snapshot can help.
    members.start_member(follower);
    let target = leader_status["applied_index"].as_u64().unwrap();
    let status = eventually("the follower to catch up", Duration::from_secs(60), || async {
        let s = members.status(follower)?;
        (s["applied_index"].as_u64()? >= target).then_some(s)
    })
    .await;
    assert!(
        status["snapshot_index"].as_u64().unwrap() > follower_applied,
        "the follower did not install a snapshot: {status}"
    );
    assert!(members.data_dir(follower).join("snapshot.bin").exists());
    // Same log position applied means the same state (apply is deterministic); and the follower
    // answers with the leader's last value.
    let leader_view = ok(&members.fjord_at(&members.url(leader), &["describe", "counter", "--json"]));
    members.kill(leader);
    let survivor_view = eventually("a read after the leader is gone", Duration::from_secs(20), || async {
        let out = members.fjord_at(&members.url(follower), &["describe", "counter", "--json"]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .await;
    let spec = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap()["spec"].clone();
    assert_eq!(spec(&leader_view), spec(&survivor_view));
}

#[tokio::test(flavor = "multi_thread")]
async fn members_are_added_and_removed_and_bad_changes_are_refused() {
    let mut members = Members::start(3, &[]).await;
    let urls = members.all_urls();

    members.start_member(4);
    let addr = format!("127.0.0.1:{}", members.ports[&4]);
    // The new member must be listening before the leader will add it.
    eventually("member 4 to listen", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(&addr).await.ok().map(|_| ())
    })
    .await;
    ok(&members.fjord_at(&urls, &["cluster", "add", "4", &addr]));
    members.wait_for_voters(4).await;
    assert!(err(&members.fjord_at(&urls, &["cluster", "add", "4", &addr])).contains("already in the cluster"));

    ok(&members.fjord_at(&urls, &["cluster", "remove", "4"]));
    members.wait_for_voters(3).await;
    members.kill(4);
    let refused = err(&members.fjord_at(&urls, &["cluster", "add", "4", &addr]));
    assert!(refused.contains("never reused"), "{refused}");
    assert!(err(&members.fjord_at(&urls, &["cluster", "remove", "9"])).contains("no member 9"));
    assert!(err(&members.fjord_at(&urls, &["cluster", "add", "7", "127.0.0.1:1"])).contains("does not answer"));

    // With member 3 down, removing member 2 would leave voters {1, 3} with only one reachable.
    let leader = members.leader_seen_by_others(None).unwrap();
    let victim = *members.daemons.keys().find(|id| **id != leader).unwrap();
    let other = *members
        .daemons
        .keys()
        .find(|id| **id != leader && **id != victim)
        .unwrap();
    members.kill(victim);
    let refused = err(&members.fjord_at(&members.url(leader), &["cluster", "remove", &other.to_string()]));
    assert!(refused.contains("quorum"), "{refused}");
    let status = members.status(leader).unwrap();
    assert_eq!(
        status["members"].as_array().unwrap().len(),
        3,
        "a refused change altered the membership: {status}"
    );
}
