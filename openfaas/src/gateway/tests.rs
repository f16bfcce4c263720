use super::status::Replicas;
use super::*;
use crate::stack::{Notice, StackError, Translation};
use fjord_core::secret::Secrets;
use std::time::Duration;

fn translate(body: &str) -> Result<Translation, StackError> {
    let (deployment, unknown): (FunctionDeployment, _) = parse_body("FunctionDeployment", body.as_bytes()).unwrap();
    deployment.translate(&unknown)
}

fn keys(notices: &[Notice]) -> Vec<&str> {
    notices.iter().map(|n| n.key.as_str()).collect()
}

/// What faas-cli sends for a function of a stack file.
const FAAS_CLI_BODY: &str = r#"{
    "service": "api",
    "image": "ghcr.io/acme/api:1.2",
    "envProcess": "node index.js",
    "envVars": {"GREETING": "hej"},
    "labels": {"com.openfaas.scale.min": "2", "com.openfaas.scale.max": "5", "team": "core"},
    "annotations": {"prometheus.io.scrape": "false"},
    "secrets": ["db-password"],
    "limits": {"memory": "256Mi", "cpu": "500m"},
    "requests": {"memory": "256Mi"},
    "namespace": "openfaas-fn",
    "registryAuth": "dXNlcjpwYXNz",
    "topic": "orders"
}"#;

#[test]
fn a_deployment_translates_by_the_stack_rules_with_keys_named_as_the_json_names_them() {
    let t = translate(FAAS_CLI_BODY).unwrap();
    let spec = &t.spec;
    assert_eq!(spec.name, "api");
    assert_eq!(spec.image, "ghcr.io/acme/api:1.2");
    assert_eq!(spec.env["fprocess"], "node index.js");
    assert_eq!(spec.env["GREETING"], "hej");
    assert_eq!((spec.min, spec.max), (2, 5));
    assert_eq!(spec.labels.get("team").map(String::as_str), Some("core"));
    assert!(!spec.labels.contains_key("com.openfaas.scale.min"));
    assert_eq!((spec.memory_mib, spec.cpu_millis), (256, 500));
    assert_eq!(spec.secrets, Secrets::Named(vec!["db-password".into()]));
    assert_eq!(
        keys(&t.notices),
        ["annotations.prometheus.io.scrape", "namespace", "topic", "registryAuth"]
    );
    assert!(t.notices[2].message.contains("unknown key"), "{}", t.notices[2]);
    assert!(t.set_fields.contains(&"max"));
    assert_eq!(
        t.defaulted_fields(),
        ["concurrency", "target_utilization", "scale_to_zero_after", "keep_alive"]
    );
}

#[test]
fn a_minimal_deployment_leaves_the_scaling_to_the_cluster_policy() {
    let t = translate(r#"{"service": "f", "image": "f:1"}"#).unwrap();
    assert_eq!(
        t.spec.min, 1,
        "OpenFaaS keeps one replica unless scale to zero is asked for"
    );
    assert!(t.notices.is_empty(), "{:?}", t.notices);
    assert_eq!(
        t.defaulted_fields(),
        [
            "max",
            "concurrency",
            "target_utilization",
            "scale_to_zero_after",
            "keep_alive"
        ]
    );
}

#[test]
fn scale_to_zero_and_cron_annotations_mean_what_they_mean_in_a_stack_file() {
    let t = translate(
        r#"{"service": "nightly", "image": "n:1",
            "labels": {"com.openfaas.scale.zero": "true", "com.openfaas.scale.zero-duration": "2m"},
            "annotations": {"topic": "cron-function", "schedule": "0 3 * * *"}}"#,
    )
    .unwrap();
    assert_eq!(t.spec.min, 0);
    assert_eq!(t.spec.scale_to_zero_after, Duration::from_secs(120));
    assert_eq!(t.spec.schedule, ["0 3 * * *"]);
}

#[test]
fn a_bad_value_is_named_by_its_field() {
    let error = |body: &str| match translate(body) {
        Ok(t) => panic!("expected an error for {body}: {t:?}"),
        Err(e) => (e.key().map(str::to_string), e.to_string()),
    };
    let (key, message) = error(r#"{"service": "f", "image": "f:1", "limits": {"memory": "lots"}}"#);
    assert_eq!(key.as_deref(), Some("limits.memory"));
    assert!(message.contains("128Mi"), "{message}");
    let (key, _) = error(r#"{"service": "f", "image": "f:1", "requests": {"cpu": "0.0001"}}"#);
    assert_eq!(key.as_deref(), Some("requests.cpu"));
    let (key, _) = error(r#"{"service": "f", "image": "f:1", "labels": {"com.openfaas.scale.max": "many"}}"#);
    assert_eq!(key.as_deref(), Some("labels.com.openfaas.scale.max"));
    let (key, message) = error(r#"{"service": "f"}"#);
    assert_eq!(key.as_deref(), Some("image"), "{message}");
    let (key, message) = error(r#"{"service": "Not_A_Name", "image": "f:1"}"#);
    assert_eq!(key.as_deref(), Some("service"), "{message}");
    let (key, _) = error(r#"{"service": "f", "image": "f:1", "envVars": {"": "x"}}"#);
    assert_eq!(key.as_deref(), Some("envVars."));
}

#[test]
fn a_body_that_is_not_json_of_the_shape_is_refused_with_where() {
    let error = parse_body::<FunctionDeployment>("FunctionDeployment", b"{\"service\": \"f\",").unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("the body is not a valid FunctionDeployment"),
        "{message}"
    );
    assert!(message.contains("line 1 column"), "{message}");
    let error = parse_body::<FunctionDeployment>("FunctionDeployment", br#"{"service": 3}"#).unwrap_err();
    assert!(error.to_string().contains("expected a string"), "{error}");
    let error = parse_body::<FunctionDeployment>("FunctionDeployment", b" \n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "the body is empty: send a FunctionDeployment as JSON"
    );
    let error = parse_body::<ScaleServiceRequest>("ScaleServiceRequest", br#"{"replicas": -1}"#).unwrap_err();
    assert!(error.to_string().contains("expected u64 at line 1"), "{error}");
    assert!(parse_body::<FunctionDeployment>("FunctionDeployment", br#"{"service": "f"} {}"#).is_err());
}

#[test]
fn a_status_read_back_and_sent_again_deploys_the_same_spec() {
    let deployed = translate(FAAS_CLI_BODY).unwrap().spec;
    let status = FunctionStatus::of(
        &deployed,
        "",
        Replicas {
            desired: 2,
            available: 1,
            invocations: 7,
        },
        1_709_193_605_000,
    );
    assert_eq!(status.env_process.as_deref(), Some("node index.js"));
    assert!(!status.env_vars.contains_key("fprocess"));
    assert_eq!(status.created_at, "2024-02-29T08:00:05Z");
    assert_eq!(
        (status.replicas, status.available_replicas, status.invocation_count),
        (2, 1, 7)
    );
    let json = serde_json::to_value(&status).unwrap();
    for field in [
        "name",
        "image",
        "namespace",
        "envProcess",
        "envVars",
        "labels",
        "annotations",
        "limits",
        "requests",
        "readOnlyRootFilesystem",
        "invocationCount",
        "replicas",
        "availableReplicas",
        "createdAt",
        "secrets",
    ] {
        assert!(json.get(field).is_some(), "{field} missing from {json}");
    }
    let again = FunctionDeployment {
        service: status.name.clone(),
        image: status.image.clone(),
        env_process: status.env_process.clone(),
        env_vars: Some(status.env_vars.clone()),
        secrets: Some(status.secrets.clone()),
        labels: Some(status.labels.clone()),
        annotations: Some(status.annotations.clone()),
        limits: status.limits.clone(),
        requests: status.requests.clone(),
        read_only_root_filesystem: Some(status.read_only_root_filesystem),
        ..FunctionDeployment::default()
    }
    .translate(&[])
    .unwrap();
    assert_eq!(again.spec, deployed);
    assert!(again.notices.is_empty(), "{:?}", again.notices);

    let mut to_zero = deployed.clone();
    to_zero.min = 0;
    to_zero.scale_to_zero_after = Duration::from_secs(90);
    to_zero.schedule = vec!["*/5 * * * *".into()];
    let status = FunctionStatus::of(&to_zero, "api:1.2", Replicas::default(), 0);
    assert_eq!(status.image, "api:1.2");
    assert_eq!(status.labels["com.openfaas.scale.zero-duration"], "90s");
    assert_eq!(status.annotations["schedule"], "*/5 * * * *");
    let again = FunctionDeployment {
        service: status.name,
        image: status.image,
        labels: Some(status.labels),
        annotations: Some(status.annotations),
        ..FunctionDeployment::default()
    }
    .translate(&[])
    .unwrap();
    assert_eq!(
        (again.spec.min, again.spec.scale_to_zero_after, again.spec.schedule),
        (0, Duration::from_secs(90), to_zero.schedule)
    );
}

#[test]
fn a_secret_value_is_text_or_base64() {
    let secret = |body: &str| parse_body::<Secret>("Secret", body.as_bytes()).unwrap().0;
    assert_eq!(
        secret(r#"{"name": "k", "value": "s3cret"}"#).bytes().unwrap(),
        b"s3cret"
    );
    assert_eq!(
        secret(r#"{"name": "k", "rawValue": "AAEC/w=="}"#).bytes().unwrap(),
        [0, 1, 2, 255]
    );
    assert_eq!(
        secret(r#"{"name": "k", "value": "", "rawValue": "aGk="}"#)
            .bytes()
            .unwrap(),
        b"hi"
    );
    let error = secret(r#"{"name": "k", "rawValue": "not base64!"}"#)
        .bytes()
        .unwrap_err();
    assert!(error.to_string().starts_with("rawValue: not base64"), "{error}");
    let error = secret(r#"{"name": "k"}"#).bytes().unwrap_err();
    assert!(
        error.to_string().starts_with("value: the secret has no value"),
        "{error}"
    );
}

#[test]
fn the_other_bodies_have_openfaas_field_names() {
    let (delete, _): (DeleteFunctionRequest, _) =
        parse_body("DeleteFunctionRequest", br#"{"functionName": "api"}"#).unwrap();
    assert_eq!(delete.function_name, "api");
    let (scale, _): (ScaleServiceRequest, _) =
        parse_body("ScaleServiceRequest", br#"{"serviceName": "api", "replicas": 3}"#).unwrap();
    assert_eq!((scale.service_name.as_str(), scale.replicas), ("api", 3));
    let entry = LogEntry {
        name: "api".into(),
        namespace: DEFAULT_NAMESPACE.into(),
        instance: "i-1".into(),
        timestamp: "2024-02-29T08:00:05Z".into(),
        text: "hello".into(),
    };
    assert_eq!(
        serde_json::to_string(&entry).unwrap(),
        r#"{"name":"api","namespace":"openfaas-fn","instance":"i-1","timestamp":"2024-02-29T08:00:05Z","text":"hello"}"#
    );
    let info = serde_json::to_value(GatewayInfo::fjord("0.1.0", "x86_64")).unwrap();
    assert_eq!(info["provider"]["provider"], "fjord");
    assert_eq!(info["provider"]["orchestration"], "fjord");
    assert_eq!(info["provider"]["version"]["release"], "0.1.0");
    assert_eq!(info["version"]["release"], "0.1.0");
    assert_eq!(info["arch"], "x86_64");
}
