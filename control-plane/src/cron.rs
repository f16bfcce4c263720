//! Scheduled functions: the leader fires each due tick of a function's `schedule` as an
//! asynchronous call (`X-Fjord-Trigger: cron`), so it is retried and dead-lettered like any.
//!
//! **Once per tick, across failovers.** A tick's call has the id `cron-{minute}` (the tick's
//! minute on the schedule's clock), and its enqueue is deduplicated by that id (JetStream's
//! window, 10 minutes). The leader enqueues first and then commits
//! [`Command::CronFired`] fenced by its term:
//! - a leader that dies after the enqueue and before the commit leaves the tick unrecorded; the
//!   next leader enqueues it again under the same id and the queue stores it once;
//! - a deposed leader's late commit is refused (fenced), and its late enqueue is the duplicate
//!   of the one its successor makes.
//!
//! A tick is due from the first millisecond of its minute; the leader looks every second (a
//! twentieth of a test minute). Ticks missed while no leader ran fire once on return: only the
//! latest ([`fjord_decisions::schedule::due_tick`]).
//!
//! Without a queue (`--nats-url` unset) nothing fires; the leader says so once per term.

use crate::member::Member;
use crate::raft_types::{Command, CommandResult};
use crate::state_machine::now_millis;
use fjord_decisions::schedule::{due_tick, next_tick, Cron};
use fjord_events::contract::TRIGGER_CRON;
use fjord_events::queue::QueuedCall;
use std::sync::Arc;
use std::time::Duration;

const MS_PER_MINUTE: u64 = 60_000;

/// The schedules' clock: wall time, or wall time sped up for tests (`--test-cron-minute`), so
/// one minute of a schedule lasts `minute` of real time. Every member must agree on it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CronClock {
    /// How many schedule milliseconds pass per real millisecond (1 outside tests).
    speed: u64,
}

impl Default for CronClock {
    fn default() -> Self {
        CronClock { speed: 1 }
    }
}

impl CronClock {
    /// A clock on which one schedule minute lasts `minute` (a divisor of a minute; checked by
    /// the flag's parser).
    pub(crate) fn with_minute(minute: Option<Duration>) -> CronClock {
        match minute {
            Some(m) if !m.is_zero() => CronClock {
                speed: (MS_PER_MINUTE / (m.as_millis() as u64).max(1)).max(1),
            },
            _ => CronClock::default(),
        }
    }

    pub(crate) fn to_schedule(self, wall_ms: u64) -> u64 {
        wall_ms.saturating_mul(self.speed)
    }

    pub(crate) fn to_wall(self, schedule_ms: u64) -> u64 {
        schedule_ms / self.speed
    }

    /// How often the leader looks for due ticks: a second, or a twentieth of a test minute.
    fn period(self) -> Duration {
        Duration::from_millis((MS_PER_MINUTE / self.speed / 20).clamp(50, 1000))
    }
}

/// The parsed schedule of a function; expressions are checked at deploy, so one that does not
/// parse here (written by an older version) is skipped, and logged.
pub(crate) fn crons(function: &str, schedule: &[String]) -> Vec<Cron> {
    schedule
        .iter()
        .filter_map(|text| match Cron::parse(text) {
            Ok(cron) => Some(cron),
            Err(e) => {
                tracing::warn!(function, schedule = %text, error = %e, "a schedule entry does not parse; skipped");
                None
            }
        })
        .collect()
}

/// When a function's schedule next fires (wall clock), for `fjord describe`.
pub(crate) fn next_run_ms(clock: CronClock, function: &str, schedule: &[String], now_ms: u64) -> Option<u64> {
    next_tick(&crons(function, schedule), clock.to_schedule(now_ms)).map(|t| clock.to_wall(t))
}

/// The id of the call a tick fires: the same on every leader, so the queue stores it once.
pub(crate) fn tick_call_id(tick_ms: u64) -> String {
    format!("cron-{}", tick_ms / MS_PER_MINUTE)
}

/// Runs while this member leads in `term`.
pub(crate) async fn run(member: Arc<Member>, term: u64, clock: CronClock) {
    let mut interval = tokio::time::interval(clock.period());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut said_no_queue = false;
    while member.is_leader() && member.term() == term {
        interval.tick().await;
        let due: Vec<(String, u64, u32)> = member.state.read(|applied| {
            let now = clock.to_schedule(now_millis());
            applied
                .cluster
                .schedules
                .iter()
                .filter_map(|(name, record)| {
                    let function = applied.cluster.functions.get(name)?;
                    let crons = crons(name, &function.spec.schedule);
                    let tick = due_tick(&crons, clock.to_schedule(record.since_ms), record.last_fired_ms, now)?;
                    Some((name.clone(), tick, function.spec.async_policy.max_attempts))
                })
                .collect()
        });
        if due.is_empty() {
            continue;
        }
        let Some(queue) = member.queue.get() else {
            if !said_no_queue {
                said_no_queue = true;
                let reason = if member.queue.configured() {
                    "the queue is not reachable yet"
                } else {
                    "no --nats-url is set"
                };
                tracing::warn!(
                    functions = due.len(),
                    reason,
                    "scheduled functions are due but cannot fire"
                );
            }
            continue;
        };
        for (function, tick_ms, max_attempts) in due {
            if !(member.is_leader() && member.term() == term) {
                return;
            }
            fire(&member, &queue, term, &function, tick_ms, max_attempts).await;
        }
    }
}

/// Enqueues one tick's call, then records the tick as fired.
async fn fire(
    member: &Member,
    queue: &fjord_events::Queue,
    term: u64,
    function: &str,
    tick_ms: u64,
    max_attempts: u32,
) {
    let call = QueuedCall {
        function: function.to_string(),
        call_id: tick_call_id(tick_ms),
        method: "POST".into(),
        path: "/".into(),
        headers: Vec::new(),
        body: bytes::Bytes::new(),
        callback_url: None,
        trigger: TRIGGER_CRON.into(),
        enqueued_ms: 0,
    };
    match queue.enqueue(call, max_attempts).await {
        Ok(stored) => tracing::info!(
            function,
            tick = %fjord_decisions::schedule::format_utc_minute(tick_ms),
            call = %tick_call_id(tick_ms),
            duplicate = stored.duplicate,
            "scheduled call enqueued"
        ),
        Err(e) => {
            // Not recorded as fired: the next look tries the same tick again (the same id).
            tracing::warn!(function, error = %e, "could not enqueue a scheduled call; trying again");
            return;
        }
    }
    let recorded = member
        .write(Command::CronFired {
            function: function.to_string(),
            tick_ms,
            term,
        })
        .await;
    match recorded {
        Ok(CommandResult::Noop) => {}
        Ok(other) => tracing::info!(function, result = ?other, "scheduled tick not recorded"),
        Err(e) => tracing::warn!(function, error = %e, "could not record a fired tick; its call is stored once"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_minute_speeds_the_clock_and_converts_back() {
        let clock = CronClock::with_minute(Some(Duration::from_secs(3)));
        assert_eq!(clock.to_schedule(3_000), 60_000);
        assert_eq!(clock.to_wall(clock.to_schedule(123_456)), 123_456);
        assert_eq!(clock.period(), Duration::from_millis(150));
        let real = CronClock::with_minute(None);
        assert_eq!(real.to_schedule(5), 5);
        assert_eq!(real.period(), Duration::from_secs(1));
        assert_eq!(tick_call_id(120_000), "cron-2");
        assert!(fjord_events::contract::check_call_id(&tick_call_id(u64::MAX)).is_ok());
    }
}
