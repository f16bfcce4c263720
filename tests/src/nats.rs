//! A real nats-server with JetStream on a loopback port, its store in a directory of its own,
//! with a token: the queue of asynchronous calls for the tests.

use crate::{eventually, free_port, Daemon};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Nats {
    pub daemon: Daemon,
    pub port: u16,
    pub token_file: PathBuf,
    config: PathBuf,
    log: PathBuf,
}

pub const NATS_TEST_TOKEN: &str = "nats-test-token-0123456789";

/// The nats-server program (Debian's package puts it in /usr/bin; scripts/test installs it).
pub fn nats_server() -> PathBuf {
    let candidates = [
        PathBuf::from("/usr/bin/nats-server"),
        PathBuf::from("/usr/sbin/nats-server"),
    ];
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .expect("nats-server is not installed: scripts/test installs it (apt-get install nats-server)")
}

impl Nats {
    /// Starts a server storing under `dir/nats-{port}` and waits until it accepts connections.
    pub async fn start(dir: &Path) -> Nats {
        let port = free_port();
        let store = dir.join(format!("nats-{port}"));
        std::fs::create_dir_all(&store).unwrap();
        let token_file = dir.join(format!("nats-{port}.token"));
        std::fs::write(&token_file, NATS_TEST_TOKEN).unwrap();
        let config = dir.join(format!("nats-{port}.conf"));
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\nmax_payload: 8MB\nauthorization {{ token: \"{NATS_TEST_TOKEN}\" }}\n\
                 jetstream {{ store_dir: \"{}\" }}\n",
                store.display()
            ),
        )
        .unwrap();
        let log = dir.join(format!("nats-{port}.log"));
        let daemon = Daemon::start(
            "nats-server",
            &nats_server(),
            &["-c".into(), config.display().to_string()],
            log.clone(),
        );
        let nats = Nats {
            daemon,
            port,
            token_file,
            config,
            log,
        };
        nats.wait_ready().await;
        nats
    }

    async fn wait_ready(&self) {
        let port = self.port;
        eventually(
            "nats-server to accept connections",
            Duration::from_secs(20),
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
    }

    /// The lb's (or control plane's) flags for this server.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--nats-url".into(),
            format!("nats://127.0.0.1:{}", self.port),
            "--nats-token-file".into(),
            self.token_file.display().to_string(),
        ]
    }

    /// kill -9, as a crash would.
    pub fn kill9(&mut self) {
        self.daemon.kill9();
    }

    /// Starts the server again on the same port and store.
    pub async fn restart(&mut self) {
        self.daemon = Daemon::start(
            "nats-server",
            &nats_server(),
            &["-c".into(), self.config.display().to_string()],
            self.log.clone(),
        );
        self.wait_ready().await;
    }
}
