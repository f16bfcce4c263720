//! `sleep`: sleeps `?ms=` milliseconds (default 100, at most 60000), then answers with JSON
//! saying which instance served it and how many requests that instance had in flight at once.
//! `?fail=1` writes a line to stderr and answers 500, to show failing calls in `fjord logs`.
//! `?alloc_mib=N` first allocates and touches N MiB (at most 4096), to show what an instance that
//! exceeds its memory limit looks like. `?exit=N` ends the whole instance with exit code N
//! before answering, to show what a crashing function looks like to its caller.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

pub fn run() {
    crate::serve(|request: hyper::Request<hyper::body::Incoming>| async move {
        if let Some(code) = crate::query_param(&request, "exit").and_then(|v| v.parse::<i32>().ok()) {
            eprintln!("sleep: exiting with code {code} on purpose");
            std::process::exit(code);
        }
        let in_flight = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
        let ms: u64 = crate::query_param(&request, "ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100)
            .min(60_000);
        let fail = crate::query_param(&request, "fail").is_some_and(|v| v == "1");
        let alloc_mib: usize = crate::query_param(&request, "alloc_mib")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            .min(4096);
        // Every page is written, so the memory is really resident, not just reserved.
        let held = std::hint::black_box(vec![1u8; alloc_mib << 20]);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        drop(held);
        let instance = std::env::var("FJORD_INSTANCE_ID").unwrap_or_default();
        if fail {
            eprintln!("sleep: failing on purpose after {ms} ms (instance {instance})");
            return crate::reply(500, "failed on purpose; see `fjord logs sleep`\n");
        }
        println!("sleep: slept {ms} ms");
        let body = format!(
            "{{\"slept_ms\":{ms},\"instance\":\"{instance}\",\"pid\":{},\"in_flight\":{in_flight}}}",
            std::process::id()
        );
        crate::reply(200, body)
    });
}
