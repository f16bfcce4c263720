//! An OpenFaaS stack.yml deployed as it is with `fjord deploy -f stack.yml`: two functions
//! (images of the docker runtime), scale labels, an environment file, `${VAR}` substitution,
//! a named secret and keys Fjord does not honour, each named in a warning; `--filter`; and a
//! malformed file whose error names the line.
//!
//! The deploying test needs a Docker engine: without one it prints why and passes, and with
//! `FJORD_REQUIRE_DOCKER=1` (CI) it fails instead. The bad-input test runs on process agents.

use fjord_tests::docker::*;
use fjord_tests::*;
use std::collections::BTreeSet;
use std::path::Path;

/// The keys named by the `warning: FILE: KEY: ...` lines of `stderr`.
fn warned_keys(stderr: &str, file: &Path) -> BTreeSet<String> {
    let prefix = format!("warning: {}: ", file.display());
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|rest| rest.split_once(": ").map(|(key, _)| key.to_string()))
        .collect()
}

const STACK: &str = r#"version: 1.0
provider:
  name: openfaas
  gateway: http://127.0.0.1:8080
functions:
  greeter:
    lang: dockerfile
    handler: ./greeter
    image: ${GREETER_IMAGE}
    environment:
      GREETING: ${GREETING:-hello from the stack}
      LEVEL: inline
    environment_file:
      - env/common.yml
    secrets:
      - db-password
    limits:
      memory: 64Mi
      cpu: 250m
    labels:
      com.openfaas.scale.min: 1
      com.openfaas.scale.max: 3
      team: payments
    annotations:
      prometheus.io.scrape: "true"
  echo:
    image: ${ECHO_IMAGE}
    labels:
      com.openfaas.scale.zero: true
      com.openfaas.scale.zero-duration: 2m
      com.openfaas.scale.max: 2
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_file_deploys_and_serves_naming_every_key_fjord_does_not_honour() {
    if !require_docker() {
        return;
    }
    example_images();
    let platform = DockerPlatform::start(1).await;
    let dir = platform.dir.path().join("project");
    std::fs::create_dir_all(dir.join("env")).unwrap();
    std::fs::write(
        dir.join("env/common.yml"),
        "environment:\n  LEVEL: from the file\n  REGION: eu-north\n",
    )
    .unwrap();
    let stack = dir.join("stack.yml");
    std::fs::write(&stack, STACK).unwrap();
    let (env_image, echo_image) = (example_image("env"), example_image("echo"));
    let variables = [
        ("GREETER_IMAGE", env_image.as_str()),
        ("ECHO_IMAGE", echo_image.as_str()),
    ];

    // The stack's secret, missing: the deploy is refused naming it.
    let out = platform.fjord_with_env(&["deploy", "-f", stack.to_str().unwrap()], &variables);
    assert!(!out.status.success(), "a missing secret refuses the deploy");
    assert!(
        text(&out.stderr).contains("fjord secret create db-password"),
        "{}",
        text(&out.stderr)
    );
    let out = platform.fjord(&[
        "secret",
        "create",
        "db-password",
        "--from-literal",
        "pa55-from-the-store",
    ]);
    succeeded("fjord secret create", &out);

    let out = platform.fjord_with_env(&["deploy", "-f", stack.to_str().unwrap()], &variables);
    let stdout = succeeded("fjord deploy -f stack.yml", &out);
    let deployed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("deployed "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(
        deployed,
        vec!["greeter", "echo"],
        "one line per function, in the file's order:\n{stdout}"
    );
    let stderr = text(&out.stderr);
    let expected: BTreeSet<String> = ["provider.gateway", "functions.greeter.annotations.prometheus.io.scrape"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(warned_keys(&stderr, &stack), expected, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "warning: {}: functions.greeter.annotations.prometheus.io.scrape: not supported, ignored",
            stack.display()
        )),
        "{stderr}"
    );
    // The secret, where a function built for OpenFaaS reads it.
    let answer = platform
        .invoke_when_routable("greeter", "/secret/db-password?dir=/var/openfaas/secrets", b"", &[])
        .await;
    assert_eq!(
        (answer.status, answer.text()),
        (200, "pa55-from-the-store".to_string()),
        "{}",
        platform.agent_logs()
    );

    // The environment: inline, the file over it, and the default of a substitution.
    let answer = platform
        .invoke_when_routable("greeter", "/?names=GREETING,LEVEL,REGION", b"", &[])
        .await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), platform.agent_logs());
    assert_eq!(
        answer.text(),
        "GREETING=hello from the stack\nLEVEL=from the file\nREGION=eu-north\n"
    );
    let answer = platform.invoke_when_routable("echo", "/", b"through the lb", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "through the lb");

    // What the scale labels and limits became.
    let describe = |name: &str| -> serde_json::Value {
        let out = platform.fjord(&["describe", name, "--json"]);
        serde_json::from_str(&succeeded("fjord describe", &out)).expect("describe --json prints JSON")
    };
    let greeter = describe("greeter");
    let spec = &greeter["spec"];
    assert_eq!(
        (spec["min"].as_u64(), spec["max"].as_u64()),
        (Some(1), Some(3)),
        "{spec}"
    );
    assert_eq!(
        (spec["memory_mib"].as_u64(), spec["cpu_millis"].as_u64()),
        (Some(64), Some(250))
    );
    assert_eq!(spec["labels"], serde_json::json!({"team": "payments"}));
    // The image as the substitution wrote it (the spec holds the digest it was pinned to).
    assert_eq!(greeter["image_ref"].as_str(), Some(env_image.as_str()), "{greeter}");
    let echo = describe("echo");
    let spec = &echo["spec"];
    assert_eq!(
        (spec["min"].as_u64(), spec["max"].as_u64()),
        (Some(0), Some(2)),
        "{spec}"
    );
    assert_eq!(spec["scale_to_zero_after"], "2m");

    // --filter: one function, as JSON; an unchanged spec keeps its revision.
    let out = platform.fjord_with_env(
        &["deploy", "-f", stack.to_str().unwrap(), "--filter", "echo", "--json"],
        &variables,
    );
    let printed: serde_json::Value =
        serde_json::from_str(&succeeded("deploy --filter echo --json", &out)).expect("JSON");
    let printed = printed.as_array().expect("an array of the stored functions");
    assert_eq!(printed.len(), 1, "{printed:?}");
    assert_eq!(printed[0]["name"], "echo");
    assert_eq!(printed[0]["revision"], echo["revision"]);
    let warned = warned_keys(&text(&out.stderr), &stack);
    assert!(
        warned.iter().all(|k| !k.starts_with("functions.greeter")),
        "a function left out is not read: {warned:?}"
    );

    let out = platform.fjord_with_env(
        &["deploy", "-f", stack.to_str().unwrap(), "--filter", "nope"],
        &variables,
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--filter nope: no function of the file matches; it has greeter, echo"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_stack_file_names_the_line_or_the_key_and_deploys_nothing() {
    // Nothing here reaches a runtime: process agents do.
    let platform = Platform::start(1).await;
    let dir = platform.dir.path();
    let deploy = |name: &str, yaml: &str| {
        let path = dir.join(name);
        std::fs::write(&path, yaml).unwrap();
        platform.fjord(&["deploy", "-f", path.to_str().unwrap()])
    };

    // Malformed: the line and column.
    let out = deploy(
        "stack.yml",
        "version: 1.0\nprovider:\n  name: openfaas\nfunctions:\n  api:\n    image: r/api:1\n   limits: {}\n",
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("stack.yml: ") && stderr.contains("at line 7 column"),
        "{stderr}"
    );

    // A bad value: its key and line, though the file is not named stack.yml.
    let out = deploy(
        "functions.yml",
        "version: 1.0\nprovider:\n  name: openfaas\nfunctions:\n  ok:\n    image: r/ok:1\n  api:\n    image: r/api:1\n    limits:\n      memory: 128m\n",
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("functions.api.limits.memory: "), "{stderr}");
    assert!(stderr.contains("at line 10 column"), "{stderr}");
    assert!(stderr.contains("128Mi or 128M"), "{stderr}");

    // No image: refused, saying why.
    let out = deploy(
        "stack.yml",
        "provider:\n  name: openfaas\nfunctions:\n  api:\n    lang: python3-http\n    handler: ./api\n",
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("functions.api.image: is missing") && stderr.contains("`fjord build` tags"),
        "{stderr}"
    );

    // Nothing was deployed by any of them, the well-formed `ok` included.
    let out = platform.fjord(&["list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&succeeded("fjord list", &out)).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");

    // A fjord.yaml is read as before, and --filter is for stack files only.
    let out = deploy("fjord.yaml", "name: Bad_Name\nimage: r/x:1\n");
    assert!(
        text(&out.stderr).contains("invalid function spec: field `name`"),
        "{}",
        text(&out.stderr)
    );
    let path = dir.join("fjord.yaml");
    let out = platform.fjord(&["deploy", "-f", path.to_str().unwrap(), "--filter", "x"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--filter selects functions of an OpenFaaS stack file"));
}
