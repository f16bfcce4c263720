//! Fixtures for Fjord's end-to-end tests: the real binaries started as processes on loopback
//! ports, an HTTP client, the CLI, and `eventually` for waiting on a condition with a deadline.
//!
//! The binaries come from the workspace's target directory (`cargo build --workspace --bins`,
//! which the test command runs first).

pub mod docker;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Path of a workspace binary, next to the test executable's `deps/` directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The value of one series (its name with its labels, as written, e.g.
/// `fjord_node_group_nodes{group="vps"}`) in a Prometheus text exposition; `None` when the
/// series is absent or its value does not parse as `T`. Compare numbers, never substrings of the
/// text: `x_total 1` is also the start of `x_total 12`.
pub fn metric_value<T: std::str::FromStr>(exposition: &str, series: &str) -> Option<T> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        // A sample may carry a timestamp after its value.
        value.split_whitespace().next()?.parse().ok()
    })
}

/// How long one test may wait in all. nextest kills a test after 300 s (.config/nextest.toml:
/// slow after 60 s, killed after 5 periods) and its diagnostics die with it, so every wait here
/// ends by this budget, counted from the test's first fixture call, and fails with its own
/// message first. nextest runs each test in its own process, so the clock is per test.
pub const TEST_BUDGET: Duration = Duration::from_secs(240);

fn test_started() -> Instant {
    static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

/// When a wait of `within` from now must end: `within` from now, or the end of the test's
/// [`TEST_BUDGET`] if that comes first (`true` then).
pub fn deadline_within(within: Duration) -> (Instant, bool) {
    let budget_end = test_started() + TEST_BUDGET;
    let wanted = Instant::now() + within;
    if wanted > budget_end {
        (budget_end, true)
    } else {
        (wanted, false)
    }
}

/// Why a wait ended at its deadline, for failure messages.
fn timed_out(within: Duration, by_budget: bool) -> String {
    if by_budget {
        format!(
            "the test's {TEST_BUDGET:?} budget ran out (kept under nextest's 300 s kill so these diagnostics survive; \
             this wait asked for {within:?})"
        )
    } else {
        format!("timed out after {within:?}")
    }
}

/// Waits until `check` returns `Some`, polling every 25 ms, failing the test after `within`
/// (or when the test's [`TEST_BUDGET`] runs out).
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_or(what, within, check, String::new).await
}

/// [`eventually`] whose failure adds `explain()`: what the system looked like at the deadline.
pub async fn eventually_or<T, F, Fut>(what: &str, within: Duration, mut check: F, explain: impl FnOnce() -> String) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let (deadline, by_budget) = deadline_within(within);
    loop {
        // A check that hangs is cut at the budget's end, not at `within`: a slow check that
        // answers within the budget keeps working as before.
        let budget_end = test_started() + TEST_BUDGET;
        if let Ok(Some(value)) = tokio::time::timeout_at(budget_end.into(), check()).await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("{} waiting for {what}\n{}", timed_out(within, by_budget), explain());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A daemon process; killed (SIGKILL) when dropped.
pub struct Daemon {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(name: &str, program: &Path, args: &[String], log: PathBuf) -> Daemon {
        let mut command = Command::new(program);
        command.args(args);
        Daemon::start_command(name, command, log)
    }

    /// Starts a prepared command (its environment set by the caller) as a daemon.
    pub fn start_command(name: &str, mut command: Command, log: PathBuf) -> Daemon {
        test_started();
        let out = std::fs::File::create(&log).expect("creating a daemon log");
        let child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", command.get_program().to_string_lossy()));
        Daemon {
            name: name.into(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit (at most `within`).
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop within {within:?} of SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new user's shell: HOME is a fresh temporary directory and none of Fjord's variables (nor
/// XDG_*) are set, so commands find only what they create themselves (the dev data dir, the
/// CLI's context) in their default places.
pub struct UserShell {
    pub home: tempfile::TempDir,
}

impl Default for UserShell {
    fn default() -> Self {
        UserShell {
            home: tempfile::tempdir().unwrap(),
        }
    }
}

impl UserShell {
    /// `program` with this shell's environment.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.env("HOME", self.home.path());
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("FJORD_") || key.starts_with("XDG_") {
                command.env_remove(&*key);
            }
        }
        command
    }

    /// Runs the CLI as this user would, standard input closed.
    pub fn fjord(&self, args: &[&str]) -> Output {
        self.command(&bin("fjord"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running fjord")
    }

    /// Runs a shell line (`sh -c`), for the README's pipes.
    pub fn sh(&self, line: &str) -> Output {
        let path = format!(
            "{}:{}",
            bin("fjord").parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        self.command(Path::new("sh"))
            .args(["-c", line])
            .env("PATH", path)
            .stdin(Stdio::null())
            .output()
            .expect("running sh")
    }

    /// `fjord dev`'s default data dir for this user.
    pub fn dev_dir(&self) -> PathBuf {
        self.home.path().join(".local/share/fjord/dev")
    }
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.split_whitespace().nth(2).is_none_or(|state| state != "Z"),
        Err(_) => false,
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Sends one HTTP request; `Err` only when no answer came.
pub async fn http(method: &str, url: &str, body: &[u8], headers: &[(&str, &str)]) -> Result<Answer, String> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| e.to_string())?;
    let (deadline, by_budget) = deadline_within(Duration::from_secs(90));
    let response = tokio::time::timeout_at(deadline.into(), client.request(request))
        .await
        .map_err(|_| {
            format!(
                "no answer from {url}: {}",
                timed_out(Duration::from_secs(90), by_budget)
            )
        })?
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Answer { status, headers, body })
}

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
        Command::new(bin("fjord"))
            .args(args)
            .env("FJORD_ADDR", self.control_plane_url())
            .env("FJORD_TOKEN_FILE", &self.token_file)
            .env("FJORD_LB", self.lb_url(""))
            .env_remove("FJORD_TOKEN")
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
fn metrics_off_unless_given(flags: &[String]) -> Vec<String> {
    if flags
        .iter()
        .any(|f| f == "--metrics-listen" || f.starts_with("--metrics-listen="))
    {
        Vec::new()
    } else {
        vec!["--metrics-listen".into(), "off".into()]
    }
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
        "--heartbeat-timeout-ms".into(),
        "3000".into(),
    ];
    if bootstrap {
        args.push("--bootstrap".into());
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

/// A control plane of several members, each its own process on loopback.
pub struct Members {
    pub dir: tempfile::TempDir,
    pub token_file: PathBuf,
    pub ports: std::collections::BTreeMap<u64, u16>,
    pub daemons: std::collections::BTreeMap<u64, Daemon>,
    extra: Vec<String>,
}

impl Members {
    /// Starts `n` members (ids 1..=n), member 1 bootstrapping the cluster, and waits until all
    /// are voters under one leader.
    pub async fn start(n: u64, extra: &[&str]) -> Members {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("admin.token");
        std::fs::write(&token_file, TEST_TOKEN).unwrap();
        let ports: std::collections::BTreeMap<u64, u16> = (1..=n).map(|id| (id, free_port())).collect();
        let mut members = Members {
            dir,
            token_file,
            ports,
            daemons: Default::default(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for id in 1..=n {
            members.launch(id, id == 1);
        }
        members.wait_for_voters(n).await;
        members
    }

    fn launch(&mut self, id: u64, bootstrap: bool) {
        let port = *self.ports.entry(id).or_insert_with(free_port);
        let mut args = vec![
            "--id".to_string(),
            id.to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            self.data_dir(id).display().to_string(),
            "--token-file".into(),
            self.token_file.display().to_string(),
        ];
        if bootstrap {
            args.push("--bootstrap".into());
            let others: Vec<String> = self
                .ports
                .iter()
                .filter(|(m, _)| **m != id)
                .map(|(m, p)| format!("{m}=127.0.0.1:{p}"))
                .collect();
            if !others.is_empty() {
                args.push("--initial-members".into());
                args.push(others.join(","));
            }
        }
        args.extend(metrics_off_unless_given(&self.extra));
        args.extend(self.extra.iter().cloned());
        let log = self.dir.path().join(format!("member-{id}-{}.log", free_port()));
        self.daemons.insert(
            id,
            Daemon::start(&format!("member-{id}"), &bin("fjord-control-plane"), &args, log),
        );
    }

    /// Starts member `id` that is not in the cluster yet (to be added), or restarts a killed one.
    pub fn start_member(&mut self, id: u64) {
        self.launch(id, false);
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("member-{id}"))
    }

    pub fn url(&self, id: u64) -> String {
        format!("http://127.0.0.1:{}", self.ports[&id])
    }

    pub fn all_urls(&self) -> String {
        self.ports.keys().map(|id| self.url(*id)).collect::<Vec<_>>().join(",")
    }

    /// Runs the CLI against the given members (comma-separated URLs).
    pub fn fjord_at(&self, urls: &str, args: &[&str]) -> Output {
        Command::new(bin("fjord"))
            .args(args)
            .env("FJORD_ADDR", urls)
            .env("FJORD_TOKEN_FILE", &self.token_file)
            .env_remove("FJORD_TOKEN")
            .output()
            .expect("running fjord")
    }

    /// `fjord status --json` answered by member `id` itself.
    pub fn status(&self, id: u64) -> Option<serde_json::Value> {
        let out = self.fjord_at(&self.url(id), &["status", "--json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The leader, as a live member other than `except` reports it.
    pub fn leader_seen_by_others(&self, except: Option<u64>) -> Option<u64> {
        self.daemons
            .keys()
            .filter(|id| Some(**id) != except)
            .find_map(|id| self.status(*id)?["leader_id"].as_u64())
    }

    pub async fn wait_for_voters(&self, n: u64) {
        eventually(
            &format!("{n} voters under one leader"),
            Duration::from_secs(30),
            || async {
                let status = self.status(*self.daemons.keys().next()?)?;
                let voters = status["members"]
                    .as_array()?
                    .iter()
                    .filter(|m| m["role"] != "learner")
                    .count() as u64;
                // applied_index >= 1: the leader's first entry, which commits the founding membership.
                (status["leader_id"].is_u64() && voters == n && status["applied_index"].as_u64()? >= 1).then_some(())
            },
        )
        .await;
    }

    pub fn kill(&mut self, id: u64) {
        if let Some(mut daemon) = self.daemons.remove(&id) {
            daemon.kill9();
        }
    }
}

/// A valid deployable spec (no instance is ever started from it in control-plane tests).
pub fn spec_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, format!("name: {name}\ncommand: [\"/bin/true\"]\n")).unwrap();
    path
}

/// Callers that each send one request after another until stopped; every answer is recorded.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub results: Arc<Mutex<Vec<(u16, Duration, String)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(url: String, callers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let results = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..callers)
            .map(|_| {
                let (stop, results, url) = (stop.clone(), results.clone(), url.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let (status, body) = match http("GET", &url, b"", &[]).await {
                            Ok(answer) => (
                                answer.status,
                                format!("{}: {}", answer.header("x-fjord-node").unwrap_or("-"), answer.text()),
                            ),
                            Err(e) => (0, e),
                        };
                        results.lock().unwrap().push((status, started.elapsed(), body));
                    }
                })
            })
            .collect();
        Load { stop, results, tasks }
    }

    /// Stops the callers and returns every (status, latency, body) recorded.
    pub async fn finish(self) -> Vec<(u16, Duration, String)> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        std::mem::take(&mut *self.results.lock().unwrap())
    }
}

pub fn assert_no_failure(results: &[(u16, Duration, String)], what: &str) {
    assert!(!results.is_empty(), "{what}: no request was made");
    let failed: Vec<_> = results.iter().filter(|(status, _, _)| *status != 200).take(5).collect();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} requests failed, e.g. {failed:?}",
        results.iter().filter(|(s, _, _)| *s != 200).count(),
        results.len()
    );
}
