//! A metrics address the member cannot have stops its start, with an error that names the
//! address and the flag that moves it: whether the address was given or is the default derived
//! from `--listen` (its port + 2000). Runs the real binary, as an operator would.

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs `fjord-control-plane` with `flags` and waits for it to exit, killing it (and failing the
/// test) if it is still running after 30 s: a member that starts is the bug under test.
fn run_member(dir: &std::path::Path, flags: &[String]) -> Output {
    let token_file = dir.join("admin.token");
    std::fs::write(&token_file, "metrics-port-test-token-0123456789").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fjord-control-plane"))
        .args(["--id", "1", "--bootstrap", "--data-dir"])
        .arg(dir.join("member"))
        .arg("--token-file")
        .arg(&token_file)
        .args(flags)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting fjord-control-plane");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the member started although its metrics address is taken:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn assert_loud_failure(out: &Output, addr: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exited {:?}:\n{stderr}", out.status);
    assert!(stderr.contains(&format!("serving metrics on {addr}")), "{stderr}");
    assert!(stderr.contains("--metrics-listen ADDR"), "{stderr}");
    assert!(stderr.contains("--metrics-listen off"), "{stderr}");
}

#[test]
fn a_taken_metrics_address_that_was_given_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_member(
        dir.path(),
        &[
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--metrics-listen".into(),
            addr.clone(),
        ],
    );
    assert_loud_failure(&out, &addr);
}

#[test]
fn a_taken_default_metrics_address_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    // A taken port whose gRPC port (2000 below) is free.
    let (taken, grpc_port) = loop {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        if port > 3000 && TcpListener::bind(("127.0.0.1", port - 2000)).is_ok() {
            break (taken, port - 2000);
        }
    };
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_member(dir.path(), &["--listen".into(), format!("127.0.0.1:{grpc_port}")]);
    assert_loud_failure(&out, &addr);
}
