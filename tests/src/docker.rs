//! Fixtures for the docker runtime's tests: whether a Docker engine answers, the example images
//! (`FROM scratch` plus a static binary, built by `scripts/build-example-images.sh`), a platform
//! whose agents run `--runtime docker`, and reading containers back with `docker inspect`.
//!
//! Every platform here uses node ids of its own, so tests running at once on one engine never
//! remove each other's containers, and it removes its containers when dropped.

use crate::{
    free_port, http, start_agent_with, start_control_plane_with, start_lb, Answer, Daemon, Platform, TEST_TOKEN,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The join token of [`DockerPlatform::start_joined`].
pub const JOIN_TOKEN: &str = "join-token-0123456789abcdef";

/// The tag of the example images the tests build and deploy.
pub const IMAGE_TAG: &str = "test";

/// Whether `program ARGS` runs and exits 0 (its output is discarded).
fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a Docker engine answers the `docker` CLI.
pub fn docker_available() -> bool {
    succeeds("docker", &["version", "--format", "{{.Server.Version}}"])
}

/// True when the docker tests can run. Without an engine: panics when `FJORD_REQUIRE_DOCKER=1`
/// (CI, where a skipped test would hide a broken runtime), else prints why and returns false.
pub fn require_docker() -> bool {
    if docker_available() {
        return true;
    }
    if std::env::var("FJORD_REQUIRE_DOCKER").is_ok_and(|v| v == "1") {
        panic!("FJORD_REQUIRE_DOCKER=1 but no Docker engine answers `docker version`; start the daemon");
    }
    eprintln!("SKIPPED: no Docker engine answers `docker version`; set FJORD_REQUIRE_DOCKER=1 to make this a failure");
    false
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Builds the example images `fjord-example/{echo,sleep,env,jobs}:test` once per test process. The
/// script runs under a file lock, so test processes started at once build one after the other
/// (cargo's own lock on `target/static-examples` and docker's layer cache make the second fast).
pub fn example_images() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let root = workspace_root();
        let target_dir = root.join("target/static-examples");
        std::fs::create_dir_all(&target_dir).map_err(|e| format!("creating {}: {e}", target_dir.display()))?;
        let out = Command::new("flock")
            .arg(target_dir.join(".images.lock"))
            .arg(root.join("scripts/build-example-images.sh"))
            .arg(IMAGE_TAG)
            .env("FJORD_STATIC_TARGET_DIR", &target_dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running scripts/build-example-images.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "scripts/build-example-images.sh failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// `fjord-example/<example>:test`.
pub fn example_image(example: &str) -> String {
    format!("fjord-example/{example}:{IMAGE_TAG}")
}

/// Whether this host lets the agent install its function firewall (`iptables` usable and the
/// engine's `DOCKER-USER` chain present: root on a host whose engine uses iptables).
pub fn host_firewall_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| succeeds("iptables", &["-w", "-S", "DOCKER-USER"]))
}

/// The gateway address (the host's side of the bridge) of the engine's network `name`.
pub fn network_gateway(name: &str) -> Option<String> {
    let out = Command::new("docker")
        .args([
            "network",
            "inspect",
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}} {{end}}",
            name,
        ])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_string)
}

/// Whether `iptables -C CHAIN RULE...` finds the rule.
pub fn firewall_rule_present(chain: &str, rule: &[&str]) -> bool {
    succeeds("iptables", &[&["-w", "-C", chain], rule].concat())
}

/// Removes the engine's network `name` (its containers must be gone).
pub fn remove_network(name: &str) {
    succeeds("docker", &["network", "rm", name]);
}

/// A node id no other platform in this or another test process uses.
pub fn unique_node_id() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("dk-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A [`Platform`] whose agents run `--runtime docker`; removes its containers when dropped.
pub struct DockerPlatform {
    pub platform: Platform,
    pub node_ids: Vec<String>,
    /// The flags the agents were started with besides `--runtime docker`; a restart keeps them.
    agent_flags: Vec<String>,
}

impl std::ops::Deref for DockerPlatform {
    type Target = Platform;
    fn deref(&self) -> &Platform {
        &self.platform
    }
}

impl std::ops::DerefMut for DockerPlatform {
    fn deref_mut(&mut self) -> &mut Platform {
        &mut self.platform
    }
}

impl DockerPlatform {
    /// A control plane, `agents` docker agents with 4 GiB each, and an lb; waits until ready.
    pub async fn start(agents: usize) -> DockerPlatform {
        Self::start_with(agents, &[]).await
    }

    /// [`DockerPlatform::start`] with extra agent flags.
    pub async fn start_with(agents: usize, agent_flags: &[&str]) -> DockerPlatform {
        Self::start_inner(agents, agent_flags, false).await
    }

    /// [`DockerPlatform::start`] with a join token ([`JOIN_TOKEN`], `dir/join.token`): the
    /// agents and the lb hold only it, as in production; the CLI keeps the admin token.
    pub async fn start_joined(agents: usize) -> DockerPlatform {
        Self::start_inner(agents, &[], true).await
    }

    async fn start_inner(agents: usize, agent_flags: &[&str], join_token: bool) -> DockerPlatform {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("admin.token");
        std::fs::write(&token_file, TEST_TOKEN).unwrap();
        let join_file = dir.path().join("join.token");
        std::fs::write(&join_file, JOIN_TOKEN).unwrap();
        let control_plane_port = free_port();
        let control_plane_flags = if join_token {
            vec!["--join-token-file".to_string(), join_file.display().to_string()]
        } else {
            Vec::new()
        };
        let control_plane =
            start_control_plane_with(dir.path(), &token_file, control_plane_port, true, &control_plane_flags);
        let member_token = if join_token { &join_file } else { &token_file };
        let mut agent_flags: Vec<&str> = agent_flags.to_vec();
        if !host_firewall_available() && !agent_flags.contains(&"--function-firewall") {
            eprintln!(
                "this host cannot take the agent's function firewall (not root, or no iptables): running without"
            );
            agent_flags.extend(["--function-firewall", "false"]);
        }
        let agent_flags = &agent_flags[..];
        let mut node_ids = Vec::new();
        let mut agent_daemons = Vec::new();
        let mut agent_ports = Vec::new();
        for _ in 0..agents {
            let node_id = unique_node_id();
            let port = free_port();
            agent_daemons.push(start_agent_with(
                dir.path(),
                member_token,
                control_plane_port,
                port,
                &node_id,
                4096,
                &[&["--runtime", "docker"], agent_flags].concat(),
            ));
            agent_ports.push(port);
            node_ids.push(node_id);
        }
        let lb_port = free_port();
        let lb = start_lb(dir.path(), member_token, control_plane_port, lb_port);
        let platform = Platform {
            dir,
            token_file,
            control_plane,
            control_plane_port,
            agents: agent_daemons,
            agent_ports,
            lb,
            lb_port,
        };
        let agent_flags = agent_flags.iter().map(|f| f.to_string()).collect();
        let platform = DockerPlatform {
            platform,
            node_ids,
            agent_flags,
        };
        platform.platform.wait_ready(agents).await;
        platform
    }

    /// Kills agent `i` (SIGKILL) and starts a new one with the same node id and port.
    pub fn restart_agent_hard(&mut self, i: usize) {
        self.platform.agents[i].kill9();
        let p = &self.platform;
        let flags: Vec<&str> = ["--runtime", "docker"]
            .into_iter()
            .chain(self.agent_flags.iter().map(String::as_str))
            .collect();
        let agent = start_agent_with(
            p.dir.path(),
            &p.token_file,
            p.control_plane_port,
            p.agent_ports[i],
            &self.node_ids[i],
            4096,
            &flags,
        );
        self.platform.agents[i] = agent;
    }

    /// Asks agent `i` to resolve `image` to a digest (`GET /v1/images/resolve`).
    pub async fn resolve_image(&self, i: usize, image: &str) -> Answer {
        let url = format!(
            "http://127.0.0.1:{}/v1/images/resolve?image={}",
            self.agent_ports[i],
            query_escape(image)
        );
        http("GET", &url, b"", &[]).await.expect("the agent answers")
    }

    /// Deploys `name` running `image`, with more spec lines in `extra_yaml`. Unless those set
    /// it, `target_utilization` is 1.0: one call in flight then asks the autoscaler for one
    /// instance, not two (the default 0.7 leaves headroom), so these runtime tests can count a
    /// function's containers.
    pub fn deploy_image(&self, name: &str, image: &str, extra_yaml: &str) -> std::process::Output {
        let utilization = if extra_yaml.contains("target_utilization:") {
            ""
        } else {
            "target_utilization: 1.0\n"
        };
        let yaml = format!("name: {name}\nimage: {image}\n{utilization}{extra_yaml}");
        let path = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        self.fjord(&["deploy", "-f", path.to_str().unwrap()])
    }

    /// The agents' logs, for failure messages.
    pub fn agent_logs(&self) -> String {
        self.platform
            .agents
            .iter()
            .map(|a| format!("--- {} ---\n{}", a.name, a.log_text()))
            .collect()
    }
}

/// Stops a running agent with SIGTERM, so it removes its containers itself (its pre-created
/// ones too, including a create still in flight, which a SIGKILL would leave to appear after
/// any sweep); SIGKILL after `within`.
fn stop_agent(agent: &mut Daemon, within: Duration) {
    if !matches!(agent.child.try_wait(), Ok(None)) {
        return; // ended already (and reaped: its pid may be another process's now)
    }
    let _ = Command::new("kill").args(["-TERM", &agent.pid().to_string()]).status();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !matches!(agent.child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.kill9();
}

impl Drop for DockerPlatform {
    fn drop(&mut self) {
        for agent in &mut self.platform.agents {
            stop_agent(agent, Duration::from_secs(15));
        }
        // The agents' firewall rules for this platform's own (random) ports stay behind on
        // purpose in production; a test takes them away, so runs do not pile them up.
        let ports = self
            .platform
            .agent_ports
            .iter()
            .chain([&self.platform.control_plane_port]);
        for port in ports {
            let port = port.to_string();
            let rule = [
                "-w",
                "-D",
                "DOCKER-USER",
                "-i",
                "fjord0",
                "-p",
                "tcp",
                "--dport",
                &port,
                "-j",
                "DROP",
            ];
            succeeds("iptables", &rule);
        }
        for node in &self.node_ids {
            let ids = containers(&[&format!("fjord.node={node}")]);
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(["rm", "--force", "--volumes"])
                    .args(&ids)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// Ids of the containers (running or not) carrying every one of `labels` (`key=value`).
pub fn containers(labels: &[&str]) -> Vec<String> {
    container_states(labels).into_iter().map(|(id, _)| id).collect()
}

/// Ids and states (`created`, `running`, `exited`, ...) of the containers carrying every one of
/// `labels`.
pub fn container_states(labels: &[&str]) -> Vec<(String, String)> {
    let mut command = Command::new("docker");
    command.args(["ps", "--all", "--no-trunc", "--format", "{{.ID}} {{.State}}"]);
    for label in labels {
        command.args(["--filter", &format!("label={label}")]);
    }
    let out = command.stdin(Stdio::null()).output().expect("running docker ps");
    assert!(
        out.status.success(),
        "docker ps failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, state)| (id.to_string(), state.to_string()))
        .collect()
}

/// Ids of the containers carrying `labels` that run or ran an instance: every state but
/// `created`, which is what the agent's pre-created containers are in until a start takes one.
pub fn instance_containers(labels: &[&str]) -> Vec<String> {
    container_states(labels)
        .into_iter()
        .filter(|(_, state)| state != "created")
        .map(|(id, _)| id)
        .collect()
}

/// Ids of the agent's pre-created containers (created, never started) carrying `labels`.
pub fn precreated_containers(labels: &[&str]) -> Vec<String> {
    container_states(labels)
        .into_iter()
        .filter(|(_, state)| state == "created")
        .map(|(id, _)| id)
        .collect()
}

/// The `RepoDigests` the engine holds for a local image, or `None` when it has no such image.
pub fn repo_digests(image: &str) -> Option<Vec<String>> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{json .RepoDigests}}", image])
        .stdin(Stdio::null())
        .output()
        .expect("running docker image inspect");
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// `value` percent-encoded for a URL query (everything but unreserved characters).
pub fn query_escape(value: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, RESERVED).to_string()
}

/// `docker inspect` of one container, or `None` once it is gone.
pub fn inspect(container: &str) -> Option<serde_json::Value> {
    let out = Command::new("docker")
        .args(["inspect", "--type", "container", container])
        .stdin(Stdio::null())
        .output()
        .expect("running docker inspect");
    if !out.status.success() {
        return None;
    }
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("docker inspect prints JSON");
    list.as_array()?.first().cloned()
}

/// A real OCI registry (Debian's `docker-registry`) on a loopback port, with htpasswd auth.
pub struct LocalRegistry {
    pub port: u16,
    _daemon: Daemon,
    dir: tempfile::TempDir,
}

impl LocalRegistry {
    pub async fn start(user: &str, password: &str) -> LocalRegistry {
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .expect("htpasswd (apache2-utils)");
        assert!(htpasswd.status.success(), "htpasswd failed");
        std::fs::write(dir.path().join("htpasswd"), &htpasswd.stdout).unwrap();
        let port = free_port();
        let config = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\nhttp:\n  addr: 127.0.0.1:{port}\n\
             auth:\n  htpasswd:\n    realm: fjord-test\n    path: {root}/htpasswd\n",
            root = dir.path().display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let daemon = Daemon::start(
            "docker-registry",
            Path::new("/usr/bin/docker-registry"),
            &["serve".to_string(), config_path.display().to_string()],
            dir.path().join("registry.log"),
        );
        let url = format!("http://127.0.0.1:{port}/v2/");
        crate::eventually("the registry to answer", std::time::Duration::from_secs(20), || async {
            crate::http("GET", &url, b"", &[])
                .await
                .ok()
                .filter(|a| a.status == 401)
                .map(|_| ())
        })
        .await;
        LocalRegistry {
            port,
            _daemon: daemon,
            dir,
        }
    }

    /// `127.0.0.1:<port>`, the registry's host as image references name it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A one-agent docker platform whose agent holds `user` and `password` for this registry
    /// (`--registry-auth-file`, kept beside the registry's files so agent restarts find it).
    pub async fn platform_with_credentials(&self, user: &str, password: &str) -> DockerPlatform {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = self
            .dir
            .path()
            .join(format!("auth-{}.json", NEXT.fetch_add(1, Ordering::Relaxed)));
        let auth = serde_json::json!({ self.host(): { "username": user, "password": password } });
        std::fs::write(&path, auth.to_string()).unwrap();
        DockerPlatform::start_with(1, &["--registry-auth-file", path.to_str().unwrap()]).await
    }

    /// The `docker` CLI with a client configuration of this registry's own: the login is kept
    /// there, not in the user's `~/.docker/config.json`, which tests running at once would
    /// otherwise rewrite under each other.
    fn docker_cli(&self) -> Command {
        let mut command = Command::new("docker");
        command.env("DOCKER_CONFIG", self.dir.path().join("docker-config"));
        command
    }

    /// Pushes the local image `source` as `<registry>/<name>` and removes the local copy of the
    /// pushed name, so an agent has to pull it. Returns the pushed reference.
    pub fn push(&self, source: &str, name: &str, user: &str, password: &str) -> String {
        let host = self.host();
        let target = format!("{host}/{name}");
        let mut login = self
            .docker_cli()
            .args(["login", &host, "-u", user, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        login.stdin.take().unwrap().write_all(password.as_bytes()).unwrap();
        assert!(
            login.wait().unwrap().success(),
            "docker login to the local registry failed"
        );
        for args in [vec!["tag", source, &target], vec!["push", &target]] {
            let out = self.docker_cli().args(&args).output().unwrap();
            assert!(
                out.status.success(),
                "docker {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = self.docker_cli().args(["logout", &host]).output();
        let _ = self.docker_cli().args(["rmi", &target]).output();
        target
    }
}
