//! The real `fjord` binary against a control plane run in this process: a closed stdout ends
//! every printing command quietly (status 0, nothing on stderr, no panic), and `fjord nodes`
//! shows each node's CPU in use against what it offers.

use clap::Parser;
use fjord_control_plane::auth::Token;
use fjord_proto::v1 as pb;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const TOKEN: &str = "cli-test-token-0123456789abcdef";

/// A one-member cluster on a free port; stops when the test's runtime ends.
async fn start_cluster(dir: &std::path::Path) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let args = fjord_control_plane::Args::parse_from([
        "fjord-control-plane",
        "--listen",
        &addr.to_string(),
        "--data-dir",
        &dir.join("member").display().to_string(),
        "--bootstrap",
        "--heartbeat-timeout",
        "60s",
        "--metrics-listen",
        "off",
    ]);
    tokio::spawn(fjord_control_plane::run(
        args,
        Token::new(TOKEN).unwrap(),
        listener,
        std::future::pending::<()>(),
    ));
    let url = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(30);
    // Up once it answers with a leader: writes (deploy, register) need one.
    let has_leader = || {
        let out = fjord(&url, &["status", "--json"], Stdio::piped());
        serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok_and(|s| s["leader_id"].is_u64())
    };
    while !has_leader() {
        assert!(Instant::now() < deadline, "the control plane had no leader within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    url
}

fn fjord(url: &str, args: &[&str], stdout: Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(args)
        .env("FJORD_ADDR", url)
        .env("FJORD_TOKEN", TOKEN)
        .env_remove("FJORD_TOKEN_FILE")
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("running fjord")
}

fn authed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    Token::new(TOKEN).unwrap().attach(&mut request);
    request
}

/// A function of 250 millicores with two instances on node-a, which offers 4000.
async fn register_node_running_a_function(url: &str) {
    let channel = Channel::from_shared(url.to_string()).unwrap().connect().await.unwrap();
    let mut spec = fjord_core::FunctionSpec::with_command("quarter", vec!["/bin/true".into()]);
    spec.cpu_millis = 250;
    pb::admin_client::AdminClient::new(channel.clone())
        .deploy(authed(pb::DeployRequest {
            spec: Some((&spec).into()),
            ..Default::default()
        }))
        .await
        .unwrap();
    let mut agent = pb::agent_client::AgentClient::new(channel);
    agent
        .register(authed(pb::RegisterRequest {
            node: Some(pb::NodeInfo {
                id: "node-a".into(),
                invoke_addr: "127.0.0.1:1".into(),
                memory_mib: 2048,
                cpu_millis: 4000,
                runtime: "process".into(),
                ..Default::default()
            }),
        }))
        .await
        .unwrap();
    agent
        .heartbeat(authed(pb::HeartbeatRequest {
            node_id: "node-a".into(),
            functions: vec![pb::FunctionLoad {
                name: "quarter".into(),
                ready: 1,
                starting: 1,
                ..Default::default()
            }],
            ..Default::default()
        }))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_each_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let url = start_cluster(dir.path()).await;
    register_node_running_a_function(&url).await;
    for args in [
        &["list", "--json"][..],
        &["list"],
        &["nodes", "--json"],
        &["nodes"],
        &["status", "--json"],
        &["describe", "quarter"],
        &["policy", "show"],
    ] {
        // A pipe whose reading end is closed before the command starts: every write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = fjord(&url, args, writer.into());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "fjord {args:?} with stdout closed: {stderr}"
        );
        assert!(stderr.is_empty(), "fjord {args:?} with stdout closed wrote: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_shows_cpu_used_and_offered() {
    let dir = tempfile::tempdir().unwrap();
    let url = start_cluster(dir.path()).await;
    register_node_running_a_function(&url).await;

    let out = fjord(&url, &["nodes", "--json"], Stdio::piped());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let node = &nodes[0];
    assert_eq!(
        (node["used_cpu_millis"].as_u64(), node["cpu_millis"].as_u64()),
        (Some(500), Some(4000)),
        "{nodes}"
    );

    let out = fjord(&url, &["nodes"], Stdio::piped());
    let table = String::from_utf8_lossy(&out.stdout);
    let mut lines = table.lines().skip_while(|l| !l.starts_with("NODE"));
    let header = lines.next().unwrap_or_else(|| panic!("no table header:\n{table}"));
    assert!(header.contains("CPU USED/ALL"), "{table}");
    let row: Vec<&str> = lines.next().expect("a row for node-a").split_whitespace().collect();
    assert_eq!(row[0], "node-a", "{table}");
    let cpu: Vec<&&str> = row.iter().filter(|c| c.ends_with('m') && c.contains('/')).collect();
    assert_eq!(cpu, [&"500/4000m"], "{table}");
}
