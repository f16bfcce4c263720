//! The gRPC admin API as a client outside the project sees it: a Python grpcio client that knows
//! only a member's address and a token lists the services through server reflection and calls
//! them; the standard health service follows whether the member can serve.

use fjord_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The Python with grpcio and grpcio-reflection that scripts/install-infra-tools.sh makes.
fn grpc_python() -> PathBuf {
    let tools = std::env::var_os("FJORD_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/fjord-tools"));
    let python = tools.join("grpc/bin/python");
    assert!(
        python.exists(),
        "{} is missing: scripts/test installs it (scripts/install-infra-tools.sh)",
        python.display()
    );
    python
}

fn client(addr: &str, token: &str, args: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/grpc_reflection_client.py");
    Command::new(grpc_python())
        .arg(script)
        .arg(addr)
        .arg(token)
        .args(args)
        .output()
        .expect("running the Python client")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_with_only_an_address_and_a_token_finds_and_calls_the_api_through_reflection() {
    let platform = Platform::start(1).await;
    let addr = format!("127.0.0.1:{}", platform.control_plane_port);
    let out = platform.deploy_example("hello", "echo", "");
    assert!(out.status.success(), "{}", text(&out).1);

    let out = client(&addr, TEST_TOKEN, &["services"]);
    let (services, err) = text(&out);
    assert!(out.status.success(), "{err}");
    let listed: Vec<&str> = services.lines().collect();
    for expected in [
        "fjord.v1.Admin",
        "fjord.v1.Agent",
        "fjord.v1.Routes",
        "grpc.health.v1.Health",
    ] {
        assert!(listed.contains(&expected), "{expected} listed: {listed:?}");
    }
    assert!(
        !listed.contains(&"fjord.v1.Raft"),
        "Raft is not offered to clients: {listed:?}"
    );

    let out = client(&addr, TEST_TOKEN, &["call", "fjord.v1.Admin/ListFunctions", "{}"]);
    let (answer, err) = text(&out);
    assert!(out.status.success(), "{err}");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
    let names: Vec<&str> = answer["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .filter_map(|f| f["record"]["spec"]["name"].as_str())
        .collect();
    assert_eq!(names, vec!["hello"], "{answer}");

    let out = client(&addr, TEST_TOKEN, &["health", "fjord.v1.Admin"]);
    assert_eq!(text(&out).0.trim(), "SERVING", "{}", text(&out).1);

    // A wrong token learns nothing, not even the list of services.
    let out = client(&addr, "wrong-token-0123456789", &["services"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("UNAUTHENTICATED"), "{}", text(&out).1);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_says_not_serving_on_a_member_cut_off_from_the_quorum() {
    let mut members = Members::start(3, &["--election-timeout", "300ms"]).await;
    let token = std::fs::read_to_string(&members.token_file).unwrap();
    let token = token.trim().to_string();
    let addr = |members: &Members, id: u64| format!("127.0.0.1:{}", members.ports[&id]);
    for id in 1..=3 {
        let a = addr(&members, id);
        eventually(
            &format!("member {id} to be SERVING"),
            Duration::from_secs(20),
            || async {
                let out = client(&a, &token, &["health", ""]);
                (text(&out).0.trim() == "SERVING").then_some(())
            },
        )
        .await;
    }
    // Members 2 and 3 gone: member 1 is alone, without a quorum, whether it led or not.
    members.kill(2);
    members.kill(3);
    let a = addr(&members, 1);
    eventually("member 1 to be NOT_SERVING", Duration::from_secs(20), || async {
        let out = client(&a, &token, &["health", "fjord.v1.Admin"]);
        (text(&out).0.trim() == "NOT_SERVING").then_some(())
    })
    .await;
    // A quorum again: SERVING again.
    members.start_member(2);
    eventually("member 1 to be SERVING again", Duration::from_secs(30), || async {
        let out = client(&a, &token, &["health", "fjord.v1.Admin"]);
        (text(&out).0.trim() == "SERVING").then_some(())
    })
    .await;
}
