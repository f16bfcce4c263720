//! [`AsgProvider`]: one EC2 Auto Scaling group as Fjord's capacity provider.
//!
//! `describe` reads the group (DescribeAutoScalingGroups) and its instances' private addresses
//! (EC2 DescribeInstances, through the crate's own small EC2 client); `set_desired` calls
//! SetDesiredCapacity without honouring cooldowns (the node autoscaler keeps its own pace);
//! `terminate` calls TerminateInstanceInAutoScalingGroup with ShouldDecrementDesiredCapacity, so
//! the group removes exactly that machine and does not replace it.
//!
//! **A termination lowers the desired capacity at most once.** Each accepted call lowers it by
//! one, so `terminate` never sends the call for an instance already on its way out: before each
//! send it reads where the instance stands (DescribeAutoScalingInstances, and EC2 when no group
//! lists it), and an instance in `Terminating*`/`Terminated`, or gone from the group and
//! terminated in EC2, counts as done. The call itself is sent again only after an answer that
//! says it was not acted on (throttled, another change in progress); after a timeout, a lost
//! connection or a server error it may have been, so `terminate` returns the error and the next
//! attempt starts by reading the state again. AWS's refusal of an instance that is "not in
//! InService or Standby" counts as done too. An instance of another group, or of none and not
//! terminated, is refused.
//!
//! Retryable failures are retried by [`crate::retry`] under the provider's [`RetryPolicy`]; the
//! SDK's own retries are off for these clients so that policy is the whole story. It decides
//! nothing: what size the group should be is the caller's business.

use crate::ec2::Ec2Client;
use crate::retry::{retry, RetryPolicy};
use crate::sdk_error::{self, FailureClass, SdkFailure};
use aws_config::SdkConfig;
use aws_sdk_autoscaling::error::{ProvideErrorMetadata, SdkError};
use fjord_decisions::capacity::{CapacityProvider, GroupSnapshot, InstanceState, ProviderError, ProviderInstance};
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
    ec2: Ec2Client,
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
            .timeout_config(timeouts);
        if let Some(url) = endpoint_url {
            autoscaling = autoscaling.endpoint_url(url);
        }
        Self {
            group: group.into(),
            autoscaling: aws_sdk_autoscaling::Client::from_conf(autoscaling.build()),
            ec2: Ec2Client::new(sdk_config, endpoint_url, CONNECT_TIMEOUT, ATTEMPT_TIMEOUT),
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
        self.failure_error(sdk_error::classify(operation, err))
    }

    /// [`error`](Self::error) for a failure already classified (an EC2 call's).
    fn failure_error(&self, failure: SdkFailure) -> ProviderError {
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
                let page = match self.ec2.describe_instances(chunk, next_token.as_deref()).await {
                    Ok(page) => page,
                    Err(err) if err.code() == Some("InvalidInstanceID.NotFound") => {
                        tracing::debug!(group = %self.group, "EC2 does not know some instances yet: {err}");
                        break;
                    }
                    Err(err) => return Err(self.failure_error(err.failure("DescribeInstances"))),
                };
                for instance in page.instances {
                    addresses.insert(instance.instance_id, (instance.private_ip, instance.zone));
                }
                match page.next_token {
                    Some(token) if !token.is_empty() => next_token = Some(token),
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

    /// Where `instance_id` stands before a termination is sent.
    async fn standing(&self, instance_id: &str) -> Result<Standing, ProviderError> {
        let owner = self
            .autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| self.error("DescribeAutoScalingInstances", &e))?;
        let listed = owner
            .auto_scaling_instances()
            .iter()
            .find(|i| i.instance_id() == Some(instance_id))
            .map(|i| {
                (
                    i.auto_scaling_group_name().unwrap_or_default(),
                    i.lifecycle_state().unwrap_or_default(),
                )
            });
        let ec2_state = match listed {
            Some(_) => None,
            None => self.ec2_state(instance_id).await?,
        };
        Ok(standing(&self.group, listed, ec2_state.as_deref()))
    }

    /// The EC2 state of an instance (`running`, `shutting-down`, `terminated`...), `None` when
    /// EC2 does not know it.
    async fn ec2_state(&self, instance_id: &str) -> Result<Option<String>, ProviderError> {
        let page = match self.ec2.describe_instances(&[instance_id.to_string()], None).await {
            Ok(page) => page,
            Err(err) if err.code() == Some("InvalidInstanceID.NotFound") => return Ok(None),
            Err(err) => return Err(self.failure_error(err.failure("DescribeInstances"))),
        };
        Ok(page
            .instances
            .into_iter()
            .find(|i| i.instance_id == instance_id)
            .and_then(|i| i.state))
    }

    /// Terminates `instance_id` with decrement, sending the call only while the instance is in
    /// service (see the module's documentation).
    async fn terminate_with_decrement(&self, instance_id: &str) -> Result<(), ProviderError> {
        let attempts = self.retry.attempts.max(1);
        let mut sent = 0;
        loop {
            match retry(self.retry, || self.standing(instance_id)).await? {
                Standing::InGroup => {}
                Standing::Leaving | Standing::Terminated => {
                    tracing::info!(group = %self.group, instance = instance_id, "already terminating: not asked again");
                    return Ok(());
                }
                Standing::OtherGroup(other) => {
                    return Err(ProviderError::InvalidRequest {
                        message: format!(
                            "instance {instance_id} belongs to group {other:?}, not {:?}",
                            self.group
                        ),
                    })
                }
                Standing::NotInGroup => {
                    return Err(ProviderError::InvalidRequest {
                        message: format!("instance {instance_id} is not in Auto Scaling group {:?}", self.group),
                    })
                }
            }
            sent += 1;
            let err = match self
                .autoscaling
                .terminate_instance_in_auto_scaling_group()
                .instance_id(instance_id)
                .should_decrement_desired_capacity(true)
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            let mut failure = sdk_error::classify("TerminateInstanceInAutoScalingGroup", &err);
            match after_terminate_failure(&failure) {
                TerminateFailure::AlreadyLeaving => {
                    tracing::info!(group = %self.group, instance = instance_id, message = %failure.message, "already terminating");
                    return Ok(());
                }
                TerminateFailure::NotActedOn if sent < attempts => {
                    let delay = self.retry.delay_after(sent);
                    tracing::debug!(message = %failure.message, attempt = sent, delay_ms = delay.as_millis() as u64, "terminate refused for now");
                    tokio::time::sleep(delay).await;
                }
                TerminateFailure::MayHaveActed => {
                    failure.message.push_str(
                        "; it may have taken effect, so the instance's state is read before it is asked again",
                    );
                    return Err(failure.into_provider_error());
                }
                TerminateFailure::NotActedOn | TerminateFailure::Refused => return Err(failure.into_provider_error()),
            }
        }
    }
}

/// Where an instance stands when a termination is about to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Standing {
    /// In this group and not leaving it: terminating it is ours to do.
    InGroup,
    /// In this group and already on its way out (`Terminating*`, `Terminated`).
    Leaving,
    /// In no group, and shutting down or terminated in EC2: terminated earlier.
    Terminated,
    /// In another group: never ours to terminate.
    OtherGroup(String),
    /// In no group and not terminated (detached, or no such instance).
    NotInGroup,
}

/// Where an instance stands, from the group and lifecycle state Auto Scaling lists it with (if
/// any), and its EC2 state (read when no group lists it).
fn standing(group: &str, listed: Option<(&str, &str)>, ec2_state: Option<&str>) -> Standing {
    match listed {
        Some((owner, _)) if owner != group => Standing::OtherGroup(owner.to_string()),
        Some((_, state)) if lifecycle(state) == InstanceState::Terminating => Standing::Leaving,
        Some(_) => Standing::InGroup,
        None if matches!(ec2_state, Some("shutting-down" | "terminated")) => Standing::Terminated,
        None => Standing::NotInGroup,
    }
}

/// What a failed TerminateInstanceInAutoScalingGroup call means for sending it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TerminateFailure {
    /// AWS says the instance is no longer in InService or Standby: it is leaving already.
    AlreadyLeaving,
    /// AWS answered that it did not act (throttled, another change in progress): it may be sent
    /// again, after reading the instance's state.
    NotActedOn,
    /// No answer, or a server error: it may have acted, so it is not sent again now.
    MayHaveActed,
    /// Refused for good (permissions, an invalid request).
    Refused,
}

fn after_terminate_failure(failure: &SdkFailure) -> TerminateFailure {
    let message = failure.message.to_ascii_lowercase();
    match failure.class {
        FailureClass::Invalid if message.contains("inservice") && message.contains("standby") => {
            TerminateFailure::AlreadyLeaving
        }
        FailureClass::Throttled => TerminateFailure::NotActedOn,
        FailureClass::Unavailable | FailureClass::Server => TerminateFailure::MayHaveActed,
        FailureClass::Invalid | FailureClass::AccessDenied => TerminateFailure::Refused,
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
        Box::pin(self.terminate_with_decrement(instance_id))
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

    #[test]
    fn an_instance_already_leaving_or_terminated_is_not_terminated_again() {
        let ours = |state| standing("fjord-nodes", Some(("fjord-nodes", state)), None);
        assert_eq!(ours("InService"), Standing::InGroup);
        assert_eq!(ours("Pending:Wait"), Standing::InGroup);
        assert_eq!(ours("Standby"), Standing::InGroup);
        // On its way out after an earlier call (whose answer may have been lost): done.
        for state in ["Terminating", "Terminating:Wait", "Terminating:Proceed", "Terminated"] {
            assert_eq!(ours(state), Standing::Leaving, "{state}");
        }
        // Gone from the group and terminated in EC2: done earlier.
        for ec2 in ["shutting-down", "terminated"] {
            assert_eq!(standing("fjord-nodes", None, Some(ec2)), Standing::Terminated);
        }
        // Detached and running, or unknown to EC2: not ours to terminate.
        assert_eq!(standing("fjord-nodes", None, Some("running")), Standing::NotInGroup);
        assert_eq!(standing("fjord-nodes", None, None), Standing::NotInGroup);
        assert_eq!(
            standing("fjord-nodes", Some(("someone-else", "InService")), None),
            Standing::OtherGroup("someone-else".into())
        );
    }

    fn failure(class: FailureClass, message: &str) -> SdkFailure {
        SdkFailure {
            class,
            code: None,
            message: format!("TerminateInstanceInAutoScalingGroup: {message}"),
        }
    }

    #[test]
    fn a_terminate_is_sent_again_only_after_an_answer_that_it_was_not_acted_on() {
        // Refusals that say nothing was done: read the state, then send again.
        assert_eq!(
            after_terminate_failure(&failure(FailureClass::Throttled, "Throttling: Rate exceeded")),
            TerminateFailure::NotActedOn
        );
        assert_eq!(
            after_terminate_failure(&failure(FailureClass::Throttled, "ScalingActivityInProgress: busy")),
            TerminateFailure::NotActedOn
        );
        // A timeout, a lost connection, a server error: it may have lowered the desired capacity
        // already, so it is not sent again now.
        for class in [FailureClass::Unavailable, FailureClass::Server] {
            assert_eq!(
                after_terminate_failure(&failure(class, "dispatch failure")),
                TerminateFailure::MayHaveActed
            );
        }
        // AWS refusing an instance no longer in service: the earlier call took effect.
        assert_eq!(
            after_terminate_failure(&failure(
                FailureClass::Invalid,
                "ValidationError: The instance i-0abc is not in InService or Standby."
            )),
            TerminateFailure::AlreadyLeaving
        );
        assert_eq!(
            after_terminate_failure(&failure(FailureClass::Invalid, "ValidationError: bad instance id")),
            TerminateFailure::Refused
        );
        assert_eq!(
            after_terminate_failure(&failure(FailureClass::AccessDenied, "AccessDenied: no")),
            TerminateFailure::Refused
        );
    }

    #[tokio::test]
    async fn terminating_the_same_instance_twice_lowers_the_desired_capacity_once() {
        use crate::testing::{create_auto_scaling_group, static_sdk_config, GroupSize, MotoServer};
        let Some(moto) = MotoServer::start() else { return };
        let size = GroupSize {
            min: 0,
            max: 10,
            desired: 3,
        };
        create_auto_scaling_group(&moto.sdk_config(), "fjord-nodes", size).await;
        let provider =
            AsgProvider::with_endpoint_url(&static_sdk_config(None), "fjord-nodes", Some(moto.endpoint_url()));
        let before = provider.describe().await.expect("describe");
        assert_eq!(before.desired, 3, "{before:?}");
        let victim = before.instances[0].instance_id.clone();
        provider.terminate(&victim).await.expect("terminate");
        assert_eq!(provider.describe().await.unwrap().desired, 2);
        // Asked again (a new leader finishing a committed termination, a retry after a lost
        // answer): done already, and the desired capacity is not lowered again.
        provider.terminate(&victim).await.expect("terminate again");
        let after = provider.describe().await.unwrap();
        assert_eq!(after.desired, 2, "{after:?}");
        assert!(
            after
                .instances
                .iter()
                .all(|i| i.instance_id != victim || i.state == InstanceState::Terminating),
            "{after:?}"
        );
    }
}
