//! [`AsgProvider`]: one EC2 Auto Scaling group as Fjord's capacity provider.
//!
//! `describe` reads the group (DescribeAutoScalingGroups) and its instances' private addresses
//! (EC2 DescribeInstances); `set_desired` calls SetDesiredCapacity without honouring cooldowns
//! (the node autoscaler keeps its own pace); `terminate` checks that the instance belongs to this
//! group, then calls TerminateInstanceInAutoScalingGroup with ShouldDecrementDesiredCapacity, so
//! the group removes exactly that machine and does not replace it.
//!
//! Retryable failures are retried by [`crate::retry`] under the provider's [`RetryPolicy`]; the
//! SDK's own retries are off for these clients so that policy is the whole story. It decides
//! nothing: what size the group should be is the caller's business.

use crate::retry::{retry, RetryPolicy};
use crate::sdk_error::{self, FailureClass};
use aws_config::SdkConfig;
use aws_sdk_autoscaling::error::{ProvideErrorMetadata, SdkError};
use fjord_core::capacity::{CapacityProvider, GroupSnapshot, InstanceState, ProviderError, ProviderInstance};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::time::Duration;

/// How long one AWS call may take before it counts as a (retryable) timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Instance ids per DescribeInstances call.
const DESCRIBE_INSTANCES_CHUNK: usize = 100;

/// One Auto Scaling group, driven through the AWS API.
#[derive(Debug, Clone)]
pub struct AsgProvider {
    group: String,
    autoscaling: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
    retry: RetryPolicy,
}

impl AsgProvider {
    /// The group `group` in `sdk_config`'s region, with its credentials and endpoint.
    pub fn new(sdk_config: &SdkConfig, group: impl Into<String>) -> Self {
        Self::with_endpoint_url(sdk_config, group, None)
    }

    /// Like [`new`](Self::new), with both services at `endpoint_url` when given (a local mock,
    /// or an operator's `--aws-endpoint-url`).
    pub fn with_endpoint_url(sdk_config: &SdkConfig, group: impl Into<String>, endpoint_url: Option<&str>) -> Self {
        use aws_sdk_autoscaling::config::{retry::RetryConfig, timeout::TimeoutConfig};
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build();

        let mut autoscaling = aws_sdk_autoscaling::config::Builder::from(sdk_config)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts.clone());
        let mut ec2 = aws_sdk_ec2::config::Builder::from(sdk_config)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(url) = endpoint_url {
            autoscaling = autoscaling.endpoint_url(url);
            ec2 = ec2.endpoint_url(url);
        }
        Self {
            group: group.into(),
            autoscaling: aws_sdk_autoscaling::Client::from_conf(autoscaling.build()),
            ec2: aws_sdk_ec2::Client::from_conf(ec2.build()),
            retry: RetryPolicy::default(),
        }
    }

    /// Replaces the retry policy (default: 4 attempts, 200 ms doubling).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The provider error for a failed call, naming the group when AWS says it does not exist.
    fn error<E>(&self, operation: &str, err: &SdkError<E>) -> ProviderError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let failure = sdk_error::classify(operation, err);
        let unknown_group = failure.class == FailureClass::Invalid
            && failure.code.as_deref() == Some("ValidationError")
            && failure.message.contains("not found")
            && failure.message.contains(&self.group);
        if unknown_group {
            ProviderError::UnknownGroup {
                group: self.group.clone(),
                message: failure.message,
            }
        } else {
            failure.into_provider_error()
        }
    }

    async fn describe_once(&self) -> Result<GroupSnapshot, ProviderError> {
        let output = self
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&self.group)
            .send()
            .await
            .map_err(|e| self.error("DescribeAutoScalingGroups", &e))?;
        let group = output
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(self.group.as_str()))
            .ok_or_else(|| ProviderError::UnknownGroup {
                group: self.group.clone(),
                message: "DescribeAutoScalingGroups returned no group of that name".to_string(),
            })?;

        let ids: Vec<String> = group
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        let addresses = self.instance_addresses(&ids).await?;
        let instances = group
            .instances()
            .iter()
            .filter_map(|i| {
                let id = i.instance_id()?;
                let (ip, ec2_zone) = addresses.get(id).cloned().unwrap_or_default();
                let zone = i
                    .availability_zone()
                    .map(str::to_string)
                    .or(ec2_zone)
                    .unwrap_or_default();
                let state = i
                    .lifecycle_state()
                    .map_or(InstanceState::Other(String::new()), |s| lifecycle(s.as_str()));
                Some(ProviderInstance {
                    instance_id: id.to_string(),
                    zone,
                    private_ip: ip,
                    state,
                })
            })
            .collect();

        let size = |n: Option<i32>| n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
        Ok(GroupSnapshot {
            name: self.group.clone(),
            desired: size(group.desired_capacity()),
            min: size(group.min_size()),
            max: size(group.max_size()),
            instances,
        })
    }

    /// Private IP and zone of each instance EC2 knows. Instances EC2 does not know yet (just
    /// launched; EC2's view is eventually consistent) are left out rather than failing the call.
    async fn instance_addresses(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, (Option<String>, Option<String>)>, ProviderError> {
        let mut addresses = HashMap::new();
        for chunk in ids.chunks(DESCRIBE_INSTANCES_CHUNK) {
            let mut next_token = None;
            loop {
                let result = self
                    .ec2
                    .describe_instances()
                    .set_instance_ids(Some(chunk.to_vec()))
                    .set_next_token(next_token.take())
                    .send()
                    .await;
                let output = match result {
                    Ok(output) => output,
                    Err(err) if err.code() == Some("InvalidInstanceID.NotFound") => {
                        tracing::debug!(group = %self.group, "EC2 does not know some instances yet: {}", err.message().unwrap_or(""));
                        break;
                    }
                    Err(err) => return Err(self.error("DescribeInstances", &err)),
                };
                for instance in output.reservations().iter().flat_map(|r| r.instances()) {
                    if let Some(id) = instance.instance_id() {
                        let ip = instance.private_ip_address().map(str::to_string);
                        let zone = instance
                            .placement()
                            .and_then(|p| p.availability_zone())
                            .map(str::to_string);
                        addresses.insert(id.to_string(), (ip, zone));
                    }
                }
                match output.next_token() {
                    Some(token) if !token.is_empty() => next_token = Some(token.to_string()),
                    _ => break,
                }
            }
        }
        Ok(addresses)
    }

    async fn set_desired_once(&self, desired: i32) -> Result<(), ProviderError> {
        self.autoscaling
            .set_desired_capacity()
            .auto_scaling_group_name(&self.group)
            .desired_capacity(desired)
            .honor_cooldown(false)
            .send()
            .await
            .map_err(|e| self.error("SetDesiredCapacity", &e))?;
        Ok(())
    }

    async fn terminate_once(&self, instance_id: &str) -> Result<(), ProviderError> {
        // TerminateInstanceInAutoScalingGroup acts on any group's instance: make sure it is ours.
        let owner = self
            .autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| self.error("DescribeAutoScalingInstances", &e))?;
        let group = owner
            .auto_scaling_instances()
            .iter()
            .find(|i| i.instance_id() == Some(instance_id))
            .and_then(|i| i.auto_scaling_group_name());
        if group != Some(self.group.as_str()) {
            return Err(ProviderError::InvalidRequest {
                message: match group {
                    Some(other) => format!(
                        "instance {instance_id} belongs to group {other:?}, not {:?}",
                        self.group
                    ),
                    None => format!("instance {instance_id} is not in Auto Scaling group {:?}", self.group),
                },
            });
        }
        self.autoscaling
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance_id)
            .should_decrement_desired_capacity(true)
            .send()
            .await
            .map_err(|e| self.error("TerminateInstanceInAutoScalingGroup", &e))?;
        Ok(())
    }
}

/// Fjord's view of an Auto Scaling lifecycle state.
fn lifecycle(state: &str) -> InstanceState {
    match state {
        "InService" => InstanceState::InService,
        s if s.starts_with("Pending") => InstanceState::Pending,
        s if s.starts_with("Terminat") => InstanceState::Terminating,
        other => InstanceState::Other(other.to_string()),
    }
}

impl CapacityProvider for AsgProvider {
    fn kind(&self) -> &'static str {
        "aws-asg"
    }

    fn describe(&self) -> BoxFuture<'_, Result<GroupSnapshot, ProviderError>> {
        Box::pin(retry(self.retry, || self.describe_once()))
    }

    fn set_desired(&self, desired: u32) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let desired = i32::try_from(desired).map_err(|_| ProviderError::InvalidRequest {
                message: format!("desired capacity {desired} is larger than Auto Scaling accepts"),
            })?;
            retry(self.retry, || self.set_desired_once(desired)).await
        })
    }

    fn terminate<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(retry(self.retry, move || self.terminate_once(instance_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_states_map_to_fjord_states() {
        assert_eq!(lifecycle("InService"), InstanceState::InService);
        assert_eq!(lifecycle("Pending"), InstanceState::Pending);
        assert_eq!(lifecycle("Pending:Wait"), InstanceState::Pending);
        assert_eq!(lifecycle("Terminating:Proceed"), InstanceState::Terminating);
        assert_eq!(lifecycle("Terminated"), InstanceState::Terminating);
        assert_eq!(lifecycle("Standby"), InstanceState::Other("Standby".into()));
    }
}
