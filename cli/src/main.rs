//! `fjord`: the user's command. Functions (deploy, list, describe, invoke, remove, scale, logs),
//! the cluster (nodes, status), and `fjord dev`, the whole platform on one machine.
//!
//! The same binary also runs each daemon (`fjord control-plane`, `fjord node-agent`, `fjord lb`,
//! with the flags of `fjord-control-plane` and the others), which is how `fjord dev` starts them
//! as separate processes from one build.

mod build;
mod calls;
mod connect;
mod context;
mod deploy_wait;
mod dev;
mod functions;
mod invoke;
mod listing;
mod output;
mod scheduling;
mod secrets;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "fjord",
    version,
    about = "Fjord: run functions (container images or programs) on your own nodes and call them over HTTP.",
    after_help = "Start here:\n  fjord dev                      run the platform on this machine\n  fjord deploy -f fjord.yaml     deploy a function\n  fjord invoke NAME -d DATA      call it\n\nThe control plane is found at FJORD_ADDR with the token in FJORD_TOKEN or FJORD_TOKEN_FILE;\nwithout them, in the current context `fjord dev` recorded (`fjord context` shows it), else at\nhttp://127.0.0.1:7400."
)]
struct Cli {
    #[command(flatten)]
    connect: connect::ConnectArgs,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Members with their roles, the leader, term, commit and applied index.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Add a member: start it first (fjord-control-plane --id ID, without --bootstrap); it joins
    /// as a learner, catches up, then votes. A removed member's id is never accepted again.
    Add {
        /// The new member's id (unique, never used before).
        id: u64,
        /// host:port where the new member serves gRPC.
        #[arg(value_name = "MEMBER_ADDR")]
        member_addr: String,
    },
    /// Remove a member. Refused when the remaining voters could not form a quorum.
    Remove { id: u64 },
}

#[derive(Subcommand)]
enum NodesCommand {
    /// Drain a node: it gets no new instances or requests, its instances start on other nodes
    /// (the new ones ready before the old stop), in-flight requests finish, then it is `drained`
    /// and can be stopped. Waits for that unless --no-wait.
    Drain {
        id: String,
        /// Return once the drain has started.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this long (the drain itself goes on).
        #[arg(long, default_value = "10m", value_parser = fjord_core::duration::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Make a draining or drained node ready again.
    Undrain { id: String },
    /// Forget a node that is down or drained (a machine that is gone), with its placements.
    /// Refused for a ready or draining node, and for one whose agent still heartbeats.
    Remove { id: String },
    /// Node groups of the policy: provider, desired size, machines, nodes, and the node
    /// autoscaler's latest decisions with their reasons.
    Groups {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate and store the cluster policy from a YAML file (- for standard input). Sections:
    /// `defaults` (min, max, concurrency, target_utilization, scale_to_zero_after, keep_alive
    /// for functions whose fjord.yaml leaves them out), `autoscaler` (stable_window_ms,
    /// panic_window_ms, panic_threshold, max_scale_up_rate, max_scale_down_rate, bucket_ms,
    /// keep_alive_bucket_ms, keep_alive_min_samples), `node_groups` and `scheduler`
    /// (load_bound_c). An invalid file is refused whole, naming the field.
    Apply {
        #[arg(short, long)]
        file: PathBuf,
    },
    /// Print the cluster policy in force, every setting included.
    Show,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the whole platform on this machine: control plane, node agent(s) and lb, with the example functions.
    Dev(dev::DevArgs),
    /// Deploy a function from its spec file (fjord.yaml), or every function of an OpenFaaS
    /// stack.yml; redeploying an unchanged spec changes nothing.
    ///
    /// A stack file (named stack.yml or stack.yaml, or with `functions:` and `provider:` or
    /// `version:` at its top) is read as faas-cli reads it, ${VAR} substitution included; each
    /// key Fjord does not honour is named in a warning on stderr.
    Deploy {
        /// The spec file or stack file, or - for standard input.
        #[arg(short, long, default_value = "fjord.yaml")]
        file: PathBuf,
        /// With a stack file: deploy only these functions (names, or globs with *);
        /// repeatable or comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "NAME")]
        filter: Vec<String>,
        /// Print the stored function as JSON (for a stack file: an array, one per function).
        #[arg(long)]
        json: bool,
        /// Follow the deploy until the function is ready (the image pulled and the wanted
        /// instances running) or has failed, with a progress bar per node.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this long.
        #[arg(long, default_value = "5m", value_parser = fjord_core::duration::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Build function images from source through the Docker engine: the folder's Dockerfile,
    /// or a template named by `lang` (fjord.yaml's `build:` section, a stack file's `lang`,
    /// `handler` and `build_args`), tagged with the spec's `image`. Steps go to stderr.
    Build(build::BuildArgs),
    /// Push the functions' images to their registries (`--registry-auth-file`, else docker's
    /// config.json `auths`, else ECR tokens), a progress bar per layer on a terminal.
    Push {
        #[command(flatten)]
        source: build::SourceArgs,
        #[command(flatten)]
        push: build::PushArgs,
    },
    /// Build, push and deploy the functions, then wait until they are ready (as deploy --wait).
    Up {
        #[command(flatten)]
        build: build::BuildArgs,
        #[command(flatten)]
        push: build::PushArgs,
        /// Give up waiting for the functions to be ready after this long.
        #[arg(long, default_value = "5m", value_parser = fjord_core::duration::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Scaffold a function from a template: its handler in DIR (default NAME) and a fjord.yaml
    /// that builds it.
    New {
        name: String,
        /// The template: python3-http, node, go, rust or dockerfile.
        #[arg(long)]
        lang: String,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// List deployed functions with their instances.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one function: its spec (secret values hidden), revision and instances per node.
    Describe {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Call a function through the lb and print its answer; exits non-zero on a non-2xx status.
    Invoke {
        name: String,
        /// Request body (POST); '@-' reads standard input. Piped input is sent when -d is absent.
        #[arg(short, long)]
        data: Option<String>,
        /// Path after the function name, e.g. /items/7?full=1
        #[arg(long, default_value = "/")]
        path: String,
        /// HTTP method (default: POST with a body, GET without).
        #[arg(short = 'X', long)]
        method: Option<String>,
        /// Extra request header, 'Name: value'; repeatable.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// Print the status line and response headers too.
        #[arg(short, long)]
        include: bool,
        /// The lb's URL (default: the current context's, else http://127.0.0.1:8080).
        #[arg(long, env = "FJORD_LB")]
        lb: Option<String>,
    },
    /// Remove a function; its instances stop once their requests finish.
    Remove { name: String },
    /// Change a function's minimum and maximum instances.
    Scale {
        name: String,
        #[arg(long)]
        min: Option<u32>,
        #[arg(long)]
        max: Option<u32>,
    },
    /// Show a function's recent log lines from every node (its stdout, stderr and platform events).
    Logs {
        name: String,
        /// How many lines, newest last.
        #[arg(long, default_value_t = 100)]
        tail: u32,
        #[arg(long)]
        json: bool,
    },
    /// List nodes (state, address, zone, memory, load, instances), or drain and undrain one.
    Nodes {
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: Option<NodesCommand>,
    },
    /// Asynchronous calls: `fjord calls NAME` lists a function's recent calls (newest first);
    /// `show ID`, `retry ID` (redrive a dead call), `cancel ID` (a queued call).
    #[command(args_conflicts_with_subcommands = true)]
    Calls {
        #[command(subcommand)]
        action: Option<calls::CallsCommand>,
        #[command(flatten)]
        list: calls::ListArgs,
    },
    /// Named secrets: create, update (rotate), ls, rm. Values are encrypted at rest and mounted
    /// as files in the functions that name them (`secrets: [NAME]` in fjord.yaml).
    #[command(subcommand)]
    Secret(secrets::SecretCommand),
    /// The cluster policy: function defaults, autoscaler and scheduler settings.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Show the control plane: members, leader, term, log indexes, counts.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Show the cluster this CLI talks to (control-plane addresses, token file, lb) and where
    /// each setting comes from: flags and FJORD_* variables, else the current context that
    /// `fjord dev` records, else the defaults.
    Context {
        #[arg(long)]
        json: bool,
    },
    /// Control-plane membership: status, add a member, remove a member.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Run a control-plane member (the fjord-control-plane daemon).
    #[command(hide = true)]
    ControlPlane(fjord_control_plane::Args),
    /// Run a node agent (the fjord-node-agent daemon).
    #[command(hide = true)]
    NodeAgent(fjord_node_agent::Args),
    /// Run the lb (the fjord-lb daemon).
    #[command(hide = true)]
    Lb(fjord_lb::Args),
    /// Run a built-in example function (echo, sleep, env, jobs) on $PORT.
    #[command(hide = true)]
    Example { name: String },
}

fn main() -> std::process::ExitCode {
    match run_cli() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_cli() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Commands::Example { name } = &cli.command {
        match name.as_str() {
            "echo" => fjord_examples::echo::run(),
            "sleep" => fjord_examples::sleep::run(),
            "env" => fjord_examples::env::run(),
            "jobs" => fjord_examples::jobs::run(),
            other => anyhow::bail!("no example function {other:?}: use echo, sleep, env or jobs"),
        }
        return Ok(());
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let c = &cli.connect;
    match cli.command {
        Commands::Dev(args) => dev::run(args).await,
        Commands::Deploy {
            file,
            filter,
            json,
            wait,
            timeout,
        } => functions::deploy(c, &file, &filter, json, wait.then_some(timeout), None).await,
        Commands::Build(args) => build::build(&args).await.map(drop),
        Commands::Push { source, push } => build::push(&source, &push).await,
        Commands::Up { build, push, timeout } => build::up(c, &build, &push, timeout).await,
        Commands::New { name, lang, dir } => build::new(&name, &lang, dir.as_deref()),
        Commands::List { json } => functions::list(c, json).await,
        Commands::Describe { name, json } => functions::describe(c, &name, json).await,
        Commands::Invoke {
            name,
            data,
            path,
            method,
            headers,
            include,
            lb,
        } => {
            let lb = resolve_lb(lb)?;
            invoke::invoke(invoke::InvokeArgs {
                lb: &lb,
                name: &name,
                path: &path,
                data: data.as_deref(),
                method: method.as_deref(),
                headers: &headers,
                include,
            })
            .await
        }
        Commands::Remove { name } => functions::remove(c, &name).await,
        Commands::Scale { name, min, max } => functions::scale(c, &name, min, max).await,
        Commands::Logs { name, tail, json } => functions::logs(c, &name, tail, json).await,
        Commands::Nodes { json, action: None } => functions::nodes(c, json).await,
        Commands::Nodes {
            action: Some(NodesCommand::Drain { id, no_wait, timeout }),
            ..
        } => scheduling::drain(c, &id, (!no_wait).then_some(timeout)).await,
        Commands::Nodes {
            action: Some(NodesCommand::Undrain { id }),
            ..
        } => scheduling::undrain(c, &id).await,
        Commands::Nodes {
            action: Some(NodesCommand::Remove { id }),
            ..
        } => scheduling::remove_node(c, &id).await,
        Commands::Nodes {
            action: Some(NodesCommand::Groups { json }),
            ..
        } => functions::groups(c, json).await,
        Commands::Calls {
            action: Some(action), ..
        } => calls::run(c, action).await,
        Commands::Calls { action: None, list } => calls::list(c, list).await,
        Commands::Secret(command) => secrets::run(c, command).await,
        Commands::Policy(PolicyCommand::Apply { file }) => scheduling::apply_policy(c, &file).await,
        Commands::Policy(PolicyCommand::Show) => scheduling::show_policy(c).await,
        Commands::Status { json } | Commands::Cluster(ClusterCommand::Status { json }) => {
            functions::status(c, json).await
        }
        Commands::Context { json } => show_context(c, json),
        Commands::Cluster(ClusterCommand::Add { id, member_addr }) => functions::add_member(c, id, &member_addr).await,
        Commands::Cluster(ClusterCommand::Remove { id }) => functions::remove_member(c, id).await,
        Commands::ControlPlane(args) => Ok(fjord_control_plane::main_with(args).await?),
        Commands::NodeAgent(args) => Ok(fjord_node_agent::main_with(args).await?),
        Commands::Lb(args) => Ok(fjord_lb::main_with(args).await?),
        Commands::Example { .. } => unreachable!("handled before the runtime starts"),
    }
}

/// The lb's URL: `--lb` or FJORD_LB, else the current context's, else the default.
fn resolve_lb(flag: Option<String>) -> anyhow::Result<String> {
    if let Some(lb) = flag {
        return Ok(lb);
    }
    Ok(context::load()?.map_or_else(|| context::DEFAULT_LB.to_string(), |c| c.lb_url))
}

fn show_context(connect: &connect::ConnectArgs, json: bool) -> anyhow::Result<()> {
    let target = connect.target()?;
    let recorded = context::load()?;
    let lb_from_env = std::env::var("FJORD_LB").ok();
    let (lb, lb_from) = match (&lb_from_env, &recorded) {
        (Some(lb), _) => (lb.clone(), "FJORD_LB".to_string()),
        (None, Some(c)) => (c.lb_url.clone(), "the current context".to_string()),
        (None, None) => (context::DEFAULT_LB.to_string(), "the default".to_string()),
    };
    if json {
        let value = serde_json::json!({
            "context_file": context::path(),
            "context": recorded,
            "control_plane_urls": target.addrs,
            "control_plane_urls_from": target.addrs_from,
            "token_file": target.token_file,
            "token_from": target.token_from,
            "lb_url": lb,
            "lb_url_from": lb_from,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    match &recorded {
        Some(c) => println!("context:        {} ({})", context::path().display(), c.source),
        None => println!("context:        none ({} does not exist)", context::path().display()),
    }
    println!(
        "control plane:  {}  (from {})",
        target.addrs.join(","),
        target.addrs_from
    );
    println!("token:          from {}", target.token_from);
    println!("lb:             {lb}  (from {lb_from})");
    Ok(())
}
