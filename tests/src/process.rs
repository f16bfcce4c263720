//! Daemons as child processes (killed when dropped), and a new user's shell.

use crate::{bin, test_started};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A daemon process; killed (SIGKILL) when dropped.
pub struct Daemon {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(name: &str, program: &Path, args: &[String], log: PathBuf) -> Daemon {
        let mut command = Command::new(program);
        command.args(args);
        Daemon::start_command(name, command, log)
    }

    /// Starts a prepared command (its environment set by the caller) as a daemon.
    pub fn start_command(name: &str, mut command: Command, log: PathBuf) -> Daemon {
        test_started();
        let out = std::fs::File::create(&log).expect("creating a daemon log");
        let child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", command.get_program().to_string_lossy()));
        Daemon {
            name: name.into(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit (at most `within`).
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop within {within:?} of SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new user's shell: HOME is a fresh temporary directory and none of Fjord's variables (nor
/// XDG_*) are set, so commands find only what they create themselves (the dev data dir, the
/// CLI's context) in their default places.
pub struct UserShell {
    pub home: tempfile::TempDir,
}

impl Default for UserShell {
    fn default() -> Self {
        UserShell {
            home: tempfile::tempdir().unwrap(),
        }
    }
}

impl UserShell {
    /// `program` with this shell's environment.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.env("HOME", self.home.path());
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("FJORD_") || key.starts_with("XDG_") {
                command.env_remove(&*key);
            }
        }
        command
    }

    /// Runs the CLI as this user would, standard input closed.
    pub fn fjord(&self, args: &[&str]) -> Output {
        self.command(&bin("fjord"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running fjord")
    }

    /// Runs a shell line (`sh -c`), for the README's pipes.
    pub fn sh(&self, line: &str) -> Output {
        let path = format!(
            "{}:{}",
            bin("fjord").parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        self.command(Path::new("sh"))
            .args(["-c", line])
            .env("PATH", path)
            .stdin(Stdio::null())
            .output()
            .expect("running sh")
    }

    /// `fjord dev`'s default data dir for this user.
    pub fn dev_dir(&self) -> PathBuf {
        self.home.path().join(".local/share/fjord/dev")
    }
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.split_whitespace().nth(2).is_none_or(|state| state != "Z"),
        Err(_) => false,
    }
}

/// A command's output as text (lossy UTF-8).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A command's stdout, after asserting it succeeded (its output shown otherwise).
pub fn succeeded(what: &str, out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}
