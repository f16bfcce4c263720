//! `fjord build`, `push`, `up` and `new` on a real Docker engine and a real registry with
//! auth: a `FROM scratch` Dockerfile function and the python3-http template, each built,
//! pushed with credentials, deployed and called through the lb; and bad input (an unknown
//! template, a failing COPY or RUN step, a missing handler folder).
//!
//! No base image can be pulled here, so the python3-http test makes one once from the host's
//! python3 (`docker import`, cached by its tag) and passes it as the template's `BASE_IMAGE`.
//! Without a Docker engine each test prints why and passes; with `FJORD_REQUIRE_DOCKER=1` it
//! fails instead, as it does when the host has no python3.

use fjord_tests::docker::*;
use fjord_tests::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const USER: &str = "builder";
const PASSWORD: &str = "b-secret";
const PYTHON_BASE: &str = "fjord-test/python-base:3.11";

/// `fjord ARGS` with no cluster, in `dir`.
fn fjord_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin("fjord"))
        .args(args)
        .current_dir(dir)
        .env("DOCKER_CONFIG", dir.join(".docker"))
        .stdin(Stdio::null())
        .output()
        .expect("running fjord")
}

/// The `--registry-auth-file` for `registry`, written in `dir`.
fn auth_file(registry: &LocalRegistry, dir: &Path) -> String {
    let path = dir.join("registry-auth.json");
    let auth = serde_json::json!({ registry.host(): { "username": USER, "password": PASSWORD } });
    std::fs::write(&path, auth.to_string()).unwrap();
    path.display().to_string()
}

fn static_echo_binary() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/static-examples/x86_64-unknown-linux-gnu/release/fjord-echo")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dockerfile_function_is_built_pushed_with_auth_deployed_and_answers() {
    if !require_docker() {
        return;
    }
    example_images();
    let registry = LocalRegistry::start(USER, PASSWORD).await;
    let platform = registry.platform_with_credentials(USER, PASSWORD).await;
    let dir = platform.dir.path().join("scratch-fn");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(static_echo_binary(), dir.join("function")).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY function /function\nUSER 65534:65534\nENTRYPOINT [\"/function\"]\n",
    )
    .unwrap();
    std::fs::write(dir.join(".dockerignore"), "fjord.yaml\n").unwrap();
    let image = format!("{}/built/scratch-echo:1", registry.host());
    let spec = dir.join("fjord.yaml");
    std::fs::write(&spec, format!("name: built-echo\nimage: {image}\n")).unwrap();
    let auth = auth_file(&registry, platform.dir.path());

    // Without credentials the registry refuses the push, and the error says so.
    let out = fjord_in(&dir, &["build", "-f", spec.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    succeeded("fjord build", &out);
    assert!(stderr.contains("Step 2/4 : COPY function /function"), "{stderr}");
    let out = fjord_in(&dir, &["push", "-f", spec.to_str().unwrap()]);
    assert!(!out.status.success(), "a push without credentials succeeded");
    assert!(
        text(&out.stderr).contains(&format!("pushing {image}")),
        "{}",
        text(&out.stderr)
    );

    let out = platform.fjord(&[
        "up",
        "-f",
        spec.to_str().unwrap(),
        "--registry-auth-file",
        &auth,
        "--timeout",
        "40s",
    ]);
    let stdout = succeeded("fjord up", &out);
    assert!(stdout.contains(&format!("pushed {image} (sha256:")), "{stdout}");
    assert!(stdout.contains("pinned to"), "{stdout}");
    let answer = platform
        .invoke_when_routable("built-echo", "/", b"built from source", &[])
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(answer.text().contains("built from source"), "{}", answer.text());
}

/// Makes `fjord-test/python-base:3.11` from the host's python3 once (kept by its tag): the
/// interpreter, its standard library less the tests, the shared libraries `ldd` names, a shell
/// and grep for the template's RUN lines, and an /etc/passwd with an `app` user.
fn python_base_image() {
    let exists = Command::new("docker")
        .args(["image", "inspect", PYTHON_BASE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if exists {
        return;
    }
    let script = format!(
        r#"set -euo pipefail
root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
files="/usr/bin/python3 /usr/bin/python3.11 /bin/sh /usr/bin/grep"
libs=$(for f in $files /usr/lib/python3.11/lib-dynload/*.so; do ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true; done | sort -u)
mkdir -p "$root/etc" "$root/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\napp:x:1000:\n' > "$root/etc/group"
extra=""; [ -d /etc/python3.11 ] && extra="etc/python3.11"
tar -C / -chf "$root/base.tar" --exclude='usr/lib/python3.11/test' --exclude='*/tests' \
    --exclude='usr/lib/python3.11/idlelib' --exclude='usr/lib/python3.11/tkinter' \
    --exclude='usr/lib/python3.11/ensurepip' --exclude='usr/lib/python3.11/lib2to3' \
    --exclude='usr/lib/python3.11/site-packages' --exclude='usr/lib/python3.11/dist-packages' \
    $(for f in $files $libs; do echo "${{f#/}}"; done) usr/lib/python3.11 $extra
tar -C "$root" -rf "$root/base.tar" etc/passwd etc/group tmp
docker import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' "$root/base.tar" {PYTHON_BASE} >/dev/null
"#
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    succeeded("making the python base image", &out);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python3_http_function_from_fjord_new_is_built_from_the_template_and_answers() {
    if !require_docker() {
        return;
    }
    if !Path::new("/usr/bin/python3").exists() || !Path::new("/usr/lib/python3.11").is_dir() {
        if std::env::var("FJORD_REQUIRE_DOCKER").is_ok_and(|v| v == "1") {
            panic!("FJORD_REQUIRE_DOCKER=1 but the host has no /usr/bin/python3 with /usr/lib/python3.11 to make the template's base image from");
        }
        eprintln!("SKIPPED: no /usr/bin/python3 with /usr/lib/python3.11 on the host");
        return;
    }
    python_base_image();
    let registry = LocalRegistry::start(USER, PASSWORD).await;
    let platform = registry.platform_with_credentials(USER, PASSWORD).await;
    let work = platform.dir.path();
    let out = fjord_in(work, &["new", "hello", "--lang", "python3-http"]);
    succeeded("fjord new", &out);
    let dir = work.join("hello");
    assert!(dir.join("handler.py").is_file() && dir.join("requirements.txt").is_file());
    std::fs::write(
        dir.join("handler.py"),
        "def handle(event, context):\n    return {\"statusCode\": 200, \"body\": \"hello from the template: \" + event.body.decode()}\n",
    )
    .unwrap();
    let spec = dir.join("fjord.yaml");
    let written = std::fs::read_to_string(&spec).unwrap();
    assert!(written.contains("lang: python3-http"), "{written}");
    let image = format!("{}/built/hello:1", registry.host());
    let spec_text = written.replace("image: hello:latest", &format!("image: {image}"));
    std::fs::write(&spec, spec_text).unwrap();
    let auth = auth_file(&registry, work);

    let out = platform.fjord(&[
        "up",
        "-f",
        spec.to_str().unwrap(),
        "--build-arg",
        &format!("BASE_IMAGE={PYTHON_BASE}"),
        "--registry-auth-file",
        &auth,
        "--timeout",
        "40s",
    ]);
    let stdout = succeeded("fjord up", &out);
    assert!(text(&out.stderr).contains("USER app"), "{}", text(&out.stderr));
    assert!(stdout.contains(&format!("pushed {image}")), "{stdout}");
    let answer = platform.invoke_when_routable("hello", "/", b"hi", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from the template: hi");
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Config.User}}", &image])
        .output()
        .unwrap();
    assert_eq!(succeeded("docker image inspect", &out).trim(), "app");
}

#[test]
fn bad_input_names_the_templates_the_failing_step_and_the_missing_path() {
    let dir = tempfile::tempdir().unwrap();
    let out = fjord_in(dir.path(), &["new", "x", "--lang", "cobol"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no template \"cobol\"; the templates are: python3-http, node, go, rust, dockerfile"),
        "{stderr}"
    );
    std::fs::write(
        dir.path().join("fjord.yaml"),
        "name: bad\nimage: bad/fn:1\nbuild:\n  lang: python3-http\n  handler: ./nope\n",
    )
    .unwrap();
    let out = fjord_in(dir.path(), &["build"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no handler folder at ./nope"), "{stderr}");
    std::fs::write(
        dir.path().join("fjord.yaml"),
        "name: bad\nimage: bad/fn:1\nbuild:\n  lang: perl\n",
    )
    .unwrap();
    let stderr = text(&fjord_in(dir.path(), &["build"]).stderr);
    assert!(stderr.contains("the templates are: python3-http"), "{stderr}");

    if !require_docker() {
        return;
    }
    std::fs::write(dir.path().join("fjord.yaml"), "name: bad\nimage: fjord-test/bad:1\n").unwrap();
    std::fs::write(dir.path().join("a.txt"), "a").unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY a.txt /a.txt\nCOPY missing.txt /m.txt\n",
    )
    .unwrap();
    let out = fjord_in(dir.path(), &["build"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("building fjord-test/bad:1 failed at Step 3/3 : COPY missing.txt /m.txt"),
        "{stderr}"
    );
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY a.txt /a.txt\nRUN exit 3\n",
    )
    .unwrap();
    let out = fjord_in(dir.path(), &["build", "--no-cache"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("failed at Step 3/3 : RUN exit 3"), "{stderr}");
    std::fs::remove_file(dir.path().join("Dockerfile")).unwrap();
    let stderr = text(&fjord_in(dir.path(), &["build"]).stderr);
    assert!(stderr.contains("no Dockerfile at ./Dockerfile"), "{stderr}");
}
