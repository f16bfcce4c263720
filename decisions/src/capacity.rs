//! The capacity-provider contract: what the node autoscaler may ask of whatever supplies the
//! machines (an EC2 Auto Scaling group, a fixed pool of VPS), and what it gets back.
//!
//! The node autoscaler reads a [`GroupSnapshot`] ([`CapacityProvider::describe`]), raises the
//! group's desired size when placements do not fit ([`CapacityProvider::set_desired`]), and, to
//! shrink, drains one node and then removes exactly that machine ([`CapacityProvider::terminate`],
//! which also lowers the desired size by one so the provider does not start a replacement).
//!
//! Every failure is a [`ProviderError`] that says whether trying again later can help
//! ([`ProviderError::retryable`]): throttling, a provider's server error or an unreachable
//! endpoint can; an unknown group, missing permissions or a refused request cannot, and the
//! caller should raise an event naming the problem instead of looping.
//!
//! This module holds the trait and plain types only; the AWS implementation lives in `fjord-aws`
//! (so the AWS SDK's compile stays out of this crate). [`StaticProvider`], a fleet that never
//! changes, is here because it needs no I/O.

use futures::future::BoxFuture;

/// Where a machine of the group is in its life, as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    /// Launched or launching, not yet serving (EC2: `Pending`, `Pending:Wait`, `Pending:Proceed`).
    Pending,
    /// Running and counted in the group.
    InService,
    /// On its way out (EC2: `Terminating*`, `Terminated`).
    Terminating,
    /// Any other provider state (standby, detaching, warm pool...), verbatim.
    Other(String),
}

/// One machine of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInstance {
    /// The provider's id (EC2 instance id); matches `NodeInfo::instance_id` of the agent on it.
    pub instance_id: String,
    /// Availability zone; empty when the provider has none.
    pub zone: String,
    /// Private IPv4 address, when the provider knows it yet.
    pub private_ip: Option<String>,
    pub state: InstanceState,
}

/// A group's sizes and machines at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub name: String,
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    pub instances: Vec<ProviderInstance>,
}

/// Why a provider call failed. The first three variants are worth retrying; the rest are not.
/// Each carries the provider's own message so an operator sees what the provider said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider rate-limited the call.
    #[error("capacity provider throttled the request: {message}")]
    Throttled { message: String },
    /// The provider failed on its side (HTTP 5xx, internal failure).
    #[error("capacity provider server error: {message}")]
    Server { message: String },
    /// The provider could not be reached or did not answer in time.
    #[error("capacity provider unreachable: {message}")]
    Unavailable { message: String },
    /// The group does not exist (or this account and region cannot see it).
    #[error("unknown capacity group {group:?}: {message}; check the group name and the region")]
    UnknownGroup { group: String, message: String },
    /// The credentials in use lack a permission.
    #[error("access denied by the capacity provider: {message}; grant the node role the missing permission")]
    AccessDenied { message: String },
    /// The provider refused the request as invalid (desired outside min/max, unknown instance...).
    #[error("capacity provider refused the request: {message}")]
    InvalidRequest { message: String },
    /// A fixed fleet was asked for more nodes than it has.
    #[error(
        "the static fleet has {fleet} nodes and cannot grow to {requested}; \
         add machines to the static node list or lower the demand"
    )]
    CannotGrow { fleet: u32, requested: u32 },
    /// A fixed fleet was asked to remove nodes.
    #[error("the static fleet has {fleet} nodes and cannot shrink to {requested}; remove machines by hand")]
    CannotShrink { fleet: u32, requested: u32 },
    /// A fixed fleet was asked to terminate a machine.
    #[error("the static fleet cannot terminate {instance_id:?}: {reason}")]
    CannotTerminate { instance_id: String, reason: String },
}

impl ProviderError {
    /// Whether the same call may succeed if tried again later.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. } | Self::Server { .. } | Self::Unavailable { .. }
        )
    }
}

/// What supplies the nodes: one group of machines the node autoscaler can resize.
///
/// Implementations must be cheap to call concurrently; each call is one provider round trip (or
/// a few, retried inside on retryable errors at the implementation's discretion).
pub trait CapacityProvider: Send + Sync {
    /// A short stable name for logs and events: `"aws-asg"`, `"static"`.
    fn kind(&self) -> &'static str;

    /// The group's sizes and its machines.
    fn describe(&self) -> BoxFuture<'_, Result<GroupSnapshot, ProviderError>>;

    /// Asks the provider to run `desired` machines.
    fn set_desired(&self, desired: u32) -> BoxFuture<'_, Result<(), ProviderError>>;

    /// Terminates exactly `instance_id` and lowers the desired size by one, so it is not replaced.
    fn terminate<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>>;
}

/// A fleet that never changes size: the nodes an operator listed (VPS, bare metal).
///
/// `describe` reports every node in service and desired = min = max = the fleet size. Asking for
/// any other size, or to terminate a node, is a permanent error that says so, so the node
/// autoscaler can raise an event telling the operator to add machines.
#[derive(Debug, Clone)]
pub struct StaticProvider {
    name: String,
    instances: Vec<ProviderInstance>,
}

impl StaticProvider {
    /// A fleet of the nodes with these ids, zones and addresses unknown.
    pub fn new(name: impl Into<String>, node_ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let instances = node_ids
            .into_iter()
            .map(|id| ProviderInstance {
                instance_id: id.into(),
                zone: String::new(),
                private_ip: None,
                state: InstanceState::InService,
            })
            .collect();
        Self::with_instances(name, instances)
    }

    /// A fleet of these machines; each is reported in service whatever state it was given.
    pub fn with_instances(name: impl Into<String>, instances: Vec<ProviderInstance>) -> Self {
        let instances = instances
            .into_iter()
            .map(|i| ProviderInstance {
                state: InstanceState::InService,
                ..i
            })
            .collect();
        Self {
            name: name.into(),
            instances,
        }
    }

    fn fleet(&self) -> u32 {
        u32::try_from(self.instances.len()).unwrap_or(u32::MAX)
    }

    fn snapshot(&self) -> GroupSnapshot {
        let fleet = self.fleet();
        GroupSnapshot {
            name: self.name.clone(),
            desired: fleet,
            min: fleet,
            max: fleet,
            instances: self.instances.clone(),
        }
    }

    fn check_desired(&self, requested: u32) -> Result<(), ProviderError> {
        let fleet = self.fleet();
        match requested.cmp(&fleet) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Greater => Err(ProviderError::CannotGrow { fleet, requested }),
            std::cmp::Ordering::Less => Err(ProviderError::CannotShrink { fleet, requested }),
        }
    }

    fn check_terminate(&self, instance_id: &str) -> Result<(), ProviderError> {
        let reason = if self.instances.iter().any(|i| i.instance_id == instance_id) {
            format!(
                "a static fleet of {} nodes is fixed; stop the machine by hand",
                self.fleet()
            )
        } else {
            format!("no such node in the static fleet {:?}", self.name)
        };
        Err(ProviderError::CannotTerminate {
            instance_id: instance_id.to_string(),
            reason,
        })
    }
}

impl CapacityProvider for StaticProvider {
    fn kind(&self) -> &'static str {
        "static"
    }

    fn describe(&self) -> BoxFuture<'_, Result<GroupSnapshot, ProviderError>> {
        let snapshot = self.snapshot();
        Box::pin(async move { Ok(snapshot) })
    }

    fn set_desired(&self, desired: u32) -> BoxFuture<'_, Result<(), ProviderError>> {
        let result = self.check_desired(desired);
        Box::pin(async move { result })
    }

    fn terminate<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        let result = self.check_terminate(instance_id);
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    fn fleet() -> StaticProvider {
        StaticProvider::new("vps", ["n1", "n2", "n3"])
    }

    #[test]
    fn static_describe_reports_every_node_in_service() {
        let snap = block_on(fleet().describe()).unwrap();
        assert_eq!(snap.name, "vps");
        assert_eq!((snap.desired, snap.min, snap.max), (3, 3, 3));
        let ids: Vec<_> = snap.instances.iter().map(|i| i.instance_id.as_str()).collect();
        assert_eq!(ids, ["n1", "n2", "n3"]);
        assert!(snap.instances.iter().all(|i| i.state == InstanceState::InService));
    }

    #[test]
    fn static_keeps_zones_and_addresses_given() {
        let given = ProviderInstance {
            instance_id: "a".into(),
            zone: "fsn1".into(),
            private_ip: Some("10.0.0.5".into()),
            state: InstanceState::Pending,
        };
        let snap = block_on(StaticProvider::with_instances("vps", vec![given]).describe()).unwrap();
        assert_eq!(snap.instances[0].zone, "fsn1");
        assert_eq!(snap.instances[0].private_ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(snap.instances[0].state, InstanceState::InService);
    }

    #[test]
    fn static_accepts_its_own_size_only() {
        let p = fleet();
        assert_eq!(p.kind(), "static");
        assert_eq!(block_on(p.set_desired(3)), Ok(()));

        let grow = block_on(p.set_desired(5)).unwrap_err();
        assert_eq!(grow, ProviderError::CannotGrow { fleet: 3, requested: 5 });
        assert!(!grow.retryable());
        let text = grow.to_string();
        assert!(text.contains("has 3 nodes") && text.contains("grow to 5"), "{text}");

        let shrink = block_on(p.set_desired(1)).unwrap_err();
        assert_eq!(shrink, ProviderError::CannotShrink { fleet: 3, requested: 1 });
        assert!(!shrink.retryable());
    }

    #[test]
    fn static_refuses_to_terminate() {
        let p = fleet();
        let known = block_on(p.terminate("n2")).unwrap_err();
        assert!(matches!(&known, ProviderError::CannotTerminate { instance_id, .. } if instance_id == "n2"));
        assert!(!known.retryable());
        assert!(known.to_string().contains("\"n2\""), "{known}");

        let unknown = block_on(p.terminate("zz")).unwrap_err();
        assert!(unknown.to_string().contains("no such node"), "{unknown}");
        // Refusing changed nothing.
        assert_eq!(block_on(p.describe()).unwrap().desired, 3);
    }

    #[test]
    fn empty_static_fleet() {
        let p = StaticProvider::new("none", Vec::<String>::new());
        let snap = block_on(p.describe()).unwrap();
        assert_eq!((snap.desired, snap.min, snap.max), (0, 0, 0));
        assert_eq!(
            block_on(p.set_desired(1)),
            Err(ProviderError::CannotGrow { fleet: 0, requested: 1 })
        );
    }

    #[test]
    fn only_transient_errors_are_retryable() {
        let m = || "m".to_string();
        for e in [
            ProviderError::Throttled { message: m() },
            ProviderError::Server { message: m() },
            ProviderError::Unavailable { message: m() },
        ] {
            assert!(e.retryable(), "{e}");
        }
        for e in [
            ProviderError::UnknownGroup {
                group: "g".into(),
                message: m(),
            },
            ProviderError::AccessDenied { message: m() },
            ProviderError::InvalidRequest { message: m() },
        ] {
            assert!(!e.retryable(), "{e}");
        }
        let unknown = ProviderError::UnknownGroup {
            group: "fjord-nodes".into(),
            message: "not found".into(),
        };
        assert!(unknown.to_string().contains("\"fjord-nodes\""));
    }

    #[test]
    fn provider_is_object_safe() {
        let providers: Vec<Box<dyn CapacityProvider>> = vec![Box::new(fleet())];
        assert_eq!(providers[0].kind(), "static");
    }
}
