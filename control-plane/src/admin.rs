//! The Admin gRPC service: what the CLI calls.
//!
//! Any member answers. A follower forwards every call but `Status` to the leader, so reads are
//! served by the leader after it confirms it still leads (ReadIndex): a read never returns a
//! state older than a write acknowledged before it began.

use crate::error::ControlPlaneError;
use crate::member::Member;
use crate::network::member_channel;
use crate::paging::{LabelSelector, Page};
use crate::raft_types::{Command, CommandResult, MemberId, NodeState, PutMode};
use crate::state_machine::now_millis;
use fjord_core::node::ImageState;
use fjord_core::{FunctionRecord, FunctionSpec};
use fjord_proto::v1 as pb;
use fjord_proto::v1::admin_client::AdminClient;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

pub(crate) struct AdminService {
    pub(crate) member: Arc<Member>,
    pub(crate) logs: crate::logs::LogCollector,
    pub(crate) images: crate::images::ImageResolver,
    /// Turns true when the member stops: watch streams end then.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
}

/// Forwards the call to the leader when this member is not it.
macro_rules! forward_to_leader {
    ($self:ident, $request:ident, $method:ident) => {
        if let Some(mut leader) = $self.leader_admin()? {
            let mut forwarded = Request::new($request.into_inner());
            $self.member.token.attach(&mut forwarded);
            return leader.$method(forwarded).await;
        }
    };
}

impl AdminService {
    fn leader_admin(&self) -> Result<Option<AdminClient<Channel>>, ControlPlaneError> {
        Ok(self
            .member
            .leader_channel()?
            .map(|c| AdminClient::new(c).max_decoding_message_size(64 * 1024 * 1024)))
    }

    /// A secret's metadata (never its value).
    fn secret_info(&self, name: &str) -> Result<pb::SecretInfo, ControlPlaneError> {
        self.member.state.read(|a| {
            let record = a
                .cluster
                .secrets
                .get(name)
                .ok_or_else(|| ControlPlaneError::SecretNotFound(name.to_string()))?;
            Ok(pb::SecretInfo {
                name: name.to_string(),
                version: record.version,
                created_at_ms: record.created_at_ms,
                updated_at_ms: record.updated_at_ms,
                used_by: a.cluster.secret_users(name),
            })
        })
    }

    fn function_status(&self, record: &FunctionRecord) -> pb::FunctionStatus {
        let mut record_pb: pb::FunctionRecord = record.into();
        if let Some(spec) = record_pb.spec.as_mut() {
            // Inline values of an earlier version are write-only: their names are kept.
            for value in spec.secrets.values_mut() {
                *value = String::new();
            }
        }
        let name = &record.spec.name;
        let (node_ids, placed): (Vec<String>, BTreeMap<String, u32>) = self.member.state.read(|a| {
            (
                a.cluster.nodes.keys().cloned().collect(),
                a.cluster.placements.get(name).cloned().unwrap_or_default(),
            )
        });
        let instances = node_ids
            .into_iter()
            .filter_map(|node_id| {
                let reported = self
                    .member
                    .liveness
                    .last_report(&node_id)
                    .and_then(|(load, _)| load.functions.get(name).cloned())
                    .filter(|f| f.revision == record.revision)
                    .unwrap_or_default();
                let placed = placed.get(&node_id).copied().unwrap_or(0);
                let shown =
                    reported.ready + reported.starting + placed > 0 || reported.image_state != ImageState::Unknown;
                shown.then_some(pb::NodeInstances {
                    node_id,
                    ready: reported.ready,
                    busy: reported.busy,
                    starting: reported.starting,
                    placed,
                    image_state: reported.image_state.as_str().to_string(),
                    pulled_bytes: reported.pulled_bytes,
                    image_bytes: reported.image_bytes,
                    image_error: reported.image_error,
                })
            })
            .collect();
        let report = self.member.scheduling.function(name).unwrap_or_default();
        let clock = self.member.cron_clock;
        let last_fired_ms = self.member.state.read(|a| {
            a.cluster
                .schedules
                .get(name)
                .and_then(|s| s.last_fired_ms)
                .map_or(0, |t| clock.to_wall(t))
        });
        let next_run_ms = crate::cron::next_run_ms(clock, name, &record.spec.schedule, now_millis()).unwrap_or(0);
        let queue = match self.member.queue_depths.read(name) {
            (Some(depth), _) => pb::QueueStatus {
                known: true,
                queued: depth.queued,
                in_flight: depth.in_flight,
                oldest_age_ms: depth.oldest_age.map_or(0, |a| a.as_millis() as u64),
                error: String::new(),
            },
            (None, error) => pb::QueueStatus {
                error: error.unwrap_or_default(),
                ..Default::default()
            },
        };
        let desired = if report.decisions.is_empty() {
            placed.values().sum()
        } else {
            report.desired
        };
        pb::FunctionStatus {
            record: Some(record_pb),
            instances,
            desired,
            pending: report
                .pending
                .into_iter()
                .map(|p| pb::PendingInstances {
                    instances: p.instances,
                    reason: p.reason,
                })
                .collect(),
            decisions: report
                .decisions
                .into_iter()
                .map(|d| pb::ScalingDecision {
                    at_ms: d.at_ms,
                    from: d.from,
                    to: d.to,
                    reason: d.reason,
                    stable_concurrency: d.stable_concurrency,
                    panic_concurrency: d.panic_concurrency,
                })
                .collect(),
            next_run_ms,
            last_fired_ms,
            queue: Some(queue),
        }
    }

    fn node_status(&self, node: &crate::state::RegisteredNode) -> pb::NodeStatus {
        let (load, ago) = self.member.liveness.last_report(&node.info.id).unwrap_or_default();
        let placed = self.member.state.read(|a| {
            a.cluster
                .placements
                .iter()
                .filter_map(|(function, by_node)| Some((function.clone(), *by_node.get(&node.info.id)?)))
                .collect()
        });
        pb::NodeStatus {
            info: Some((&node.info).into()),
            state: node.state.as_str().into(),
            registered_at_ms: node.registered_at_ms,
            last_heartbeat_ms_ago: ago.as_millis() as u64,
            in_flight: load.in_flight,
            reserved_memory_mib: load.reserved_memory_mib,
            functions: load
                .functions
                .iter()
                .map(|(name, f)| pb::FunctionLoad::from((name.as_str(), f)))
                .collect(),
            placed,
        }
    }

    /// Resolves the spec's image tag to a digest through a docker node (the function's home node
    /// first) and pins the spec to it; returns the reference as given. A registry refusal
    /// fails the deploy naming the image and the registry's reason.
    async fn pin_image(&self, spec: &mut FunctionSpec) -> Result<String, ControlPlaneError> {
        if spec.image.is_empty() || crate::images::is_pinned(&spec.image) {
            return Ok(String::new());
        }
        let nodes: Vec<(String, String)> = self.member.state.read(|a| {
            a.cluster
                .nodes
                .values()
                .filter(|n| n.state == NodeState::Ready && n.info.runtime == "docker")
                .map(|n| (n.info.id.clone(), n.info.invoke_addr.clone()))
                .collect()
        });
        let mut nodes: Vec<(String, String)> = nodes
            .into_iter()
            .filter(|(id, _)| self.member.liveness.is_alive(id))
            .collect();
        let ids: Vec<String> = nodes.iter().map(|(id, _)| id.clone()).collect();
        let order = fjord_core::preference_order(&spec.name, &ids);
        nodes = order.into_iter().map(|i| nodes[i].clone()).collect();
        if nodes.is_empty() {
            return Err(ControlPlaneError::InvalidSpec {
                field: "image".into(),
                reason: format!(
                    "{:?} cannot be resolved to a digest: no ready node runs the docker runtime. Start one                      (fjord-node-agent --runtime docker), or deploy a pinned reference (image@sha256:...)",
                    spec.image
                ),
            });
        }
        match self.images.resolve(&spec.image, &nodes).await {
            Ok(resolved) => {
                tracing::info!(image = %spec.image, digest = %resolved.digest, "image resolved for deploy");
                Ok(std::mem::replace(&mut spec.image, resolved.pinned))
            }
            Err(crate::images::ResolveError::Registry(reason)) => Err(ControlPlaneError::InvalidSpec {
                field: "image".into(),
                reason: format!("{:?} could not be resolved: {reason}", spec.image),
            }),
            Err(e) => Err(ControlPlaneError::Unavailable(format!(
                "resolving image {:?} to a digest: {e}",
                spec.image
            ))),
        }
    }

    fn get_record(&self, name: &str) -> Result<FunctionRecord, ControlPlaneError> {
        self.member
            .state
            .read(|a| a.cluster.functions.get(name).cloned())
            .ok_or_else(|| ControlPlaneError::FunctionNotFound(name.to_string()))
    }

    fn cluster_status(&self) -> pb::ClusterStatus {
        let metrics = self.member.raft.metrics().borrow().clone();
        let leader = metrics.current_leader;
        let members = metrics
            .membership_config
            .nodes()
            .map(|(id, node)| {
                let role = if Some(*id) == leader {
                    "leader"
                } else if *id == self.member.id && metrics.state == ServerState::Candidate {
                    "candidate"
                } else if metrics.membership_config.voter_ids().any(|v| v == *id) {
                    "follower"
                } else {
                    "learner"
                };
                pb::Member {
                    id: *id,
                    addr: node.addr.clone(),
                    role: role.into(),
                }
            })
            .collect();
        let (functions, nodes): (u32, Vec<(String, NodeState)>) = self.member.state.read(|a| {
            (
                a.cluster.functions.len() as u32,
                a.cluster.nodes.values().map(|n| (n.info.id.clone(), n.state)).collect(),
            )
        });
        let ready = nodes.iter().filter(|(_, state)| *state == NodeState::Ready).count() as u32;
        pb::ClusterStatus {
            this_member: self.member.id,
            leader_id: leader,
            term: metrics.current_term,
            commit_index: self.member.log.committed_index(),
            applied_index: metrics.last_applied.map(|l| l.index),
            members,
            functions,
            nodes_ready: ready,
            nodes_total: nodes.len() as u32,
            snapshot_index: metrics.snapshot.map(|l| l.index),
            purged_index: metrics.purged.map(|l| l.index),
        }
    }

    /// Whether the member at `addr` answers a status call within a second.
    async fn answers(&self, id: MemberId, addr: &str) -> bool {
        if id == self.member.id {
            return true;
        }
        let Ok(channel) = member_channel(addr) else {
            return false;
        };
        let mut request = Request::new(pb::StatusRequest {});
        request.set_timeout(Duration::from_secs(1));
        self.member.token.attach(&mut request);
        tokio::time::timeout(Duration::from_secs(1), AdminClient::new(channel).status(request))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

fn result_to_record(result: CommandResult) -> Result<FunctionRecord, ControlPlaneError> {
    match result {
        CommandResult::Deployed { record, .. } | CommandResult::Scaled { record } => Ok(record),
        CommandResult::NotFound { name } => Err(ControlPlaneError::FunctionNotFound(name)),
        CommandResult::Invalid { field, reason } => Err(ControlPlaneError::InvalidSpec { field, reason }),
        other => Err(ControlPlaneError::Internal(format!("unexpected result {other:?}"))),
    }
}

fn membership_error(e: impl std::fmt::Display) -> ControlPlaneError {
    ControlPlaneError::Membership(e.to_string())
}

/// openraft's refusal of a change while another is uncommitted, in the same words as ours.
fn change_error(e: RaftError<MemberId, ClientWriteError<MemberId, BasicNode>>) -> ControlPlaneError {
    match e {
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(p))) => {
            membership_error(format!(
                "another membership change is in progress (log {:?} is not committed yet); retry when it is done",
                p.membership_log_id.map(|l| l.index)
            ))
        }
        other => membership_error(other),
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn deploy(&self, request: Request<pb::DeployRequest>) -> Result<Response<pb::FunctionStatus>, Status> {
        forward_to_leader!(self, request, deploy);
        let request = request.into_inner();
        let spec_pb = request
            .spec
            .ok_or_else(|| ControlPlaneError::InvalidRequest("the deploy request has no spec".into()))?;
        let spec_error = |e| match e {
            fjord_core::SpecError::Field { field, reason } => ControlPlaneError::InvalidSpec { field, reason },
            fjord_core::SpecError::Parse(reason) => ControlPlaneError::InvalidRequest(reason),
        };
        let mut spec = FunctionSpec::try_from(spec_pb).map_err(spec_error)?;
        // Inline secret values are only kept for functions stored before named secrets.
        spec.check_deployable().map_err(spec_error)?;
        if !request.defaulted.is_empty() {
            // Fields the user's fjord.yaml left out take the cluster policy's defaults.
            let defaults = self.member.state.read(|a| a.cluster.policy.defaults.clone());
            defaults.apply(&mut spec, &request.defaulted).map_err(spec_error)?;
            spec.validate().map_err(spec_error)?;
        }
        let image_ref = self.pin_image(&mut spec).await?;
        let result = self
            .member
            .write(Command::Deploy {
                spec,
                now_ms: now_millis(),
                image_ref,
            })
            .await?;
        let record = result_to_record(result)?;
        Ok(Response::new(self.function_status(&record)))
    }

    async fn get_function(
        &self,
        request: Request<pb::GetFunctionRequest>,
    ) -> Result<Response<pb::FunctionStatus>, Status> {
        forward_to_leader!(self, request, get_function);
        self.member.linearizable().await?;
        let record = self.get_record(&request.into_inner().name)?;
        Ok(Response::new(self.function_status(&record)))
    }

    async fn list_functions(
        &self,
        request: Request<pb::ListFunctionsRequest>,
    ) -> Result<Response<pb::ListFunctionsResponse>, Status> {
        forward_to_leader!(self, request, list_functions);
        let req = request.into_inner();
        let page = Page::parse(
            "functions",
            &[&req.name_prefix, &req.label_selector],
            req.page_size,
            &req.page_token,
        )?;
        let selector = LabelSelector::parse(&req.label_selector)?;
        self.member.linearizable().await?;
        let (records, next_page_token): (Vec<FunctionRecord>, String) = self.member.state.read(|a| {
            let (records, next) = page.take(&a.cluster.functions, |name, record| {
                name.starts_with(&req.name_prefix) && selector.matches(&record.spec.labels)
            });
            (records.into_iter().map(|(_, r)| r.clone()).collect(), next)
        });
        let functions = records.iter().map(|r| self.function_status(r)).collect();
        Ok(Response::new(pb::ListFunctionsResponse {
            functions,
            next_page_token,
        }))
    }

    async fn remove_function(
        &self,
        request: Request<pb::RemoveFunctionRequest>,
    ) -> Result<Response<pb::RemoveFunctionResponse>, Status> {
        forward_to_leader!(self, request, remove_function);
        let name = request.into_inner().name;
        match self.member.write(Command::Remove { name }).await? {
            CommandResult::Removed { revision } => Ok(Response::new(pb::RemoveFunctionResponse { revision })),
            CommandResult::NotFound { name } => Err(ControlPlaneError::FunctionNotFound(name).into()),
            other => Err(ControlPlaneError::Internal(format!("unexpected result {other:?}")).into()),
        }
    }

    async fn scale(&self, request: Request<pb::ScaleRequest>) -> Result<Response<pb::FunctionStatus>, Status> {
        forward_to_leader!(self, request, scale);
        let req = request.into_inner();
        if req.min_instances.is_none() && req.max_instances.is_none() {
            return Err(ControlPlaneError::InvalidRequest("give --min, --max or both".into()).into());
        }
        let command = Command::Scale {
            name: req.name,
            min: req.min_instances,
            max: req.max_instances,
            now_ms: now_millis(),
        };
        let record = result_to_record(self.member.write(command).await?)?;
        Ok(Response::new(self.function_status(&record)))
    }

    async fn list_nodes(
        &self,
        request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        forward_to_leader!(self, request, list_nodes);
        let req = request.into_inner();
        let page = Page::parse("nodes", &[&req.name_prefix], req.page_size, &req.page_token)?;
        let first_page = page.is_first();
        let (nodes, next_page_token, policies, records): (Vec<_>, String, Vec<_>, BTreeMap<_, _>) =
            self.member.state.read(|a| {
                let (nodes, next) = page.take(&a.cluster.nodes, |id, _| id.starts_with(&req.name_prefix));
                (
                    nodes.into_iter().map(|(_, n)| n.clone()).collect(),
                    next,
                    if first_page {
                        a.cluster.policy.node_groups.clone()
                    } else {
                        Vec::new()
                    },
                    a.cluster.node_groups.clone(),
                )
            });
        let nodes = nodes.iter().map(|node| self.node_status(node)).collect();
        let reports = self.member.node_groups.all();
        let groups = policies
            .iter()
            .map(|policy| {
                let report = reports.get(&policy.name).cloned().unwrap_or_default();
                let record = records.get(&policy.name).cloned().unwrap_or_default();
                pb::NodeGroupStatus {
                    name: policy.name.clone(),
                    provider: policy.provider.as_str().into(),
                    min_nodes: policy.min_nodes,
                    max_nodes: policy.max_nodes,
                    desired: report.desired,
                    instances: report.instances,
                    nodes: report.nodes,
                    status: if report.status.is_empty() {
                        "not looked at yet".into()
                    } else {
                        report.status
                    },
                    decisions: record
                        .decisions
                        .into_iter()
                        .map(|(at_ms, action, reason)| pb::NodeGroupDecision { at_ms, action, reason })
                        .collect(),
                }
            })
            .collect();
        Ok(Response::new(pb::ListNodesResponse {
            nodes,
            groups,
            next_page_token,
        }))
    }

    async fn drain_node(&self, request: Request<pb::DrainNodeRequest>) -> Result<Response<pb::NodeStatus>, Status> {
        forward_to_leader!(self, request, drain_node);
        let request = request.into_inner();
        let current = self
            .member
            .state
            .read(|a| a.cluster.nodes.get(&request.id).map(|n| n.state))
            .ok_or_else(|| ControlPlaneError::NodeNotFound(request.id.clone()))?;
        let next = match (request.undrain, current) {
            (false, NodeState::Down) => {
                return Err(ControlPlaneError::InvalidRequest(format!(
                    "node {:?} is down: its instances are already placed elsewhere; nothing to drain",
                    request.id
                ))
                .into())
            }
            (false, NodeState::Draining | NodeState::Drained) => current,
            (false, NodeState::Ready) => NodeState::Draining,
            (true, NodeState::Draining | NodeState::Drained) => NodeState::Ready,
            (true, _) => current,
        };
        if next != current {
            let command = Command::SetNodeState {
                id: request.id.clone(),
                state: next,
                term: self.member.term(),
            };
            match self.member.write(command).await? {
                CommandResult::Fenced { .. } => return Err(ControlPlaneError::NoLeader.into()),
                CommandResult::NotFound { name } => return Err(ControlPlaneError::NodeNotFound(name).into()),
                _ => tracing::info!(node = %request.id, state = next.as_str(), "node state set by an operator"),
            }
        }
        let node = self
            .member
            .state
            .read(|a| a.cluster.nodes.get(&request.id).cloned())
            .ok_or_else(|| ControlPlaneError::NodeNotFound(request.id.clone()))?;
        Ok(Response::new(self.node_status(&node)))
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::RemoveNodeResponse>, Status> {
        forward_to_leader!(self, request, remove_node);
        let id = request.into_inner().id;
        if self.member.liveness.heard_recently(&id) {
            return Err(ControlPlaneError::InvalidRequest(format!(
                "node {id:?} still heartbeats: stop its agent first (a running agent registers it again)"
            ))
            .into());
        }
        match self.member.write(Command::RemoveNode { id: id.clone() }).await? {
            CommandResult::NodeRemoved => {
                tracing::info!(node = %id, "node removed by an operator");
                Ok(Response::new(pb::RemoveNodeResponse {}))
            }
            CommandResult::NotFound { name } => Err(ControlPlaneError::NodeNotFound(name).into()),
            CommandResult::Invalid { reason, .. } => Err(ControlPlaneError::InvalidRequest(reason).into()),
            other => Err(ControlPlaneError::InvalidRequest(format!(
                "removing node {id:?}: unexpected answer {other:?}"
            ))
            .into()),
        }
    }

    async fn apply_policy(&self, request: Request<pb::Policy>) -> Result<Response<pb::Policy>, Status> {
        forward_to_leader!(self, request, apply_policy);
        let policy = fjord_decisions::policy::ClusterPolicy::from_yaml(&request.into_inner().yaml)
            .map_err(|e| ControlPlaneError::InvalidPolicy(e.to_string()))?;
        match self.member.write(Command::SetPolicy { policy }).await? {
            CommandResult::Invalid { field, reason } => {
                return Err(
                    ControlPlaneError::InvalidPolicy(format!("invalid policy: field `{field}` {reason}")).into(),
                )
            }
            _ => tracing::info!("cluster policy applied"),
        }
        let yaml = self.member.state.read(|a| a.cluster.policy.to_yaml());
        Ok(Response::new(pb::Policy { yaml }))
    }

    async fn get_policy(&self, request: Request<pb::GetPolicyRequest>) -> Result<Response<pb::Policy>, Status> {
        forward_to_leader!(self, request, get_policy);
        self.member.linearizable().await?;
        let yaml = self.member.state.read(|a| a.cluster.policy.to_yaml());
        Ok(Response::new(pb::Policy { yaml }))
    }

    async fn list_calls(
        &self,
        request: Request<pb::ListCallsRequest>,
    ) -> Result<Response<pb::ListCallsResponse>, Status> {
        Ok(Response::new(
            crate::calls::list(&self.member, request.into_inner()).await?,
        ))
    }

    async fn get_call(&self, request: Request<pb::CallRequest>) -> Result<Response<pb::Call>, Status> {
        Ok(Response::new(
            crate::calls::get(&self.member, &request.into_inner().id).await?,
        ))
    }

    async fn retry_call(&self, request: Request<pb::CallRequest>) -> Result<Response<pb::Call>, Status> {
        Ok(Response::new(
            crate::calls::retry(&self.member, &request.into_inner().id).await?,
        ))
    }

    async fn cancel_call(&self, request: Request<pb::CallRequest>) -> Result<Response<pb::Call>, Status> {
        Ok(Response::new(
            crate::calls::cancel(&self.member, &request.into_inner().id).await?,
        ))
    }

    async fn put_secret(&self, request: Request<pb::PutSecretRequest>) -> Result<Response<pb::SecretInfo>, Status> {
        forward_to_leader!(self, request, put_secret);
        let req = request.into_inner();
        fjord_core::secret::check_name(&req.name)
            .map_err(|r| ControlPlaneError::InvalidRequest(format!("secret name {r}")))?;
        fjord_core::secret::check_value(&req.value)
            .map_err(|r| ControlPlaneError::InvalidRequest(format!("the value of secret {:?} {r}", req.name)))?;
        let mode = match pb::put_secret_request::Mode::try_from(req.mode) {
            Ok(pb::put_secret_request::Mode::Create) => PutMode::Create,
            Ok(pb::put_secret_request::Mode::Update) => PutMode::Update,
            Ok(pb::put_secret_request::Mode::Upsert) => PutMode::Upsert,
            Err(_) => return Err(ControlPlaneError::InvalidRequest(format!("unknown mode {}", req.mode)).into()),
        };
        let key = self.member.secrets_key.clone().ok_or(ControlPlaneError::NoSecretsKey)?;
        let sealed = key.seal(&req.name, &req.value);
        let command = Command::PutSecret {
            name: req.name.clone(),
            sealed,
            mode,
            now_ms: now_millis(),
        };
        match self.member.write(command).await? {
            CommandResult::SecretStored { .. } => Ok(Response::new(self.secret_info(&req.name)?)),
            CommandResult::SecretExists { name } => Err(ControlPlaneError::SecretExists(name).into()),
            CommandResult::SecretNotFound { name } => Err(ControlPlaneError::SecretNotFound(name).into()),
            CommandResult::Invalid { reason, .. } => {
                Err(ControlPlaneError::InvalidRequest(format!("secret name {reason}")).into())
            }
            other => Err(ControlPlaneError::Internal(format!("unexpected result {other:?}")).into()),
        }
    }

    async fn list_secrets(
        &self,
        request: Request<pb::ListSecretsRequest>,
    ) -> Result<Response<pb::ListSecretsResponse>, Status> {
        forward_to_leader!(self, request, list_secrets);
        let req = request.into_inner();
        let page = Page::parse("secrets", &[&req.name_prefix], req.page_size, &req.page_token)?;
        self.member.linearizable().await?;
        let (names, next_page_token): (Vec<String>, String) = self.member.state.read(|a| {
            let (page, next) = page.take(&a.cluster.secrets, |name, _| name.starts_with(&req.name_prefix));
            (page.into_iter().map(|(name, _)| name.to_string()).collect(), next)
        });
        let secrets = names
            .iter()
            .map(|name| self.secret_info(name))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(pb::ListSecretsResponse {
            secrets,
            next_page_token,
        }))
    }

    async fn remove_secret(
        &self,
        request: Request<pb::RemoveSecretRequest>,
    ) -> Result<Response<pb::RemoveSecretResponse>, Status> {
        forward_to_leader!(self, request, remove_secret);
        let name = request.into_inner().name;
        match self.member.write(Command::RemoveSecret { name }).await? {
            CommandResult::SecretRemoved => Ok(Response::new(pb::RemoveSecretResponse {})),
            CommandResult::SecretNotFound { name } => Err(ControlPlaneError::SecretNotFound(name).into()),
            CommandResult::SecretInUse { name, by } => Err(ControlPlaneError::SecretInUse { name, by }.into()),
            other => Err(ControlPlaneError::Internal(format!("unexpected result {other:?}")).into()),
        }
    }

    type WatchStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::ChangeEvent, Status>> + Send>>;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let include_existing = request.into_inner().include_existing;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(crate::change_watch::run(
            self.member.clone(),
            include_existing,
            tx,
            self.stopping.clone(),
        ));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn status(&self, _request: Request<pb::StatusRequest>) -> Result<Response<pb::ClusterStatus>, Status> {
        Ok(Response::new(self.cluster_status()))
    }

    async fn logs(&self, request: Request<pb::LogsRequest>) -> Result<Response<pb::LogsResponse>, Status> {
        let req = request.into_inner();
        self.get_record(&req.name)?;
        let nodes: Vec<(String, String)> = self.member.state.read(|a| {
            a.cluster
                .nodes
                .values()
                .map(|n| (n.info.id.clone(), n.info.invoke_addr.clone()))
                .collect()
        });
        let tail = if req.tail == 0 { 100 } else { req.tail.min(10_000) };
        Ok(Response::new(self.logs.collect(&req.name, tail, nodes).await))
    }

    async fn add_member(&self, request: Request<pb::AddMemberRequest>) -> Result<Response<pb::ClusterStatus>, Status> {
        forward_to_leader!(self, request, add_member);
        let pb::AddMemberRequest { id, addr } = request.into_inner();
        if id == 0 {
            return Err(membership_error("member ids start at 1").into());
        }
        if self.member.state.read(|a| a.cluster.retired_members.contains(&id)) {
            return Err(membership_error(format!(
                "id {id} belonged to a removed member and is never reused; pick a new id"
            ))
            .into());
        }
        let membership = self.member.raft.metrics().borrow().membership_config.clone();
        if membership.nodes().any(|(m, _)| *m == id) {
            return Err(membership_error(format!("member {id} is already in the cluster")).into());
        }
        if !addr.contains(':') {
            return Err(membership_error(format!("address {addr:?} is not host:port")).into());
        }
        if !self.answers(id, &addr).await {
            return Err(membership_error(format!(
                "member {id} at {addr} does not answer; start it first (fjord-control-plane --id {id}, without --bootstrap)"
            ))
            .into());
        }
        let _change = self
            .member
            .membership_change
            .try_lock()
            .map_err(|_| membership_error("another membership change is in progress; retry when it is done"))?;
        let node = BasicNode { addr };
        tokio::time::timeout(Duration::from_secs(60), self.member.raft.add_learner(id, node, true))
            .await
            .map_err(|_| membership_error(format!("member {id} did not catch up within 60s")))?
            .map_err(change_error)?;
        self.member
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(change_error)?;
        Ok(Response::new(self.cluster_status()))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        forward_to_leader!(self, request, remove_member);
        let id = request.into_inner().id;
        let membership = self.member.raft.metrics().borrow().membership_config.clone();
        let Some((_, node)) = membership.nodes().find(|(m, _)| **m == id) else {
            let known: Vec<String> = membership.nodes().map(|(m, _)| m.to_string()).collect();
            return Err(membership_error(format!("no member {id}; members are {}", known.join(", "))).into());
        };
        let _ = node;
        let voters: BTreeSet<MemberId> = membership.voter_ids().collect();
        let remaining: Vec<(MemberId, String)> = membership
            .nodes()
            .filter(|(m, _)| voters.contains(m) && **m != id)
            .map(|(m, n)| (*m, n.addr.clone()))
            .collect();
        if voters.contains(&id) {
            if remaining.is_empty() {
                return Err(membership_error("cannot remove the last voter").into());
            }
            let mut reachable = 0;
            for (m, addr) in &remaining {
                if self.answers(*m, addr).await {
                    reachable += 1;
                }
            }
            let majority = remaining.len() / 2 + 1;
            if reachable < majority {
                return Err(membership_error(format!(
                    "removing member {id} would leave {reachable} reachable of {} voters, fewer than the {majority} a quorum needs",
                    remaining.len()
                ))
                .into());
            }
        }
        let _change = self
            .member
            .membership_change
            .try_lock()
            .map_err(|_| membership_error("another membership change is in progress; retry when it is done"))?;
        self.member.write(Command::RetireMember { id }).await?;
        let change = if voters.contains(&id) {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.member
            .raft
            .change_membership(change, false)
            .await
            .map_err(change_error)?;
        Ok(Response::new(self.cluster_status()))
    }
}
