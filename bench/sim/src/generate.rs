//! Synthetic traces shaped like the Azure Functions workload of Shahrad et al. (USENIX ATC 2020):
//! popularity is heavily skewed (a few functions take most calls, many are called a few times an
//! hour), a quarter of the functions are timers firing at a fixed period, some arrive in bursts,
//! the rest as Poisson streams; durations vary per function over two orders of magnitude and
//! memory sizes are 128 to 1024 MiB, most of them small.
//!
//! Deterministic: the same spec and seed give the same trace (with the same `rand` release).

use crate::trace::{Call, Trace};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSpec {
    pub functions: usize,
    pub duration_s: u64,
    pub seed: u64,
    /// Mean calls per second over the whole trace, all functions together.
    pub calls_per_s: f64,
}

impl TraceSpec {
    /// About 1,000 calls per function per hour on average: 200 functions give ~200k calls an hour.
    pub const DEFAULT_CALLS_PER_S_PER_FUNCTION: f64 = 0.28;
}

/// How a function's calls arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Arrivals {
    /// A timer: every `period_ms`, starting at `phase_ms`, within a second of the tick.
    Periodic { period_ms: u64, phase_ms: u64 },
    /// A Poisson stream of `rate_per_s`.
    Poisson { rate_per_s: f64 },
    /// On/off: Poisson bursts (mean 30 s) separated by quiet spells (mean 5 min), with
    /// `rate_per_s` on average.
    Bursty { rate_per_s: f64 },
}

const TIMER_PERIODS_S: [u64; 7] = [60, 120, 300, 600, 900, 1800, 3600];
const MEMORY_SIZES_MIB: [(u32, u32); 4] = [(128, 35), (256, 30), (512, 22), (1024, 13)];
/// Zipf exponent of the popularity of non-timer functions.
const ZIPF_EXPONENT: f64 = 1.3;
const BURST_ON_MEAN_S: f64 = 30.0;
const BURST_OFF_MEAN_S: f64 = 300.0;

/// Generates a trace; see the module documentation.
pub fn generate(spec: &TraceSpec) -> Trace {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let n = spec.functions;
    let end_ms = spec.duration_s * 1000;
    let width = n.saturating_sub(1).to_string().len();
    let functions: Vec<String> = (0..n).map(|i| format!("fn-{i:0width$}")).collect();

    // A quarter are timers; the others share the remaining rate by Zipf rank, in random order.
    let mut ids: Vec<usize> = (0..n).collect();
    ids.shuffle(&mut rng);
    let timers = n / 4;
    let (timer_ids, ranked_ids) = ids.split_at(timers);
    let mut arrivals = vec![Arrivals::Poisson { rate_per_s: 0.0 }; n];
    let mut timer_rate = 0.0;
    for &f in timer_ids {
        let period_ms = TIMER_PERIODS_S[rng.random_range(0..TIMER_PERIODS_S.len())] * 1000;
        timer_rate += 1000.0 / period_ms as f64;
        arrivals[f] = Arrivals::Periodic {
            period_ms,
            phase_ms: rng.random_range(0..period_ms),
        };
    }
    let zipf: Vec<f64> = (1..=ranked_ids.len())
        .map(|rank| (rank as f64).powf(-ZIPF_EXPONENT))
        .collect();
    let zipf_sum: f64 = zipf.iter().sum();
    let ranked_rate = (spec.calls_per_s - timer_rate).max(0.0);
    for (rank, &f) in ranked_ids.iter().enumerate() {
        let rate_per_s = ranked_rate * zipf[rank] / zipf_sum;
        // The most popular few are steady; of the rest, one in four comes in bursts.
        arrivals[f] = if rank >= 3 && rng.random_bool(0.25) {
            Arrivals::Bursty { rate_per_s }
        } else {
            Arrivals::Poisson { rate_per_s }
        };
    }

    let mut calls = Vec::new();
    for (f, &kind) in arrivals.iter().enumerate() {
        let memory_mib = pick_weighted(&mut rng, &MEMORY_SIZES_MIB);
        // Median duration log-uniform in 20 ms .. 3 s; each call log-normal around it.
        let median_ms = (20f64.ln() + rng.random::<f64>() * (3000f64 / 20.0).ln()).exp();
        let mut push = |rng: &mut StdRng, arrival_ms: u64| {
            let duration_ms = (median_ms * (0.5 * standard_normal(rng)).exp()).clamp(1.0, 600_000.0) as u32;
            calls.push(Call {
                arrival_ms,
                function: f as u32,
                duration_ms,
                memory_mib,
            });
        };
        match kind {
            Arrivals::Periodic { period_ms, phase_ms } => {
                let mut tick = phase_ms;
                while tick < end_ms {
                    let jitter = rng.random_range(0..1000);
                    if tick + jitter < end_ms {
                        push(&mut rng, tick + jitter);
                    }
                    tick += period_ms;
                }
            }
            Arrivals::Poisson { rate_per_s } => {
                let mut t = exponential_ms(&mut rng, rate_per_s);
                while t < end_ms as f64 {
                    push(&mut rng, t as u64);
                    t += exponential_ms(&mut rng, rate_per_s);
                }
            }
            Arrivals::Bursty { rate_per_s } => {
                let on_rate = rate_per_s * (BURST_ON_MEAN_S + BURST_OFF_MEAN_S) / BURST_ON_MEAN_S;
                // Start at a random point of a quiet spell.
                let mut t = exponential_ms(&mut rng, 1.0 / BURST_OFF_MEAN_S);
                while t < end_ms as f64 {
                    let burst_end = t + exponential_ms(&mut rng, 1.0 / BURST_ON_MEAN_S);
                    t += exponential_ms(&mut rng, on_rate);
                    while t < burst_end && t < end_ms as f64 {
                        push(&mut rng, t as u64);
                        t += exponential_ms(&mut rng, on_rate);
                    }
                    t = burst_end + exponential_ms(&mut rng, 1.0 / BURST_OFF_MEAN_S);
                }
            }
        }
    }
    calls.sort_by_key(|c| (c.arrival_ms, c.function));
    Trace { functions, calls }
}

fn pick_weighted(rng: &mut StdRng, choices: &[(u32, u32)]) -> u32 {
    let total: u32 = choices.iter().map(|c| c.1).sum();
    let mut x = rng.random_range(0..total);
    for &(value, weight) in choices {
        if x < weight {
            return value;
        }
        x -= weight;
    }
    choices[choices.len() - 1].0
}

/// An exponentially distributed gap, in milliseconds, for a rate per second (infinite for 0).
fn exponential_ms(rng: &mut StdRng, rate_per_s: f64) -> f64 {
    if rate_per_s <= 0.0 {
        return f64::INFINITY;
    }
    let u: f64 = rng.random();
    -(1.0 - u).ln() / rate_per_s * 1000.0
}

/// Box–Muller.
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64) -> TraceSpec {
        TraceSpec {
            functions: 100,
            duration_s: 1800,
            seed,
            calls_per_s: 100.0 * TraceSpec::DEFAULT_CALLS_PER_S_PER_FUNCTION,
        }
    }

    #[test]
    fn same_seed_same_trace_other_seed_other_trace() {
        let a = generate(&spec(1));
        assert_eq!(a, generate(&spec(1)));
        assert_ne!(a.calls, generate(&spec(2)).calls);
    }

    #[test]
    fn trace_has_the_requested_shape() {
        let trace = generate(&spec(42));
        assert_eq!(trace.functions.len(), 100);
        assert_eq!(trace.functions[7], "fn-07");
        // Rate: 28 calls/s over 30 min ≈ 50k calls, give or take the randomness of bursts.
        let n = trace.calls.len();
        assert!((35_000..65_000).contains(&n), "{n} calls");
        assert!(trace.calls.windows(2).all(|w| w[0].arrival_ms <= w[1].arrival_ms));
        assert!(trace.calls.iter().all(|c| c.arrival_ms < 1_800_000));
        assert!(trace
            .calls
            .iter()
            .all(|c| [128, 256, 512, 1024].contains(&c.memory_mib) && c.duration_ms >= 1));

        // Skew: the top 10% of functions take most calls; many functions are called rarely.
        let mut per_function = vec![0usize; 100];
        for c in &trace.calls {
            per_function[c.function as usize] += 1;
        }
        per_function.sort_unstable_by(|a, b| b.cmp(a));
        let top: usize = per_function[..10].iter().sum();
        assert!(top as f64 > 0.6 * n as f64, "top 10 take {top} of {n}");
        let rare = per_function.iter().filter(|&&k| k <= 30).count();
        assert!(rare >= 20, "{rare} functions called at most once a minute");

        // Timers: functions called every minute or more, every gap within 1 s of the period.
        let timers = (0..100u32)
            .filter(|&f| {
                let times: Vec<u64> = trace
                    .calls
                    .iter()
                    .filter(|c| c.function == f)
                    .map(|c| c.arrival_ms)
                    .collect();
                let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
                gaps.len() >= 2 && {
                    let period = TIMER_PERIODS_S
                        .iter()
                        .map(|s| s * 1000)
                        .find(|p| p.abs_diff(gaps[0]) < 1000);
                    period.is_some_and(|p| gaps.iter().all(|g| g.abs_diff(p) < 1000))
                }
            })
            .count();
        assert!(timers >= 10, "{timers} timers");
    }
}
