//! A history check under chaos: clients deploy, scale, read and remove functions for 60 s while
//! control-plane members are killed (-9) and restarted at random. Afterwards every acknowledged
//! write must be present, and every read must be consistent with real time: for each key (a
//! function's `max`, a register), a read returns a value written by a write that began before
//! the read ended, never a value that an acknowledged write had overwritten before the read
//! began, and reads never go back in time.

use fjord_proto::v1 as pb;
use fjord_proto::v1::admin_client::AdminClient;
use fjord_tests::*;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Acknowledged,
    /// Failed or timed out: it may or may not have taken effect, at any time after it began
    /// (a proposal the leader accepted is applied whether or not the client still waits).
    Unknown,
}

#[derive(Debug, Clone)]
struct Write {
    key: String,
    value: u32,
    start: Instant,
    end: Instant,
    outcome: Outcome,
}

#[derive(Debug, Clone)]
struct Read {
    key: String,
    value: u32,
    start: Instant,
    end: Instant,
}

impl Write {
    /// The latest moment the write can have taken effect: its answer if acknowledged; for an
    /// unknown outcome, any time after it began.
    fn effective_by(&self) -> Option<Instant> {
        (self.outcome == Outcome::Acknowledged).then_some(self.end)
    }
}

/// Checks single-key register histories; returns the violations found.
fn check(writes: &[Write], reads: &[Read]) -> Vec<String> {
    let mut violations = Vec::new();
    let by_value: HashMap<(&str, u32), &Write> = writes.iter().map(|w| ((w.key.as_str(), w.value), w)).collect();
    for r in reads {
        let Some(w) = by_value.get(&(r.key.as_str(), r.value)) else {
            violations.push(format!("read of {} returned {}, which no write wrote", r.key, r.value));
            continue;
        };
        if w.start > r.end {
            violations.push(format!("read of {} returned {} before its write began", r.key, r.value));
        }
        let overwritten = |n: &&Write| {
            n.key == r.key
                && n.outcome == Outcome::Acknowledged
                && w.effective_by().is_some_and(|by| n.start > by)
                && n.end < r.start
        };
        if let Some(newer) = writes.iter().find(overwritten) {
            violations.push(format!(
                "stale read of {}: returned {} although {} was acknowledged before the read began",
                r.key, r.value, newer.value
            ));
        }
    }
    for r1 in reads {
        for r2 in reads
            .iter()
            .filter(|r2| r2.key == r1.key && r2.start > r1.end && r2.value != r1.value)
        {
            let (Some(w1), Some(w2)) = (
                by_value.get(&(r1.key.as_str(), r1.value)),
                by_value.get(&(r2.key.as_str(), r2.value)),
            ) else {
                continue;
            };
            if w2.effective_by().is_some_and(|by| by < w1.start) {
                violations.push(format!(
                    "reads of {} went back in time: {} then {}",
                    r1.key, r1.value, r2.value
                ));
            }
        }
    }
    violations
}

#[test]
fn the_checker_catches_stale_and_backward_reads() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let w = |value, s, e| Write {
        key: "k".into(),
        value,
        start: at(s),
        end: at(e),
        outcome: Outcome::Acknowledged,
    };
    let r = |value, s, e| Read {
        key: "k".into(),
        value,
        start: at(s),
        end: at(e),
    };
    let writes = vec![w(1, 0, 10), w(2, 20, 30)];
    assert!(check(&writes, &[r(1, 11, 12), r(2, 31, 32)]).is_empty());
    assert!(
        check(&writes, &[r(1, 25, 26)]).is_empty(),
        "a read concurrent with a write may see either value"
    );
    assert!(check(&writes, &[r(1, 40, 41)]).iter().any(|v| v.contains("stale")));
    assert!(check(&writes, &[r(2, 25, 26), r(1, 27, 28)])
        .iter()
        .any(|v| v.contains("back in time")));
    assert!(check(&writes, &[r(9, 0, 1)]).iter().any(|v| v.contains("no write")));

    // A write whose client gave up may take effect later, even after a newer acknowledged one.
    let mut unknown = w(3, 40, 50);
    unknown.outcome = Outcome::Unknown;
    let writes = vec![w(1, 0, 10), unknown.clone(), w(4, 60, 70)];
    assert!(
        check(&writes, &[r(4, 71, 72), r(3, 80, 81)]).is_empty(),
        "an unknown write applied late is not a stale read"
    );
    let mut acknowledged = unknown;
    acknowledged.outcome = Outcome::Acknowledged;
    let writes = vec![w(1, 0, 10), acknowledged, w(4, 60, 70)];
    assert!(
        check(&writes, &[r(4, 71, 72), r(3, 80, 81)])
            .iter()
            .any(|v| v.contains("stale")),
        "an acknowledged write cannot come back after a newer one"
    );
}

type Client = AdminClient<tonic::transport::Channel>;

fn authed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TEST_TOKEN}").parse().unwrap());
    request.set_timeout(Duration::from_secs(8));
    request
}

fn connect(url: &str) -> Client {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(8))
        .connect_lazy();
    AdminClient::new(channel)
}

fn spec(name: &str, max: u32) -> pb::FunctionSpec {
    let mut spec = fjord_core::FunctionSpec::with_command(name, vec!["/bin/true".into()]);
    spec.max = max;
    (&spec).into()
}

#[derive(Default)]
struct History {
    writes: Vec<Write>,
    reads: Vec<Read>,
    deployed: Vec<(String, Outcome)>,
    removed: Vec<(String, Outcome)>,
}

const KEYS: usize = 4;

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_random_member_kills_and_reads_respect_real_time() {
    let mut members = Members::start(3, &[]).await;
    let urls: Vec<String> = members.ports.keys().map(|id| members.url(*id)).collect();
    let history = Arc::new(Mutex::new(History::default()));
    let setup_start = Instant::now();
    for k in 0..KEYS {
        let name = format!("k{k}");
        let mut client = connect(&urls[0]);
        client
            .deploy(authed(pb::DeployRequest {
                spec: Some(spec(&name, 1)),
                defaulted: Vec::new(),
            }))
            .await
            .unwrap();
        history.lock().unwrap().writes.push(Write {
            key: name,
            value: 1,
            start: setup_start,
            end: Instant::now(),
            outcome: Outcome::Acknowledged,
        });
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    let next_value = Arc::new(std::sync::atomic::AtomicU32::new(2));
    let clients: Vec<_> = (0..6u64)
        .map(|c| {
            let urls = urls.clone();
            let history = history.clone();
            let next_value = next_value.clone();
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(c);
                let mut n = 0;
                while Instant::now() < deadline {
                    n += 1;
                    let mut client = connect(&urls[rng.random_range(0..urls.len())]);
                    let key = format!("k{}", rng.random_range(0..KEYS));
                    let roll = rng.random_range(0..100);
                    let start = Instant::now();
                    if roll < 40 {
                        let value = next_value.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let request = pb::ScaleRequest {
                            name: key.clone(),
                            min_instances: None,
                            max_instances: Some(value),
                        };
                        let outcome = match client.scale(authed(request)).await {
                            Ok(_) => Outcome::Acknowledged,
                            Err(_) => Outcome::Unknown,
                        };
                        history.lock().unwrap().writes.push(Write {
                            key,
                            value,
                            start,
                            end: Instant::now(),
                            outcome,
                        });
                    } else if roll < 85 {
                        if let Ok(reply) = client
                            .get_function(authed(pb::GetFunctionRequest { name: key.clone() }))
                            .await
                        {
                            let value = reply.into_inner().record.unwrap().spec.unwrap().max_instances;
                            history.lock().unwrap().reads.push(Read {
                                key,
                                value,
                                start,
                                end: Instant::now(),
                            });
                        }
                    } else if roll < 95 {
                        let name = format!("d-{c}-{n}");
                        let outcome = match client
                            .deploy(authed(pb::DeployRequest {
                                spec: Some(spec(&name, 1)),
                                defaulted: Vec::new(),
                            }))
                            .await
                        {
                            Ok(_) => Outcome::Acknowledged,
                            Err(_) => Outcome::Unknown,
                        };
                        history.lock().unwrap().deployed.push((name, outcome));
                    } else {
                        let name = format!("r-{c}-{n}");
                        if client
                            .deploy(authed(pb::DeployRequest {
                                spec: Some(spec(&name, 1)),
                                defaulted: Vec::new(),
                            }))
                            .await
                            .is_ok()
                        {
                            let outcome = match client
                                .remove_function(authed(pb::RemoveFunctionRequest { name: name.clone() }))
                                .await
                            {
                                Ok(_) => Outcome::Acknowledged,
                                Err(_) => Outcome::Unknown,
                            };
                            history.lock().unwrap().removed.push((name, outcome));
                        }
                    }
                }
            })
        })
        .collect();

    // Chaos: one member at a time is killed with SIGKILL and restarted a moment later.
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut kills = 0;
    while Instant::now() + Duration::from_secs(6) < deadline {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1500..3500))).await;
        let victim = rng.random_range(1..=3u64);
        members.kill(victim);
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2000))).await;
        members.start_member(victim);
    }
    for client in clients {
        client.await.unwrap();
    }
    members.wait_for_voters(3).await;

    // Final reads, once the cluster is whole again.
    let all = members.all_urls();
    let final_state: BTreeMap<String, pb::FunctionStatus> =
        eventually("a final listing", Duration::from_secs(30), || async {
            let mut client = connect(all.split(',').next().unwrap());
            let listed = client
                .list_functions(authed(pb::ListFunctionsRequest {
                    page_size: 1000,
                    ..Default::default()
                }))
                .await
                .ok()?
                .into_inner();
            Some(
                listed
                    .functions
                    .into_iter()
                    .map(|f| (f.record.clone().unwrap().spec.unwrap().name, f))
                    .collect(),
            )
        })
        .await;
    let mut h = history.lock().unwrap();
    let now = Instant::now();
    for k in 0..KEYS {
        let key = format!("k{k}");
        let value = final_state[&key].record.clone().unwrap().spec.unwrap().max_instances;
        h.reads.push(Read {
            key,
            value,
            start: now,
            end: now,
        });
    }
    let mut violations = check(&h.writes, &h.reads);
    for (name, outcome) in &h.deployed {
        if *outcome == Outcome::Acknowledged && !final_state.contains_key(name) {
            violations.push(format!("acknowledged deploy of {name} was lost"));
        }
    }
    for (name, outcome) in &h.removed {
        if *outcome == Outcome::Acknowledged && final_state.contains_key(name) {
            violations.push(format!("acknowledged remove of {name} did not hold"));
        }
    }
    let acknowledged = h.writes.iter().filter(|w| w.outcome == Outcome::Acknowledged).count();
    eprintln!(
        "history: {kills} kills, {acknowledged} acknowledged scale writes, {} unknown, {} reads, {} deploys, {} removes",
        h.writes.len() - acknowledged,
        h.reads.len(),
        h.deployed.len(),
        h.removed.len()
    );
    assert!(
        acknowledged > 100 && h.reads.len() > 100,
        "too little traffic to mean anything"
    );
    assert!(
        violations.is_empty(),
        "{} violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
}
