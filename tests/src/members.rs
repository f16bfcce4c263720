//! A replicated control plane of several member processes.

use crate::{bin, eventually, free_port, metrics_off_unless_given, Daemon, TEST_TOKEN};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A control plane of several members, each its own process on loopback.
pub struct Members {
    pub dir: tempfile::TempDir,
    pub token_file: PathBuf,
    pub ports: std::collections::BTreeMap<u64, u16>,
    pub daemons: std::collections::BTreeMap<u64, Daemon>,
    extra: Vec<String>,
}

impl Members {
    /// Starts `n` members (ids 1..=n), member 1 bootstrapping the cluster, and waits until all
    /// are voters under one leader.
    pub async fn start(n: u64, extra: &[&str]) -> Members {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("admin.token");
        std::fs::write(&token_file, TEST_TOKEN).unwrap();
        let ports: std::collections::BTreeMap<u64, u16> = (1..=n).map(|id| (id, free_port())).collect();
        let mut members = Members {
            dir,
            token_file,
            ports,
            daemons: Default::default(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for id in 1..=n {
            members.launch(id, id == 1);
        }
        members.wait_for_voters(n).await;
        members
    }

    fn launch(&mut self, id: u64, bootstrap: bool) {
        let port = *self.ports.entry(id).or_insert_with(free_port);
        let mut args = vec![
            "--id".to_string(),
            id.to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            self.data_dir(id).display().to_string(),
            "--token-file".into(),
            self.token_file.display().to_string(),
            "--secrets-key-file".into(),
            crate::platform::secrets_key_file(self.token_file.parent().expect("a token file in a directory"))
                .display()
                .to_string(),
        ];
        if bootstrap {
            args.push("--bootstrap".into());
            let others: Vec<String> = self
                .ports
                .iter()
                .filter(|(m, _)| **m != id)
                .map(|(m, p)| format!("{m}=127.0.0.1:{p}"))
                .collect();
            if !others.is_empty() {
                args.push("--initial-members".into());
                args.push(others.join(","));
            }
        }
        args.extend(metrics_off_unless_given(&self.extra));
        args.extend(self.extra.iter().cloned());
        let log = self.dir.path().join(format!("member-{id}-{}.log", free_port()));
        self.daemons.insert(
            id,
            Daemon::start(&format!("member-{id}"), &bin("fjord-control-plane"), &args, log),
        );
    }

    /// Starts member `id` that is not in the cluster yet (to be added), or restarts a killed one.
    pub fn start_member(&mut self, id: u64) {
        self.launch(id, false);
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("member-{id}"))
    }

    pub fn url(&self, id: u64) -> String {
        format!("http://127.0.0.1:{}", self.ports[&id])
    }

    pub fn all_urls(&self) -> String {
        self.ports.keys().map(|id| self.url(*id)).collect::<Vec<_>>().join(",")
    }

    /// Runs the CLI against the given members (comma-separated URLs).
    pub fn fjord_at(&self, urls: &str, args: &[&str]) -> Output {
        Command::new(bin("fjord"))
            .args(args)
            .env("FJORD_ADDR", urls)
            .env("FJORD_TOKEN_FILE", &self.token_file)
            .env_remove("FJORD_TOKEN")
            .output()
            .expect("running fjord")
    }

    /// `fjord status --json` answered by member `id` itself.
    pub fn status(&self, id: u64) -> Option<serde_json::Value> {
        let out = self.fjord_at(&self.url(id), &["status", "--json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The leader, as a live member other than `except` reports it.
    pub fn leader_seen_by_others(&self, except: Option<u64>) -> Option<u64> {
        self.daemons
            .keys()
            .filter(|id| Some(**id) != except)
            .find_map(|id| self.status(*id)?["leader_id"].as_u64())
    }

    pub async fn wait_for_voters(&self, n: u64) {
        eventually(
            &format!("{n} voters under one leader"),
            Duration::from_secs(30),
            || async {
                let status = self.status(*self.daemons.keys().next()?)?;
                let voters = status["members"]
                    .as_array()?
                    .iter()
                    .filter(|m| m["role"] != "learner")
                    .count() as u64;
                // applied_index >= 1: the leader's first entry, which commits the founding membership.
                (status["leader_id"].is_u64() && voters == n && status["applied_index"].as_u64()? >= 1).then_some(())
            },
        )
        .await;
    }

    pub fn kill(&mut self, id: u64) {
        if let Some(mut daemon) = self.daemons.remove(&id) {
            daemon.kill9();
        }
    }
}

/// A valid deployable spec (no instance is ever started from it in control-plane tests).
pub fn spec_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, format!("name: {name}\ncommand: [\"/bin/true\"]\n")).unwrap();
    path
}
