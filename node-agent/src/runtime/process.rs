//! The process runtime: an instance is the spec's `command` run as a child process of the agent,
//! with `PORT` set, in its own process group, with a clean environment (the agent's own
//! variables, its token among them, never leak into functions).
//!
//! No orphans: the child gets SIGKILL from the kernel if the agent dies (parent-death signal),
//! and `stop` signals the whole group. Memory and CPU limits are not enforced by this runtime;
//! the docker runtime enforces them. The instance is ready once it listens
//! ([`ReadyWhen::Listening`]: the child itself accepts the probe's connection).

use super::readiness::{wait_ready, ReadyWhen};
use super::{ExitReason, ExitState, Instance, Runtime, RuntimeError, StartRequest};
use crate::logs::LogStore;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

#[derive(Default)]
pub struct ProcessRuntime {
    /// The loopback ports given to instances that have not ended. A port is found free by
    /// binding and releasing it, so without this two starts at once could be given the same one
    /// (the second child then fails to bind, and its readiness probe could reach the first).
    ports: Arc<Mutex<HashSet<u16>>>,
}

impl ProcessRuntime {
    /// A free loopback port no live instance of this runtime was given; the caller releases
    /// it when its instance ends.
    fn reserve_port(&self) -> std::io::Result<u16> {
        for _ in 0..64 {
            let port = free_port()?;
            if self.ports.lock().expect("ports lock poisoned").insert(port) {
                return Ok(port);
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "every free loopback port offered is held by another instance",
        ))
    }

    fn release_port(ports: &Mutex<HashSet<u16>>, port: u16) {
        ports.lock().expect("ports lock poisoned").remove(&port);
    }
}

struct ProcessInstance {
    id: String,
    addr: SocketAddr,
    pid: u32,
    exit: Arc<ExitState>,
}

/// A free loopback port: bound and released, so the child can bind it.
fn free_port() -> std::io::Result<u16> {
    Ok(StdListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

fn capture<R: AsyncRead + Unpin + Send + 'static>(
    reader: R,
    logs: Arc<LogStore>,
    function: String,
    instance: String,
    stream: &'static str,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            logs.push(&function, &instance, stream, &line);
        }
    });
}

impl Runtime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    fn start<'a>(&'a self, request: StartRequest<'a>) -> BoxFuture<'a, Result<Arc<dyn Instance>, RuntimeError>> {
        async move {
            let spec = request.spec;
            let Some((program, args)) = spec.command.split_first() else {
                return Err(RuntimeError::SpecUnfit {
                    function: spec.name.clone(),
                    runtime: "process",
                    needs: "a command",
                });
            };
            let spawn_err = |source| RuntimeError::Spawn {
                function: spec.name.clone(),
                program: program.clone(),
                source,
            };
            let port = self.reserve_port().map_err(spawn_err)?;
            let mut command = Command::new(program);
            command
                .args(args)
                .env_clear()
                .env(
                    "PATH",
                    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
                )
                .env("PORT", port.to_string())
                .env("FJORD_FUNCTION", &spec.name)
                .env("FJORD_INSTANCE_ID", &request.instance_id)
                .envs(&spec.env)
                .envs(spec.secrets.inline().into_iter().flatten())
                .envs(
                    request
                        .secrets_dir
                        .iter()
                        .map(|dir| (fjord_core::secret::DIR_ENV, dir.as_os_str())),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(true);
            fjord_daemon::sys::kill_child_with_parent(&mut command);
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(e) => {
                    Self::release_port(&self.ports, port);
                    return Err(spawn_err(e));
                }
            };
            let pid = child.id().unwrap_or(0);
            let logs = request.logs.clone();
            if let Some(out) = child.stdout.take() {
                capture(
                    out,
                    logs.clone(),
                    spec.name.clone(),
                    request.instance_id.clone(),
                    "stdout",
                );
            }
            if let Some(err) = child.stderr.take() {
                capture(
                    err,
                    logs.clone(),
                    spec.name.clone(),
                    request.instance_id.clone(),
                    "stderr",
                );
            }
            let exit = Arc::new(ExitState::default());
            let recorder = exit.clone();
            let ports = self.ports.clone();
            tokio::spawn(async move {
                let reason = match child.wait().await {
                    Ok(status) => match (status.code(), status.signal()) {
                        (Some(code), _) => ExitReason::Exited(code),
                        (None, Some(sig)) => ExitReason::Signaled(sig),
                        (None, None) => ExitReason::Exited(-1),
                    },
                    Err(_) => ExitReason::Exited(-1),
                };
                ProcessRuntime::release_port(&ports, port);
                recorder.record(reason);
            });
            let instance = Arc::new(ProcessInstance {
                id: request.instance_id.clone(),
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                pid,
                exit,
            });
            if let Err(e) = wait_ready(&*instance, &spec.name, request.ready_wait(), ReadyWhen::Listening).await {
                instance.stop(Duration::from_millis(100)).await;
                return Err(e);
            }
            Ok(instance as Arc<dyn Instance>)
        }
        .boxed()
    }
}

impl Instance for ProcessInstance {
    fn id(&self) -> &str {
        &self.id
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn exit_reason(&self) -> Option<ExitReason> {
        self.exit.reason()
    }

    fn wait_exit(&self) -> BoxFuture<'_, ExitReason> {
        self.exit.wait().boxed()
    }

    fn stop(&self, grace: Duration) -> BoxFuture<'_, ()> {
        async move {
            self.exit.mark_stopping();
            if self.exit.has_ended() {
                return;
            }
            fjord_daemon::sys::signal_group(self.pid, libc::SIGTERM);
            if tokio::time::timeout(grace, self.exit.wait()).await.is_err() {
                fjord_daemon::sys::signal_group(self.pid, libc::SIGKILL);
                self.exit.wait().await;
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_given_to_a_live_instance_is_not_given_again_until_released() {
        let runtime = ProcessRuntime::default();
        let held: Vec<u16> = (0..200).map(|_| runtime.reserve_port().unwrap()).collect();
        let distinct: HashSet<u16> = held.iter().copied().collect();
        assert_eq!(distinct.len(), held.len(), "a port was given twice while held");
        assert_eq!(*runtime.ports.lock().unwrap(), distinct, "every given port is held");
        for port in &held {
            ProcessRuntime::release_port(&runtime.ports, *port);
        }
        assert!(
            runtime.ports.lock().unwrap().is_empty(),
            "released ports are free again"
        );
    }
}
