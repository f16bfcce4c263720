//! The docker runtime on a real engine: agents started with `--runtime docker` run the example
//! functions as `FROM scratch` images built here, locked down, killed for exceeding their memory,
//! and cleaned up by the next agent of a node whose agent was killed; images are resolved to
//! digests and pulled from a real registry with credentials; cold starts take containers the
//! agent created ahead of time, which never outlive their function or the agent.
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

    // A graceful agent stop removes its containers, the pre-created one included.
    let node_label = format!("fjord.node={}", platform.node_ids[0]);
    assert_eq!(instance_containers(&[&node_label]).len(), 1);
    eventually("a pre-created container", Duration::from_secs(20), || async {
        (precreated_containers(&[&node_label]).len() == 1).then_some(())
    })
    .await;
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
    let out = platform.fjord(&["secret", "create", "api-key", "--from-literal", "s3cret"]);
    assert!(out.status.success(), "secret create: {}", stderr(&out));
    let out = platform.deploy_image(
        "locked",
        &example_image("env"),
        "memory_mib: 64\ncpu_millis: 250\nenv:\n  GREETING: hej\nsecrets: [api-key]\n",
    );
    assert!(out.status.success(), "deploy: {}", stderr(&out));
    // The secret is a read-only file at both paths, never an environment variable.
    for dir in ["/var/openfaas/secrets", "/var/fjord/secrets"] {
        let answer = platform
            .invoke_when_routable("locked", &format!("/secret/api-key?dir={dir}"), b"", &[])
            .await;
        assert_eq!((answer.status, answer.text()), (200, "s3cret".to_string()), "{dir}");
        let write = platform
            .invoke_when_routable("locked", &format!("/write?path={dir}/api-key"), b"", &[])
            .await;
        assert!(
            write.text().starts_with("refused"),
            "{dir} is read-only: {}",
            write.text()
        );
    }
    let answer = platform.invoke_when_routable("locked", "/", b"", &[]).await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), platform.agent_logs());
    assert!(answer.text().contains("GREETING=hej"), "{}", answer.text());
    let instance = answer
        .header("x-fjord-instance")
        .expect("an instance header")
        .to_string();
    let node = platform.node_ids[0].as_str();

    let labels = [
        "fjord.managed=true",
        &format!("fjord.node={node}"),
        "fjord.function=locked",
    ];
    // The instance that answered. (The autoscaler may start more: with the default target
    // utilization of 0.7, one call in flight asks for 2 instances.)
    let instance_label = format!("fjord.instance={instance}");
    let ids = instance_containers(&[&labels[..], &[instance_label.as_str()]].concat());
    assert_eq!(ids.len(), 1, "one container for the instance that answered: {ids:?}");
    let c = inspect(&ids[0]).expect("the container exists");
    assert_locked_down(&c, node, "locked", &instance);

    // The container created ahead of time for the next cold start is locked down alike. (A
    // prewarm may take one between listing and inspecting it: then the next one is looked at.)
    let c = eventually("a pre-created container", Duration::from_secs(20), || async {
        precreated_containers(&labels)
            .iter()
            .filter_map(|id| inspect(id))
            .find(|c| c["State"]["Status"] == "created")
    })
    .await;
    let spare_instance = c["Config"]["Labels"]["fjord.instance"].as_str().unwrap().to_string();
    assert_ne!(spare_instance, instance);
    assert_locked_down(&c, node, "locked", &spare_instance);
}

/// Checks the isolation settings, labels and environment of one container of `function`.
fn assert_locked_down(c: &serde_json::Value, node: &str, function: &str, instance: &str) {
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
    assert_eq!(network_mode, "fjord-functions", "the node's function network");
    let log_config = &host["LogConfig"];
    assert_eq!(log_config["Type"], "json-file");
    assert!(
        log_config["Config"]["max-size"].is_string(),
        "the engine's copy of the output is bounded: {log_config}"
    );

    // Nothing is published on the host: the agent reaches the instance on the function network.
    let published = host["PortBindings"].as_object().map_or(0, |b| b.len());
    assert_eq!(published, 0, "no port published on the host: {}", host["PortBindings"]);
    if c["State"]["Running"] == true {
        for (port, bound) in c["NetworkSettings"]["Ports"].as_object().into_iter().flatten() {
            assert!(bound.is_null(), "{port} is published on the host: {bound}");
        }
        let address = &c["NetworkSettings"]["Networks"]["fjord-functions"]["IPAddress"];
        assert!(
            address.as_str().is_some_and(|a| !a.is_empty()),
            "an address on the function network: {}",
            c["NetworkSettings"]["Networks"]
        );
    }

    let labels = &c["Config"]["Labels"];
    assert_eq!(labels["fjord.managed"], "true");
    assert_eq!(labels["fjord.function"], function);
    assert_eq!(labels["fjord.node"], node);
    assert_eq!(labels["fjord.instance"], instance);

    let env: Vec<&str> = c["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        !env.iter().any(|v| v.contains("s3cret")),
        "no secret in the container's env: {env:?}"
    );
    let binds: Vec<&str> = host["Binds"]
        .as_array()
        .expect("the secret files are bound")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for target in ["/var/openfaas/secrets", "/var/fjord/secrets"] {
        assert!(
            binds
                .iter()
                .any(|b| b.starts_with("/dev/shm/") && b.ends_with(&format!(":{target}:ro"))),
            "{target} bound read-only from tmpfs: {binds:?}"
        );
    }
    for expected in [
        "GREETING=hej",
        "PORT=8080",
        "HOST=0.0.0.0",
        &format!("FJORD_FUNCTION={function}"),
        &format!("FJORD_INSTANCE_ID={instance}"),
    ] {
        assert!(env.contains(&expected), "{expected} in the container's env: {env:?}");
    }
}

/// What `env`'s `/connect?to=` says from inside an instance of `function`.
async fn reach_from(platform: &DockerPlatform, function: &str, to: &str) -> String {
    let answer = http(
        "GET",
        &platform.lb_url(&format!("/function/{function}/connect?to={to}")),
        b"",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), platform.agent_logs());
    answer.text()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_cannot_reach_the_node_or_the_platform_and_writes_only_to_tmp() {
    if !require_docker() {
        return;
    }
    if !host_firewall_available() {
        assert!(
            std::env::var("FJORD_REQUIRE_DOCKER").map_or(true, |v| v != "1"),
            "FJORD_REQUIRE_DOCKER=1 but this host cannot take the agent's function firewall (iptables as root)"
        );
        eprintln!("SKIPPED: iptables is not usable here (not root, or no DOCKER-USER chain)");
        return;
    }
    example_images();
    // A service on the node listening on every interface: what a function on the bridge could
    // reach through the bridge's gateway address, were it not for the firewall.
    let service = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let service_port = service.local_addr().unwrap().port();

    let platform = DockerPlatform::start(1).await;
    let out = platform.deploy_image("probe", &example_image("env"), "");
    assert!(out.status.success(), "deploy: {}", stderr(&out));
    let answer = platform.invoke_when_routable("probe", "/", b"", &[]).await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), platform.agent_logs());
    let gateway = network_gateway("fjord-functions").expect("the function network has a gateway");

    // The probe works: the instance reaches its own port.
    assert_eq!(reach_from(&platform, "probe", "127.0.0.1:8080").await, "connected\n");
    // It cannot open a connection to the node, whatever listens there.
    let to_node = reach_from(&platform, "probe", &format!("{gateway}:{service_port}")).await;
    assert!(to_node.starts_with("unreachable"), "the node's service: {to_node}");
    // The rules that keep it off the metadata service and the platform's ports elsewhere.
    let bridge = ["-i", "fjord0"];
    assert!(firewall_rule_present(
        "DOCKER-USER",
        &[&bridge[..], &["-d", "169.254.169.254/32", "-j", "DROP"]].concat()
    ));
    for port in [platform.control_plane_port, platform.agent_ports[0]] {
        let port = port.to_string();
        assert!(
            firewall_rule_present(
                "DOCKER-USER",
                &[&bridge[..], &["-p", "tcp", "--dport", &port, "-j", "DROP"]].concat()
            ),
            "no rule for platform port {port}"
        );
    }
    // Its root filesystem is read-only; /tmp is writable.
    let write = |path: &'static str| {
        let url = platform.lb_url(&format!("/function/probe/write?path={path}"));
        async move { http("GET", &url, b"", &[]).await.unwrap().text() }
    };
    assert!(write("/escape").await.starts_with("refused"), "the root is read-only");
    assert_eq!(write("/tmp/scratch").await, "written\n");

    // The same function on a network without the firewall reaches the node's service: the
    // rules, not the setup of this machine, are what kept it off.
    let open_network = format!("fjord-open-{}", std::process::id());
    let open_bridge = format!("fjo{}", std::process::id() % 1_000_000);
    let open = DockerPlatform::start_with(
        1,
        &[
            "--function-network",
            &open_network,
            "--function-bridge",
            &open_bridge,
            "--function-firewall",
            "false",
            // The other way to reach instances (rootless engines): a port published on loopback.
            "--instance-address",
            "published",
        ],
    )
    .await;
    assert!(open.deploy_image("probe", &example_image("env"), "").status.success());
    let answer = open.invoke_when_routable("probe", "/", b"", &[]).await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), open.agent_logs());
    let container = instance_containers(&[&format!("fjord.node={}", open.node_ids[0])]);
    let published = inspect(&container[0]).unwrap()["NetworkSettings"]["Ports"]["8080/tcp"].clone();
    assert_eq!(
        published[0]["HostIp"], "127.0.0.1",
        "published on loopback only: {published}"
    );
    let open_gateway = network_gateway(&open_network).expect("the open network has a gateway");
    let reached = reach_from(&open, "probe", &format!("{open_gateway}:{service_port}")).await;
    assert_eq!(reached, "connected\n", "without the firewall the node is reachable");
    drop(open);
    remove_network(&open_network);
    drop(service);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_instance_is_reported_with_its_exit_code_and_replaced() {
    let Some(platform) = docker_platform().await else {
        return;
    };
    let out = platform.deploy_image("crashy", &example_image("sleep"), "");
    assert!(out.status.success(), "deploy: {}", stderr(&out));
    let warm = platform.invoke_when_routable("crashy", "/?ms=0", b"", &[]).await;
    assert_eq!(warm.status, 200, "{}\n{}", warm.text(), platform.agent_logs());
    let first = warm.header("x-fjord-instance").unwrap().to_string();

    let crashed = http("POST", &platform.lb_url("/function/crashy?exit=3"), b"", &[])
        .await
        .unwrap();
    assert_eq!(crashed.status, 502, "{}\n{}", crashed.text(), platform.agent_logs());
    assert!(
        crashed.text().contains("exited with code 3"),
        "the caller is told how it died: {}",
        crashed.text()
    );
    let next = http("POST", &platform.lb_url("/function/crashy?ms=0"), b"", &[])
        .await
        .unwrap();
    assert_eq!(next.status, 200, "{}\n{}", next.text(), platform.agent_logs());
    assert_ne!(
        next.header("x-fjord-instance"),
        Some(first.as_str()),
        "a fresh instance"
    );
    eventually("the crash in fjord logs", Duration::from_secs(10), || async {
        let out = platform.fjord(&["logs", "crashy"]);
        let logs = String::from_utf8_lossy(&out.stdout).into_owned();
        (logs.contains("exiting with code 3 on purpose") && logs.contains("exited with code 3")).then_some(())
    })
    .await;
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
    let node_label = format!("fjord.node={}", platform.node_ids[0]);
    let killed_label = format!("fjord.instance={first}");
    assert_eq!(
        instance_containers(&[&node_label, &killed_label]).len(),
        1,
        "the instance that answered runs in a container labelled with its id"
    );

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

    // The killed container is removed. (Others may run: with the default target utilization of
    // 0.7, the autoscaler asks for 2 instances while a call is in flight.)
    eventually_or(
        "the killed container to be removed",
        Duration::from_secs(10),
        || async { containers(&[&node_label, &killed_label]).is_empty().then_some(()) },
        || {
            format!(
                "containers: {:?}\n{}",
                container_states(&[&node_label, "fjord.function=hungry"]),
                platform.all_logs()
            )
        },
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
    let running = instance_containers(&[&node_label]);
    assert_eq!(running.len(), 1, "{running:?}");
    let spare = eventually("a pre-created container", Duration::from_secs(20), || async {
        precreated_containers(&[&node_label]).into_iter().next()
    })
    .await;
    let before = containers(&[&node_label]);
    assert_eq!(before.len(), 2, "the instance's and the pre-created one: {before:?}");

    // A killed agent cannot stop its containers: they outlive it, the pre-created one too.
    platform.agents[0].kill9();
    let orphan = inspect(&running[0]).expect("the container outlives a killed agent");
    assert_eq!(orphan["State"]["Running"], true);
    assert!(
        inspect(&spare).is_some(),
        "the pre-created container outlives a killed agent"
    );

    platform.restart_agent_hard(0);
    eventually(
        "the new agent to remove every container its predecessor left",
        Duration::from_secs(30),
        || async { before.iter().all(|c| inspect(c).is_none()).then_some(()) },
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
    // Only the new agent's containers: the one that answered (and whatever the agent prewarms
    // for the instances the scheduler placed here), none of its predecessor's.
    let after = instance_containers(&[&node_label]);
    assert!(
        after.iter().all(|c| !before.contains(c)),
        "{before:?} left in {after:?}"
    );
    let instance = answer.header("x-fjord-instance").unwrap();
    assert!(
        after
            .iter()
            .any(|c| inspect(c).is_some_and(|c| c["Config"]["Labels"]["fjord.instance"] == instance)),
        "the container of instance {instance} among {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_nobody_has_is_refused_at_deploy_and_a_vanished_pin_fails_the_call_with_the_reason() {
    let Some(platform) = docker_platform().await else {
        return;
    };
    // No registry serves this name and the node does not have it: the deploy is refused,
    // naming the field and the image, and nothing is stored.
    let image = "fjord-example/absent:never-built";
    let out = platform.deploy_image("absent", image, "");
    assert!(!out.status.success(), "a deploy of an image nobody has must fail");
    let error = stderr(&out);
    assert!(error.contains("`image`") && error.contains(image), "{error}");
    assert!(
        !platform.fjord(&["describe", "absent"]).status.success(),
        "nothing stored"
    );

    // A pinned reference is taken as it is; if its bits are nowhere, the call fails with the
    // pull's reason.
    let pinned = format!("fjord-example/absent@sha256:{}", "0".repeat(64));
    let out = platform.deploy_image("vanished", &pinned, "");
    assert!(out.status.success(), "deploy: {}", stderr(&out));
    let answer = platform.invoke_when_routable("vanished", "/", b"", &[]).await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(
        answer.text().contains("pulling image") && answer.text().contains("fjord-example/absent"),
        "the caller is told which image failed: {}",
        answer.text()
    );
    let node_label = format!("fjord.node={}", platform.node_ids[0]);
    assert!(containers(&[&node_label]).is_empty(), "no container for a failed start");
}

#[tokio::test(flavor = "multi_thread")]
async fn images_are_pinned_at_deploy_pulled_with_credentials_and_bad_ones_fail_the_deploy() {
    if !require_docker() {
        return;
    }
    example_images();
    let (user, password) = ("fjord", "registry-pass-1");
    let registry = LocalRegistry::start(user, password).await;
    let good = registry.push(&example_image("echo"), "team/echo:v1", user, password);
    let other = registry.push(&example_image("echo"), "team/echo:v2", user, password);
    let host = registry.host();

    let platform = registry.platform_with_credentials(user, password).await;
    let path = platform.dir.path().join("pulled.yaml");
    std::fs::write(&path, format!("name: pulled\nimage: {good}\nmin: 1\n")).unwrap();
    let out = platform.fjord(&["deploy", "-f", path.to_str().unwrap(), "--wait", "--timeout", "120s"]);
    assert!(out.status.success(), "deploy --wait: {}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pulled is ready"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Without a terminal, --wait writes a line per node each time its state changes.
    let progress = stderr(&out);
    let node_line = format!("node {}: ", platform.node_ids[0]);
    assert!(
        progress
            .lines()
            .any(|l| l.contains(&node_line) && l.contains("1 ready")),
        "progress per node: {progress}"
    );
    // The record keeps the tag as deployed; the spec the nodes run names the digest.
    let described = platform.fjord(&["describe", "pulled", "--json"]);
    let described: serde_json::Value = serde_json::from_slice(&described.stdout).unwrap();
    assert_eq!(described["image_ref"], good.as_str());
    let pinned = described["spec"]["image"].as_str().unwrap();
    assert!(pinned.starts_with(&format!("{host}/team/echo@sha256:")), "{pinned}");
    let answer = platform
        .invoke_when_routable("pulled", "", b"from the registry", &[])
        .await;
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (200, "from the registry"),
        "{}",
        answer.text()
    );

    // An unknown tag: the deploy fails with the registry's reason, naming the tag.
    let out = platform.deploy_image("missing", &format!("{host}/team/echo:nope"), "");
    assert!(!out.status.success(), "a deploy of an unknown tag must fail");
    let error = stderr(&out);
    assert!(error.contains("team/echo:nope"), "{error}");
    assert!(
        error.to_lowercase().contains("not found") || error.contains("manifest unknown"),
        "{error}"
    );

    // A pinned digest the registry lacks passes the deploy (nothing to resolve) but not the
    // pull: --wait ends with the node's reason instead of waiting out its timeout.
    let absent = format!("{host}/team/echo@sha256:{}", "0".repeat(64));
    std::fs::write(&path, format!("name: unpullable\nimage: {absent}\nmin: 1\n")).unwrap();
    let out = platform.fjord(&["deploy", "-f", path.to_str().unwrap(), "--wait", "--timeout", "120s"]);
    assert!(!out.status.success(), "--wait must fail when the pull fails");
    let error = stderr(&out);
    assert!(
        error.contains("could not pull") && error.contains(&absent),
        "the failed pull, naming the image: {error}"
    );
    assert!(
        error.to_lowercase().contains("manifest unknown") || error.to_lowercase().contains("not found"),
        "the registry's reason: {error}"
    );

    // Wrong credentials: the registry refuses, and the deploy says so.
    let refused = registry.platform_with_credentials(user, "not-it").await;
    let out = refused.deploy_image("locked", &other, "");
    assert!(!out.status.success(), "a deploy with wrong credentials must fail");
    let error = stderr(&out).to_lowercase();
    assert!(
        error.contains("unauthorized") || error.contains("authentication"),
        "{error}"
    );
}

/// A registry holding `team/echo:v1` (returned, pushed), and a platform whose agent has the
/// right credentials for it.
async fn registry_and_platform(user: &str, password: &str) -> (LocalRegistry, String, DockerPlatform) {
    let registry = LocalRegistry::start(user, password).await;
    let good = registry.push(&example_image("echo"), "team/echo:v1", user, password);
    let platform = registry.platform_with_credentials(user, password).await;
    (registry, good, platform)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_resolves_to_its_registry_digest_and_the_node_pulls_it() {
    if !require_docker() {
        return;
    }
    example_images();
    let (registry, good, platform) = registry_and_platform("fjord", "registry-pass-2").await;
    let host = registry.host();

    let answer = platform.resolve_image(0, &good).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let resolved = answer.json();
    assert_eq!(resolved["image"], good.as_str());
    let digest = resolved["digest"].as_str().expect("a digest").to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "a sha256 digest: {digest}"
    );
    let pinned = format!("{host}/team/echo@{digest}");
    assert_eq!(
        resolved["pinned"],
        pinned.as_str(),
        "the repository with the digest, no tag"
    );

    // The resolve set off a pull of the pinned image: asking again follows it to ready, and the
    // engine then holds the image under the very digest the registry named.
    eventually("the pinned image to be pulled", Duration::from_secs(60), || async {
        let again = platform.resolve_image(0, &good).await;
        (again.status == 200 && again.json()["status"]["state"] == "ready").then_some(())
    })
    .await;
    let digests = repo_digests(&pinned).expect("the engine holds the pinned image");
    assert!(digests.contains(&pinned), "{pinned} in {digests:?}");

    // A pinned reference is its own resolution, without asking the registry.
    let pinned_answer = platform.resolve_image(0, &pinned).await;
    assert_eq!(pinned_answer.status, 200, "{}", pinned_answer.text());
    assert_eq!(pinned_answer.json()["digest"], digest.as_str());
    assert_eq!(pinned_answer.json()["status"]["state"], "ready");

    // An instance runs from the pinned reference.
    assert!(platform.deploy_image("pinned", &pinned, "").status.success());
    let answer = platform.invoke_when_routable("pinned", "", b"by digest", &[]).await;
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (200, "by digest"),
        "{}",
        platform.agent_logs()
    );

    // A digest the registry does not have resolves as written (nothing is asked), but its
    // pull fails, and the node says why.
    let absent = format!("{host}/team/echo@sha256:{}", "0".repeat(64));
    let answer = platform.resolve_image(0, &absent).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let reason = eventually(
        "the pull of an absent digest to fail",
        Duration::from_secs(60),
        || async {
            let again = platform.resolve_image(0, &absent).await.json();
            (again["status"]["state"] == "failed")
                .then(|| again["status"]["reason"].as_str().unwrap_or_default().to_string())
        },
    )
    .await;
    assert!(reason.contains(&absent), "the reason names the image: {reason}");
    assert!(
        reason.to_lowercase().contains("manifest unknown") || reason.to_lowercase().contains("not found"),
        "the registry's reason: {reason}"
    );

    // Eight calls at once to a function whose image the node lacks: one pull serves them all.
    let crowd = registry.push(&example_image("echo"), "team/crowd:v1", "fjord", "registry-pass-2");
    assert!(platform.deploy_image("crowd", &crowd, "").status.success());
    let url = platform.lb_url("/function/crowd");
    let calls = (0..8).map(|i| {
        let url = url.clone();
        async move {
            eventually("the lb to route crowd", Duration::from_secs(20), || async {
                http("POST", &url, format!("call {i}").as_bytes(), &[])
                    .await
                    .ok()
                    .filter(|a| a.status != 404)
            })
            .await
        }
    });
    for (i, answer) in futures::future::join_all(calls).await.into_iter().enumerate() {
        assert_eq!(
            (answer.status, answer.text()),
            (200, format!("call {i}")),
            "{}",
            platform.agent_logs()
        );
    }
    let logs = platform.agent_logs();
    let pulls = logs
        .lines()
        .filter(|l| l.contains("pulling image") && l.contains("team/crowd"))
        .count();
    assert_eq!(pulls, 1, "one pull for every waiting start:\n{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_that_cannot_be_resolved_is_refused_with_the_registrys_reason() {
    if !require_docker() {
        return;
    }
    example_images();
    let (user, password) = ("fjord", "registry-pass-3");
    let (registry, good, platform) = registry_and_platform(user, password).await;
    let host = registry.host();

    // An unknown tag.
    let missing = format!("{host}/team/echo:nope");
    let answer = platform.resolve_image(0, &missing).await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    let error = answer.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains(&missing), "the error names the image: {error}");
    assert!(error.to_lowercase().contains("manifest unknown"), "{error}");

    // No image at all.
    let bare = http(
        "GET",
        &format!("http://127.0.0.1:{}/v1/images/resolve", platform.agent_ports[0]),
        b"",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(bare.status, 400, "{}", bare.text());
    assert!(
        bare.json()["error"].as_str().unwrap().contains("image"),
        "{}",
        bare.text()
    );

    // Wrong credentials: the registry refuses, and the error says so.
    let refused = registry.platform_with_credentials(user, "not-it").await;
    let answer = refused.resolve_image(0, &good).await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    let error = answer.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains(&good), "the error names the image: {error}");
    let lower = error.to_lowercase();
    assert!(
        lower.contains("unauthorized") || lower.contains("authentication"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cold_start_takes_a_precreated_container_that_goes_with_its_function() {
    let Some(platform) = docker_platform().await else {
        return;
    };
    let node_label = format!("fjord.node={}", platform.node_ids[0]);
    let function_label = "fjord.function=spare";
    let out = platform.deploy_image("spare", &example_image("echo"), "scale_to_zero_after: 1s\n");
    assert!(out.status.success(), "deploy: {}", stderr(&out));
    let first = platform.invoke_when_routable("spare", "", b"one", &[]).await;
    assert_eq!(first.status, 200, "{}\n{}", first.text(), platform.agent_logs());

    // After a start, the agent creates the next instance's container ahead of time. Scaled to
    // zero, the next call is a cold start served by exactly that container.
    eventually("the instance to be scaled to zero", Duration::from_secs(30), || async {
        instance_containers(&[&node_label, function_label])
            .is_empty()
            .then_some(())
    })
    .await;
    let (spare, spare_instance) = eventually("a pre-created container", Duration::from_secs(20), || async {
        let spare = precreated_containers(&[&node_label, function_label])
            .into_iter()
            .next()?;
        let instance = inspect(&spare)?["Config"]["Labels"]["fjord.instance"]
            .as_str()?
            .to_string();
        Some((spare, instance))
    })
    .await;
    let cold = http("POST", &platform.lb_url("/function/spare"), b"two", &[])
        .await
        .unwrap();
    assert_eq!(cold.status, 200, "{}\n{}", cold.text(), platform.agent_logs());
    assert_eq!(cold.text(), "two");
    assert_eq!(cold.header("x-fjord-cold-start"), Some("1"));
    assert_eq!(cold.header("x-fjord-instance"), Some(spare_instance.as_str()));
    assert_eq!(inspect(&spare).unwrap()["State"]["Running"], true);
    eventually("the start's phases in fjord logs", Duration::from_secs(10), || async {
        let out = platform.fjord(&["logs", "spare"]);
        let logs = String::from_utf8_lossy(&out.stdout).into_owned();
        logs.lines()
            .any(|l| l.contains(&spare_instance) && l.contains("started in") && l.contains("(pre-created container)"))
            .then_some(())
    })
    .await;

    // A redeploy with another spec makes the pre-created container useless: it is removed, and
    // the next start's spec gets one of its own.
    let next = eventually("another pre-created container", Duration::from_secs(20), || async {
        precreated_containers(&[&node_label, function_label]).into_iter().next()
    })
    .await;
    let out = platform.deploy_image(
        "spare",
        &example_image("echo"),
        "scale_to_zero_after: 1s\nenv:\n  V: \"2\"\n",
    );
    assert!(out.status.success(), "redeploy: {}", stderr(&out));
    eventually(
        "the redeployed function's pre-created container to go",
        Duration::from_secs(20),
        || async { inspect(&next).is_none().then_some(()) },
    )
    .await;

    // Removing the function removes all its containers.
    let again = http("POST", &platform.lb_url("/function/spare"), b"three", &[])
        .await
        .unwrap();
    assert_eq!(again.status, 200, "{}", again.text());
    eventually(
        "a pre-created container for the new spec",
        Duration::from_secs(20),
        || async { precreated_containers(&[&node_label, function_label]).into_iter().next() },
    )
    .await;
    let out = platform.fjord(&["remove", "spare"]);
    assert!(out.status.success(), "remove: {}", stderr(&out));
    eventually(
        "no container of a removed function",
        Duration::from_secs(30),
        || async { containers(&[&node_label, function_label]).is_empty().then_some(()) },
    )
    .await;
}

/// An image built the OpenFaaS way: its own non-root `USER`, `fprocess` and `mode` in its
/// environment, state in /tmp, its secret read from /var/openfaas/secrets.
#[tokio::test(flavor = "multi_thread")]
async fn an_image_built_for_openfaas_runs_unchanged_as_its_non_root_user() {
    let Some(platform) = docker_platform().await else {
        return;
    };
    let image = "fjord-example/env-openfaas:test";
    let dockerfile = format!(
        "FROM {}\nENV fprocess=\"env\" mode=\"http\"\nUSER 10001:10001\n",
        example_image("env")
    );
    let built = std::process::Command::new("docker")
        .args(["build", "-q", "-t", image, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(dockerfile.as_bytes())?;
            child.wait_with_output()
        })
        .expect("docker build");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));

    let out = platform.fjord(&["secret", "create", "db-password", "--from-literal", "pa55"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = platform.deploy_image("legacy", image, "secrets: [db-password]\n");
    assert!(out.status.success(), "deploy: {}", stderr(&out));
    let env = platform
        .invoke_when_routable("legacy", "/?names=fprocess,mode,PORT", b"", &[])
        .await;
    assert_eq!(
        (env.status, env.text()),
        (200, "fprocess=env\nmode=http\nPORT=8080\n".to_string()),
        "{}",
        platform.agent_logs()
    );
    let secret = platform
        .invoke_when_routable("legacy", "/secret/db-password?dir=/var/openfaas/secrets", b"", &[])
        .await;
    assert_eq!(
        (secret.status, secret.text()),
        (200, "pa55".to_string()),
        "the image's own user reads it"
    );
    let tmp = platform
        .invoke_when_routable("legacy", "/write?path=/tmp/state", b"", &[])
        .await;
    assert_eq!(tmp.text(), "written\n");
    let root = platform
        .invoke_when_routable("legacy", "/write?path=/state", b"", &[])
        .await;
    assert!(root.text().starts_with("refused"), "{}", root.text());
    let instance = secret
        .header("x-fjord-instance")
        .expect("an instance header")
        .to_string();
    let ids = instance_containers(&[&format!("fjord.instance={instance}")]);
    let c = inspect(&ids[0]).expect("the container");
    assert_eq!(c["Config"]["User"], "10001:10001", "the image's USER is kept");
}
