//! The OpenFaaS gateway API on the lb as an OpenFaaS client sees it: a Python client written
//! from OpenFaaS's documented routes (tests/scripts/openfaas_client.py, stdlib only) deploys,
//! updates, scales, lists, reads and removes a function and manages its secret, with the
//! admin token as faas-cli sends it; the lb itself holds only the join token.

use fjord_tests::docker::{example_image, example_images, require_docker, DockerPlatform, JOIN_TOKEN};
use fjord_tests::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Runs the client against the platform's lb with `auth` (`--password T`, `--bearer T`, ...).
fn client(platform: &Platform, auth: &[&str], args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/openfaas_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(platform.lb_url(""))
        .args(auth)
        .args(args)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "openfaas_client.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The client as the admin, basic auth as faas-cli sends it.
fn admin(platform: &Platform, args: &[&str]) -> Value {
    client(platform, &["--password", TEST_TOKEN], args)
}

fn status(answer: &Value) -> u64 {
    answer["status"]
        .as_u64()
        .unwrap_or_else(|| panic!("no status in {answer}"))
}

fn error_text(answer: &Value) -> String {
    answer["body"]["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn an_openfaas_client_deploys_scales_and_removes_a_function_and_its_secret() {
    if !require_docker() {
        return;
    }
    example_images();
    let platform = DockerPlatform::start_joined(1).await;
    let image = example_image("env");

    let info = admin(&platform, &["info"]);
    assert_eq!(status(&info), 200, "{info}");
    assert_eq!(info["body"]["provider"]["provider"], "fjord");

    let created = admin(&platform, &["secret-create", "api-key", "s3cret"]);
    assert_eq!(status(&created), 201, "{created}");
    let again = admin(&platform, &["secret-create", "api-key", "other"]);
    assert_eq!(status(&again), 409, "{again}");
    let secrets = admin(&platform, &["secret-list"]);
    assert_eq!(
        secrets["body"],
        serde_json::json!([{"name": "api-key", "namespace": "openfaas-fn"}])
    );

    let deploy_args = [
        "deploy",
        "env-fn",
        &image,
        "--env",
        "GREETING=hej",
        "--secret",
        "api-key",
        "--memory",
        "64Mi",
        "--cpu",
        "250m",
        "--annotation",
        "prometheus.io.scrape=false",
    ];
    let deployed = admin(&platform, &deploy_args);
    assert_eq!(status(&deployed), 202, "{deployed}");
    assert!(
        deployed["body"]
            .as_str()
            .unwrap_or_default()
            .contains("warning: annotations.prometheus.io.scrape: not supported, ignored"),
        "{deployed}"
    );
    let twice = admin(&platform, &deploy_args);
    assert_eq!(status(&twice), 409, "{twice}");
    assert!(error_text(&twice).contains("PUT"), "{twice}");

    let answer = platform
        .invoke_when_routable("env-fn", "/?names=GREETING", b"", &[])
        .await;
    assert_eq!((answer.status, answer.text()), (200, "GREETING=hej\n".to_string()));
    let secret = platform
        .invoke_when_routable("env-fn", "/secret/api-key?dir=/var/openfaas/secrets", b"", &[])
        .await;
    assert_eq!((secret.status, secret.text()), (200, "s3cret".to_string()));

    let function = eventually("env-fn has an available replica", Duration::from_secs(20), || async {
        let got = admin(&platform, &["get", "env-fn"]);
        (status(&got) == 200 && got["body"]["availableReplicas"].as_u64() >= Some(1)).then_some(got)
    })
    .await;
    let body = &function["body"];
    assert_eq!(body["name"], "env-fn");
    assert_eq!(body["image"], image.as_str());
    assert_eq!(body["envVars"]["GREETING"], "hej");
    assert_eq!(body["secrets"], serde_json::json!(["api-key"]));
    assert_eq!(body["limits"]["memory"], "64Mi");
    assert_eq!(body["labels"]["com.openfaas.scale.min"], "1");
    assert!(body["invocationCount"].as_u64() >= Some(2), "{body}");
    assert!(body["createdAt"].as_str().unwrap().ends_with('Z'), "{body}");
    let list = admin(&platform, &["list"]);
    let names: Vec<&str> = list["body"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["env-fn"]);

    // A rotation, then an update: the new revision's instances read the new value.
    let rotated = admin(&platform, &["secret-update", "api-key", "rotated", "--raw"]);
    assert_eq!(status(&rotated), 200, "{rotated}");
    let mut update_args = deploy_args.to_vec();
    update_args[4] = "GREETING=hallo";
    update_args.push("--update");
    let updated = admin(&platform, &update_args);
    assert_eq!(status(&updated), 200, "{updated}");
    eventually(
        "the update answers with the rotated secret",
        Duration::from_secs(20),
        || async {
            let answer = platform
                .invoke_when_routable("env-fn", "/?names=GREETING", b"", &[])
                .await;
            let secret = platform
                .invoke_when_routable("env-fn", "/secret/api-key?dir=/var/openfaas/secrets", b"", &[])
                .await;
            (answer.text() == "GREETING=hallo\n" && secret.text() == "rotated").then_some(())
        },
    )
    .await;

    let scaled = admin(&platform, &["scale", "env-fn", "2"]);
    assert_eq!(status(&scaled), 202, "{scaled}");
    eventually("env-fn at 2 replicas", Duration::from_secs(20), || async {
        let got = admin(&platform, &["get", "env-fn"]);
        let body = &got["body"];
        (body["replicas"] == 2 && body["availableReplicas"] == 2).then_some(())
    })
    .await;
    let to_zero = admin(&platform, &["scale", "env-fn", "0"]);
    assert_eq!(status(&to_zero), 202, "{to_zero}");
    let got = admin(&platform, &["get", "env-fn"]);
    assert_eq!(got["body"]["labels"]["com.openfaas.scale.min"], "0", "{got}");
    assert_eq!(got["body"]["labels"]["com.openfaas.scale.max"], "100", "{got}");

    let logs = admin(&platform, &["logs", "env-fn", "--tail", "50"]);
    assert_eq!(status(&logs), 200, "{logs}");
    assert_eq!(logs["headers"]["content-type"], "application/x-ndjson", "{logs}");
    for entry in logs["body"].as_array().unwrap() {
        assert_eq!(entry["name"], "env-fn", "{entry}");
        assert!(
            entry["timestamp"].as_str().is_some() && entry["text"].as_str().is_some(),
            "{entry}"
        );
    }
    let started = std::time::Instant::now();
    let followed = admin(
        &platform,
        &["logs", "env-fn", "--follow-lines", "100000", "--follow-seconds", "3"],
    );
    assert_eq!(status(&followed), 200, "{followed}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let in_use = admin(&platform, &["secret-remove", "api-key"]);
    assert_eq!(status(&in_use), 409, "{in_use}");
    let removed = admin(&platform, &["remove", "env-fn"]);
    assert_eq!(status(&removed), 200, "{removed}");
    let gone = admin(&platform, &["get", "env-fn"]);
    assert_eq!(status(&gone), 404, "{gone}");
    assert!(error_text(&gone).contains("env-fn"), "{gone}");
    let removed_again = admin(&platform, &["remove", "env-fn"]);
    assert_eq!(status(&removed_again), 404, "{removed_again}");
    let secret_removed = admin(&platform, &["secret-remove", "api-key"]);
    assert_eq!(status(&secret_removed), 204, "{secret_removed}");
    assert_eq!(admin(&platform, &["secret-list"])["body"], serde_json::json!([]));
}

#[tokio::test]
async fn the_gateway_api_refuses_wrong_credentials_the_join_token_and_bad_input_naming_what() {
    // No function runs here: the platform has no agent, so no Docker engine is needed.
    let platform = DockerPlatform::start_joined(0).await;

    let healthz = http("GET", &platform.lb_url("/healthz"), b"", &[]).await.unwrap();
    assert_eq!(healthz.status, 200, "/healthz is public");

    for auth in [
        &[][..],
        &["--password", "not-the-token-at-all"][..],
        &["--password", JOIN_TOKEN][..],
        &["--bearer", JOIN_TOKEN][..],
        &["--user", "root", "--password", TEST_TOKEN][..],
    ] {
        let answer = client(&platform, auth, &["list"]);
        assert_eq!(status(&answer), 401, "{auth:?}: {answer}");
        assert_eq!(
            answer["headers"]["www-authenticate"], "Basic realm=\"fjord\"",
            "{answer}"
        );
        assert_eq!(answer["body"]["code"], "unauthorized", "{answer}");
    }
    let bearer = client(&platform, &["--bearer", TEST_TOKEN], &["list"]);
    assert_eq!((status(&bearer), &bearer["body"]), (200, &serde_json::json!([])));

    let malformed = admin(&platform, &["raw", "POST", "/system/functions", "{\"service\": \"f\","]);
    assert_eq!(status(&malformed), 400, "{malformed}");
    assert!(
        error_text(&malformed).starts_with("the body is not a valid FunctionDeployment"),
        "{malformed}"
    );
    let bad_memory = admin(&platform, &["deploy", "f", "f:1", "--memory", "lots"]);
    assert_eq!(status(&bad_memory), 400, "{bad_memory}");
    assert!(error_text(&bad_memory).starts_with("limits.memory:"), "{bad_memory}");
    let no_image = admin(&platform, &["raw", "POST", "/system/functions", "{\"service\": \"f\"}"]);
    assert_eq!(status(&no_image), 400, "{no_image}");
    assert!(error_text(&no_image).starts_with("image:"), "{no_image}");

    for (args, what) in [
        (&["get", "ghost"][..], "ghost"),
        (&["deploy", "ghost", "g:1", "--update"][..], "ghost"),
        (&["scale", "ghost", "1"][..], "ghost"),
        (&["remove", "ghost"][..], "ghost"),
        (&["logs", "ghost"][..], "ghost"),
        (&["secret-update", "ghost-key", "v"][..], "ghost-key"),
    ] {
        let answer = admin(&platform, args);
        assert_eq!(status(&answer), 404, "{args:?}: {answer}");
        assert!(answer.to_string().contains(what), "{args:?}: {answer}");
    }
    let no_name = admin(&platform, &["raw", "GET", "/system/logs", ""]);
    assert_eq!(status(&no_name), 400, "{no_name}");
    assert!(error_text(&no_name).starts_with("name:"), "{no_name}");
    let not_allowed = admin(&platform, &["raw", "PATCH", "/system/functions", "{}"]);
    assert_eq!(status(&not_allowed), 405, "{not_allowed}");
    assert_eq!(not_allowed["headers"]["allow"], "GET, POST, PUT, DELETE");
    let no_value = admin(&platform, &["raw", "POST", "/system/secrets", "{\"name\": \"k\"}"]);
    assert_eq!(status(&no_value), 400, "{no_value}");
    assert!(error_text(&no_value).starts_with("value:"), "{no_value}");
    let wrong_name = admin(
        &platform,
        &[
            "raw",
            "POST",
            "/system/scale-function/a",
            "{\"serviceName\": \"b\", \"replicas\": 1}",
        ],
    );
    assert_eq!(status(&wrong_name), 400, "{wrong_name}");
    assert!(error_text(&wrong_name).starts_with("serviceName:"), "{wrong_name}");
}
