//! The user's first five minutes, on real processes: deploy, invoke, list, remove, restart the
//! control plane, bad input, missing token, concurrency, and no orphans.

use fjord_tests::*;
use std::collections::HashSet;
use std::time::Duration;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn function_names(platform: &Platform) -> Vec<String> {
    let out = platform.fjord(&["list", "--json"]);
    assert!(out.status.success(), "fjord list failed: {}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_invoke_remove_and_survive_a_control_plane_restart() {
    let mut platform = Platform::start(1).await;

    let out = platform.deploy_example("echo", "echo", "concurrency: 4\n");
    assert!(out.status.success(), "deploy echo: {}", stderr(&out));
    assert!(stdout(&out).contains("deployed echo"), "{}", stdout(&out));
    let out = platform.deploy_example("sleep", "sleep", "");
    assert!(out.status.success(), "deploy sleep: {}", stderr(&out));

    // Invoke through the lb: body, status and headers pass through both ways.
    let answer = platform
        .invoke_when_routable("echo", "/any/path?x=1", b"hello", &[("x-echo-trace", "abc-123")])
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello");
    assert_eq!(answer.header("x-echo-trace"), Some("abc-123"));
    assert!(answer.header("x-request-id").is_some_and(|id| !id.is_empty()));
    assert_eq!(answer.header("x-fjord-node"), Some("node-0"));

    // The CLI's invoke goes through the same path.
    let out = platform.fjord(&["invoke", "echo", "-d", "from the cli"]);
    assert!(out.status.success(), "fjord invoke: {}", stderr(&out));
    assert_eq!(stdout(&out), "from the cli");

    let out = platform.fjord(&["describe", "echo", "--json"]);
    assert!(out.status.success());
    let described: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(described["spec"]["concurrency"], 4);
    assert_eq!(function_names(&platform), vec!["echo", "sleep"]);

    // Remove: the lb stops routing it and answers 404 with a JSON error naming it.
    let out = platform.fjord(&["remove", "echo"]);
    assert!(out.status.success(), "remove: {}", stderr(&out));
    let gone = eventually("echo to be unroutable", Duration::from_secs(10), || async {
        http("POST", &platform.lb_url("/function/echo"), b"x", &[])
            .await
            .ok()
            .filter(|a| a.status == 404)
    })
    .await;
    assert_eq!(gone.json()["function"], "echo");
    assert!(gone.json()["error"].as_str().unwrap().contains("not deployed"));
    let out = platform.fjord(&["describe", "echo"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not deployed"), "{}", stderr(&out));

    // A control-plane crash loses nothing that was acknowledged.
    platform.restart_control_plane();
    let names = eventually(
        "the restarted control plane to answer",
        Duration::from_secs(30),
        || async {
            let out = platform.fjord(&["list", "--json"]);
            out.status.success().then(|| function_names(&platform))
        },
    )
    .await;
    assert_eq!(names, vec!["sleep"]);
    let answer = platform.invoke_when_routable("sleep", "?ms=1", b"", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_specs_are_refused_naming_the_field_and_nothing_changes() {
    let platform = Platform::start(1).await;
    assert!(platform
        .deploy_example("keep", "echo", "memory_mib: 128\n")
        .status
        .success());
    let stored = || {
        let out = platform.fjord(&["describe", "keep", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (v["revision"].clone(), v["updated_at_ms"].clone(), v["spec"].clone())
    };
    let before = stored();

    for (extra, field) in [
        ("memory_mib: 1\n", "memory_mib"),
        ("timeout: 99h\n", "timeout"),
        ("min: 5\nmax: 2\n", "min"),
    ] {
        let out = platform.deploy_example("keep", "echo", extra);
        assert!(!out.status.success(), "a spec with {extra:?} was accepted");
        assert!(
            stderr(&out).contains(field),
            "error for {extra:?} does not name {field}: {}",
            stderr(&out)
        );
    }
    let path = platform.dir.path().join("bad-name.yaml");
    std::fs::write(&path, "name: Bad_Name\ncommand: [x]\n").unwrap();
    let out = platform.fjord(&["deploy", "-f", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("`name`"), "{}", stderr(&out));

    assert_eq!(before, stored(), "a refused deploy changed the stored function");

    // Scale with bad bounds is refused by the control plane itself (the CLI does not check).
    let out = platform.fjord(&["scale", "keep", "--min", "50", "--max", "3"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("min"), "{}", stderr(&out));
    assert_eq!(before, stored(), "a refused scale changed the stored function");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_calls_without_the_token_are_refused() {
    let platform = Platform::start(1).await;
    let no_token = std::process::Command::new(bin("fjord"))
        .args(["list"])
        .env("FJORD_ADDR", platform.control_plane_url())
        .env("HOME", platform.dir.path())
        .env_remove("FJORD_TOKEN")
        .env_remove("FJORD_TOKEN_FILE")
        .env_remove("XDG_DATA_HOME")
        .output()
        .unwrap();
    assert!(!no_token.status.success());
    assert!(
        stderr(&no_token).contains("missing bearer token"),
        "{}",
        stderr(&no_token)
    );

    let wrong = std::process::Command::new(bin("fjord"))
        .args(["list", "--token", "not-the-token-at-all-0000"])
        .env("FJORD_ADDR", platform.control_plane_url())
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(stderr(&wrong).contains("invalid token"), "{}", stderr(&wrong));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_never_share_a_concurrency_one_instance() {
    let platform = Platform::start(1).await;
    let out = platform.deploy_example("slow", "sleep", "concurrency: 1\nmax: 30\n");
    assert!(out.status.success(), "{}", stderr(&out));
    platform.invoke_when_routable("slow", "?ms=1", b"", &[]).await;

    let url = platform.lb_url("/function/slow?ms=300");
    let calls = (0..20).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { http("GET", &url, b"", &[]).await })
    });
    let answers = futures::future::join_all(calls).await;
    let mut instances = HashSet::new();
    for answer in answers {
        let answer = answer.unwrap().expect("every request is answered");
        assert_eq!(answer.status, 200, "{}", answer.text());
        let body = answer.json();
        // The function counts its own concurrent requests: never more than one.
        assert_eq!(body["in_flight"], 1, "an instance served two requests at once: {body}");
        instances.insert(body["instance"].as_str().unwrap().to_string());
    }
    // Twenty overlapping 300 ms calls on concurrency 1 need several instances.
    assert!(instances.len() > 1, "all calls went to {instances:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cold_burst_within_one_instances_concurrency_is_served_by_one_start() {
    let platform = Platform::start(1).await;
    let out = platform.deploy_example("wide", "sleep", "concurrency: 8\nmax: 30\nscale_to_zero_after: 1s\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let first = platform.invoke_when_routable("wide", "?ms=1", b"", &[]).await;
    let pid = first.json()["pid"].as_u64().unwrap() as u32;
    eventually("the function to scale to zero", Duration::from_secs(30), || async {
        (!process_alive(pid)).then_some(())
    })
    .await;

    // Eight overlapping calls at zero: the first starts an instance, the other seven wait for
    // it (it takes eight at once) instead of starting seven more.
    let url = platform.lb_url("/function/wide?ms=500");
    let calls = (0..8).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { http("GET", &url, b"", &[]).await })
    });
    let mut instances = HashSet::new();
    let mut cold = 0;
    for answer in futures::future::join_all(calls).await {
        let answer = answer.unwrap().expect("every request is answered");
        assert_eq!(answer.status, 200, "{}", answer.text());
        // A call that reaches the agent after the instance is ready (a busy machine can delay
        // one by more than a process start) is served warm by the same instance: fine.
        if answer.header("x-fjord-cold-start") == Some("1") {
            cold += 1;
        }
        instances.insert(answer.json()["instance"].as_str().unwrap().to_string());
    }
    assert!(cold >= 1, "the burst found the function at zero and started it");
    assert_eq!(instances.len(), 1, "one start serves the burst: {instances:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_agent_leaves_no_orphan_instances() {
    let mut platform = Platform::start(1).await;
    assert!(platform.deploy_example("slow", "sleep", "").status.success());
    let answer = platform.invoke_when_routable("slow", "?ms=1", b"", &[]).await;
    let pid = answer.json()["pid"].as_u64().unwrap() as u32;
    assert!(process_alive(pid));
    platform.agents[0].kill9();
    eventually(
        "the instance to die with its agent",
        Duration::from_secs(10),
        || async { (!process_alive(pid)).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invocations_continue_while_the_control_plane_is_down() {
    let mut platform = Platform::start(1).await;
    assert!(platform.deploy_example("echo", "echo", "").status.success());
    assert_eq!(
        platform.invoke_when_routable("echo", "", b"before", &[]).await.text(),
        "before"
    );
    platform.control_plane.kill9();
    for i in 0..20 {
        let body = format!("during {i}");
        let answer = http("POST", &platform.lb_url("/function/echo"), body.as_bytes(), &[])
            .await
            .unwrap();
        assert_eq!((answer.status, answer.text()), (200, body));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_calls_show_up_in_fjord_logs_and_a_graceful_stop_is_clean() {
    let mut platform = Platform::start(1).await;
    assert!(platform.deploy_example("flaky", "sleep", "").status.success());
    let answer = platform.invoke_when_routable("flaky", "?ms=1&fail=1", b"", &[]).await;
    assert_eq!(answer.status, 500);
    let out = platform.fjord(&["logs", "flaky"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let logs = stdout(&out);
    assert!(logs.contains("failing on purpose"), "{logs}");
    assert!(logs.contains("stderr"), "{logs}");
    assert!(logs.contains("instance ready"), "{logs}");

    let pid = http("GET", &platform.lb_url("/function/flaky?ms=1"), b"", &[])
        .await
        .unwrap()
        .json()["pid"]
        .as_u64()
        .unwrap() as u32;
    let status = platform.agents[0].terminate(Duration::from_secs(20));
    assert!(
        status.success(),
        "agent exited with {status}: {}",
        platform.agents[0].log_text()
    );
    assert!(!process_alive(pid), "the instance outlived a graceful agent stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_that_never_listens_gets_a_502_pointing_to_port_and_its_logs() {
    let platform = Platform::start(1).await;
    let spec = platform.dir.path().join("silent.yaml");
    std::fs::write(
        &spec,
        "name: silent\ncommand: [\"/bin/sh\", \"-c\", \"echo not listening; exec sleep 60\"]\ntimeout: 2s\n",
    )
    .unwrap();
    let out = platform.fjord(&["deploy", "-f", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let started = std::time::Instant::now();
    let answer = platform.invoke_when_routable("silent", "", b"", &[]).await;
    let waited = started.elapsed();
    assert_eq!(answer.status, 502, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["code"], "start_failed", "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("$PORT") && error.contains("`fjord logs silent`"),
        "{error}"
    );
    // The readiness wait follows the function's timeout (2 s), not a fixed 10 s.
    assert!(waited < Duration::from_secs(8), "the caller waited {waited:?}");
    let logs = stdout(&platform.fjord(&["logs", "silent"]));
    assert!(logs.contains("not listening"), "its output is in fjord logs: {logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_and_lbs_join_with_the_join_token_which_cannot_administer() {
    let dir = tempfile::tempdir().unwrap();
    let admin_token = dir.path().join("admin.token");
    let join_token = dir.path().join("join.token");
    std::fs::write(&admin_token, TEST_TOKEN).unwrap();
    std::fs::write(&join_token, "join-token-abcdef0123456789").unwrap();
    let cp_port = free_port();
    let extra = vec!["--join-token-file".to_string(), join_token.display().to_string()];
    let _cp = start_control_plane_with(dir.path(), &admin_token, cp_port, true, &extra);
    let agent_port = free_port();
    let _agent = start_agent(dir.path(), &join_token, cp_port, agent_port, "joined", 1024);
    let lb_port = free_port();
    let _lb = start_lb(dir.path(), &join_token, cp_port, lb_port);
    let cli = |token: &std::path::Path, args: &[&str]| {
        std::process::Command::new(bin("fjord"))
            .args(args)
            .env("FJORD_ADDR", format!("http://127.0.0.1:{cp_port}"))
            .env("FJORD_TOKEN_FILE", token)
            .env_remove("FJORD_TOKEN")
            .output()
            .unwrap()
    };
    eventually(
        "the agent to join with the join token",
        Duration::from_secs(30),
        || async {
            let out = cli(&admin_token, &["nodes", "--json"]);
            let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (nodes
                .as_array()?
                .iter()
                .any(|n| n["id"] == "joined" && n["state"] == "ready"))
            .then_some(())
        },
    )
    .await;
    let refused = cli(&join_token, &["list"]);
    assert!(!refused.status.success(), "the join token opened the Admin API");
    assert!(stderr(&refused).contains("invalid token"), "{}", stderr(&refused));

    let spec = dir.path().join("echo.yaml");
    std::fs::write(
        &spec,
        format!("name: echo\ncommand: [{:?}]\n", bin("fjord-echo").display().to_string()),
    )
    .unwrap();
    assert!(cli(&admin_token, &["deploy", "-f", spec.to_str().unwrap()])
        .status
        .success());
    let url = format!("http://127.0.0.1:{lb_port}/function/echo");
    let answer = eventually("the lb (join token) to route echo", Duration::from_secs(20), || async {
        http("POST", &url, b"joined", &[])
            .await
            .ok()
            .filter(|a| a.status == 200)
    })
    .await;
    assert_eq!(answer.text(), "joined");
}
