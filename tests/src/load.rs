//! Steady callers through the lb, and the check that none of their calls failed.

use crate::http;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Callers that each send one request after another until stopped; every answer is recorded.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub results: Arc<Mutex<Vec<(u16, Duration, String)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(url: String, callers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let results = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..callers)
            .map(|_| {
                let (stop, results, url) = (stop.clone(), results.clone(), url.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let (status, body) = match http("GET", &url, b"", &[]).await {
                            Ok(answer) => (
                                answer.status,
                                format!("{}: {}", answer.header("x-fjord-node").unwrap_or("-"), answer.text()),
                            ),
                            Err(e) => (0, e),
                        };
                        results.lock().unwrap().push((status, started.elapsed(), body));
                    }
                })
            })
            .collect();
        Load { stop, results, tasks }
    }

    /// Stops the callers and returns every (status, latency, body) recorded.
    pub async fn finish(self) -> Vec<(u16, Duration, String)> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        std::mem::take(&mut *self.results.lock().unwrap())
    }
}

pub fn assert_no_failure(results: &[(u16, Duration, String)], what: &str) {
    assert!(!results.is_empty(), "{what}: no request was made");
    let failed: Vec<_> = results.iter().filter(|(status, _, _)| *status != 200).take(5).collect();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} requests failed, e.g. {failed:?}",
        results.iter().filter(|(s, _, _)| *s != 200).count(),
        results.len()
    );
}
