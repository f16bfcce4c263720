//! `fjord dev`: the whole platform from one command, as a user runs it.

use fjord_tests::*;
use std::time::Duration;

/// A base port with `count` free ports after it (best effort: ports are free when checked).
fn free_range(count: u16) -> u16 {
    loop {
        let base = free_port();
        if base > 60_000 {
            continue;
        }
        if (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
}

/// Starts `fjord dev` with `args` and waits until it says it is ready; returns it and what it
/// printed.
async fn start_dev(args: &[&str], dir: &std::path::Path, within: Duration) -> (Daemon, String) {
    // A HOME of its own: `fjord dev` records its cluster as the CLI's context there.
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut command = std::process::Command::new(bin("fjord"));
    command.args(args).env("HOME", &home).env_remove("XDG_CONFIG_HOME");
    let dev = Daemon::start_command("fjord dev", command, dir.join("dev.out"));
    eventually_or(
        "fjord dev to say it is ready",
        within,
        || async { dev.log_text().contains("Press Ctrl-C").then_some(()) },
        || {
            let logs = dir.join("dev/logs");
            let mut text = format!("--- fjord dev ---\n{}", dev.log_text());
            for entry in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
                let content = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = content.lines().rev().take(15).collect();
                text.push_str(&format!("\n--- {} ---\n", entry.path().display()));
                text.extend(tail.into_iter().rev().map(|l| format!("{l}\n")));
            }
            text
        },
    )
    .await;
    let out = dev.log_text();
    (dev, out)
}

#[tokio::test(flavor = "multi_thread")]
async fn fjord_dev_runs_three_members_two_agents_and_the_examples_then_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev");
    let (cp, agents, lb) = (free_range(3), free_range(2), free_port());
    let (mut dev, out) = start_dev(
        &[
            "dev",
            "--data-dir",
            data.to_str().unwrap(),
            "--control-planes",
            "3",
            "--agents",
            "2",
            "--control-plane-port",
            &cp.to_string(),
            "--agent-port",
            &agents.to_string(),
            "--nats-port",
            &free_port().to_string(),
            "--lb-port",
            &lb.to_string(),
        ],
        dir.path(),
        Duration::from_secs(90),
    )
    .await;
    assert!(
        out.contains(&format!("curl -d hello http://127.0.0.1:{lb}/function/echo")),
        "{out}"
    );

    let cluster: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("cluster.json")).unwrap()).unwrap();
    let members = cluster["members"].as_array().unwrap();
    let count = |role: &str| members.iter().filter(|m| m["role"] == role).count();
    assert_eq!(
        (count("control-plane"), count("node-agent"), count("lb")),
        (3, 2, 1),
        "{cluster}"
    );
    let pids: Vec<u32> = members.iter().map(|m| m["pid"].as_u64().unwrap() as u32).collect();
    assert!(pids.iter().all(|p| process_alive(*p)));

    let answer = http("POST", &format!("http://127.0.0.1:{lb}/function/echo"), b"hello", &[])
        .await
        .unwrap();
    assert_eq!((answer.status, answer.text().as_str()), (200, "hello"));

    // The CLI finds this cluster (moved ports, another data dir) through the context `fjord dev`
    // recorded, with no FJORD_* variable set.
    let mut cli = std::process::Command::new(bin("fjord"));
    cli.args(["status", "--json"]).env("HOME", dir.path().join("home"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("FJORD_") || key.starts_with("XDG_") {
            cli.env_remove(&*key);
        }
    }
    let status = cli.output().unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["members"].as_array().unwrap().len(), 3, "{status}");
    assert_eq!(status["nodes_ready"], 2, "{status}");

    let exit = dev.terminate(Duration::from_secs(30));
    assert!(exit.success(), "fjord dev exited with {exit}");
    for pid in pids {
        eventually(
            "every member to stop with fjord dev",
            Duration::from_secs(10),
            || async { (!process_alive(pid)).then_some(()) },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fjord_dev_with_the_docker_runtime_serves_the_example_images() {
    if !fjord_tests::docker::require_docker() {
        return;
    }
    fjord_tests::docker::example_images();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev");
    let (cp, agent, lb) = (free_port(), free_port(), free_port());
    let (mut dev, out) = start_dev(
        &[
            "dev",
            "--runtime",
            "docker",
            "--data-dir",
            data.to_str().unwrap(),
            "--control-plane-port",
            &cp.to_string(),
            "--agent-port",
            &agent.to_string(),
            "--nats-port",
            &free_port().to_string(),
            "--lb-port",
            &lb.to_string(),
        ],
        dir.path(),
        Duration::from_secs(90),
    )
    .await;
    assert!(
        out.contains(&format!("curl -d hello http://127.0.0.1:{lb}/function/echo")),
        "the examples are deployed as images: {out}"
    );
    let answer = http("POST", &format!("http://127.0.0.1:{lb}/function/echo"), b"hello", &[])
        .await
        .unwrap();
    assert_eq!((answer.status, answer.text().as_str()), (200, "hello"), "{out}");
    let instance = answer.header("x-fjord-instance").unwrap().to_string();
    let running = fjord_tests::docker::instance_containers(&["fjord.node=agent-1", "fjord.function=echo"]);
    assert!(
        running.iter().any(|c| fjord_tests::docker::inspect(c)
            .is_some_and(|c| c["Config"]["Labels"]["fjord.instance"] == instance.as_str())),
        "instance {instance} is a container: {running:?}"
    );

    let exit = dev.terminate(Duration::from_secs(30));
    assert!(exit.success(), "fjord dev exited with {exit}");
    let left = fjord_tests::docker::containers(&["fjord.node=agent-1"]);
    assert!(left.is_empty(), "fjord dev left containers: {left:?}");
}
