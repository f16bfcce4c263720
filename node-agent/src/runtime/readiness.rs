//! When a started instance is ready to serve, for every runtime: one probe loop that asks
//! `GET /_/health` on the instance's address until it answers, the instance dies, or the wait
//! runs out. It must not decide anything about the instance beyond "ready, dead or late".
//!
//! **What counts as an answer** depends on who accepts the connection ([`ReadyWhen`]): a child
//! process accepts only once it listens, so for the process runtime an accepted connection the
//! function does not answer as HTTP counts ([`ReadyWhen::Listening`]); for containers the
//! engine's port proxy may accept before the function listens, so only an HTTP answer counts
//! ([`ReadyWhen::HttpAnswer`]). In both, a status of 500 or above is "not yet", anything below
//! is ready (a function without the route answers 404).
//!
//! **How long.** [`ready_limit`] bounds the wait by the function's own spec: at most its
//! `timeout` (a start never waits longer than the function may take for a request), but never
//! less than [`READY_FLOOR`], so a function with a short timeout still has time to boot (a
//! container start alone takes a few hundred milliseconds before the function's code runs). A
//! caller may ask for less ([`super::StartRequest::ready_within`]); the runtimes wait for the
//! shorter of the two.
//!
//! **How often.** Every millisecond for the first [`READY_TIGHT_FOR`] (most functions listen
//! within it, and a late answer is a slower cold start), then backing off to at most
//! [`READY_MAX_STEP`].

use super::{Instance, RuntimeError};
use fjord_core::FunctionSpec;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The shortest readiness wait, whatever the function's timeout.
pub const READY_FLOOR: Duration = Duration::from_secs(2);
/// How long readiness is probed every millisecond before the probes back off.
pub const READY_TIGHT_FOR: Duration = Duration::from_millis(100);
/// The longest pause between two probes.
pub const READY_MAX_STEP: Duration = Duration::from_millis(25);
/// How long one probe waits for the connection to be accepted.
const CONNECT_WITHIN: Duration = Duration::from_millis(200);
/// How long one probe waits for the answer's status line once connected.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// The longest an instance of `spec` may take to become ready: its `timeout`, but at least
/// [`READY_FLOOR`].
pub fn ready_limit(spec: &FunctionSpec) -> Duration {
    spec.timeout.max(READY_FLOOR)
}

/// Which probe outcome means the instance is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyWhen {
    /// An HTTP answer below 500 (containers: the engine's proxy accepts before the function
    /// listens, so a connection proves nothing).
    HttpAnswer,
    /// An HTTP answer below 500, or a connection accepted and not answered as HTTP (a process
    /// that listens but does not speak to the probe).
    Listening,
}

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// No connection (refused, or not accepted in time).
    NoConnection,
    /// Connected, but no status line came (closed, silent, or not HTTP).
    NoAnswer,
    /// An HTTP status line with this status.
    Answered(u16),
}

impl ReadyWhen {
    fn is_ready(self, probe: Probe) -> bool {
        match (self, probe) {
            (_, Probe::Answered(status)) => status < 500,
            (ReadyWhen::Listening, Probe::NoAnswer) => true,
            _ => false,
        }
    }
}

/// Probes until `instance` is ready as `when` says, it dies (`DiedStarting`), or `within` has
/// passed (`NotReady`).
pub async fn wait_ready(
    instance: &dyn Instance,
    function: &str,
    within: Duration,
    when: ReadyWhen,
) -> Result<(), RuntimeError> {
    let started = Instant::now();
    let mut step = Duration::from_millis(1);
    loop {
        if let Some(reason) = instance.exit_reason() {
            return Err(RuntimeError::DiedStarting {
                function: function.to_string(),
                reason,
            });
        }
        if when.is_ready(probe(instance.addr()).await) {
            return Ok(());
        }
        if started.elapsed() > within {
            return Err(RuntimeError::NotReady {
                function: function.to_string(),
                waited: within,
            });
        }
        if started.elapsed() < READY_TIGHT_FOR {
            tokio::time::sleep(Duration::from_millis(1)).await;
        } else {
            step = (step * 2).min(READY_MAX_STEP);
            tokio::time::sleep(step).await;
        }
    }
}

/// One `GET /_/health` on `addr`.
async fn probe(addr: SocketAddr) -> Probe {
    let Ok(Ok(mut stream)) = tokio::time::timeout(CONNECT_WITHIN, TcpStream::connect(addr)).await else {
        return Probe::NoConnection;
    };
    let answer = async {
        stream
            .write_all(b"GET /_/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        if !head.starts_with(b"HTTP/") {
            return None;
        }
        std::str::from_utf8(&head[9..12]).ok()?.parse::<u16>().ok()
    };
    match tokio::time::timeout(ANSWER_WITHIN, answer).await {
        Ok(Some(status)) => Probe::Answered(status),
        _ => Probe::NoAnswer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Serves each connection with the next of `answers` (`None`: close without a word), then
    /// the last one for ever.
    async fn serve(answers: Vec<Option<&'static str>>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut next = 0;
            while let Ok((mut stream, _)) = listener.accept().await {
                let answer = answers[next.min(answers.len() - 1)];
                next += 1;
                let mut request = [0u8; 256];
                let _ = stream.read(&mut request).await;
                if let Some(status) = answer {
                    let _ = stream
                        .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                        .await;
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_probe_tells_an_answer_from_silence_and_from_no_connection() {
        assert_eq!(
            probe(serve(vec![Some("404 Not Found")]).await).await,
            Probe::Answered(404)
        );
        assert_eq!(probe(serve(vec![None]).await).await, Probe::NoAnswer);
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        assert_eq!(probe(closed).await, Probe::NoConnection);
    }

    #[test]
    fn what_counts_as_ready_depends_on_who_accepts() {
        for when in [ReadyWhen::HttpAnswer, ReadyWhen::Listening] {
            assert!(when.is_ready(Probe::Answered(200)));
            assert!(when.is_ready(Probe::Answered(404)), "no health route is fine");
            assert!(!when.is_ready(Probe::Answered(503)));
            assert!(!when.is_ready(Probe::NoConnection));
        }
        assert!(
            !ReadyWhen::HttpAnswer.is_ready(Probe::NoAnswer),
            "the engine's proxy accepted"
        );
        assert!(ReadyWhen::Listening.is_ready(Probe::NoAnswer), "the process listens");
    }

    #[test]
    fn the_wait_is_the_functions_timeout_with_a_floor() {
        let mut spec = FunctionSpec::from_yaml("name: a\ncommand: [x]\ntimeout: 5s\n").unwrap();
        assert_eq!(ready_limit(&spec), Duration::from_secs(5));
        spec.timeout = Duration::from_millis(100);
        assert_eq!(ready_limit(&spec), READY_FLOOR);
        spec.timeout = Duration::from_secs(120);
        assert_eq!(ready_limit(&spec), Duration::from_secs(120));
    }

    /// An instance that is only an address, alive unless told otherwise.
    struct Listener {
        addr: SocketAddr,
        dead: Option<crate::runtime::ExitReason>,
    }

    impl Instance for Listener {
        fn id(&self) -> &str {
            "i"
        }
        fn addr(&self) -> SocketAddr {
            self.addr
        }
        fn exit_reason(&self) -> Option<crate::runtime::ExitReason> {
            self.dead.clone()
        }
        fn wait_exit(&self) -> futures::future::BoxFuture<'_, crate::runtime::ExitReason> {
            Box::pin(std::future::pending())
        }
        fn stop(&self, _grace: Duration) -> futures::future::BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn the_wait_ends_ready_late_or_dead() {
        let warming = Listener {
            addr: serve(vec![
                Some("503 Service Unavailable"),
                Some("503 Service Unavailable"),
                Some("200 OK"),
            ])
            .await,
            dead: None,
        };
        wait_ready(&warming, "f", Duration::from_secs(10), ReadyWhen::HttpAnswer)
            .await
            .expect("ready once it answers below 500");

        let silent = Listener {
            addr: serve(vec![None]).await,
            dead: None,
        };
        let late = wait_ready(&silent, "f", Duration::from_millis(50), ReadyWhen::HttpAnswer).await;
        assert!(matches!(late, Err(RuntimeError::NotReady { .. })), "{late:?}");
        wait_ready(&silent, "f", Duration::from_millis(50), ReadyWhen::Listening)
            .await
            .expect("a listening process is ready");

        let dead = Listener {
            addr: silent.addr,
            dead: Some(crate::runtime::ExitReason::Exited(1)),
        };
        let died = wait_ready(&dead, "f", Duration::from_secs(10), ReadyWhen::Listening).await;
        assert!(matches!(died, Err(RuntimeError::DiedStarting { .. })), "{died:?}");
    }
}
