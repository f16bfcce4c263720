//! Invocation traces: one call per row, `arrival_ms,function,duration_ms,memory_mib`, a header
//! line first, as CSV. Function names are kept once and calls refer to them by index.

use std::collections::HashMap;
use std::io::{self, Write};

/// The header line every trace starts with.
pub const TRACE_HEADER: &str = "arrival_ms,function,duration_ms,memory_mib";

/// One invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub arrival_ms: u64,
    /// Index into [`Trace::functions`].
    pub function: u32,
    pub duration_ms: u32,
    pub memory_mib: u32,
}

/// Calls in arrival order, and the names of the functions they call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    pub functions: Vec<String>,
    pub calls: Vec<Call>,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("the trace does not start with the header line `{TRACE_HEADER}`")]
    MissingHeader,
    #[error("line {line}: {reason}")]
    BadLine { line: usize, reason: String },
}

impl Trace {
    /// A trace from `(arrival_ms, function, duration_ms, memory_mib)` rows, in any order; calls
    /// are sorted by arrival (stable), functions numbered in order of first call.
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = (u64, &'a str, u32, u32)>) -> Self {
        let mut rows: Vec<(u64, &str, u32, u32)> = rows.into_iter().collect();
        rows.sort_by_key(|r| r.0);
        let mut trace = Trace::default();
        let mut index: HashMap<String, u32> = HashMap::new();
        for (arrival_ms, name, duration_ms, memory_mib) in rows {
            let function = trace.intern(&mut index, name);
            trace.calls.push(Call {
                arrival_ms,
                function,
                duration_ms,
                memory_mib,
            });
        }
        trace
    }

    fn intern(&mut self, index: &mut HashMap<String, u32>, name: &str) -> u32 {
        if let Some(&i) = index.get(name) {
            return i;
        }
        let i = self.functions.len() as u32;
        self.functions.push(name.to_owned());
        index.insert(name.to_owned(), i);
        i
    }

    /// Parses the CSV form. Blank lines are skipped; rows need not be in arrival order.
    pub fn parse(text: &str) -> Result<Self, TraceError> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, header)) if header.trim() == TRACE_HEADER => {}
            _ => return Err(TraceError::MissingHeader),
        }
        let mut rows = Vec::new();
        for (i, line) in lines {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let bad = |reason: String| TraceError::BadLine { line: i + 1, reason };
            let fields: Vec<&str> = line.split(',').collect();
            let [arrival, name, duration, memory] = fields[..] else {
                return Err(bad(format!("expected 4 fields, found {}", fields.len())));
            };
            let number = |field: &str, what: &str| -> Result<u64, TraceError> {
                field
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| bad(format!("{what} `{field}` is not a whole number")))
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(bad("the function name is empty".into()));
            }
            let arrival_ms = number(arrival, "arrival_ms")?;
            let duration_ms = u32::try_from(number(duration, "duration_ms")?)
                .map_err(|_| bad(format!("duration_ms `{duration}` is too large")))?;
            let memory_mib = u32::try_from(number(memory, "memory_mib")?)
                .map_err(|_| bad(format!("memory_mib `{memory}` is too large")))?;
            if memory_mib == 0 {
                return Err(bad("memory_mib must be at least 1".into()));
            }
            rows.push((arrival_ms, name, duration_ms, memory_mib));
        }
        Ok(Self::from_rows(rows))
    }

    /// Writes the CSV form, header first.
    pub fn write_csv(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(out, "{TRACE_HEADER}")?;
        for c in &self.calls {
            writeln!(
                out,
                "{},{},{},{}",
                c.arrival_ms, self.functions[c.function as usize], c.duration_ms, c.memory_mib
            )?;
        }
        Ok(())
    }

    /// The time by which every call has ended: the latest `arrival_ms + duration_ms`.
    pub fn end_ms(&self) -> u64 {
        self.calls
            .iter()
            .map(|c| c.arrival_ms + u64::from(c.duration_ms))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trips_and_sorts_by_arrival() {
        let text = "arrival_ms,function,duration_ms,memory_mib\n\
                    20,b,5,256\n\
                    10,a,100,128\n\
                    \n\
                    30,a,1,128\n";
        let trace = Trace::parse(text).unwrap();
        assert_eq!(trace.functions, vec!["a", "b"]);
        let arrivals: Vec<u64> = trace.calls.iter().map(|c| c.arrival_ms).collect();
        assert_eq!(arrivals, vec![10, 20, 30]);
        assert_eq!(trace.calls[1].function, 1);
        assert_eq!(trace.end_ms(), 110);
        let mut out = Vec::new();
        trace.write_csv(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "arrival_ms,function,duration_ms,memory_mib\n10,a,100,128\n20,b,5,256\n30,a,1,128\n"
        );
        assert_eq!(
            Trace::parse(&String::from_utf8(trace_bytes(&trace)).unwrap()).unwrap(),
            trace
        );
    }

    fn trace_bytes(trace: &Trace) -> Vec<u8> {
        let mut out = Vec::new();
        trace.write_csv(&mut out).unwrap();
        out
    }

    #[test]
    fn bad_input_names_the_line_and_the_field() {
        assert!(matches!(Trace::parse("1,a,2,3\n"), Err(TraceError::MissingHeader)));
        let err = Trace::parse("arrival_ms,function,duration_ms,memory_mib\n1,a,2,3\n4,b,x,3\n").unwrap_err();
        assert_eq!(err.to_string(), "line 3: duration_ms `x` is not a whole number");
        let err = Trace::parse("arrival_ms,function,duration_ms,memory_mib\n1,a,2\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: expected 4 fields, found 3");
        let err = Trace::parse("arrival_ms,function,duration_ms,memory_mib\n1,a,2,0\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: memory_mib must be at least 1");
    }
}
