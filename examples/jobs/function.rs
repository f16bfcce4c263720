//! `jobs`: a worker for asynchronous calls (`/async-function/jobs`). It appends a line
//! `{call id} {attempt}` for each call it receives to the file `$JOBS_LOG` (when set), fails
//! the first `$FAIL_ATTEMPTS` attempts of every call with 503 (default 0), sleeps `?ms=`
//! milliseconds (at most 60000), and answers `done {call id}`.

use std::io::Write;
use std::time::Duration;

pub fn run() {
    let fail_attempts: u32 = std::env::var("FAIL_ATTEMPTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let log = std::env::var("JOBS_LOG").ok().filter(|p| !p.is_empty());
    crate::serve(move |request: hyper::Request<hyper::body::Incoming>| {
        let log = log.clone();
        async move {
            let header = |name: &str| {
                request
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            let call_id = header("x-call-id");
            let attempt: u32 = header("x-attempt").parse().unwrap_or(1);
            if let Some(path) = &log {
                // One write per line, appended: lines of instances running at once never mix.
                let line = format!("{call_id} {attempt}\n");
                if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                    let _ = file.write_all(line.as_bytes());
                }
            }
            let ms: u64 = crate::query_param(&request, "ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
                .min(60_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if attempt <= fail_attempts {
                eprintln!(
                    "jobs: failing attempt {attempt} of call {call_id} on purpose (FAIL_ATTEMPTS={fail_attempts})"
                );
                return crate::reply(503, format!("attempt {attempt} failed on purpose\n"));
            }
            println!("jobs: call {call_id} done on attempt {attempt}");
            crate::reply(200, format!("done {call_id}\n"))
        }
    });
}
