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

    let out = client(
        &addr,
        TEST_TOKEN,
        &["call", "fjord.v1.Admin/ListFunctions", r#"{"page_size": 100}"#],
    );
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

type Client = fjord_proto::v1::admin_client::AdminClient<tonic::transport::Channel>;

fn authed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TEST_TOKEN}").parse().unwrap());
    request.set_timeout(Duration::from_secs(20));
    request
}

fn command_spec(name: &str, parity: &str) -> fjord_proto::v1::FunctionSpec {
    let mut spec = fjord_core::FunctionSpec::with_command(name, vec!["/bin/true".into()]);
    spec.labels.insert("parity".into(), parity.into());
    (&spec).into()
}

async fn deploy_all(client: &Client, names: impl Iterator<Item = (String, &'static str)>) {
    use futures::StreamExt;
    let results: Vec<Result<(), String>> = futures::stream::iter(names)
        .map(|(name, parity)| {
            let mut client = client.clone();
            async move {
                client
                    .deploy(authed(fjord_proto::v1::DeployRequest {
                        spec: Some(command_spec(&name, parity)),
                        defaulted: vec![],
                    }))
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{name}: {e}"))
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} deploys failed, first: {:?}",
        failed.len(),
        failed.first()
    );
}

async fn page(
    client: &mut Client,
    size: u32,
    token: &str,
    selector: &str,
) -> Result<fjord_proto::v1::ListFunctionsResponse, tonic::Status> {
    client
        .list_functions(authed(fjord_proto::v1::ListFunctionsRequest {
            page_size: size,
            page_token: token.to_string(),
            label_selector: selector.to_string(),
            ..Default::default()
        }))
        .await
        .map(|r| r.into_inner())
}

fn error_reason(status: &tonic::Status) -> (tonic::Code, String, String) {
    use tonic_types::StatusExt;
    let info = status.get_details_error_info().expect("an ErrorInfo in the details");
    assert_eq!(info.domain, "fjord.v1");
    (
        status.code(),
        info.reason,
        info.metadata.get("field").cloned().unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_functions_page_in_order_once_each_while_others_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, TEST_TOKEN).unwrap();
    let port = free_port();
    let _member = start_control_plane(dir.path(), &token_file, port, true);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_lazy();
    let mut client: Client = fjord_proto::v1::admin_client::AdminClient::new(channel);
    eventually("the member to lead", Duration::from_secs(20), || {
        let mut c = client.clone();
        async move { page(&mut c, 1, "", "").await.ok().map(|_| ()) }
    })
    .await;
    let name = |i: usize| format!("f{i:05}");
    let parity = |i: usize| if i.is_multiple_of(2) { "even" } else { "odd" };
    deploy_all(&client, (0..10_000).map(|i| (name(i), parity(i)))).await;

    // Walk in pages of 500; between pages, remove a function behind the cursor and one ahead,
    // and add some on both sides.
    let mut seen: Vec<String> = Vec::new();
    let mut token = String::new();
    let mut removed_ahead = Vec::new();
    let mut round = 0;
    loop {
        let answer = page(&mut client, 500, &token, "").await.expect("a page");
        assert!(answer.functions.len() <= 500);
        seen.extend(
            answer
                .functions
                .iter()
                .filter_map(|f| f.record.as_ref()?.spec.as_ref().map(|s| s.name.clone())),
        );
        if answer.next_page_token.is_empty() {
            break;
        }
        token = answer.next_page_token;
        round += 1;
        let behind = name(round * 500 - 100);
        let ahead = name((round * 500 + 250).min(9_999));
        for victim in [&behind, &ahead] {
            client
                .remove_function(authed(fjord_proto::v1::RemoveFunctionRequest { name: victim.clone() }))
                .await
                .expect("remove");
        }
        removed_ahead.push(ahead);
        deploy_all(
            &client,
            [format!("a{round:03}"), format!("z{round:03}")]
                .into_iter()
                .map(|n| (n, "new")),
        )
        .await;
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, each once");
    let seen_set: std::collections::BTreeSet<&String> = seen.iter().collect();
    for i in 0..10_000 {
        let n = name(i);
        if removed_ahead.contains(&n) {
            assert!(!seen_set.contains(&n), "{n} was removed before its page");
        } else {
            assert!(seen_set.contains(&n), "{n} exists throughout and is listed");
        }
    }
    assert!(
        seen.iter().any(|n| n.starts_with('z')),
        "functions added ahead of the cursor are reached"
    );

    // Filters: a label selector, and the token carried across pages.
    let evens = page(&mut client, 1000, "", "parity=even").await.expect("a page");
    assert_eq!(evens.functions.len(), 1000);
    assert!(evens.functions.iter().all(|f| {
        f.record
            .as_ref()
            .and_then(|r| r.spec.as_ref())
            .is_some_and(|s| s.labels["parity"] == "even")
    }));

    // Refusals, each with its reason and field in an ErrorInfo.
    let e = page(&mut client, 0, "", "").await.unwrap_err();
    assert_eq!(
        error_reason(&e),
        (tonic::Code::InvalidArgument, "BAD_PAGE_SIZE".into(), "page_size".into())
    );
    let e = page(&mut client, 1001, "", "").await.unwrap_err();
    assert_eq!(error_reason(&e).1, "BAD_PAGE_SIZE");
    let e = page(&mut client, 10, &evens.next_page_token, "").await.unwrap_err();
    assert_eq!(
        error_reason(&e),
        (
            tonic::Code::InvalidArgument,
            "BAD_PAGE_TOKEN".into(),
            "page_token".into()
        ),
        "a token is good only with the filters it came from"
    );
    for name in ["s1", "s2"] {
        client
            .put_secret(authed(fjord_proto::v1::PutSecretRequest {
                name: name.into(),
                value: b"v".to_vec(),
                mode: 0,
            }))
            .await
            .expect("a secret");
    }
    let secrets_token = {
        let answer = client
            .list_secrets(authed(fjord_proto::v1::ListSecretsRequest {
                page_size: 1,
                ..Default::default()
            }))
            .await
            .expect("secrets");
        answer.into_inner().next_page_token
    };
    assert!(!secrets_token.is_empty());
    let e = page(&mut client, 10, &secrets_token, "").await.unwrap_err();
    assert_eq!(error_reason(&e).1, "BAD_PAGE_TOKEN");
    let e = page(&mut client, 10, "", "spec.memory>1").await.unwrap_err();
    assert_eq!(
        error_reason(&e),
        (
            tonic::Code::InvalidArgument,
            "BAD_LABEL_SELECTOR".into(),
            "label_selector".into()
        )
    );
    let mut bad = command_spec("Bad_Name", "x");
    bad.name = "Bad_Name".into();
    let e = client
        .deploy(authed(fjord_proto::v1::DeployRequest {
            spec: Some(bad),
            defaulted: vec![],
        }))
        .await
        .unwrap_err();
    assert_eq!(
        error_reason(&e),
        (tonic::Code::InvalidArgument, "INVALID_SPEC".into(), "name".into())
    );
    let e = client
        .get_function(authed(fjord_proto::v1::GetFunctionRequest { name: "nope".into() }))
        .await
        .unwrap_err();
    assert_eq!(error_reason(&e).1, "FUNCTION_NOT_FOUND");
}

type Change = (fjord_proto::v1::change_event::Kind, String, u64, String);

async fn next_change(stream: &mut tonic::Streaming<fjord_proto::v1::ChangeEvent>) -> Change {
    let event = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("an event within 20 s")
        .expect("the stream")
        .expect("not ended");
    (
        fjord_proto::v1::change_event::Kind::try_from(event.kind).unwrap(),
        event.name,
        event.revision,
        event.node_state,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watcher_sees_each_change_to_functions_and_nodes_without_polling() {
    use fjord_proto::v1::change_event::Kind;
    let platform = Platform::start(1).await;
    let channel = tonic::transport::Endpoint::from_shared(platform.control_plane_url())
        .unwrap()
        .connect_lazy();
    let client: Client = fjord_proto::v1::admin_client::AdminClient::new(channel);
    deploy_all(&client, [("before".to_string(), "odd")].into_iter()).await;
    let mut watch_request = authed(fjord_proto::v1::WatchRequest { include_existing: true });
    watch_request.set_timeout(Duration::from_secs(120));
    let mut stream = client.clone().watch(watch_request).await.expect("watch").into_inner();
    let mut existing = Vec::new();
    loop {
        let event = next_change(&mut stream).await;
        if event.0 == Kind::Synced {
            break;
        }
        existing.push(event);
    }
    assert!(
        existing
            .iter()
            .any(|e| e.0 == Kind::FunctionDeployed && e.1 == "before"),
        "{existing:?}"
    );
    assert!(
        existing.iter().any(|e| e.0 == Kind::NodeChanged && e.3 == "ready"),
        "the agent's node: {existing:?}"
    );

    deploy_all(&client, [("during".to_string(), "even")].into_iter()).await;
    let deployed = next_change(&mut stream).await;
    assert_eq!((deployed.0, deployed.1.as_str()), (Kind::FunctionDeployed, "during"));
    let out = platform.fjord(&["scale", "during", "--max", "3"]);
    assert!(out.status.success());
    let scaled = next_change(&mut stream).await;
    assert_eq!(
        (scaled.0, scaled.1.as_str(), scaled.2),
        (Kind::FunctionDeployed, "during", deployed.2),
        "a scale keeps the revision"
    );
    let out = platform.fjord(&["remove", "during"]);
    assert!(out.status.success());
    let removed = next_change(&mut stream).await;
    assert_eq!((removed.0, removed.1.as_str()), (Kind::FunctionRemoved, "during"));
}

/// examples/clients/python/fjord_admin.py with stubs generated from the .proto by grpcio-tools.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_example_with_generated_stubs_deploys_pages_scales_and_removes() {
    let platform = Platform::start(1).await;
    for name in ["one", "two", "three"] {
        let out = platform.deploy_example(name, "echo", "");
        assert!(out.status.success(), "{}", text(&out).1);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let generated = platform.dir.path().join("gen");
    std::fs::create_dir_all(&generated).unwrap();
    let out = Command::new(grpc_python())
        .current_dir(repo)
        .args(["-m", "grpc_tools.protoc", "-I", "proto/proto"])
        .arg(format!("--python_out={}", generated.display()))
        .arg(format!("--grpc_python_out={}", generated.display()))
        .arg("fjord/v1/fjord.proto")
        .output()
        .unwrap();
    assert!(out.status.success(), "protoc: {}", text(&out).1);
    let out = Command::new(grpc_python())
        .current_dir(repo)
        .env("PYTHONPATH", &generated)
        .arg("examples/clients/python/fjord_admin.py")
        .arg(format!("127.0.0.1:{}", platform.control_plane_port))
        .arg(TEST_TOKEN)
        .output()
        .unwrap();
    let (printed, err) = text(&out);
    assert!(out.status.success(), "{printed}{err}");
    let lines: Vec<&str> = printed.lines().collect();
    assert!(lines[0].starts_with("deployed from-python revision "), "{printed}");
    assert_eq!(
        lines[1], "listed 4 functions in 2 pages: from-python,one,three,two",
        "{printed}"
    );
    assert_eq!(lines[2], "scaled from-python to max 2");
    assert_eq!(lines[3], "removed from-python");
    assert_eq!(lines[4], "refused: NOT_FOUND FUNCTION_NOT_FOUND from-python");
}
