//! Named secrets end to end on real processes: `fjord secret create/update/ls/rm`, a function
//! reading its secret as a file, rotation, refusals, and no plaintext in any file of a data dir.

use fjord_tests::*;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn refused(out: &Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} must be refused");
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn deploy(platform: &Platform, name: &str, extra_yaml: &str) -> Output {
    platform.deploy_example(name, "env", extra_yaml)
}

/// Every regular file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                if let Ok(bytes) = std::fs::read(&path) {
                    if bytes.windows(needle.len()).any(|w| w == needle) {
                        found.push(path);
                    }
                }
            }
        }
    }
    found
}

async fn read_secret(platform: &Platform, function: &str, name: &str) -> Answer {
    http(
        "GET",
        &platform.lb_url(&format!("/function/{function}/secret/{name}")),
        b"",
        &[],
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_function_reads_its_secret_as_a_file_and_no_data_dir_holds_the_value() {
    let platform = Platform::start(1).await;
    let value = format!("s3cret-{:016x}", rand::random::<u64>());
    let rotated = format!("r0tated-{:016x}", rand::random::<u64>());

    // Deploying a function that names a secret not yet created is refused, naming both.
    let err = refused(
        &deploy(&platform, "app", "secrets: [db-password]\n"),
        "a missing secret",
    );
    assert!(
        err.contains("secrets[0]") && err.contains("fjord secret create db-password"),
        "{err}"
    );
    // Inline values (an earlier version's format) are refused with the way to move.
    let err = refused(
        &deploy(&platform, "app", "secrets: {DB_PASSWORD: x}\n"),
        "inline values",
    );
    assert!(err.contains("fjord secret create NAME"), "{err}");
    assert!(
        ok(&platform.fjord(&["list", "--json"]), "list").contains("[]"),
        "nothing stored"
    );

    let key_file = platform.dir.path().join("value.txt");
    std::fs::write(&key_file, &value).unwrap();
    ok(
        &platform.fjord(&[
            "secret",
            "create",
            "db-password",
            "--from-file",
            key_file.to_str().unwrap(),
        ]),
        "create",
    );
    std::fs::remove_file(&key_file).unwrap();
    let err = refused(
        &platform.fjord(&["secret", "create", "db-password", "--from-literal", "other"]),
        "a second create",
    );
    assert!(
        err.contains("already exists") && err.contains("fjord secret update"),
        "{err}"
    );
    let err = refused(
        &platform.fjord(&["secret", "create", "../etc", "--from-literal", "x"]),
        "a bad name",
    );
    assert!(err.contains("secret name"), "{err}");

    ok(&deploy(&platform, "app", "secrets: [db-password]\n"), "deploy");
    let answer = platform
        .invoke_when_routable("app", "/secret/db-password", b"", &[])
        .await;
    assert_eq!((answer.status, answer.text()), (200, value.clone()));

    // Shown by name only: describe, ls, logs never carry the value.
    let described = ok(&platform.fjord(&["describe", "app", "--json"]), "describe");
    assert!(
        described.contains("db-password") && !described.contains(&value),
        "{described}"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&platform.fjord(&["secret", "ls", "--json"]), "ls")).unwrap();
    assert_eq!(listed[0]["name"], "db-password");
    assert_eq!(listed[0]["version"], 1);
    assert_eq!(listed[0]["used_by"], serde_json::json!(["app"]));
    let logs = ok(&platform.fjord(&["logs", "app"]), "logs");
    assert!(!logs.contains(&value));

    // Rotation: the running instance keeps what it started with; a new instance reads the new value.
    ok(
        &platform.fjord(&["secret", "update", "db-password", "--from-literal", &rotated]),
        "update",
    );
    assert_eq!(read_secret(&platform, "app", "db-password").await.text(), value);
    ok(
        &deploy(&platform, "app", "secrets: [db-password]\nenv: {GREETING: again}\n"),
        "redeploy",
    );
    eventually_or(
        "a new instance to read the rotated value",
        Duration::from_secs(20),
        || async { (read_secret(&platform, "app", "db-password").await.text() == rotated).then_some(()) },
        || platform.all_logs(),
    )
    .await;

    // Nothing under the control plane's or the agent's data dir holds either value in
    // plaintext: not the Raft log, not a snapshot, not a log file. The agent's tmpfs files do
    // (the check finds what it looks for).
    let shm: Vec<PathBuf> = files_containing(Path::new("/dev/shm/fjord-secrets"), rotated.as_bytes());
    assert!(!shm.is_empty(), "the instance's file on tmpfs holds the value");
    for secret in [&value, &rotated] {
        let found = files_containing(platform.dir.path(), secret.as_bytes());
        assert!(found.is_empty(), "plaintext secret in {found:?}");
    }

    // Removal: refused while named, then allowed.
    let err = refused(&platform.fjord(&["secret", "rm", "db-password"]), "rm while used");
    assert!(err.contains("app"), "{err}");
    ok(&platform.fjord(&["remove", "app"]), "remove");
    ok(&platform.fjord(&["secret", "rm", "db-password"]), "rm");
    let listed = ok(&platform.fjord(&["secret", "ls", "--json"]), "ls");
    assert_eq!(listed.trim(), "[]");
    let err = refused(
        &platform.fjord(&["secret", "update", "db-password", "--from-literal", "x"]),
        "update of a removed secret",
    );
    assert!(err.contains("does not exist"), "{err}");
}
