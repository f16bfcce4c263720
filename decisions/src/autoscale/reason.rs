//! What the autoscaler asks for a function ([`ScaleDecision`]) and the rule that set it
//! ([`ScaleReason`]), which `fjord describe` shows as a sentence.

use std::fmt;

/// Why a [`ScaleDecision`] asks for the count it does: the rule that set it last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleReason {
    /// The stable-window desire.
    Stable,
    /// Panic mode: the larger of the panic- and stable-window desires.
    Panic,
    /// Panic mode: holding the highest count of this panic rather than scaling down.
    PanicHold,
    /// The desire was higher; capped by the scale-up rate.
    RateLimitedUp,
    /// The desire was lower; held up by the scale-down rate.
    RateLimitedDown,
    /// Raised to the spec's `min`.
    Min,
    /// Lowered to the spec's `max`.
    Max,
    /// No request in flight for `scale_to_zero_after`, and `min` is 0.
    ScaledToZero,
    /// No load, but not idle for `scale_to_zero_after` yet: one instance stays.
    IdleKeptWarm,
    /// No sample in the stable window: holding the ready count.
    NoData,
    /// Adaptive keep-alive: idle, and the next call is not expected yet.
    KeepAliveUnloaded,
    /// Adaptive keep-alive: idle, inside the window the next call is expected in.
    KeepAliveWarm,
    /// Adaptive keep-alive: idle past the window the next call was expected in.
    KeepAliveExpired,
}

impl fmt::Display for ScaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScaleReason::Stable => "following the mean concurrency of the stable window",
            ScaleReason::Panic => "panic mode: concurrency in the panic window doubled past the target",
            ScaleReason::PanicHold => "panic mode: holding the instances rather than scaling down",
            ScaleReason::RateLimitedUp => "scaling up no faster than the maximum scale-up rate allows",
            ScaleReason::RateLimitedDown => "scaling down no faster than the maximum scale-down rate allows",
            ScaleReason::Min => "held at the function's min",
            ScaleReason::Max => "capped at the function's max",
            ScaleReason::ScaledToZero => "scaled to zero: no request in flight for scale_to_zero_after",
            ScaleReason::IdleKeptWarm => "no load: keeping one instance until idle for scale_to_zero_after",
            ScaleReason::NoData => "no concurrency samples in the stable window yet: holding",
            ScaleReason::KeepAliveUnloaded => {
                "adaptive keep-alive: unloaded until just before the next call the idle-time histogram expects"
            }
            ScaleReason::KeepAliveWarm => {
                "adaptive keep-alive: one instance warm for the next call the idle-time histogram expects"
            }
            ScaleReason::KeepAliveExpired => {
                "adaptive keep-alive: idle past the window the idle-time histogram expects calls in"
            }
        })
    }
}

/// What the autoscaler asks for one function at one evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleDecision {
    pub desired: u32,
    pub reason: ScaleReason,
    /// Mean concurrency over the stable window (0 without samples).
    pub stable_concurrency: f64,
    /// Mean concurrency over the panic window (0 without samples).
    pub panic_concurrency: f64,
    pub panicking: bool,
}
