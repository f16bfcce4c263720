//! The replicated control plane's numbers, on a 3-member cluster of real processes on loopback:
//!
//! - failover: from `kill -9` of the leader to the first committed write (20 kills);
//! - write throughput: scale operations per second, 1 client and 32 clients, 10 s each;
//! - memory of an idle member (VmRSS).
//!
//! Run: `cargo bench -p fjord-tests --bench control_plane` (builds the release binaries first
//! with `cargo build --release --bins` if you want release figures; it uses the profile it was
//! built with).

use fjord_proto::v1 as pb;
use fjord_proto::v1::admin_client::AdminClient;
use fjord_tests::*;
use std::time::{Duration, Instant};

fn authed<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TEST_TOKEN}").parse().unwrap());
    request.set_timeout(timeout);
    request
}

fn connect(url: &str) -> AdminClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect_timeout(Duration::from_millis(200))
        .connect_lazy();
    AdminClient::new(channel)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

async fn scale(url: &str, max: u32, timeout: Duration) -> bool {
    let request = pb::ScaleRequest {
        name: "bench".into(),
        min_instances: None,
        max_instances: Some(max),
    };
    connect(url).scale(authed(request, timeout)).await.is_ok()
}

#[tokio::main]
async fn main() {
    for election_timeout in ["600ms", "250ms"] {
        measure(election_timeout).await;
    }
}

async fn measure(election_timeout: &str) {
    let mut members = Members::start(3, &["--election-timeout", election_timeout]).await;
    let spec = spec_file(members.dir.path(), "bench");
    let out = members.fjord_at(&members.all_urls(), &["deploy", "-f", spec.to_str().unwrap()]);
    assert!(out.status.success());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle: Vec<(u64, u64)> = members.daemons.iter().map(|(id, d)| (*id, rss_kib(d.pid()))).collect();

    // Write throughput, against the leader.
    let leader = members.leader_seen_by_others(None).unwrap();
    let leader_url = members.url(leader);
    let mut throughput = Vec::new();
    for clients in [1usize, 32] {
        let deadline = Instant::now() + Duration::from_secs(10);
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let url = leader_url.clone();
                tokio::spawn(async move {
                    let mut client = connect(&url);
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        let request = pb::ScaleRequest {
                            name: "bench".into(),
                            min_instances: None,
                            max_instances: Some(1 + ((c as u32 * 7919 + done as u32) % 900)),
                        };
                        if client.scale(authed(request, Duration::from_secs(5))).await.is_ok() {
                            done += 1;
                        }
                    }
                    done
                })
            })
            .collect();
        let total: u64 = futures::future::join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .sum();
        throughput.push((clients, total as f64 / 10.0));
    }

    // Failover: kill the leader, time the first committed write on the survivors.
    let mut failovers = Vec::new();
    for round in 0..20u32 {
        let leader = members.leader_seen_by_others(None).unwrap();
        let survivors: Vec<String> = members
            .ports
            .keys()
            .filter(|id| **id != leader)
            .map(|id| members.url(*id))
            .collect();
        members.kill(leader);
        let killed = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if scale(&survivors[attempt as usize % 2], 1 + round, Duration::from_millis(300)).await {
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(30),
                "no write succeeded within 30 s of a leader kill"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        failovers.push(killed.elapsed());
        members.start_member(leader);
        members.wait_for_voters(3).await;
        // Let the restarted member catch up before the next kill.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    failovers.sort();

    println!(
        "\nFjord control plane, 3 members on loopback ({} build), --election-timeout {election_timeout}",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    println!("  failover, leader kill -9 -> first committed write, 20 kills:");
    println!(
        "    p50 {:>6} ms   max {:>6} ms   (min {} ms; etcd's default election timeout is 1000 ms)",
        percentile(&failovers, 0.5).as_millis(),
        failovers.last().unwrap().as_millis(),
        failovers[0].as_millis()
    );
    println!("  write throughput (scale operations, committed on a majority, fsync'd):");
    for (clients, rate) in throughput {
        println!("    {clients:>2} client(s): {rate:>8.0} writes/s");
    }
    println!("  idle member memory (VmRSS):");
    for (id, kib) in idle {
        println!("    member {id}: {:.1} MiB", kib as f64 / 1024.0);
    }
}
