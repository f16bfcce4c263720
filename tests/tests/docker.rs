//! The docker runtime on a real engine: agents started with `--runtime docker` run the example
//! functions as `FROM scratch` images built here, locked down, killed for exceeding their memory,
//! and cleaned up by the next agent of a node whose agent was killed.
//!
//! Without a Docker engine these tests print why and pass; with `FJORD_REQUIRE_DOCKER=1` (CI)
//! they fail instead.

use fjord_tests::docker::*;
use fjord_tests::*;
use std::time::Duration;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Sets up a one-agent docker platform, or `None` when the test must be skipped.
async fn docker_platform() -> Option<DockerPlatform> {
    if !require_docker() {
        return None;
    }
    example_images();
    Some(DockerPlatform::start(1).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_serves_invocations_through_the_lb() {
    let Some(mut platform) = docker_platform().await else {
        return;
    };
    let out = platform.deploy_image("echo", &example_image("echo"), "");
    assert!(out.status.success(), "deploy echo: {}", stderr(&out));

    let answer = platform
        .invoke_when_routable(
            "echo",
            "/any/path",
            b"hello from a container",
            &[("x-echo-trace", "t-1")],
        )
        .await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), platform.agent_logs());
    assert_eq!(answer.text(), "hello from a container");
    assert_eq!(answer.header("x-echo-trace"), Some("t-1"));
    assert_eq!(answer.header("x-fjord-node"), Some(platform.node_ids[0].as_str()));
    assert_eq!(answer.header("x-fjord-cold-start"), Some("1"));

    // The warm instance answers the next call.
    let again = http("POST", &platform.lb_url("/function/echo"), b"again", &[])
        .await
        .unwrap();
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.text(), "again");
    assert_eq!(again.header("x-fjord-instance"), answer.header("x-fjord-instance"));

    // A graceful agent stop removes its containers.
    let node_label = format!("fjord.node={}", platform.node_ids[0]);
    assert_eq!(containers(&[&node_label]).len(), 1);
    let status = platform.agents[0].terminate(Duration::from_secs(20));
    assert!(
        status.success(),
        "agent exited with {status}: {}",
        platform.agent_logs()
    );
    let left = containers(&[&node_label]);
    assert!(left.is_empty(), "containers left after a graceful stop: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_is_locked_down_and_labelled() {
    let Some(platform) = docker_platform().await else {
        return;
    };
    let out = platform.deploy_image(
        "locked",
        &example_image("env"),
        "memory_mib: 64\ncpu_millis: 250\nenv:\n  GREETING: hej\nsecrets:\n  API_KEY: s3cret\n",
    );
    assert!(out.status.success(), "deploy: {}", stderr(&out));
    let answer = platform.invoke_when_routable("locked", "/", b"", &[]).await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), platform.agent_logs());
    assert!(answer.text().contains("GREETING=hej"), "{}", answer.text());
    let instance = answer
        .header("x-fjord-instance")
        .expect("an instance header")
        .to_string();
    let node = platform.node_ids[0].as_str();

    let ids = containers(&[
        "fjord.managed=true",
        &format!("fjord.node={node}"),
        "fjord.function=locked",
    ]);
    assert_eq!(ids.len(), 1, "one container for the function: {ids:?}");
    let c = inspect(&ids[0]).expect("the container exists");
    let host = &c["HostConfig"];
    assert_eq!(host["Memory"], 64 << 20, "memory limit");
    assert_eq!(host["MemorySwap"], 64 << 20, "no swap beyond the memory limit");
    assert_eq!(host["NanoCpus"], 250_000_000, "CPU limit");
    assert_eq!(host["PidsLimit"], 256, "pids limit");
    assert_eq!(host["ReadonlyRootfs"], true, "read-only root filesystem");
    let tmpfs = host["Tmpfs"]["/tmp"].as_str().expect("a tmpfs at /tmp");
    assert!(tmpfs.contains("size="), "the tmpfs is size-limited: {tmpfs}");
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]), "every capability dropped");
    assert!(host["CapAdd"].is_null(), "no capability added: {}", host["CapAdd"]);
    let security = host["SecurityOpt"].as_array().expect("security options");
    assert!(
        security
            .iter()
            .any(|o| o.as_str().is_some_and(|o| o.starts_with("no-new-privileges"))),
        "no-new-privileges: {security:?}"
    );
    assert_eq!(host["Privileged"], false, "not privileged");
    assert_eq!(host["Init"], true, "an init process passes signals on");
    let network_mode = host["NetworkMode"].as_str().unwrap_or_default();
    assert_ne!(network_mode, "host", "never the host's network");
    assert_eq!(network_mode, "bridge");

    let bindings = host["PortBindings"]["8080/tcp"]
        .as_array()
        .expect("8080/tcp is published");
    assert!(!bindings.is_empty());
    for binding in bindings {
        assert_eq!(binding["HostIp"], "127.0.0.1", "published on loopback only: {binding}");
    }
    let published = c["NetworkSettings"]["Ports"]["8080/tcp"]
        .as_array()
        .expect("published ports");
    assert!(!published.is_empty());
    for binding in published {
        assert_eq!(binding["HostIp"], "127.0.0.1", "published on loopback only: {binding}");
    }
    for (port, bound) in c["NetworkSettings"]["Ports"].as_object().unwrap() {
        assert!(
            port == "8080/tcp" || bound.is_null(),
            "only 8080/tcp is published: {port}"
        );
    }

    let labels = &c["Config"]["Labels"];
    assert_eq!(labels["fjord.managed"], "true");
    assert_eq!(labels["fjord.function"], "locked");
    assert_eq!(labels["fjord.node"], node);
    assert_eq!(labels["fjord.instance"], instance.as_str());

    let env: Vec<&str> = c["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for expected in [
        "GREETING=hej",
        "API_KEY=s3cret",
        "PORT=8080",
        "HOST=0.0.0.0",
        "FJORD_FUNCTION=locked",
        &format!("FJORD_INSTANCE_ID={instance}"),
    ] {
        assert!(env.contains(&expected), "{expected} in the container's env: {env:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_over_its_memory_limit_is_reported_and_replaced() {
    let Some(platform) = docker_platform().await else {
        return;
    };
    let out = platform.deploy_image("hungry", &example_image("sleep"), "memory_mib: 32\n");
    assert!(out.status.success(), "deploy: {}", stderr(&out));
    let warm = platform.invoke_when_routable("hungry", "/?ms=0", b"", &[]).await;
    assert_eq!(warm.status, 200, "{}\n{}", warm.text(), platform.agent_logs());
    let first = warm.header("x-fjord-instance").unwrap().to_string();

    let killed = http(
        "POST",
        &platform.lb_url("/function/hungry?ms=0&alloc_mib=200"),
        b"",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(killed.status, 502, "{}\n{}", killed.text(), platform.agent_logs());
    assert!(
        killed.text().contains("exceeding its memory limit (OOM)"),
        "the caller is told why: {}",
        killed.text()
    );

    let next = http("POST", &platform.lb_url("/function/hungry?ms=0"), b"", &[])
        .await
        .unwrap();
    assert_eq!(next.status, 200, "{}\n{}", next.text(), platform.agent_logs());
    let second = next.header("x-fjord-instance").unwrap();
    assert_ne!(second, first, "a fresh instance serves after the OOM kill");

    // The killed container is removed; only the fresh one is left.
    let node_label = format!("fjord.node={}", platform.node_ids[0]);
    eventually(
        "the killed container to be removed",
        Duration::from_secs(10),
        || async { (containers(&[&node_label, "fjord.function=hungry"]).len() == 1).then_some(()) },
    )
    .await;

    // The function's output and the platform's account of the kill are in its logs.
    eventually("the OOM kill in fjord logs", Duration::from_secs(10), || async {
        let out = platform.fjord(&["logs", "hungry"]);
        let logs = String::from_utf8_lossy(&out.stdout).into_owned();
        (logs.contains("sleep: slept 0 ms") && logs.contains("exceeding its memory limit")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_agent_removes_the_containers_its_killed_predecessor_left() {
    let Some(mut platform) = docker_platform().await else {
        return;
    };
    let node = platform.node_ids[0].clone();
    let out = platform.deploy_image("survivor", &example_image("echo"), "");
    assert!(out.status.success(), "deploy: {}", stderr(&out));
    let answer = platform.invoke_when_routable("survivor", "/", b"before", &[]).await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), platform.agent_logs());
    let node_label = format!("fjord.node={node}");
    let before = containers(&[&node_label]);
    assert_eq!(before.len(), 1, "{before:?}");

    // A killed agent cannot stop its containers: they outlive it.
    platform.agents[0].kill9();
    let orphan = inspect(&before[0]).expect("the container outlives a killed agent");
    assert_eq!(orphan["State"]["Running"], true);

    platform.restart_agent_hard(0);
    eventually(
        "the new agent to remove its predecessor's container",
        Duration::from_secs(30),
        || async { inspect(&before[0]).is_none().then_some(()) },
    )
    .await;

    // The function serves again, from a container the new agent started.
    let answer = eventually("the function to serve again", Duration::from_secs(30), || async {
        http("POST", &platform.lb_url("/function/survivor"), b"after", &[])
            .await
            .ok()
            .filter(|a| a.status == 200)
    })
    .await;
    assert_eq!(answer.text(), "after");
    let after = containers(&[&node_label]);
    assert_eq!(after.len(), 1, "only the new agent's container: {after:?}");
    assert!(!after.contains(&before[0]));
    let labels = inspect(&after[0]).unwrap()["Config"]["Labels"].clone();
    assert_eq!(labels["fjord.instance"], answer.header("x-fjord-instance").unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_that_cannot_be_pulled_fails_the_call_with_the_reason() {
    let Some(platform) = docker_platform().await else {
        return;
    };
    // No registry holds this image (and none may be reachable): the pull fails, and says so.
    let image = "fjord-example/absent:never-built";
    let out = platform.deploy_image("absent", image, "");
    assert!(out.status.success(), "deploy: {}", stderr(&out));
    let answer = platform.invoke_when_routable("absent", "/", b"", &[]).await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(
        answer.text().contains("pulling image") && answer.text().contains(image),
        "the caller is told which image failed: {}",
        answer.text()
    );
    let node_label = format!("fjord.node={}", platform.node_ids[0]);
    assert!(containers(&[&node_label]).is_empty(), "no container for a failed start");
}

#[tokio::test(flavor = "multi_thread")]
async fn images_are_pulled_from_a_registry_with_credentials_and_bad_ones_say_why() {
    if !require_docker() {
        return;
    }
    example_images();
    let (user, password) = ("fjord", "registry-pass-1");
    let registry = LocalRegistry::start(user, password).await;
    let good = registry.push(&example_image("echo"), "team/echo:v1", user, password);
    let other = registry.push(&example_image("echo"), "team/echo:v2", user, password);
    let host = format!("127.0.0.1:{}", registry.port);

    let dir = tempfile::tempdir().unwrap();
    let right = dir.path().join("right.json");
    std::fs::write(
        &right,
        format!(r#"{{"{host}": {{"username": "{user}", "password": "{password}"}}}}"#),
    )
    .unwrap();
    let platform = DockerPlatform::start_with(1, &["--registry-auth-file", right.to_str().unwrap()]).await;
    assert!(platform.deploy_image("pulled", &good, "").status.success());
    let answer = platform
        .invoke_when_routable("pulled", "", b"from the registry", &[])
        .await;
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (200, "from the registry"),
        "{}",
        answer.text()
    );

    // An unknown tag: a 502 that carries the registry's reason.
    assert!(platform
        .deploy_image("missing", &format!("{host}/team/echo:nope"), "")
        .status
        .success());
    let missing = platform.invoke_when_routable("missing", "", b"x", &[]).await;
    assert_eq!(missing.status, 502, "{}", missing.text());
    assert!(missing.text().contains("team/echo:nope"), "{}", missing.text());
    assert!(
        missing.text().to_lowercase().contains("not found") || missing.text().contains("manifest unknown"),
        "{}",
        missing.text()
    );

    // Wrong credentials: refused by the registry, and the user is told so.
    let wrong = dir.path().join("wrong.json");
    std::fs::write(
        &wrong,
        format!(r#"{{"{host}": {{"username": "{user}", "password": "not-it"}}}}"#),
    )
    .unwrap();
    let refused = DockerPlatform::start_with(1, &["--registry-auth-file", wrong.to_str().unwrap()]).await;
    assert!(refused.deploy_image("locked", &other, "").status.success());
    let locked = refused.invoke_when_routable("locked", "", b"x", &[]).await;
    assert_eq!(locked.status, 502, "{}", locked.text());
    let text = locked.text().to_lowercase();
    assert!(
        text.contains("unauthorized") || text.contains("authentication"),
        "{}",
        locked.text()
    );
}
