//! Captured output of function instances: a bounded ring buffer per function, so a chatty
//! function can never exhaust the agent's memory. `fjord logs` reads it through the control plane.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Lines kept per function; older lines are dropped first.
pub const LINES_PER_FUNCTION: usize = 2_000;
/// A longer line is cut here and marked.
pub const MAX_LINE_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LogLine {
    pub instance_id: String,
    /// "stdout", "stderr" or "platform" (lines the agent writes about the instance).
    pub stream: String,
    pub timestamp_ms: u64,
    pub line: String,
}

#[derive(Default)]
pub struct LogStore {
    functions: Mutex<HashMap<String, VecDeque<LogLine>>>,
}

impl LogStore {
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
        let entry = LogLine {
            instance_id: instance_id.to_string(),
            stream: stream.to_string(),
            timestamp_ms: now_millis(),
            line,
        };
        let mut functions = self.functions.lock().expect("log lock poisoned");
        let buffer = functions.entry(function.to_string()).or_default();
        if buffer.len() == LINES_PER_FUNCTION {
            buffer.pop_front();
        }
        buffer.push_back(entry);
    }

    /// The last `tail` lines of `function`, oldest first.
    pub fn tail(&self, function: &str, tail: usize) -> Vec<LogLine> {
        let functions = self.functions.lock().expect("log lock poisoned");
        functions
            .get(function)
            .map(|b| b.iter().skip(b.len().saturating_sub(tail)).cloned().collect())
            .unwrap_or_default()
    }

    pub fn forget(&self, function: &str) {
        self.functions.lock().expect("log lock poisoned").remove(function);
    }
}

pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest_lines_and_cuts_long_ones() {
        let logs = LogStore::default();
        for i in 0..LINES_PER_FUNCTION + 10 {
            logs.push("f", "i1", "stdout", &format!("line {i}\n"));
        }
        let tail = logs.tail("f", 3);
        assert_eq!(
            tail.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
            vec![
                format!("line {}", LINES_PER_FUNCTION + 7),
                format!("line {}", LINES_PER_FUNCTION + 8),
                format!("line {}", LINES_PER_FUNCTION + 9)
            ]
        );
        assert_eq!(logs.tail("f", usize::MAX).len(), LINES_PER_FUNCTION);
        logs.push("g", "i2", "stderr", &"é".repeat(MAX_LINE_BYTES));
        assert!(logs.tail("g", 1)[0].line.ends_with("[line truncated]"));
        assert!(logs.tail("nobody", 5).is_empty());
    }
}
