//! Captured output of function instances: a bounded ring buffer per instance, so a chatty
//! instance can never push out the lines of its siblings (the platform's line saying why one
//! died among them), and no function can exhaust the agent's memory. The buffers of instances
//! that ended are kept a while, the newest [`ENDED_INSTANCES_KEPT`] per function, so `fjord logs`
//! still shows why an instance crashed after it is gone. `fjord logs` reads them through the
//! control plane, merged in the order the lines arrived.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Bytes of text kept per instance; its oldest lines are dropped first.
pub const BYTES_PER_INSTANCE: usize = 256 * 1024;
/// Lines kept per instance, however short.
pub const LINES_PER_INSTANCE: usize = 2_000;
/// Buffers of ended instances kept per function (their last words), oldest dropped first.
pub const ENDED_INSTANCES_KEPT: usize = 8;
/// A longer line is cut here and marked.
pub const MAX_LINE_BYTES: usize = 8 * 1024;

pub use fjord_core::agent_http::LogLine;

/// A line as held: the wire line and its arrival order on this agent, across instances.
#[derive(Debug, Clone)]
struct Held {
    seq: u64,
    line: LogLine,
}

#[derive(Default)]
struct InstanceLog {
    lines: VecDeque<Held>,
    bytes: usize,
}

impl InstanceLog {
    fn push(&mut self, held: Held) {
        self.bytes += held.line.line.len();
        self.lines.push_back(held);
        while self.lines.len() > LINES_PER_INSTANCE || (self.bytes > BYTES_PER_INSTANCE && self.lines.len() > 1) {
            if let Some(dropped) = self.lines.pop_front() {
                self.bytes -= dropped.line.line.len();
            }
        }
    }
}

#[derive(Default)]
struct FunctionLogs {
    instances: HashMap<String, InstanceLog>,
    /// Ended instances, oldest first.
    ended: VecDeque<String>,
}

#[derive(Default)]
pub struct LogStore {
    functions: Mutex<HashMap<String, FunctionLogs>>,
}

impl LogStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, FunctionLogs>> {
        self.functions.lock().expect("log lock poisoned")
    }

    pub fn push(&self, function: &str, instance_id: &str, stream: &str, line: &str) {
        let mut line = line.trim_end_matches(['\n', '\r']).to_string();
        if line.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" [line truncated]");
        }
        let entry = Held {
            seq: next_seq(),
            line: LogLine {
                instance_id: instance_id.to_string(),
                stream: stream.to_string(),
                timestamp_ms: now_millis(),
                line,
            },
        };
        let mut state = self.lock();
        let logs = state.entry(function.to_string()).or_default();
        match logs.instances.get_mut(instance_id) {
            Some(instance) => instance.push(entry),
            None => {
                let mut instance = InstanceLog::default();
                instance.push(entry);
                logs.instances.insert(instance_id.to_string(), instance);
            }
        }
    }

    /// Notes that an instance has ended: its buffer is kept among the function's newest
    /// [`ENDED_INSTANCES_KEPT`] ended ones, then dropped.
    pub fn instance_ended(&self, function: &str, instance_id: &str) {
        let mut state = self.lock();
        let Some(logs) = state.get_mut(function) else {
            return;
        };
        if !logs.instances.contains_key(instance_id) || logs.ended.iter().any(|i| i == instance_id) {
            return;
        }
        logs.ended.push_back(instance_id.to_string());
        while logs.ended.len() > ENDED_INSTANCES_KEPT {
            if let Some(oldest) = logs.ended.pop_front() {
                logs.instances.remove(&oldest);
            }
        }
    }

    /// Moves the lines written under `from` to `to` (a runtime served a start with an instance
    /// it had prepared under an id of its own).
    pub fn rename_instance(&self, function: &str, from: &str, to: &str) {
        if from == to {
            return;
        }
        let mut state = self.lock();
        let Some(logs) = state.get_mut(function) else {
            return;
        };
        let Some(moved) = logs.instances.remove(from) else {
            return;
        };
        let target = logs.instances.entry(to.to_string()).or_default();
        let mut merged: Vec<Held> = moved.lines.into_iter().chain(target.lines.drain(..)).collect();
        merged.sort_by_key(|h| h.seq);
        target.bytes = 0;
        for mut held in merged {
            held.line.instance_id = to.to_string();
            target.push(held);
        }
    }

    /// The last `tail` lines of `function` over all its instances, oldest first.
    pub fn tail(&self, function: &str, tail: usize) -> Vec<LogLine> {
        let state = self.lock();
        let Some(logs) = state.get(function) else {
            return Vec::new();
        };
        let mut lines: Vec<&Held> = logs.instances.values().flat_map(|i| i.lines.iter()).collect();
        lines.sort_unstable_by_key(|h| h.seq);
        lines[lines.len().saturating_sub(tail)..]
            .iter()
            .map(|h| h.line.clone())
            .collect()
    }

    /// Drops every line of `function` (it was removed and has no instance left here).
    pub fn forget(&self, function: &str) {
        self.lock().remove(function);
    }

    /// Bytes of text held, over every function and instance.
    pub fn bytes_held(&self) -> usize {
        self.lock()
            .values()
            .flat_map(|f| f.instances.values())
            .map(|i| i.bytes)
            .sum()
    }
}

fn next_seq() -> u64 {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[LogLine]) -> Vec<String> {
        lines.iter().map(|l| format!("{} {}", l.instance_id, l.line)).collect()
    }

    #[test]
    fn a_chatty_instance_does_not_push_out_its_siblings_lines() {
        let logs = LogStore::default();
        logs.push(
            "f",
            "quiet",
            "platform",
            "instance was killed for exceeding its memory limit (OOM)",
        );
        for i in 0..LINES_PER_INSTANCE * 3 {
            logs.push("f", "chatty", "stdout", &format!("line {i}\n"));
        }
        let all = logs.tail("f", usize::MAX);
        assert_eq!(all.len(), LINES_PER_INSTANCE + 1);
        assert_eq!(
            texts(&all[..1]),
            vec!["quiet instance was killed for exceeding its memory limit (OOM)"]
        );
        assert_eq!(
            texts(&logs.tail("f", 2)),
            vec![
                format!("chatty line {}", LINES_PER_INSTANCE * 3 - 2),
                format!("chatty line {}", LINES_PER_INSTANCE * 3 - 1)
            ]
        );
        assert!(logs.tail("nobody", 5).is_empty());
    }

    #[test]
    fn an_instance_keeps_at_most_its_byte_budget_and_long_lines_are_cut() {
        let logs = LogStore::default();
        for _ in 0..200 {
            logs.push("g", "i", "stderr", &"é".repeat(MAX_LINE_BYTES));
        }
        let kept = logs.tail("g", usize::MAX);
        assert!(kept[0].line.ends_with("[line truncated]"));
        assert!(logs.bytes_held() <= BYTES_PER_INSTANCE, "{}", logs.bytes_held());
        assert!(kept.len() >= BYTES_PER_INSTANCE / (MAX_LINE_BYTES + 20));
    }

    #[test]
    fn ended_instances_keep_their_last_words_until_newer_ones_end() {
        let logs = LogStore::default();
        for i in 0..ENDED_INSTANCES_KEPT + 3 {
            let id = format!("i{i}");
            logs.push("f", &id, "platform", "instance exited with code 3");
            logs.instance_ended("f", &id);
        }
        logs.push("f", "live", "stdout", "still here");
        let ids: std::collections::BTreeSet<String> =
            logs.tail("f", usize::MAX).into_iter().map(|l| l.instance_id).collect();
        assert_eq!(ids.len(), ENDED_INSTANCES_KEPT + 1);
        assert!(ids.contains("live") && !ids.contains("i0") && ids.contains(&format!("i{}", ENDED_INSTANCES_KEPT + 2)));
        logs.forget("f");
        assert!(logs.tail("f", usize::MAX).is_empty());
        assert_eq!(logs.bytes_held(), 0);
    }

    #[test]
    fn lines_written_under_a_start_id_move_to_the_instance_that_served_it() {
        let logs = LogStore::default();
        logs.push("f", "f-n1-7", "platform", "starting instance");
        logs.push("f", "f-n1-s3", "stdout", "listening");
        logs.push("f", "f-n1-7", "platform", "started in 10 ms");
        logs.rename_instance("f", "f-n1-7", "f-n1-s3");
        assert_eq!(
            texts(&logs.tail("f", usize::MAX)),
            vec![
                "f-n1-s3 starting instance",
                "f-n1-s3 listening",
                "f-n1-s3 started in 10 ms"
            ]
        );
    }
}
