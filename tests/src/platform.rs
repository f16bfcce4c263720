//! A one-member control plane, agents and an lb, and the functions that start each daemon.

use crate::{bin, deadline_within, eventually, free_port, http, process_alive, timed_out, Answer, Daemon};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A control plane, agents and an lb, each a real process on its own loopback port.
pub struct Platform {
    pub dir: tempfile::TempDir,
    pub token_file: PathBuf,
    pub control_plane: Daemon,
    pub control_plane_port: u16,
    pub agents: Vec<Daemon>,
    pub agent_ports: Vec<u16>,
    pub lb: Daemon,
    pub lb_port: u16,
}

pub const TEST_TOKEN: &str = "test-token-0123456789abcdef";

impl Platform {
    /// Starts a one-member control plane, `agents` agents and an lb, and waits until the agents
    /// are registered and the lb answers.
    pub async fn start(agents: usize) -> Platform {
        Self::start_with(agents, 4096).await
    }

    pub async fn start_with(agents: usize, agent_memory_mib: u32) -> Platform {
        Self::start_custom(agents, agent_memory_mib, &[]).await
    }

    /// Like [`Platform::start`], with agents offering `agent_memory_mib` and extra lb flags.
    pub async fn start_custom(agents: usize, agent_memory_mib: u32, lb_flags: &[&str]) -> Platform {
        Self::start_full(agents, agent_memory_mib, lb_flags, &[]).await
    }

    /// Like [`Platform::start_custom`], with extra control-plane flags too.
    pub async fn start_full(
        agents: usize,
        agent_memory_mib: u32,
        lb_flags: &[&str],
        control_plane_flags: &[&str],
    ) -> Platform {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("admin.token");
        std::fs::write(&token_file, TEST_TOKEN).unwrap();
        let control_plane_port = free_port();
        let control_plane_flags: Vec<String> = control_plane_flags.iter().map(|f| f.to_string()).collect();
        let control_plane =
            start_control_plane_with(dir.path(), &token_file, control_plane_port, true, &control_plane_flags);
        let mut agent_daemons = Vec::new();
        let mut agent_ports = Vec::new();
        for i in 0..agents {
            let port = free_port();
            agent_daemons.push(start_agent(
                dir.path(),
                &token_file,
                control_plane_port,
                port,
                &format!("node-{i}"),
                agent_memory_mib,
            ));
            agent_ports.push(port);
        }
        let lb_port = free_port();
        let lb = start_lb_with(dir.path(), &token_file, control_plane_port, lb_port, lb_flags);
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
        platform.wait_ready(agents).await;
        platform
    }

    pub async fn wait_ready(&self, agents: usize) {
        eventually("agents registered and ready", Duration::from_secs(30), || async {
            let out = self.fjord(&["nodes", "--json"]);
            if !out.status.success() {
                return None;
            }
            let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let ready = nodes.as_array()?.iter().filter(|n| n["state"] == "ready").count();
            (ready >= agents).then_some(())
        })
        .await;
        eventually("the lb to answer /healthz", Duration::from_secs(30), || async {
            http("GET", &self.lb_url("/healthz"), b"", &[])
                .await
                .ok()
                .filter(|a| a.status == 200)
                .map(|_| ())
        })
        .await;
        // A daemon that could not bind its port (taken by another test's process since
        // `free_port`) has exited, and whatever answered there is not this platform.
        for daemon in std::iter::once(&self.control_plane)
            .chain(&self.agents)
            .chain([&self.lb])
        {
            assert!(
                process_alive(daemon.pid()),
                "{} exited while the platform started:\n{}",
                daemon.name,
                daemon.log_text()
            );
        }
    }

    pub fn control_plane_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.control_plane_port)
    }

    pub fn lb_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.lb_port)
    }

    /// Runs the `fjord` CLI against this platform.
    pub fn fjord(&self, args: &[&str]) -> Output {
        self.fjord_with_env(args, &[])
    }

    /// [`Platform::fjord`] with more variables in the CLI's environment.
    pub fn fjord_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(bin("fjord"))
            .args(args)
            .env("FJORD_ADDR", self.control_plane_url())
            .env("FJORD_TOKEN_FILE", &self.token_file)
            .env("FJORD_LB", self.lb_url(""))
            .env_remove("FJORD_TOKEN")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("running fjord")
    }

    /// Writes a spec file for an example function and deploys it with the CLI.
    pub fn deploy_example(&self, name: &str, example: &str, extra_yaml: &str) -> Output {
        let yaml = format!(
            "name: {name}\ncommand: [{:?}]\n{extra_yaml}",
            bin(&format!("fjord-{example}")).display().to_string()
        );
        let path = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        self.fjord(&["deploy", "-f", path.to_str().unwrap()])
    }

    /// Invokes through the lb until the function is routable (a deploy propagates in moments).
    /// On a timeout the failure shows the last answer and every daemon's log.
    pub async fn invoke_when_routable(&self, name: &str, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Answer {
        let url = self.lb_url(&format!("/function/{name}{path}"));
        let within = Duration::from_secs(20);
        let (deadline, by_budget) = deadline_within(within);
        loop {
            let last = match http("POST", &url, body, headers).await {
                Ok(answer) if answer.status != 404 => return answer,
                Ok(answer) => format!("404 {}", answer.text()),
                Err(e) => e,
            };
            assert!(
                Instant::now() < deadline,
                "{} waiting for function {name} to be routable; last answer: {last}\n{}",
                timed_out(within, by_budget),
                self.all_logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Every daemon's log, for failure messages.
    pub fn all_logs(&self) -> String {
        std::iter::once(&self.control_plane)
            .chain(&self.agents)
            .chain(std::iter::once(&self.lb))
            .map(|d| format!("--- {} ---\n{}", d.name, d.log_text()))
            .collect()
    }

    pub fn restart_control_plane(&mut self) {
        self.control_plane.kill9();
        self.control_plane = start_control_plane(self.dir.path(), &self.token_file, self.control_plane_port, false);
    }
}

/// `--metrics-listen off` unless `flags` choose a metrics address: a member the tests start
/// never takes the default one (derived from its gRPC port, which may be another run's), and a
/// taken metrics address fails its start.
pub(crate) fn metrics_off_unless_given(flags: &[String]) -> Vec<String> {
    if flags
        .iter()
        .any(|f| f == "--metrics-listen" || f.starts_with("--metrics-listen="))
    {
        Vec::new()
    } else {
        vec!["--metrics-listen".into(), "off".into()]
    }
}

/// `dir/secrets.key`, a key for sealing secrets (64 hex digits), made on first use.
pub fn secrets_key_file(dir: &Path) -> PathBuf {
    let path = dir.join("secrets.key");
    if !path.exists() {
        let key: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        std::fs::write(&path, key).expect("writing a secrets key");
    }
    path
}

pub fn start_control_plane(dir: &Path, token_file: &Path, port: u16, bootstrap: bool) -> Daemon {
    start_control_plane_with(dir, token_file, port, bootstrap, &[])
}

pub fn start_control_plane_with(dir: &Path, token_file: &Path, port: u16, bootstrap: bool, extra: &[String]) -> Daemon {
    let mut args = vec![
        "--id".to_string(),
        "1".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--data-dir".into(),
        dir.join("control-plane").display().to_string(),
        "--token-file".into(),
        token_file.display().to_string(),
        "--heartbeat-timeout".into(),
        "3s".into(),
    ];
    if bootstrap {
        args.push("--bootstrap".into());
    }
    if !extra.iter().any(|f| f.starts_with("--secrets-key-file")) {
        // Beside the member's data dir, never in it.
        args.push("--secrets-key-file".into());
        args.push(secrets_key_file(dir).display().to_string());
    }
    args.extend(metrics_off_unless_given(extra));
    args.extend(extra.iter().cloned());
    let log = dir.join(format!("control-plane-{}.log", free_port()));
    Daemon::start("control-plane", &bin("fjord-control-plane"), &args, log)
}

pub fn start_agent(
    dir: &Path,
    token_file: &Path,
    control_plane_port: u16,
    port: u16,
    node_id: &str,
    memory_mib: u32,
) -> Daemon {
    start_agent_with(dir, token_file, control_plane_port, port, node_id, memory_mib, &[])
}

/// [`start_agent`] with extra agent flags (`--runtime docker`, ...).
pub fn start_agent_with(
    dir: &Path,
    token_file: &Path,
    control_plane_port: u16,
    port: u16,
    node_id: &str,
    memory_mib: u32,
    extra: &[&str],
) -> Daemon {
    let mut args = vec![
        "--node-id".to_string(),
        node_id.into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--control-plane".into(),
        format!("http://127.0.0.1:{control_plane_port}"),
        "--token-file".into(),
        token_file.display().to_string(),
        "--data-dir".into(),
        dir.join(node_id).display().to_string(),
        "--memory-mib".into(),
        memory_mib.to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Daemon::start(
        node_id,
        &bin("fjord-node-agent"),
        &args,
        dir.join(format!("{node_id}-{}.log", free_port())),
    )
}

pub fn start_lb(dir: &Path, token_file: &Path, control_plane_port: u16, port: u16) -> Daemon {
    start_lb_with(dir, token_file, control_plane_port, port, &[])
}

pub fn start_lb_with(dir: &Path, token_file: &Path, control_plane_port: u16, port: u16, flags: &[&str]) -> Daemon {
    let mut args = vec![
        "--listen".to_string(),
        format!("127.0.0.1:{port}"),
        "--control-plane".into(),
        format!("http://127.0.0.1:{control_plane_port}"),
        "--token-file".into(),
        token_file.display().to_string(),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    Daemon::start("lb", &bin("fjord-lb"), &args, dir.join(format!("lb-{port}.log")))
}
