//! `fjord dev`: the whole platform on one machine. It runs each control-plane member, each node
//! agent and the lb as its own OS process (this same binary, in daemon mode), writes
//! `<data-dir>/cluster.json` listing them, deploys the examples and prints how to call them.
//! Ctrl-C stops everything; children also die if `fjord dev` itself is killed.

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
    /// Memory each agent offers to instances, in MiB.
    #[arg(long, default_value_t = 4096)]
    pub agent_memory_mib: u32,
    /// How the agents run instances: process (the examples run from this binary) or docker (the
    /// local engine; functions need images, so the examples are not deployed).
    #[arg(long, default_value = "process")]
    pub runtime: fjord_node_agent::RuntimeKind,
    /// Do not deploy the example functions.
    #[arg(long)]
    pub no_examples: bool,
    /// Start, deploy, print, then exit leaving nothing running (a smoke test of the set-up).
    #[arg(long, hide = true)]
    pub exit_when_ready: bool,
}

struct Daemon {
    role: &'static str,
    id: String,
    addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

const EXAMPLES: &[(&str, &str)] = &[
    ("echo", include_str!("../../examples/echo/fjord.yaml")),
    ("sleep", include_str!("../../examples/sleep/fjord.yaml")),
    ("env", include_str!("../../examples/env/fjord.yaml")),
];

fn check_port_free(port: u16, what: &str) -> anyhow::Result<SocketAddr> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpListener::bind(addr).map_err(|e| {
        anyhow::anyhow!("{what} port {port} is not free ({e}); is another `fjord dev` running? Choose other ports with --lb-port, --control-plane-port, --agent-port")
    })?;
    Ok(addr)
}

fn spawn(exe: &Path, args: &[String], log: &Path) -> anyhow::Result<Child> {
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
    std::fs::create_dir_all(dir.join("logs"))?;
    let token_path = dir.join("admin.token");
    let token = if token_path.exists() {
        fjord_control_plane::auth::Token::read_file(&token_path).map_err(|e| anyhow::anyhow!(e))?
    } else {
        let token = fjord_control_plane::auth::Token::generate();
        token.write_file(&token_path)?;
        token
    };

    let cp_addrs: Vec<SocketAddr> = (0..args.control_planes)
        .map(|i| check_port_free(args.control_plane_port + i as u16, "control-plane"))
        .collect::<anyhow::Result<_>>()?;
    let agent_addrs: Vec<SocketAddr> = (0..args.agents)
        .map(|j| check_port_free(args.agent_port + j as u16, "agent"))
        .collect::<anyhow::Result<_>>()?;
    let lb_addr = check_port_free(args.lb_port, "lb")?;
    let cp_urls: Vec<String> = cp_addrs.iter().map(|a| format!("http://{a}")).collect();
    let token_file = token_path.display().to_string();

    let mut daemons = Vec::new();
    for (i, addr) in cp_addrs.iter().enumerate() {
        let id = i as u64 + 1;
        let mut flags = vec![
            "control-plane".into(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            addr.to_string(),
            "--data-dir".into(),
            dir.join(format!("control-plane-{id}")).display().to_string(),
            "--token-file".into(),
            token_file.clone(),
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
        let log = dir.join(format!("logs/control-plane-{id}.log"));
        daemons.push(Daemon {
            role: "control-plane",
            id: id.to_string(),
            addr: *addr,
            child: spawn(&exe, &flags, &log)?,
            log,
        });
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
        daemons.push(Daemon {
            role: "node-agent",
            id,
            addr: *addr,
            child: spawn(&exe, &flags, &log)?,
            log,
        });
    }
    let lb_flags = vec![
        "lb".into(),
        "--listen".into(),
        lb_addr.to_string(),
        "--control-plane".into(),
        cp_urls.join(","),
        "--token-file".into(),
        token_file.clone(),
    ];
    let lb_log = dir.join("logs/lb.log");
    daemons.push(Daemon {
        role: "lb",
        id: "lb".into(),
        addr: lb_addr,
        child: spawn(&exe, &lb_flags, &lb_log)?,
        log: lb_log,
    });

    let cluster = json!({
        "data_dir": dir,
        "token_file": token_path,
        "lb_url": format!("http://{lb_addr}"),
        "control_plane_urls": cp_urls,
        "members": daemons.iter().map(|d| json!({
            "role": d.role, "id": d.id, "pid": d.child.id(), "addr": d.addr.to_string(), "log": d.log,
        })).collect::<Vec<_>>(),
    });
    let cluster_path = dir.join("cluster.json");
    std::fs::write(&cluster_path, serde_json::to_string_pretty(&cluster)?)?;
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
        print_tour(lb_addr, &cluster_path, &token_path, !examples);
        anyhow::Ok(())
    }
    .await;

    if result.is_ok() && !args.exit_when_ready {
        tokio::select! {
            _ = fjord_daemon::shutdown_signal() => eprintln!("\nfjord dev: stopping"),
            exited = wait_any_exit(&mut daemons) => eprintln!("fjord dev: {exited}; stopping the rest"),
        }
    }
    stop_all(&mut daemons).await;
    result
}

async fn http_ok(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.is_ok() && &head[9..12] == b"200"
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

fn print_tour(lb: SocketAddr, cluster: &Path, token: &Path, no_examples: bool) {
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
    println!("Admin token (found by the CLI automatically): {}", token.display());
    println!("Press Ctrl-C to stop.");
}

async fn wait_any_exit(daemons: &mut [Daemon]) -> String {
    loop {
        for d in daemons.iter_mut() {
            if let Ok(Some(status)) = d.child.try_wait() {
                return format!("{} {} exited ({status}); see {}", d.role, d.id, d.log.display());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
