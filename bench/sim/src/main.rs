//! `fjord-bench`: generate invocation traces and replay them through Fjord's routing.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use fjord_bench::generate::{generate, TraceSpec};
use fjord_bench::movement::home_movement;
use fjord_bench::report::{movement_table, results_table, Row};
use fjord_bench::routing::RoutingPolicy;
use fjord_bench::sim::{simulate, KeepAliveKind, SimConfig, SimReport};
use fjord_bench::trace::Trace;
use fjord_core::hashing::DEFAULT_LOAD_BOUND_C;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "fjord-bench", about = "Fjord's trace generator and routing simulator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic trace (CSV: arrival_ms,function,duration_ms,memory_mib).
    Trace(TraceArgs),
    /// Replay a trace through routing and keep-alive policies and print what they did.
    Routing(RoutingArgs),
}

#[derive(clap::Args)]
struct TraceArgs {
    /// Number of functions.
    #[arg(long)]
    functions: usize,
    /// Length of the trace in seconds.
    #[arg(long)]
    duration_s: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
    /// Mean calls per second, all functions together [default: 0.28 per function].
    #[arg(long)]
    calls_per_s: Option<f64>,
}

#[derive(clap::Args)]
struct RoutingArgs {
    #[arg(long)]
    trace: PathBuf,
    /// Number of nodes.
    #[arg(long)]
    nodes: usize,
    /// Memory of each node, in MiB.
    #[arg(long)]
    node_memory: u32,
    /// Fixed keep-alive (and the adaptive policy's fallback), in seconds.
    #[arg(long, default_value_t = 300)]
    keep_alive_s: u64,
    /// Load bound factor of fjord's policy.
    #[arg(long, default_value_t = DEFAULT_LOAD_BOUND_C)]
    c: f64,
    #[arg(long, value_enum, default_value = "all")]
    policy: PolicyArg,
    #[arg(long, value_enum, default_value = "both")]
    keepalive: KeepAliveArg,
    /// Seed of the random policy.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PolicyArg {
    All,
    Fjord,
    FjordWarm,
    RoundRobin,
    Random,
    LeastLoaded,
    Openwhisk,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KeepAliveArg {
    Fixed,
    Adaptive,
    AdaptiveIdle,
    /// fixed and adaptive
    Both,
    /// fixed, adaptive and adaptive-idle
    All,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Trace(args) => write_trace(args),
        Command::Routing(args) => replay(args),
    }
}

fn write_trace(args: TraceArgs) -> Result<()> {
    if args.functions == 0 || args.duration_s == 0 {
        bail!("--functions and --duration-s must be at least 1");
    }
    let calls_per_s = args
        .calls_per_s
        .unwrap_or(args.functions as f64 * TraceSpec::DEFAULT_CALLS_PER_S_PER_FUNCTION);
    if !(calls_per_s.is_finite() && calls_per_s > 0.0) {
        bail!("--calls-per-s must be a positive number");
    }
    let trace = generate(&TraceSpec {
        functions: args.functions,
        duration_s: args.duration_s,
        seed: args.seed,
        calls_per_s,
    });
    let file = std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut out = BufWriter::new(file);
    trace.write_csv(&mut out)?;
    out.flush()?;
    eprintln!(
        "wrote {} calls of {} functions over {} s to {}",
        trace.calls.len(),
        trace.functions.len(),
        args.duration_s,
        args.out.display()
    );
    Ok(())
}

fn replay(args: RoutingArgs) -> Result<()> {
    if args.nodes == 0 || args.node_memory == 0 {
        bail!("--nodes and --node-memory must be at least 1");
    }
    if !(args.c.is_finite() && args.c > 0.0) {
        bail!("--c must be a positive number (1.25 by default; below 1 some requests find no node under its bound)");
    }
    let text = std::fs::read_to_string(&args.trace).with_context(|| format!("reading {}", args.trace.display()))?;
    let trace = Trace::parse(&text).with_context(|| format!("parsing {}", args.trace.display()))?;

    let policies: Vec<RoutingPolicy> = match args.policy {
        PolicyArg::All => vec![
            RoutingPolicy::Fjord { c: args.c },
            RoutingPolicy::FjordWarm { c: args.c },
            RoutingPolicy::RoundRobin,
            RoutingPolicy::Random,
            RoutingPolicy::LeastLoaded,
            RoutingPolicy::OpenWhisk,
        ],
        PolicyArg::Fjord => vec![RoutingPolicy::Fjord { c: args.c }],
        PolicyArg::FjordWarm => vec![RoutingPolicy::FjordWarm { c: args.c }],
        PolicyArg::RoundRobin => vec![RoutingPolicy::RoundRobin],
        PolicyArg::Random => vec![RoutingPolicy::Random],
        PolicyArg::LeastLoaded => vec![RoutingPolicy::LeastLoaded],
        PolicyArg::Openwhisk => vec![RoutingPolicy::OpenWhisk],
    };
    let keep_alives: Vec<KeepAliveKind> = match args.keepalive {
        KeepAliveArg::Fixed => vec![KeepAliveKind::Fixed],
        KeepAliveArg::Adaptive => vec![KeepAliveKind::Adaptive],
        KeepAliveArg::AdaptiveIdle => vec![KeepAliveKind::AdaptiveIdle],
        KeepAliveArg::Both => vec![KeepAliveKind::Fixed, KeepAliveKind::Adaptive],
        KeepAliveArg::All => vec![
            KeepAliveKind::Fixed,
            KeepAliveKind::Adaptive,
            KeepAliveKind::AdaptiveIdle,
        ],
    };
    let configs: Vec<SimConfig> = policies
        .iter()
        .flat_map(|&routing| {
            keep_alives.iter().map(move |&keep_alive| SimConfig {
                nodes: args.nodes,
                node_memory_mib: args.node_memory,
                routing,
                keep_alive,
                keep_alive_ms: args.keep_alive_s * 1000,
                seed: args.seed,
            })
        })
        .collect();

    // Replays are independent: one thread each.
    let started = Instant::now();
    let results: Vec<(SimReport, f64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = configs
            .iter()
            .map(|config| {
                let trace = &trace;
                scope.spawn(move || {
                    let t = Instant::now();
                    let report = simulate(trace, config);
                    (report, t.elapsed().as_secs_f64())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a replay panicked"))
            .collect()
    });
    let wall_s = started.elapsed().as_secs_f64();

    println!(
        "trace {}: {} calls, {} functions, {:.0} s; {} nodes × {} MiB; keep-alive {} s; c = {}\n",
        args.trace.display(),
        trace.calls.len(),
        trace.functions.len(),
        trace.end_ms() as f64 / 1000.0,
        args.nodes,
        args.node_memory,
        args.keep_alive_s,
        args.c
    );
    let rows: Vec<Row<'_>> = configs
        .iter()
        .zip(&results)
        .map(|(config, (report, _))| Row {
            routing: config.routing.name(),
            keep_alive: config.keep_alive.name(),
            report,
        })
        .collect();
    println!("{}", results_table(&rows));
    let movement = home_movement(&trace.functions, args.nodes);
    println!("{}", movement_table(&movement, trace.functions.len(), args.nodes));
    let slowest = results.iter().map(|r| r.1).fold(0.0, f64::max);
    eprintln!(
        "{} replays in {wall_s:.2} s wall time (slowest single replay {slowest:.2} s)",
        results.len()
    );
    Ok(())
}
