//! Capacity providers for node groups, built from the policy: `static` (a fixed fleet),
//! `aws-asg` (an EC2 Auto Scaling group, through `fjord-aws`) and `command` (an operator's
//! program, for any other cloud or hypervisor).
//!
//! The `command` contract: the program is run with its configured arguments followed by
//!
//! - `describe`: print one JSON object on stdout,
//!   `{"desired": N, "min": N, "max": N, "instances": [{"id": "...", "zone": "...",
//!   "private_ip": "...", "state": "pending|in-service|terminating"}]}`;
//! - `set-desired N`: make the group N machines (launch or remove), returning once asked;
//! - `terminate ID`: remove exactly that machine and lower the desired size by one. It may be
//!   asked again for a machine it already removed (a new leader finishing a committed
//!   termination whose outcome it cannot see): a machine already leaving or gone is a success
//!   that must not lower the desired size again.
//!
//! Exit status 0 is success; otherwise stderr is the reason shown to the operator. Exit status
//! 75 (EX_TEMPFAIL) marks a failure worth retrying. Each call is bounded by a timeout.

use fjord_decisions::capacity::{CapacityProvider, GroupSnapshot, InstanceState, ProviderError, ProviderInstance};
use fjord_decisions::node_autoscale::{NodeGroupPolicy, ProviderKind};
use fjord_decisions::StaticProvider;
use futures::future::BoxFuture;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// How long one `command` provider call may take.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest `describe` answer read from a `command` provider.
const MAX_DESCRIBE_BYTES: usize = 1024 * 1024;

/// Builds the provider a group's policy names. `aws_endpoint_url` overrides the AWS endpoint
/// (for tests against a local AWS endpoint).
pub(crate) async fn build(
    group: &NodeGroupPolicy,
    aws_endpoint_url: Option<&str>,
) -> Result<Arc<dyn CapacityProvider>, String> {
    Ok(match group.provider {
        ProviderKind::Static => Arc::new(StaticProvider::new(group.name.clone(), group.nodes.clone())),
        ProviderKind::AwsAsg => {
            let config = fjord_aws::load_sdk_config(aws_endpoint_url).await;
            Arc::new(fjord_aws::AsgProvider::with_endpoint_url(
                &config,
                group.asg_name.clone(),
                aws_endpoint_url,
            ))
        }
        ProviderKind::Command => Arc::new(CommandProvider {
            group: group.name.clone(),
            command: group.command.clone(),
        }),
    })
}

/// A node group managed by an operator's program.
pub(crate) struct CommandProvider {
    pub(crate) group: String,
    pub(crate) command: Vec<String>,
}

#[derive(Deserialize)]
struct DescribeAnswer {
    desired: u32,
    #[serde(default)]
    min: u32,
    max: u32,
    #[serde(default)]
    instances: Vec<DescribedInstance>,
}

#[derive(Deserialize)]
struct DescribedInstance {
    id: String,
    #[serde(default)]
    zone: String,
    #[serde(default)]
    private_ip: Option<String>,
    #[serde(default = "in_service")]
    state: String,
}

fn in_service() -> String {
    "in-service".into()
}

impl CommandProvider {
    async fn run(&self, args: &[String]) -> Result<Vec<u8>, ProviderError> {
        let (program, fixed) = self
            .command
            .split_first()
            .ok_or_else(|| ProviderError::InvalidRequest {
                message: format!("node group {}: the command provider has no program", self.group),
            })?;
        let mut command = tokio::process::Command::new(program);
        command
            .args(fixed)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let what = format!("{} {}", self.command.join(" "), args.join(" "));
        let output = match tokio::time::timeout(COMMAND_TIMEOUT, command.output()).await {
            Err(_) => {
                return Err(ProviderError::Unavailable {
                    message: format!("`{what}` did not finish within {COMMAND_TIMEOUT:?}"),
                })
            }
            Ok(Err(e)) => {
                return Err(ProviderError::InvalidRequest {
                    message: format!("cannot run `{what}`: {e}"),
                })
            }
            Ok(Ok(output)) => output,
        };
        if output.status.success() {
            return Ok(output.stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = format!("`{what}` failed ({}): {}", output.status, stderr.trim());
        Err(match output.status.code() {
            Some(75) => ProviderError::Server { message },
            _ => ProviderError::InvalidRequest { message },
        })
    }
}

impl CapacityProvider for CommandProvider {
    fn kind(&self) -> &'static str {
        "command"
    }

    fn describe(&self) -> BoxFuture<'_, Result<GroupSnapshot, ProviderError>> {
        Box::pin(async move {
            let stdout = self.run(&["describe".to_string()]).await?;
            if stdout.len() > MAX_DESCRIBE_BYTES {
                return Err(ProviderError::InvalidRequest {
                    message: format!(
                        "`describe` printed {} bytes; at most {MAX_DESCRIBE_BYTES}",
                        stdout.len()
                    ),
                });
            }
            let answer: DescribeAnswer = serde_json::from_slice(&stdout).map_err(|e| ProviderError::InvalidRequest {
                message: format!(
                    "`describe` printed no valid group JSON ({e}); expected {{\"desired\": N, \"max\": N, \"instances\": [...]}}"
                ),
            })?;
            Ok(GroupSnapshot {
                name: self.group.clone(),
                desired: answer.desired,
                min: answer.min,
                max: answer.max,
                instances: answer
                    .instances
                    .into_iter()
                    .map(|i| ProviderInstance {
                        instance_id: i.id,
                        zone: i.zone,
                        private_ip: i.private_ip,
                        state: match i.state.as_str() {
                            "pending" => InstanceState::Pending,
                            "in-service" => InstanceState::InService,
                            "terminating" => InstanceState::Terminating,
                            other => InstanceState::Other(other.to_string()),
                        },
                    })
                    .collect(),
            })
        })
    }

    fn set_desired(&self, desired: u32) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            self.run(&["set-desired".to_string(), desired.to_string()]).await?;
            Ok(())
        })
    }

    fn terminate<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.run(&["terminate".to_string(), instance_id.to_string()]).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &std::path::Path, body: &str) -> Vec<String> {
        let path = dir.join("provider.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        vec!["/bin/sh".into(), path.display().to_string()]
    }

    #[tokio::test]
    async fn a_command_provider_reads_describe_and_passes_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let body = format!(
            "echo \"$@\" >> {log}\ncase \"$1\" in describe) echo '{{\"desired\": 2, \"max\": 5, \"instances\": [{{\"id\": \"vm-1\", \"zone\": \"z\"}}, {{\"id\": \"vm-2\", \"state\": \"pending\"}}]}}';; esac",
            log = log.display()
        );
        let provider = CommandProvider {
            group: "g".into(),
            command: script(dir.path(), &body),
        };
        let snapshot = provider.describe().await.unwrap();
        assert_eq!((snapshot.desired, snapshot.min, snapshot.max), (2, 0, 5));
        assert_eq!(snapshot.instances[0].zone, "z");
        assert_eq!(snapshot.instances[0].state, InstanceState::InService);
        assert_eq!(snapshot.instances[1].state, InstanceState::Pending);
        provider.set_desired(3).await.unwrap();
        provider.terminate("vm-1").await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "describe\nset-desired 3\nterminate vm-1\n"
        );
    }

    #[tokio::test]
    async fn command_failures_carry_stderr_and_say_whether_to_retry() {
        let dir = tempfile::tempdir().unwrap();
        let provider = CommandProvider {
            group: "g".into(),
            command: script(dir.path(), "echo 'quota exceeded' >&2; exit 1"),
        };
        let e = provider.set_desired(9).await.unwrap_err();
        assert!(!e.retryable());
        assert!(e.to_string().contains("quota exceeded"), "{e}");
        let provider = CommandProvider {
            group: "g".into(),
            command: script(dir.path(), "echo 'api busy' >&2; exit 75"),
        };
        assert!(provider.describe().await.unwrap_err().retryable());
        let provider = CommandProvider {
            group: "g".into(),
            command: script(dir.path(), "echo not-json"),
        };
        let e = provider.describe().await.unwrap_err();
        assert!(e.to_string().contains("no valid group JSON"), "{e}");
    }
}
