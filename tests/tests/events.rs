//! Asynchronous calls end to end on real processes and a real nats-server: enqueue at the lb,
//! delivery by its workers through the normal routing path, retries, dead letters, callbacks,
//! call records, refusals, and a queue that crashes with calls in it.

use bytes::Bytes;
use fjord_tests::*;
use http_body_util::Full;
use hyper::body::Incoming;
use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The callbacks a test's receiver got.
#[derive(Default)]
struct Callbacks {
    /// call id -> (X-Function-Status, body, times received).
    seen: Mutex<HashMap<String, (String, String, u32)>>,
}

/// Serves callbacks on a loopback port until the test ends; returns its URL.
async fn callback_receiver() -> (String, Arc<Callbacks>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/done", listener.local_addr().unwrap());
    let callbacks = Arc::new(Callbacks::default());
    let shared = callbacks.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                    let shared = shared.clone();
                    async move {
                        use http_body_util::BodyExt;
                        let header = |name: &str| {
                            request
                                .headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string()
                        };
                        let (id, status) = (header("x-call-id"), header("x-function-status"));
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let mut seen = shared.seen.lock().unwrap();
                        let entry = seen.entry(id).or_insert((String::new(), String::new(), 0));
                        *entry = (status, String::from_utf8_lossy(&body).into_owned(), entry.2 + 1);
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, callbacks)
}

/// Lines `{call id} {attempt}` the jobs function wrote.
fn attempts_logged(log: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (id, attempt) = line.split_once(' ')?;
            Some((id.to_string(), attempt.parse().ok()?))
        })
        .collect()
}

async fn enqueue(platform: &Platform, name: &str, body: &[u8], headers: &[(&str, &str)]) -> Answer {
    http(
        "POST",
        &platform.lb_url(&format!("/async-function/{name}")),
        body,
        headers,
    )
    .await
    .expect("the lb answers")
}

async fn record(platform: &Platform, id: &str) -> serde_json::Value {
    let answer = http("GET", &platform.lb_url(&format!("/async-calls/{id}")), b"", &[])
        .await
        .expect("the lb answers");
    assert_eq!(answer.status, 200, "looking up call {id}: {}", answer.text());
    answer.json()
}

/// Ready and starting instances of a function, over its nodes.
fn instances(platform: &Platform, name: &str) -> u64 {
    let out = platform.fjord(&["describe", name, "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    status["instances"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|n| n["ready"].as_u64().unwrap_or(0) + n["starting"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(u64::MAX)
}

async fn wait_at_zero(platform: &Platform, name: &str, within: Duration) {
    eventually_or(
        &format!("{name} to scale to zero"),
        within,
        || async { (instances(platform, name) == 0).then_some(()) },
        || platform.all_logs(),
    )
    .await;
}

/// `fjord calls ...` as JSON.
fn calls_cli(platform: &Platform, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["calls"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = platform.fjord(&all);
    assert!(
        out.status.success(),
        "fjord {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

async fn wait_state(platform: &Platform, id: &str, state: &str, within: Duration) -> serde_json::Value {
    let last = std::sync::Mutex::new(serde_json::Value::Null);
    eventually_or(
        &format!("call {id} to be {state}"),
        within,
        || async {
            let r = record(platform, id).await;
            *last.lock().unwrap() = r.clone();
            (r["state"] == state).then_some(r)
        },
        || format!("last record: {}\n{}", last.lock().unwrap(), platform.all_logs()),
    )
    .await
}

async fn platform_with_queue(dir: &Path, lb_flags: &[&str]) -> (Nats, Platform) {
    let nats = Nats::start(dir).await;
    let mut flags: Vec<String> = nats.flags();
    flags.extend(lb_flags.iter().map(|f| f.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    // The control plane reads the queue too (depth, `fjord calls`).
    let platform = Platform::start_full(2, 4096, &flags, &flags[..4]).await;
    (nats, platform)
}

fn deploy_jobs(platform: &Platform, name: &str, log: &Path, extra: &str) {
    let out = platform.deploy_example(
        name,
        "jobs",
        &format!(
            "env: {{JOBS_LOG: {:?}}}\nconcurrency: 4\nmax: 10\n{extra}",
            log.display().to_string()
        ),
    );
    assert!(
        out.status.success(),
        "deploy {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_queued_calls_are_each_delivered_once_and_called_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, platform) = platform_with_queue(dir.path(), &[]).await;
    let log = dir.path().join("jobs.log");
    deploy_jobs(
        &platform,
        "jobs",
        &log,
        "async: {concurrency: 16}\nscale_to_zero_after: 2s\n",
    );
    // Routable first: an enqueue for a function the lb does not know yet is a 404.
    let warm = platform.invoke_when_routable("jobs", "/", b"", &[]).await;
    assert_eq!(warm.status, 200, "{}", warm.text());
    let _ = std::fs::remove_file(&log);
    // The calls find it at zero (seen running first, so zero is not a report not yet made).
    eventually("the warm instance to be reported", Duration::from_secs(20), || async {
        (instances(&platform, "jobs") >= 1).then_some(())
    })
    .await;
    wait_at_zero(&platform, "jobs", Duration::from_secs(30)).await;

    let (callback_url, callbacks) = callback_receiver().await;
    let mut ids = Vec::new();
    for i in 0..1000 {
        let body = format!("job {i}");
        let answer = enqueue(&platform, "jobs", body.as_bytes(), &[("x-callback-url", &callback_url)]).await;
        assert_eq!(answer.status, 202, "enqueue {i}: {}", answer.text());
        let id = answer.header("x-call-id").expect("a call id on every 202").to_string();
        assert_eq!(answer.json()["call_id"], id.as_str());
        ids.push(id);
    }
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 1000, "every call got its own id");

    eventually_or(
        "every call called back",
        Duration::from_secs(120),
        || async { (callbacks.seen.lock().unwrap().len() >= 1000).then_some(()) },
        || {
            format!(
                "{} callbacks so far\n{}",
                callbacks.seen.lock().unwrap().len(),
                platform.all_logs()
            )
        },
    )
    .await;
    let logged = attempts_logged(&log);
    let mut per_call: HashMap<&str, u32> = HashMap::new();
    for (id, _) in &logged {
        *per_call.entry(id.as_str()).or_default() += 1;
    }
    for id in &ids {
        assert_eq!(
            per_call.get(id.as_str()),
            Some(&1),
            "call {id} reached the function once"
        );
    }
    assert_eq!(logged.len(), 1000, "no call reached the function twice");
    let seen = callbacks.seen.lock().unwrap().clone();
    for id in &ids {
        let (status, body, times) = &seen[id];
        assert_eq!((status.as_str(), *times), ("200", 1), "callback of {id}");
        assert_eq!(
            body.trim(),
            format!("done {id}"),
            "the callback carries the function's body"
        );
    }
    let r = record(&platform, &ids[500]).await;
    assert_eq!(r["state"], "succeeded", "{r}");
    assert_eq!(r["attempts"], 1, "{r}");
    assert_eq!(r["status"], 200, "{r}");
    assert!(
        r["callback"].as_str().unwrap_or_default().starts_with("delivered"),
        "{r}"
    );

    let metrics = http("GET", &platform.lb_url("/metrics"), b"", &[])
        .await
        .unwrap()
        .text();
    assert_eq!(
        metric_value::<u64>(&metrics, "fjord_lb_async_enqueued_total{function=\"jobs\"}"),
        Some(1000)
    );
    assert_eq!(
        metric_value::<u64>(&metrics, "fjord_lb_async_delivered_total{function=\"jobs\"}"),
        Some(1000)
    );
    assert_eq!(
        metric_value::<u64>(&metrics, "fjord_lb_async_duplicates_total{function=\"jobs\"}"),
        Some(0)
    );
    // The backlog gone, the function goes back to zero.
    wait_at_zero(&platform, "jobs", Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_calls_are_retried_then_dead_lettered_and_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, platform) = platform_with_queue(dir.path(), &[]).await;
    let log = dir.path().join("flaky.log");
    deploy_jobs(
        &platform,
        "flaky",
        &log,
        "async: {concurrency: 1, max_attempts: 3, min_backoff: 100ms, max_backoff: 1s}\nsecrets: []\n",
    );
    let out = platform.deploy_example(
        "doomed",
        "jobs",
        "env: {FAIL_ATTEMPTS: '100'}\nasync: {max_attempts: 2, min_backoff: 100ms, max_backoff: 1s}\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = platform.deploy_example(
        "twice",
        "jobs",
        &format!(
            "env: {{FAIL_ATTEMPTS: '2', JOBS_LOG: {:?}}}\nasync: {{max_attempts: 3, min_backoff: 100ms, max_backoff: 1s}}\n",
            log.display().to_string()
        ),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for name in ["flaky", "doomed", "twice"] {
        platform.invoke_when_routable(name, "/", b"", &[]).await;
    }
    let _ = std::fs::remove_file(&log);

    // Fails twice with 503, succeeds on the third attempt.
    let answer = enqueue(&platform, "twice", b"x", &[("x-call-id", "order-1")]).await;
    assert_eq!(answer.status, 202, "{}", answer.text());
    assert_eq!(answer.header("x-call-id"), Some("order-1"), "a sane caller id is kept");
    let r = wait_state(&platform, "order-1", "succeeded", Duration::from_secs(30)).await;
    assert_eq!(r["attempts"], 3, "{r}");
    let attempts: Vec<u32> = attempts_logged(&log)
        .into_iter()
        .filter(|(id, _)| id == "order-1")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(attempts, vec![1, 2, 3]);

    // The same id again within the window is the same call: stored and run once.
    let again = enqueue(&platform, "twice", b"x", &[("x-call-id", "order-1")]).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.json()["duplicate"], true, "{}", again.text());

    // Always failing: dead after max_attempts, with its last status.
    let answer = enqueue(&platform, "doomed", b"y", &[]).await;
    assert_eq!(answer.status, 202);
    let id = answer.header("x-call-id").unwrap().to_string();
    let r = wait_state(&platform, &id, "dead", Duration::from_secs(30)).await;
    assert_eq!(r["attempts"], 2, "{r}");
    assert_eq!(r["status"], 503, "{r}");
    assert!(
        r["dead_sequence"].as_u64().is_some(),
        "the call is in the dead letters: {r}"
    );
    assert!(r["error"].as_str().unwrap().contains("attempt 2 of 2"), "{r}");
    let cancel = http("DELETE", &platform.lb_url(&format!("/async-calls/{id}")), b"", &[])
        .await
        .unwrap();
    assert_eq!(cancel.status, 409, "a dead call cannot be cancelled: {}", cancel.text());

    // `fjord calls`: the dead call listed and shown; once the function is fixed, retried.
    let dead = calls_cli(&platform, &["doomed", "--state", "dead"]);
    assert_eq!(dead.as_array().map(Vec::len), Some(1), "{dead}");
    assert_eq!(dead[0]["id"], id.as_str());
    let shown = calls_cli(&platform, &["show", &id]);
    assert_eq!(
        (shown["state"].as_str(), shown["status"].as_u64()),
        (Some("dead"), Some(503)),
        "{shown}"
    );
    let out = platform.fjord(&["calls", "cancel", &id]);
    assert!(!out.status.success(), "a dead call cannot be cancelled");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dead"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fixed = platform.deploy_example(
        "doomed",
        "jobs",
        "env: {FAIL_ATTEMPTS: '0'}\nasync: {max_attempts: 2, min_backoff: 100ms, max_backoff: 1s}\n",
    );
    assert!(fixed.status.success(), "{}", String::from_utf8_lossy(&fixed.stderr));
    // The deploy is stored at once but reaches the nodes moments later: retry once the fixed
    // revision answers, or both attempts may still meet the failing one.
    eventually_or(
        "the fixed doomed to answer 200",
        Duration::from_secs(20),
        || async {
            let answer = http("POST", &platform.lb_url("/function/doomed/"), b"", &[])
                .await
                .ok()?;
            (answer.status == 200).then_some(())
        },
        || platform.all_logs(),
    )
    .await;
    let out = platform.fjord(&["calls", "retry", &id]);
    assert!(out.status.success(), "retry: {}", String::from_utf8_lossy(&out.stderr));
    let r = wait_state(&platform, &id, "succeeded", Duration::from_secs(30)).await;
    assert_eq!(
        (r["attempts"].as_u64(), r["status"].as_u64()),
        (Some(1), Some(200)),
        "{r}"
    );
    let out = platform.fjord(&["calls", "show", "never-made"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no call \"never-made\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A call waiting behind a slow one (concurrency 1) is cancelled before it starts.
    let slow = http(
        "POST",
        &platform.lb_url("/async-function/flaky/?ms=3000"),
        b"slow",
        &[("x-call-id", "slow-1")],
    )
    .await
    .unwrap();
    assert_eq!(slow.status, 202, "{}", slow.text());
    wait_state(&platform, "slow-1", "running", Duration::from_secs(20)).await;
    let behind = enqueue(&platform, "flaky", b"behind", &[("x-call-id", "behind-1")]).await;
    assert_eq!(behind.status, 202);
    let cancelled = calls_cli(&platform, &["flaky", "--state", "queued"]);
    assert_eq!(cancelled[0]["id"], "behind-1", "{cancelled}");
    let out = platform.fjord(&["calls", "cancel", "behind-1"]);
    assert!(out.status.success(), "cancel: {}", String::from_utf8_lossy(&out.stderr));
    wait_state(&platform, "slow-1", "succeeded", Duration::from_secs(20)).await;
    let r = record(&platform, "behind-1").await;
    assert_eq!(r["state"], "cancelled", "{r}");
    // Nothing left in the queue for flaky: the worker took the cancelled call and dropped it.
    eventually_or(
        "flaky's queue to be empty",
        Duration::from_secs(20),
        || async {
            let out = platform.fjord(&["describe", "flaky", "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (v["queue"]["queued"] == 0 && v["queue"]["in_flight"] == 0).then_some(())
        },
        || platform.all_logs(),
    )
    .await;
    assert!(
        !attempts_logged(&log).iter().any(|(id, _)| id == "behind-1"),
        "a cancelled call never runs"
    );

    // Refusals, each naming what was wrong, none storing anything.
    let unknown = enqueue(&platform, "nope", b"", &[]).await;
    assert_eq!(
        (unknown.status, unknown.json()["code"].as_str()),
        (404, Some("function_not_found"))
    );
    let big = vec![b'x'; 1024 * 1024 + 1];
    let too_big = enqueue(&platform, "flaky", &big, &[]).await;
    assert_eq!(too_big.status, 413, "{}", too_big.text());
    let bad_url = enqueue(&platform, "flaky", b"", &[("x-callback-url", "ftp://example.com/x")]).await;
    assert_eq!(
        (bad_url.status, bad_url.json()["code"].as_str()),
        (400, Some("bad_callback_url"))
    );
    let metadata = enqueue(
        &platform,
        "flaky",
        b"",
        &[("x-callback-url", "http://169.254.169.254/latest")],
    )
    .await;
    assert_eq!(metadata.status, 400, "{}", metadata.text());
    let bad_id = enqueue(&platform, "flaky", b"", &[("x-call-id", "a.b")]).await;
    assert_eq!(
        (bad_id.status, bad_id.json()["code"].as_str()),
        (400, Some("bad_call_id"))
    );
    let missing = http("GET", &platform.lb_url("/async-calls/never-made"), b"", &[])
        .await
        .unwrap();
    assert_eq!(missing.status, 404, "{}", missing.text());
    let metrics = http("GET", &platform.lb_url("/metrics"), b"", &[])
        .await
        .unwrap()
        .text();
    assert_eq!(
        metric_value::<u64>(&metrics, "fjord_lb_async_enqueued_total{function=\"flaky\"}"),
        Some(2),
        "nothing stored for flaky's refused calls"
    );
    assert_eq!(
        metric_value::<u64>(&metrics, "fjord_lb_async_dead_lettered_total{function=\"doomed\"}"),
        Some(1)
    );
    assert_eq!(
        metric_value::<u64>(&metrics, "fjord_lb_async_retried_total{function=\"twice\"}"),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_queued_when_nats_is_killed_are_delivered_after_it_returns_and_sync_calls_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nats, platform) = platform_with_queue(dir.path(), &["--async-ack-wait", "2s"]).await;
    let log = dir.path().join("slow.log");
    deploy_jobs(&platform, "slow", &log, "async: {concurrency: 1}\n");
    platform.invoke_when_routable("slow", "/", b"", &[]).await;
    let _ = std::fs::remove_file(&log);
    let mut ids = Vec::new();
    for _ in 0..40 {
        let answer = http("POST", &platform.lb_url("/async-function/slow?ms=50"), b"", &[])
            .await
            .unwrap();
        assert_eq!(answer.status, 202, "{}", answer.text());
        ids.push(answer.header("x-call-id").unwrap().to_string());
    }
    // One at a time, 50 ms each: most are still queued when the server dies.
    nats.kill9();
    let refused = enqueue(&platform, "slow", b"", &[]).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json()["code"], "queue_unavailable", "{}", refused.text());
    let sync = http("POST", &platform.lb_url("/function/slow?ms=1"), b"", &[])
        .await
        .unwrap();
    assert_eq!(
        sync.status,
        200,
        "synchronous calls do not need the queue: {}",
        sync.text()
    );

    nats.restart().await;
    eventually_or(
        "every call acknowledged before the crash to reach the function",
        Duration::from_secs(90),
        || async {
            let reached: std::collections::HashSet<String> =
                attempts_logged(&log).into_iter().map(|(id, _)| id).collect();
            ids.iter().all(|id| reached.contains(id)).then_some(())
        },
        || format!("{} lines logged\n{}", attempts_logged(&log).len(), platform.all_logs()),
    )
    .await;
    let logged = attempts_logged(&log);
    let duplicates = logged.len() - ids.len();
    // At least once: a call in flight when the server died may run again; no more than the
    // one in flight (concurrency 1) plus the one the lb had taken.
    assert!(duplicates <= 2, "{duplicates} calls ran twice: {logged:?}");
    for id in &ids {
        wait_state(&platform, id, "succeeded", Duration::from_secs(30)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_in_flight_when_the_lb_is_killed_are_delivered_again_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    // A short acknowledgement wait, so calls of the killed lb come back within seconds.
    let lb_flags = ["--async-ack-wait", "3s"];
    let (nats, mut platform) = platform_with_queue(dir.path(), &lb_flags).await;
    let log = dir.path().join("steady.log");
    deploy_jobs(&platform, "steady", &log, "async: {concurrency: 4}\n");
    platform.invoke_when_routable("steady", "/", b"", &[]).await;
    let _ = std::fs::remove_file(&log);

    let ids: Vec<String> = (0..20).map(|i| format!("job-{i}")).collect();
    for id in &ids {
        let answer = http(
            "POST",
            &platform.lb_url("/async-function/steady/?ms=1000"),
            b"work",
            &[("x-call-id", id)],
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 202, "{}", answer.text());
    }
    wait_state(&platform, "job-0", "running", Duration::from_secs(20)).await;
    platform.lb.kill9();
    let mut flags = nats.flags();
    flags.extend(lb_flags.iter().map(|f| f.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    platform.lb = start_lb_with(
        platform.dir.path(),
        &platform.token_file,
        platform.control_plane_port,
        platform.lb_port,
        &flags,
    );
    eventually("the new lb to answer", Duration::from_secs(20), || async {
        http("GET", &platform.lb_url("/async-calls/job-0"), b"", &[])
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    for id in &ids {
        wait_state(&platform, id, "succeeded", Duration::from_secs(60)).await;
    }
    // Each call ran; only those in flight at the kill (at most async.concurrency) ran twice,
    // and their records count the second run as another attempt.
    let logged = attempts_logged(&log);
    let mut runs: HashMap<&str, u32> = HashMap::new();
    for (id, _) in &logged {
        *runs.entry(id.as_str()).or_default() += 1;
    }
    for id in &ids {
        assert!(
            runs.get(id.as_str()).copied().unwrap_or(0) >= 1,
            "{id} never ran: {logged:?}"
        );
    }
    let twice: Vec<&&str> = runs.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id).collect();
    println!("calls run twice after the lb was killed: {twice:?}");
    assert!(twice.len() <= 4, "more calls ran twice than were in flight: {twice:?}");
    for id in &twice {
        let r = record(&platform, id).await;
        assert!(
            r["attempts"].as_u64().unwrap() >= 2,
            "a second run is a counted attempt: {r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_calls_to_one_function_does_not_hold_up_another() {
    const FLOOD: usize = 10_000;
    /// The bound this test states: a call to the quiet function starts within this long of its
    /// enqueue, whatever the other function's backlog.
    const BOUND: Duration = Duration::from_secs(2);
    let dir = tempfile::tempdir().unwrap();
    let (_nats, platform) = platform_with_queue(dir.path(), &[]).await;
    let slow_log = dir.path().join("slow.log");
    let quick_log = dir.path().join("quick.log");
    deploy_jobs(&platform, "slow", &slow_log, "async: {concurrency: 8}\n");
    deploy_jobs(&platform, "quick", &quick_log, "async: {concurrency: 2}\n");
    for name in ["slow", "quick"] {
        platform.invoke_when_routable(name, "/", b"", &[]).await;
    }

    // 10,000 calls of 200 ms each to `slow`, 16 enqueues at a time: a backlog of minutes.
    let url = platform.lb_url("/async-function/slow/?ms=200");
    let mut stored = 0;
    for chunk in (0..FLOOD).collect::<Vec<_>>().chunks(16) {
        let answers = futures::future::join_all(chunk.iter().map(|_| http("POST", &url, b"flood", &[]))).await;
        for answer in answers {
            let answer = answer.expect("the lb answers");
            assert_eq!(answer.status, 202, "{}", answer.text());
            stored += 1;
        }
    }
    assert_eq!(stored, FLOOD);

    // Calls to `quick` meanwhile: each starts within the bound.
    let mut ids = Vec::new();
    for i in 0..10 {
        let id = format!("quick-{i}");
        let answer = enqueue(&platform, "quick", b"q", &[("x-call-id", &id)]).await;
        assert_eq!(answer.status, 202, "{}", answer.text());
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut waits = Vec::new();
    for id in &ids {
        let r = wait_state(&platform, id, "succeeded", Duration::from_secs(30)).await;
        let waited = r["started_ms"].as_u64().unwrap() - r["enqueued_ms"].as_u64().unwrap();
        waits.push(waited);
    }
    let backlog = eventually("slow's depth", Duration::from_secs(10), || async {
        let out = platform.fjord(&["describe", "slow", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["queue"]["queued"].as_u64()
    })
    .await;
    assert!(
        backlog > 5_000,
        "the flood was still queued while quick ran: {backlog} left"
    );
    let worst = *waits.iter().max().unwrap();
    println!("quick's waits to start (ms), behind {backlog} calls to slow: {waits:?}");
    assert!(
        worst < BOUND.as_millis() as u64,
        "a call to quick waited {worst} ms to start behind {backlog} calls to slow: {waits:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduled_tick_reaches_the_function_as_a_cron_call() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path()).await;
    let flags = nats.flags();
    let lb_flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    // One minute of a schedule lasts 2 s here.
    let mut cp_flags = lb_flags.clone();
    cp_flags.extend(["--test-cron-minute", "2s"]);
    let platform = Platform::start_full(1, 4096, &lb_flags, &cp_flags).await;
    let log = dir.path().join("ticks.log");
    deploy_jobs(&platform, "ticks", &log, "schedule: ['* * * * *']\n");
    let (id, attempt) = eventually_or(
        "a scheduled call to reach the function",
        Duration::from_secs(30),
        || async {
            attempts_logged(&log)
                .into_iter()
                .find(|(id, _)| id.starts_with("cron-"))
        },
        || platform.all_logs(),
    )
    .await;
    assert_eq!(attempt, 1);
    let r = wait_state(&platform, &id, "succeeded", Duration::from_secs(20)).await;
    assert_eq!(r["trigger"], "cron", "{r}");
    let listed = calls_cli(&platform, &["ticks"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id.as_str() && c["trigger"] == "cron"),
        "{listed}"
    );
}
