//! `fjord dev`: the whole platform on one machine. It runs each control-plane member, each node
//! agent and the lb as its own OS process (this same binary, in daemon mode), writes
//! `<data-dir>/cluster.json` listing them, records the current context for the CLI
//! ([`crate::context`]), deploys the examples and prints how to call them.
//!
//! It supervises its children as a cluster's init system would: one that exits is reported and
//! started again (a control-plane member of a replicated cluster after a pause, so the others
//! elect a new leader first, as the README's failover demo shows); the rest keeps running. One
//! that keeps exiting right after its start is given up on, saying so. Ctrl-C stops everything;
//! children also die if `fjord dev` itself is killed.
//!
//! A data dir remembers the shape of the cluster that made it (members, agents, their
//! addresses, in `cluster.json`): a run asking for another shape is refused, since the stored
//! Raft membership and nodes would silently win, unless `--fresh` clears the state first.

use crate::connect::ConnectArgs;
use fjord_core::FunctionSpec;
use fjord_proto::v1 as pb;
use serde_json::json;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Control-plane members to run (1, 3 or 5).
    #[arg(long, default_value_t = 1)]
    pub control_planes: u32,
    /// Node agents to run.
    #[arg(long, default_value_t = 1)]
    pub agents: u32,
    /// Where state, tokens, logs and cluster.json live (default: ~/.local/share/fjord/dev).
    #[arg(long, env = "FJORD_DEV_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Port of the lb (HTTP).
    #[arg(long, default_value_t = 8080)]
    pub lb_port: u16,
    /// First control-plane port; member i listens on this + i - 1.
    #[arg(long, default_value_t = 7400)]
    pub control_plane_port: u16,
    /// First agent port; agent j listens on this + j - 1.
    #[arg(long, default_value_t = 7500)]
    pub agent_port: u16,
    /// Port of the NATS server (JetStream) `fjord dev` runs for asynchronous calls and cron,
    /// when `nats-server` is installed.
    #[arg(long, default_value_t = 4222)]
    pub nats_port: u16,
    /// Memory each agent offers to instances, in MiB.
    #[arg(long, default_value_t = 4096)]
    pub agent_memory_mib: u32,
    /// CPU each agent offers to instances, in millicores. The agents share this machine's
    /// cores, so the default offers more than it has: a function asks for 1000 by default, and
    /// sixteen fit on each agent.
    #[arg(long, default_value_t = 16_000)]
    pub agent_cpu_millis: u32,
    /// How the agents run instances: process (the examples run from this binary) or docker (the
    /// local engine; functions need images, so the examples are not deployed).
    #[arg(long, default_value = "process")]
    pub runtime: fjord_node_agent::RuntimeKind,
    /// Do not deploy the example functions.
    #[arg(long)]
    pub no_examples: bool,
    /// Delete the state a previous run left in the data dir (functions, nodes, the Raft log)
    /// before starting; needed to change the number of members or agents, or their ports, of a
    /// data dir already used.
    #[arg(long)]
    pub fresh: bool,
    /// Start, deploy, print, then exit leaving nothing running (a smoke test of the set-up).
    #[arg(long, hide = true)]
    pub exit_when_ready: bool,
    /// The key that seals secrets at rest (made on first use). Default:
    /// $XDG_CONFIG_HOME/fjord/dev-secrets.key (~/.config/fjord/dev-secrets.key), outside the data
    /// dir, so a copy of the data dir holds no readable secret.
    #[arg(long, env = "FJORD_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
}

struct Daemon {
    /// The program run: this binary for Fjord's daemons, or `nats-server`.
    program: PathBuf,
    role: &'static str,
    id: String,
    addr: SocketAddr,
    flags: Vec<String>,
    child: Child,
    log: PathBuf,
    started: Instant,
    /// Exits in a row within [`QUICK_EXIT`] of a start.
    quick_exits: u32,
    /// Set while the daemon is down: when it is started again (`None` once given up on).
    restart_at: Option<Instant>,
    given_up: bool,
}

/// An exit this soon after a start counts towards giving up on a daemon.
const QUICK_EXIT: Duration = Duration::from_secs(10);
/// Quick exits in a row after which a daemon is not started again.
const GIVE_UP_AFTER: u32 = 5;

const EXAMPLES: &[(&str, &str)] = &[
    ("echo", include_str!("../../examples/echo/fjord.yaml")),
    ("sleep", include_str!("../../examples/sleep/fjord.yaml")),
    ("env", include_str!("../../examples/env/fjord.yaml")),
    ("jobs", include_str!("../../examples/jobs/fjord.yaml")),
];

/// How far above its gRPC port a member serves its Prometheus metrics (7400 -> 9400), the
/// control plane's own default.
const METRICS_PORT_OFFSET: u16 = 2000;

fn check_port_free(port: u16, what: &str, flag: &str) -> anyhow::Result<SocketAddr> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpListener::bind(addr).map_err(|e| {
        anyhow::anyhow!("{what} port {port} is not free ({e}); is another `fjord dev` running? Move it with {flag}")
    })?;
    Ok(addr)
}

/// Ports `base`, `base + 1`, ... `base + count - 1`, each checked free.
fn port_range(base: u16, count: u32, what: &str, flag: &str) -> anyhow::Result<Vec<SocketAddr>> {
    (0..count)
        .map(|i| {
            let port = u16::try_from(u32::from(base) + i)
                .map_err(|_| anyhow::anyhow!("{flag} {base} leaves no room for {count} {what} ports"))?;
            check_port_free(port, what, flag)
        })
        .collect()
}

/// Starts a NATS server with JetStream for the queue of asynchronous calls, its store and a
/// token of its own under the data dir (0600), on loopback; `None` (with a note) when
/// `nats-server` is not installed, so the rest of the platform still runs.
fn start_nats(dir: &Path, port: u16) -> anyhow::Result<Option<(Daemon, PathBuf)>> {
    let Some(program) = find_program("nats-server") else {
        eprintln!(
            "fjord dev: nats-server is not installed, so asynchronous calls (/async-function/...) answer 503 \
             and schedules do not fire; install it (Debian: apt-get install nats-server) and start again"
        );
        return Ok(None);
    };
    let addr = check_port_free(port, "NATS", "--nats-port")?;
    let token_path = dir.join("nats.token");
    let token = match std::fs::read_to_string(&token_path) {
        Ok(text) if !text.trim().is_empty() => text.trim().to_string(),
        _ => {
            let token = format!("{:032x}", rand::random::<u128>());
            write_private(&token_path, &token)?;
            token
        }
    };
    let store = dir.join("nats");
    std::fs::create_dir_all(&store)?;
    let config_path = dir.join("nats.conf");
    let config = format!(
        "# Written by fjord dev on every start.\nlisten: {addr}\nmax_payload: 8MB\n\
         authorization {{ token: \"{token}\" }}\njetstream {{ store_dir: \"{}\" }}\n",
        store.display()
    );
    write_private(&config_path, &config)?;
    let flags = vec!["-c".into(), config_path.display().to_string()];
    let log = dir.join("logs/nats.log");
    let daemon = Daemon::start(&program, "nats", "nats".into(), addr, flags, log)?;
    Ok(Some((daemon, token_path)))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn spawn(exe: &Path, args: &[String], log: &Path) -> anyhow::Result<Child> {
    let mut marker = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    use std::io::Write;
    writeln!(marker, "--- fjord dev: starting {} ---", args.join(" "))?;
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut command = Command::new(exe);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true);
    fjord_daemon::sys::kill_child_with_parent(&mut command);
    Ok(command.spawn()?)
}

async fn wait_until<F, Fut>(what: &str, daemons: &mut [Daemon], deadline: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    loop {
        if check().await {
            return Ok(());
        }
        for d in daemons.iter_mut() {
            if let Ok(Some(status)) = d.child.try_wait() {
                anyhow::bail!(
                    "{} {} exited ({status}) while waiting for {what}; see {}",
                    d.role,
                    d.id,
                    d.log.display()
                );
            }
        }
        if Instant::now() > until {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    if args.control_planes == 0 || args.control_planes > 7 {
        anyhow::bail!("--control-planes must be between 1 and 7 (use 1, 3 or 5)");
    }
    if args.agents == 0 || args.agents > 64 {
        anyhow::bail!("--agents must be between 1 and 64");
    }
    let exe = std::env::current_exe()?;
    let dir = args.data_dir.clone().unwrap_or_else(crate::connect::default_dev_dir);
    let cp_addrs = port_range(
        args.control_plane_port,
        args.control_planes,
        "control-plane",
        "--control-plane-port",
    )?;
    let metrics_base = args
        .control_plane_port
        .checked_add(METRICS_PORT_OFFSET)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--control-plane-port {} leaves no room for the metrics ports 2000 above it",
                args.control_plane_port
            )
        })?;
    let metrics_addrs = port_range(
        metrics_base,
        args.control_planes,
        "control-plane metrics (2000 above each member's port)",
        "--control-plane-port",
    )?;
    let agent_addrs = port_range(args.agent_port, args.agents, "agent", "--agent-port")?;
    let lb_addr = check_port_free(args.lb_port, "lb", "--lb-port")?;
    let cluster_path = dir.join("cluster.json");
    if args.fresh {
        clear_state(&dir)?;
    } else {
        check_shape(&dir, &cluster_path, &cp_addrs, &agent_addrs)?;
    }
    std::fs::create_dir_all(dir.join("logs"))?;
    let token_path = dir.join("admin.token");
    let token = if token_path.exists() {
        fjord_control_plane::auth::Token::read_file(&token_path).map_err(|e| anyhow::anyhow!(e))?
    } else {
        let token = fjord_control_plane::auth::Token::generate();
        token.write_file(&token_path)?;
        token
    };
    let cp_urls: Vec<String> = cp_addrs.iter().map(|a| format!("http://{a}")).collect();
    let token_file = token_path.display().to_string();
    let secrets_key = args
        .secrets_key_file
        .clone()
        .unwrap_or_else(|| crate::context::xdg_dir("XDG_CONFIG_HOME", ".config").join("fjord/dev-secrets.key"));
    fjord_control_plane::secrets::ensure_key_file(&secrets_key)
        .map_err(|e| anyhow::anyhow!("cannot write the secrets key {}: {e}", secrets_key.display()))?;

    let mut daemons = Vec::new();
    let nats = start_nats(&dir, args.nats_port)?;
    let nats_flags: Vec<String> = match &nats {
        Some((daemon, token_file)) => vec![
            "--nats-url".into(),
            format!("nats://{}", daemon.addr),
            "--nats-token-file".into(),
            token_file.display().to_string(),
        ],
        None => Vec::new(),
    };
    let queue_started = nats.is_some();
    if let Some((daemon, _)) = nats {
        daemons.push(daemon);
    }
    for (i, (addr, metrics)) in cp_addrs.iter().zip(&metrics_addrs).enumerate() {
        let id = i as u64 + 1;
        let mut flags = vec![
            "control-plane".into(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            addr.to_string(),
            "--metrics-listen".into(),
            metrics.to_string(),
            "--data-dir".into(),
            dir.join(format!("control-plane-{id}")).display().to_string(),
            "--token-file".into(),
            token_file.clone(),
            "--secrets-key-file".into(),
            secrets_key.display().to_string(),
        ];
        if id == 1 {
            flags.push("--bootstrap".into());
            let others: Vec<String> = cp_addrs
                .iter()
                .enumerate()
                .skip(1)
                .map(|(k, a)| format!("{}={a}", k + 1))
                .collect();
            if !others.is_empty() {
                flags.push("--initial-members".into());
                flags.push(others.join(","));
            }
        }
        // The leader fires scheduled functions into the queue and reads its depth.
        flags.extend(nats_flags.iter().cloned());
        let log = dir.join(format!("logs/control-plane-{id}.log"));
        daemons.push(Daemon::start(&exe, "control-plane", id.to_string(), *addr, flags, log)?);
    }
    for (j, addr) in agent_addrs.iter().enumerate() {
        let id = format!("agent-{}", j + 1);
        let mut flags: Vec<String> = vec![
            "node-agent".into(),
            "--node-id".into(),
            id.clone(),
            "--listen".into(),
            addr.to_string(),
            "--control-plane".into(),
            cp_urls.join(","),
            "--token-file".into(),
            token_file.clone(),
            "--data-dir".into(),
            dir.join(&id).display().to_string(),
            "--memory-mib".into(),
            args.agent_memory_mib.to_string(),
            "--cpu-millis".into(),
            args.agent_cpu_millis.to_string(),
            "--runtime".into(),
            match args.runtime {
                fjord_node_agent::RuntimeKind::Process => "process".into(),
                fjord_node_agent::RuntimeKind::Docker => "docker".into(),
            },
        ];
        if args.runtime == fjord_node_agent::RuntimeKind::Docker && !firewall_usable() {
            if j == 0 {
                eprintln!(
                    "fjord dev: iptables is not usable by this user (not root, or an engine without iptables): \
                     functions run without the node firewall, so they can reach this machine's ports, and are \
                     reached on published loopback ports"
                );
            }
            // Most likely a rootless engine, whose bridge the host cannot reach either.
            flags.extend([
                "--function-firewall".into(),
                "false".into(),
                "--instance-address".into(),
                "published".into(),
            ]);
        }
        let log = dir.join(format!("logs/{id}.log"));
        daemons.push(Daemon::start(&exe, "node-agent", id, *addr, flags, log)?);
    }
    let mut lb_flags = vec![
        "lb".into(),
        "--listen".into(),
        lb_addr.to_string(),
        "--control-plane".into(),
        cp_urls.join(","),
        "--token-file".into(),
        token_file.clone(),
    ];
    lb_flags.extend(nats_flags.iter().cloned());
    daemons.push(Daemon::start(
        &exe,
        "lb",
        "lb".into(),
        lb_addr,
        lb_flags,
        dir.join("logs/lb.log"),
    )?);

    let lb_url = format!("http://{lb_addr}");
    write_cluster_file(&cluster_path, &dir, &token_path, &lb_url, &cp_urls, &daemons)?;
    let context_path = crate::context::save(&crate::context::Context {
        source: format!("fjord dev ({})", dir.display()),
        control_plane_urls: cp_urls.clone(),
        token_file: token_path.clone(),
        lb_url: lb_url.clone(),
    })?;
    eprintln!(
        "fjord dev: {} control-plane member(s), {} agent(s), lb on {lb_addr}",
        args.control_planes, args.agents
    );
    eprintln!("fjord dev: state and logs in {}", dir.display());

    let connect = ConnectArgs {
        addr: cp_urls.clone(),
        token: Some(token.as_str().to_string()),
        token_file: None,
    };
    let result = async {
        wait_until(
            "a control-plane leader and every agent",
            &mut daemons,
            Duration::from_secs(60),
            || async {
                let Ok(mut admin) = connect.admin().await else {
                    return false;
                };
                match admin.status(pb::StatusRequest {}).await {
                    Ok(s) => s.get_ref().leader_id.is_some() && s.get_ref().nodes_ready >= args.agents,
                    Err(_) => false,
                }
            },
        )
        .await?;
        wait_until("the lb", &mut daemons, Duration::from_secs(30), || async {
            http_ok(lb_addr).await
        })
        .await?;
        if queue_started {
            // The tour's first queued call must be stored: wait until the lb has reached NATS
            // (a call it does not know is then 404, not 503).
            // Not reaching it is not fatal: synchronous calls work without it.
            let reached = wait_until(
                "the lb to reach the queue",
                &mut daemons,
                Duration::from_secs(20),
                || async { http_status(lb_addr, "/async-calls/fjord-dev-ready").await == Some(404) },
            )
            .await;
            if let Err(e) = reached {
                eprintln!(
                    "fjord dev: warning: {e:#}; asynchronous calls answer 503 until it does (why: {}; JetStream \
                     also refuses to start its streams when the disk has less than about 10 GB free)",
                    dir.join("logs/lb.log").display()
                );
            }
        }
        let examples = !args.no_examples
            && match args.runtime {
                fjord_node_agent::RuntimeKind::Process => {
                    deploy_examples(&connect, &exe).await?;
                    true
                }
                fjord_node_agent::RuntimeKind::Docker => match deploy_example_images(&connect).await {
                    Ok(()) => true,
                    Err(e) => {
                        eprintln!(
                            "fjord dev: the example images are not deployed ({e:#}); build them with \
                             scripts/build-example-images.sh (fjord-example/echo:test and the others) and run \
                             fjord dev again, or deploy a spec with your own `image:`"
                        );
                        false
                    }
                },
            };
        print_tour(lb_addr, &cluster_path, &token_path, &context_path, !examples);
        anyhow::Ok(())
    }
    .await;

    if result.is_ok() && !args.exit_when_ready {
        let restart_delay = if args.control_planes > 1 {
            // Long enough for the others to elect a leader and be seen doing it.
            Duration::from_secs(10)
        } else {
            Duration::from_secs(1)
        };
        let supervise = async {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if supervise_once(&mut daemons, restart_delay) {
                    if let Err(e) = write_cluster_file(&cluster_path, &dir, &token_path, &lb_url, &cp_urls, &daemons) {
                        eprintln!("fjord dev: could not update {}: {e:#}", cluster_path.display());
                    }
                }
            }
        };
        tokio::select! {
            _ = fjord_daemon::shutdown_signal() => eprintln!("\nfjord dev: stopping"),
            _ = supervise => {}
        }
    }
    stop_all(&mut daemons).await;
    result
}

impl Daemon {
    fn start(
        exe: &Path,
        role: &'static str,
        id: String,
        addr: SocketAddr,
        flags: Vec<String>,
        log: PathBuf,
    ) -> anyhow::Result<Daemon> {
        let child = spawn(exe, &flags, &log)?;
        Ok(Daemon {
            program: exe.to_path_buf(),
            role,
            id,
            addr,
            flags,
            child,
            log,
            started: Instant::now(),
            quick_exits: 0,
            restart_at: None,
            given_up: false,
        })
    }

    fn name(&self) -> String {
        match self.role {
            "lb" => "lb".into(),
            "control-plane" => format!("control-plane {}", self.id),
            _ => format!("{} {}", self.role, self.id),
        }
    }
}

/// One look at every child: reports exits, schedules and makes restarts, gives up on a child
/// that keeps exiting at once. Returns whether a pid changed (cluster.json needs rewriting).
fn supervise_once(daemons: &mut [Daemon], restart_delay: Duration) -> bool {
    let mut changed = false;
    for d in daemons.iter_mut().filter(|d| !d.given_up) {
        match d.restart_at {
            None => {
                let Ok(Some(status)) = d.child.try_wait() else { continue };
                if d.started.elapsed() < QUICK_EXIT {
                    d.quick_exits += 1;
                } else {
                    d.quick_exits = 0;
                }
                if d.quick_exits >= GIVE_UP_AFTER {
                    d.given_up = true;
                    eprintln!(
                        "fjord dev: {} exited ({status}) {GIVE_UP_AFTER} times in a row right after starting; \
                         not starting it again (the rest keeps running). See {}",
                        d.name(),
                        d.log.display()
                    );
                    continue;
                }
                let delay = restart_delay * 2u32.pow(d.quick_exits.min(4));
                eprintln!(
                    "fjord dev: {} exited ({status}); starting it again in {}s. See {}",
                    d.name(),
                    delay.as_secs(),
                    d.log.display()
                );
                d.restart_at = Some(Instant::now() + delay);
            }
            Some(at) if Instant::now() >= at => {
                d.restart_at = None;
                match spawn(&d.program, &d.flags, &d.log) {
                    Ok(child) => {
                        d.child = child;
                        d.started = Instant::now();
                        changed = true;
                        eprintln!(
                            "fjord dev: {} started again (pid {})",
                            d.name(),
                            d.child.id().unwrap_or_default()
                        );
                    }
                    Err(e) => {
                        d.given_up = true;
                        eprintln!("fjord dev: {} could not be started again: {e:#}", d.name());
                    }
                }
            }
            Some(_) => {}
        }
    }
    changed
}

fn write_cluster_file(
    path: &Path,
    dir: &Path,
    token_path: &Path,
    lb_url: &str,
    cp_urls: &[String],
    daemons: &[Daemon],
) -> anyhow::Result<()> {
    let cluster = json!({
        "data_dir": dir,
        "token_file": token_path,
        "lb_url": lb_url,
        "control_plane_urls": cp_urls,
        "members": daemons.iter().map(|d| json!({
            "role": d.role, "id": d.id, "pid": d.child.id(), "addr": d.addr.to_string(), "log": d.log,
        })).collect::<Vec<_>>(),
    });
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&cluster)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The state directories a run leaves in the data dir (the token and logs stay).
fn state_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() && (name.starts_with("control-plane-") || name.starts_with("agent-")) {
            found.push(entry.path());
        }
    }
    Ok(found)
}

fn clear_state(dir: &Path) -> anyhow::Result<()> {
    let dirs = state_dirs(dir)?;
    for d in &dirs {
        std::fs::remove_dir_all(d).map_err(|e| anyhow::anyhow!("--fresh: removing {}: {e}", d.display()))?;
    }
    let cluster = dir.join("cluster.json");
    if cluster.exists() {
        std::fs::remove_file(&cluster)?;
    }
    // The queue's calls belong to the cluster being removed.
    let nats = dir.join("nats");
    if nats.exists() {
        std::fs::remove_dir_all(&nats).map_err(|e| anyhow::anyhow!("--fresh: removing {}: {e}", nats.display()))?;
    }
    if !dirs.is_empty() {
        eprintln!(
            "fjord dev: --fresh: removed the previous cluster's state in {}",
            dir.display()
        );
    }
    Ok(())
}

/// Refuses a data dir whose stored cluster has another shape than the one asked for.
fn check_shape(dir: &Path, cluster_path: &Path, cp: &[SocketAddr], agents: &[SocketAddr]) -> anyhow::Result<()> {
    if state_dirs(dir)?.is_empty() {
        return Ok(());
    }
    let Ok(text) = std::fs::read_to_string(cluster_path) else {
        return Ok(());
    };
    let stored: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not valid JSON ({e}); start with --fresh", cluster_path.display()))?;
    let shape = |role: &str| -> Vec<String> {
        stored["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter(|m| m["role"] == role)
                    .filter_map(|m| m["addr"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (had_cp, had_agents) = (shape("control-plane"), shape("node-agent"));
    let want_cp: Vec<String> = cp.iter().map(|a| a.to_string()).collect();
    let want_agents: Vec<String> = agents.iter().map(|a| a.to_string()).collect();
    if had_cp != want_cp || had_agents != want_agents {
        anyhow::bail!(
            "the data dir {} holds a cluster of {} control-plane member(s) ({}) and {} agent(s) ({}); this run asks \
             for {} ({}) and {} ({}). Its stored membership and nodes would win. Run with --fresh to delete that \
             state and start over, choose another --data-dir, or ask for the same shape",
            dir.display(),
            had_cp.len(),
            had_cp.join(", "),
            had_agents.len(),
            had_agents.join(", "),
            want_cp.len(),
            want_cp.join(", "),
            want_agents.len(),
            want_agents.join(", "),
        );
    }
    Ok(())
}

async fn http_ok(addr: SocketAddr) -> bool {
    http_status(addr, "/healthz").await == Some(200)
}

/// The status of `GET path` on `addr`, or `None` when nothing answers.
async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

async fn deploy_examples(connect: &ConnectArgs, exe: &Path) -> anyhow::Result<()> {
    // The examples are built into this binary: run them from here, whatever PATH holds.
    deploy_each_example(connect, |spec, name| {
        spec.command = vec![exe.display().to_string(), "example".into(), name.to_string()];
    })
    .await
}

/// The example images `scripts/build-example-images.sh` makes.
const EXAMPLE_IMAGE_TAG: &str = "test";

/// With `--runtime docker`: deploys the examples as the images of `scripts/build-example-images.sh`;
/// the deploy resolves them on a node, so an image the engine lacks is an error.
async fn deploy_example_images(connect: &ConnectArgs) -> anyhow::Result<()> {
    deploy_each_example(connect, |spec, name| {
        spec.command.clear();
        spec.image = format!("fjord-example/{name}:{EXAMPLE_IMAGE_TAG}");
    })
    .await
}

/// Deploys every example, each spec adjusted by `how_it_runs` (its command or image).
async fn deploy_each_example(
    connect: &ConnectArgs,
    how_it_runs: impl Fn(&mut FunctionSpec, &str),
) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    for (name, yaml) in EXAMPLES {
        let mut spec = FunctionSpec::from_yaml(yaml).map_err(|e| anyhow::anyhow!("example {name}: {e}"))?;
        how_it_runs(&mut spec, name);
        admin
            .deploy(pb::DeployRequest {
                spec: Some((&spec).into()),
                defaulted: Vec::new(),
            })
            .await
            .map_err(crate::connect::explain)?;
    }
    Ok(())
}

/// Whether the agents can install their function firewall here (iptables usable, as root).
fn firewall_usable() -> bool {
    std::process::Command::new("iptables")
        .args(["-w", "-S", "DOCKER-USER"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn print_tour(lb: SocketAddr, cluster: &Path, token: &Path, context: &Path, no_examples: bool) {
    println!();
    println!("Fjord is running. Try:");
    if !no_examples {
        println!("  curl -d hello http://{lb}/function/echo");
        println!("  curl 'http://{lb}/function/sleep?ms=250'");
        println!("  curl http://{lb}/function/env");
        println!("  fjord invoke echo -d 'hi there'");
    }
    println!("  fjord list");
    println!("  fjord nodes");
    println!("  fjord status");
    println!();
    println!("Members and their pids: {}", cluster.display());
    println!("Admin token: {}", token.display());
    println!(
        "The CLI finds this cluster by itself: {} (`fjord context` shows it).",
        context.display()
    );
    println!("Press Ctrl-C to stop.");
}

async fn stop_all(daemons: &mut [Daemon]) {
    // The lb first, then agents (they stop their instances), then the control plane.
    for d in daemons.iter().rev() {
        if let Some(pid) = d.child.id() {
            fjord_daemon::sys::signal_process(pid, libc::SIGTERM);
        }
    }
    for d in daemons.iter_mut().rev() {
        if tokio::time::timeout(Duration::from_secs(15), d.child.wait())
            .await
            .is_err()
        {
            let _ = d.child.kill().await;
        }
    }
}
