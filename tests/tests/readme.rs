//! The README, run as written by a new user: `fjord dev` on its default ports and data dir
//! (under a temporary HOME, no FJORD_* variables), the five-minute tour, then the replicated
//! control plane and its failover demo. If the README and the product drift apart, this fails.
//!
//! It takes the README's default ports (7400, 7500, 8080, 9400), which no other test uses.

use fjord_tests::*;
use std::process::Output;
use std::time::{Duration, Instant};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// Starts `fjord dev ARGS` as the user and waits until it says it is ready.
async fn start_dev(user: &UserShell, args: &[&str], log: &str) -> Daemon {
    let mut command = user.command(&bin("fjord"));
    command.arg("dev").args(args);
    let dev = Daemon::start_command("fjord dev", command, user.home.path().join(log));
    eventually_or(
        "fjord dev to say it is ready",
        Duration::from_secs(90),
        || async { dev.log_text().contains("Press Ctrl-C").then_some(()) },
        || dev.log_text(),
    )
    .await;
    dev
}

fn leader(user: &UserShell) -> Option<u64> {
    let out = user.fjord(&["status", "--json"]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(&out.stdout).ok()?["leader_id"].as_u64()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_tour_and_failover_demo_work_as_written() {
    let user = UserShell::default();

    // ## Set up
    let mut dev = start_dev(&user, &[], "dev-1.out").await;
    let printed = dev.log_text();
    assert!(
        printed.contains("curl -d hello http://127.0.0.1:8080/function/echo"),
        "{printed}"
    );
    assert!(
        user.dev_dir().join("cluster.json").exists(),
        "cluster.json in the default data dir"
    );

    // ## A five-minute tour
    let out = ok(
        "curl echo",
        user.sh("curl -sS -d hello http://127.0.0.1:8080/function/echo"),
    );
    assert_eq!(out, "hello");
    let out = ok("fjord invoke", user.fjord(&["invoke", "echo", "-d", "hi there"]));
    assert_eq!(out.trim_end(), "hi there");
    ok(
        "curl sleep",
        user.sh("curl -sS --fail 'http://127.0.0.1:8080/function/sleep?ms=250'"),
    );
    let list = ok("fjord list", user.fjord(&["list"]));
    for name in ["echo", "sleep", "env"] {
        assert!(list.contains(name), "fjord list shows {name}:\n{list}");
    }
    let nodes = ok("fjord nodes", user.fjord(&["nodes"]));
    assert!(nodes.contains("agent-1"), "{nodes}");
    let status = ok("fjord status", user.fjord(&["status"]));
    assert!(status.contains("leader"), "{status}");

    let work = user.home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("fjord.yaml"),
        "name: files\ncommand: [\"sh\", \"-c\", \"exec python3 -m http.server $PORT --bind 127.0.0.1\"]\n\
         memory_mib: 128\ntimeout: 30s\nconcurrency: 4\nmax: 10\nscale_to_zero_after: 5m\n",
    )
    .unwrap();
    ok(
        "fjord deploy",
        user.sh(&format!("cd {} && fjord deploy -f fjord.yaml", work.display())),
    );
    let listing = eventually(
        "the files function to answer with a directory listing",
        Duration::from_secs(30),
        || async {
            let out = user.sh("curl -sS --fail http://127.0.0.1:8080/function/files/");
            let text = stdout(&out);
            (out.status.success() && text.contains("Directory listing")).then_some(text)
        },
    )
    .await;
    assert!(listing.contains("Directory listing"), "{listing}");
    ok("fjord describe", user.fjord(&["describe", "files"]));

    let out = user.sh("printf 'name: Bad_Name\\ncommand: [x]\\n' | fjord deploy -f -");
    assert!(!out.status.success(), "a bad spec is refused");
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("error: -: invalid function spec: field `name` \"Bad_Name\" must start with a lowercase letter"),
        "{error}"
    );

    // Secrets: created from stdin, named by a spec, read as a file by the function.
    ok(
        "fjord secret create",
        user.sh("printf 'hunter2' | fjord secret create db-password"),
    );
    ok(
        "deploy vault",
        user.sh(
            r#"printf 'name: vault\ncommand: ["sh", "-c", "exec python3 -m http.server $PORT --bind 127.0.0.1 --directory $FJORD_SECRETS_DIR"]\nsecrets: [db-password]\n' | fjord deploy -f -"#,
        ),
    );
    let secret = eventually(
        "the vault function to read its secret",
        Duration::from_secs(30),
        || async {
            let out = user.sh("curl -sS --fail http://127.0.0.1:8080/function/vault/db-password");
            out.status.success().then(|| stdout(&out))
        },
    )
    .await;
    assert_eq!(secret, "hunter2");
    let listed = ok("fjord secret ls", user.fjord(&["secret", "ls"]));
    let row = listed
        .lines()
        .find(|l| l.starts_with("db-password"))
        .unwrap_or_else(|| panic!("db-password in fjord secret ls: {listed}"));
    assert!(row.contains(" 1 ") && row.ends_with("vault"), "{row}");
    assert!(
        user.home.path().join(".config/fjord/dev-secrets.key").exists(),
        "fjord dev keeps its secrets key in the config dir"
    );

    let out = ok(
        "curl -i sleep?fail=1",
        user.sh("curl -sS -i 'http://127.0.0.1:8080/function/sleep?fail=1'"),
    );
    assert!(out.starts_with("HTTP/1.1 500"), "{out}");
    let logs = eventually("fjord logs to show the failure", Duration::from_secs(10), || async {
        let logs = stdout(&user.fjord(&["logs", "sleep"]));
        logs.contains("failing on purpose").then_some(logs)
    })
    .await;
    assert!(logs.contains("platform") && logs.contains("stderr"), "{logs}");

    // A queued call: 202 with its id, then its record.
    let out = ok(
        "curl -i async-function/jobs",
        user.sh("curl -sS -i -X POST -d 'resize me' http://127.0.0.1:8080/async-function/jobs"),
    );
    assert!(out.starts_with("HTTP/1.1 202 Accepted"), "{out}");
    let call_id = out
        .lines()
        .find_map(|l| l.strip_prefix("x-call-id: "))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no x-call-id in {out}"));
    let record = eventually("the queued call to succeed", Duration::from_secs(30), || async {
        let out = user.sh(&format!("curl -sS --fail http://127.0.0.1:8080/async-calls/{call_id}"));
        let text = stdout(&out);
        text.contains("\"state\":\"succeeded\"").then_some(text)
    })
    .await;
    assert!(
        record.contains("\"attempts\":1") && record.contains("\"status\":200"),
        "{record}"
    );
    let calls = ok("fjord calls jobs", user.fjord(&["calls", "jobs"]));
    let row = calls
        .lines()
        .find(|l| l.starts_with(&call_id))
        .unwrap_or_else(|| panic!("the call in fjord calls jobs: {calls}"));
    assert!(row.contains("succeeded") && row.contains("http"), "{row}");
    let shown = ok("fjord calls show", user.fjord(&["calls", "show", &call_id]));
    assert!(shown.contains("state:     succeeded"), "{shown}");
    // The example's schedule, and the queue the leader reads.
    let described = eventually(
        "fjord describe jobs to show the queue",
        Duration::from_secs(10),
        || async {
            let text = stdout(&user.fjord(&["describe", "jobs"]));
            text.contains("queue:     0 waiting").then_some(text)
        },
    )
    .await;
    assert!(described.contains("schedule:  next run "), "{described}");

    // ## Operations: the gRPC API through reflection, with the venv the test script made.
    let tools = std::env::var_os("FJORD_TOOLS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/fjord-tools"));
    std::fs::create_dir_all(user.home.path().join(".cache")).unwrap();
    std::os::unix::fs::symlink(&tools, user.home.path().join(".cache/fjord-tools")).unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let grpc = |line: &str| {
        user.sh(&format!(
            "cd {} && token=\"$(cat ~/.local/share/fjord/dev/admin.token)\" && {line}",
            repo.display()
        ))
    };
    let services = ok(
        "the reflection client's services",
        grpc(
            r#"~/.cache/fjord-tools/grpc/bin/python tests/scripts/grpc_reflection_client.py 127.0.0.1:7400 "$token" services"#,
        ),
    );
    assert!(services.lines().any(|l| l == "fjord.v1.Admin"), "{services}");
    let listed = ok(
        "the reflection client's ListFunctions",
        grpc(
            r#"~/.cache/fjord-tools/grpc/bin/python tests/scripts/grpc_reflection_client.py 127.0.0.1:7400 "$token" call fjord.v1.Admin/ListFunctions '{"page_size": 2}'"#,
        ),
    );
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(listed["functions"].as_array().map(Vec::len), Some(2), "{listed}");
    assert!(
        listed["next_page_token"].as_str().is_some_and(|t| !t.is_empty()),
        "{listed}"
    );
    let exit = dev.terminate(Duration::from_secs(30));
    assert!(exit.success(), "fjord dev exited with {exit}");

    // A replicated control plane: the README's command, on the same default data dir.
    let mut dev = start_dev(
        &user,
        &["--fresh", "--control-planes", "3", "--agents", "2"],
        "dev-3.out",
    )
    .await;
    let cluster: serde_json::Value =
        serde_json::from_slice(&std::fs::read(user.dev_dir().join("cluster.json")).unwrap()).unwrap();
    let members = cluster["members"].as_array().unwrap().clone();
    let status: serde_json::Value =
        serde_json::from_str(&ok("fjord status --json", user.fjord(&["status", "--json"]))).unwrap();
    assert_eq!(status["members"].as_array().map(Vec::len), Some(3), "{status}");

    // Kill the leader (its pid is in cluster.json) ...
    let old = leader(&user).expect("a leader");
    let pid = members
        .iter()
        .find(|m| m["role"] == "control-plane" && m["id"].as_str() == Some(old.to_string().as_str()))
        .and_then(|m| m["pid"].as_u64())
        .expect("the leader's pid in cluster.json");
    let killed = Instant::now();
    ok("kill", user.sh(&format!("kill {pid}")));
    // ... and `fjord status` shows another one within a few seconds.
    let new = eventually("fjord status to show a new leader", Duration::from_secs(10), || async {
        leader(&user).filter(|l| *l != old)
    })
    .await;
    let took = killed.elapsed();
    assert_ne!(new, old);
    ok(
        "curl echo after failover",
        user.sh("curl -sS --fail -d hello http://127.0.0.1:8080/function/echo"),
    );
    assert!(process_alive(dev.pid()), "fjord dev keeps running:\n{}", dev.log_text());
    eventually_or(
        "fjord dev to start the killed member again",
        Duration::from_secs(30),
        || async {
            dev.log_text()
                .contains(&format!("control-plane {old} started again"))
                .then_some(())
        },
        || dev.log_text(),
    )
    .await;
    eprintln!("failover: member {old} killed, member {new} leading after {took:?}");
    let exit = dev.terminate(Duration::from_secs(30));
    assert!(exit.success(), "fjord dev exited with {exit}");
}
