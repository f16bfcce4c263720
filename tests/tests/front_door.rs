//! The lb's front-door protections end to end, on real processes: body limits (declared and
//! chunked), slow clients, load shedding, rate limits, holding a request while no node has
//! room and 429 past the queue, request ids and forwarding headers the function sees, and a
//! fuzz of raw requests that must never crash the lb.

use fjord_tests::*;
use rand::{Rng, SeedableRng};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_the_limit_get_413_declared_or_chunked() {
    let platform = Platform::start_custom(1, 4096, &["--body-limit-bytes", "1000"]).await;
    assert!(platform.deploy_example("echo", "echo", "").status.success());
    platform.invoke_when_routable("echo", "", b"warm", &[]).await;
    let ok = http("POST", &platform.lb_url("/function/echo"), &[b'a'; 1000], &[])
        .await
        .unwrap();
    assert_eq!((ok.status, ok.body.len()), (200, 1000));
    let declared = http("POST", &platform.lb_url("/function/echo"), &[b'a'; 1001], &[])
        .await
        .unwrap();
    assert_eq!(declared.status, 413);
    assert!(declared.text().contains("1000 bytes"));

    // Chunked, no length declared: cut while reading. One chunk past the limit and no final
    // chunk: the lb answers as soon as it has read past the limit, with nothing left unread
    // (unread bytes would turn its close into a reset that can swallow the answer).
    let mut stream = TcpStream::connect(("127.0.0.1", platform.lb_port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "POST /function/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4b0\r\n{}\r\n",
        "b".repeat(1200)
    );
    let _ = stream.write_all(request.as_bytes());
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    // 500 ms, far from the 10 s default: a cut after about 500 ms is this flag's doing.
    let timeout = Duration::from_millis(500);
    let flag = format!("{}ms", timeout.as_millis());
    let platform = Platform::start_custom(1, 4096, &["--header-read-timeout", &flag]).await;
    let mut stream = TcpStream::connect(("127.0.0.1", platform.lb_port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    write!(stream, "GET /function/echo HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut buffer = Vec::new();
    let _ = stream.read_to_end(&mut buffer);
    let held = started.elapsed();
    let reply = String::from_utf8_lossy(&buffer);
    assert!(buffer.is_empty() || reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(
        held >= timeout.mul_f32(0.6) && held < timeout * 6,
        "the slow client was cut off after {held:?}; --header-read-timeout {flag} should cut it after about {timeout:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_beyond_the_concurrency_limit_are_shed_with_503() {
    let platform = Platform::start_custom(1, 4096, &["--max-concurrency", "2"]).await;
    assert!(platform
        .deploy_example("slow", "sleep", "concurrency: 4\n")
        .status
        .success());
    platform.invoke_when_routable("slow", "?ms=1", b"", &[]).await;
    let url = platform.lb_url("/function/slow?ms=1500");
    let calls = (0..5).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { http("GET", &url, b"", &[]).await.unwrap() })
    });
    let answers: Vec<Answer> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let shed: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    assert_eq!(answers.iter().filter(|a| a.status == 200).count(), 2, "{answers:?}");
    assert_eq!(shed.len(), 3);
    assert!(shed.iter().all(|a| a.header("retry-after") == Some("1")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_function_gets_429_and_others_do_not() {
    let per_second = 2.0;
    let platform = Platform::start_custom(1, 4096, &["--rate-limit", "limited=2"]).await;
    assert!(platform.deploy_example("limited", "echo", "").status.success());
    assert!(platform.deploy_example("free", "echo", "").status.success());
    platform.invoke_when_routable("free", "", b"x", &[]).await;
    platform.invoke_when_routable("limited", "", b"x", &[]).await;
    let call = |name: &str| {
        let url = platform.lb_url(&format!("/function/{name}"));
        async move { http("POST", &url, b"x", &[]).await.unwrap().status }
    };

    // Within the rate (one call per 750 ms against 2 per second): every call is served.
    let mut paced = Vec::new();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(750)).await;
        paced.push(call("limited").await);
    }
    assert_eq!(paced, [200; 4], "calls within the rate were refused");

    // Beyond it: at most the burst (one second's worth) plus what refilled meanwhile is served.
    let started = Instant::now();
    let mut burst = Vec::new();
    for _ in 0..8 {
        burst.push(call("limited").await);
    }
    let allowed = (per_second + started.elapsed().as_secs_f64() * per_second).floor() as usize;
    let served = burst.iter().filter(|s| **s == 200).count();
    assert!(
        served <= allowed,
        "{served} of a burst of 8 served, at most {allowed} allowed: {burst:?}"
    );
    assert!(burst.iter().all(|s| *s == 200 || *s == 429), "{burst:?}");
    for _ in 0..8 {
        assert_eq!(call("free").await, 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_waits_while_no_node_has_room_and_one_past_the_queue_gets_429() {
    // One node with room for one 128 MiB instance. "hog" holds it for a moment and then scales
    // to zero; "waiter" must wait for the memory, and a second waiter finds the queue full.
    let platform = Platform::start_custom(1, 128, &["--queue-per-function", "1"]).await;
    assert!(platform
        .deploy_example("hog", "sleep", "memory_mib: 128\nscale_to_zero_after: 1s\n")
        .status
        .success());
    assert!(platform
        .deploy_example("waiter", "echo", "memory_mib: 128\n")
        .status
        .success());
    platform.invoke_when_routable("hog", "?ms=1", b"", &[]).await;

    let first = tokio::spawn({
        let url = platform.lb_url("/function/waiter");
        async move { http("POST", &url, b"held", &[]).await.unwrap() }
    });
    let metrics_url = platform.lb_url("/metrics");
    eventually("the first waiter to be queued", Duration::from_secs(10), || async {
        let metrics = http("GET", &metrics_url, b"", &[]).await.ok()?.text();
        (metric_value::<u64>(&metrics, "fjord_lb_queue_waits_total")? == 1).then_some(())
    })
    .await;
    let second = http("POST", &platform.lb_url("/function/waiter"), b"refused", &[])
        .await
        .unwrap();
    assert_eq!(second.status, 429, "{}", second.text());
    assert_eq!(second.header("retry-after"), Some("1"));
    // Once the hog scales to zero, the held request is served, not failed.
    let first = first.await.unwrap();
    assert_eq!((first.status, first.text().as_str()), (200, "held"));
    assert_eq!(first.header("x-fjord-cold-start"), Some("1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_function_sees_the_request_id_and_forwarding_headers() {
    let platform = Platform::start(1).await;
    assert!(platform.deploy_example("echo", "echo", "").status.success());
    let seen = platform
        .invoke_when_routable(
            "echo",
            "/headers",
            b"",
            &[("x-request-id", "trace-42"), ("connection", "x-hop"), ("x-hop", "1")],
        )
        .await;
    let text = seen.text();
    assert!(text.contains("x-request-id: trace-42"), "{text}");
    assert!(text.contains("x-forwarded-for: 127.0.0.1"), "{text}");
    assert!(
        !text.contains("x-hop"),
        "a hop-by-hop header reached the function: {text}"
    );
    assert_eq!(seen.header("x-request-id"), Some("trace-42"));
    let fresh = http("GET", &platform.lb_url("/function/echo/headers"), b"", &[])
        .await
        .unwrap();
    let id = fresh.header("x-request-id").unwrap().to_string();
    assert!(
        fresh.text().contains(&format!("x-request-id: {id}")),
        "{}",
        fresh.text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn random_raw_requests_never_crash_the_lb() {
    let mut platform = Platform::start(1).await;
    assert!(platform.deploy_example("echo", "echo", "").status.success());
    platform.invoke_when_routable("echo", "", b"x", &[]).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let pieces = [
        "/function/",
        "echo",
        "/",
        "..",
        "%00",
        "%2F",
        "é",
        "Echo",
        "a".repeat(70).leak(),
        "?q=1",
        "#",
        " ",
        "\t",
    ];
    let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW", ""];
    let headers = [
        "X-Request-Id: ",
        "X-Forwarded-For: ",
        "Connection: ",
        "Content-Length: ",
        "Transfer-Encoding: ",
        "Host: ",
    ];
    for _ in 0..1500 {
        let path: String = (0..rng.random_range(0..6))
            .map(|_| pieces[rng.random_range(0..pieces.len())])
            .collect();
        let mut request = format!("{} {path} HTTP/1.1\r\n", methods[rng.random_range(0..methods.len())]);
        for _ in 0..rng.random_range(0..4) {
            let value: String = (0..rng.random_range(0..20))
                .map(|_| rng.random_range(0x20u8..0x7f) as char)
                .collect();
            request.push_str(&format!("{}{value}\r\n", headers[rng.random_range(0..headers.len())]));
        }
        request.push_str("Connection: close\r\n\r\n");
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", platform.lb_port)) else {
            panic!("the lb stopped accepting")
        };
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = stream.write_all(request.as_bytes());
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
    }
    assert!(
        platform.lb.child.try_wait().unwrap().is_none(),
        "the lb exited: {}",
        platform.lb.log_text()
    );
    assert!(
        !platform.lb.log_text().contains("panicked"),
        "{}",
        platform.lb.log_text()
    );
    let answer = http("POST", &platform.lb_url("/function/echo"), b"still here", &[])
        .await
        .unwrap();
    assert_eq!(answer.text(), "still here");
}
