//! The Admin gRPC service: what the CLI calls.

use crate::error::ControlPlaneError;
use crate::member::Member;
use crate::raft_types::{Command, CommandResult};
use crate::state_machine::now_millis;
use fjord_core::{FunctionRecord, FunctionSpec};
use fjord_proto::v1 as pb;
use openraft::ServerState;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct AdminService {
    pub member: Arc<Member>,
    pub logs: crate::logs::LogCollector,
}

impl AdminService {
    fn function_status(&self, record: &FunctionRecord) -> pb::FunctionStatus {
        let mut record_pb: pb::FunctionRecord = record.into();
        if let Some(spec) = record_pb.spec.as_mut() {
            // Secrets are write-only: their names are kept, their values never leave the store.
            for value in spec.secrets.values_mut() {
                *value = String::new();
            }
        }
        let node_ids: Vec<String> = self.member.state.read(|a| a.cluster.nodes.keys().cloned().collect());
        let instances = node_ids
            .into_iter()
            .filter_map(|node_id| {
                let (load, _) = self.member.liveness.last_report(&node_id)?;
                let f = load
                    .functions
                    .get(&record.spec.name)
                    .filter(|f| f.ready + f.starting > 0)?;
                Some(pb::NodeInstances {
                    node_id,
                    ready: f.ready,
                    busy: f.busy,
                    starting: f.starting,
                })
            })
            .collect();
        pb::FunctionStatus {
            record: Some(record_pb),
            instances,
        }
    }

    fn get_record(&self, name: &str) -> Result<FunctionRecord, ControlPlaneError> {
        self.member
            .state
            .read(|a| a.cluster.functions.get(name).cloned())
            .ok_or_else(|| ControlPlaneError::FunctionNotFound(name.to_string()))
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

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn deploy(&self, request: Request<pb::DeployRequest>) -> Result<Response<pb::FunctionStatus>, Status> {
        let spec_pb = request
            .into_inner()
            .spec
            .ok_or_else(|| ControlPlaneError::InvalidRequest("the deploy request has no spec".into()))?;
        let spec = FunctionSpec::try_from(spec_pb).map_err(|e| match e {
            fjord_core::SpecError::Field { field, reason } => ControlPlaneError::InvalidSpec { field, reason },
            fjord_core::SpecError::Parse(reason) => ControlPlaneError::InvalidRequest(reason),
        })?;
        let result = self
            .member
            .write(Command::Deploy {
                spec,
                now_ms: now_millis(),
            })
            .await?;
        let record = result_to_record(result)?;
        Ok(Response::new(self.function_status(&record)))
    }

    async fn get_function(
        &self,
        request: Request<pb::GetFunctionRequest>,
    ) -> Result<Response<pb::FunctionStatus>, Status> {
        let record = self.get_record(&request.into_inner().name)?;
        Ok(Response::new(self.function_status(&record)))
    }

    async fn list_functions(
        &self,
        _request: Request<pb::ListFunctionsRequest>,
    ) -> Result<Response<pb::ListFunctionsResponse>, Status> {
        let records: Vec<FunctionRecord> = self
            .member
            .state
            .read(|a| a.cluster.functions.values().cloned().collect());
        let functions = records.iter().map(|r| self.function_status(r)).collect();
        Ok(Response::new(pb::ListFunctionsResponse { functions }))
    }

    async fn remove_function(
        &self,
        request: Request<pb::RemoveFunctionRequest>,
    ) -> Result<Response<pb::RemoveFunctionResponse>, Status> {
        let name = request.into_inner().name;
        match self.member.write(Command::Remove { name }).await? {
            CommandResult::Removed { revision } => Ok(Response::new(pb::RemoveFunctionResponse { revision })),
            CommandResult::NotFound { name } => Err(ControlPlaneError::FunctionNotFound(name).into()),
            other => Err(ControlPlaneError::Internal(format!("unexpected result {other:?}")).into()),
        }
    }

    async fn scale(&self, request: Request<pb::ScaleRequest>) -> Result<Response<pb::FunctionStatus>, Status> {
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
        _request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        let nodes: Vec<_> = self.member.state.read(|a| a.cluster.nodes.values().cloned().collect());
        let nodes = nodes
            .into_iter()
            .map(|node| {
                let report = self.member.liveness.last_report(&node.info.id);
                let alive = self.member.liveness.is_alive(&node.info.id);
                let (load, ago) = report.unwrap_or_default();
                pb::NodeStatus {
                    info: Some((&node.info).into()),
                    state: if alive { "ready" } else { "down" }.into(),
                    registered_at_ms: node.registered_at_ms,
                    last_heartbeat_ms_ago: ago.as_millis() as u64,
                    in_flight: load.in_flight,
                    reserved_memory_mib: load.reserved_memory_mib,
                    functions: load
                        .functions
                        .iter()
                        .map(|(name, f)| pb::FunctionLoad {
                            name: name.clone(),
                            revision: f.revision,
                            ready: f.ready,
                            busy: f.busy,
                            starting: f.starting,
                            in_flight: f.in_flight,
                        })
                        .collect(),
                }
            })
            .collect();
        Ok(Response::new(pb::ListNodesResponse { nodes }))
    }

    async fn status(&self, _request: Request<pb::StatusRequest>) -> Result<Response<pb::ClusterStatus>, Status> {
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
        let (functions, node_ids): (u32, Vec<String>) = self.member.state.read(|a| {
            (
                a.cluster.functions.len() as u32,
                a.cluster.nodes.keys().cloned().collect(),
            )
        });
        let ready = node_ids.iter().filter(|id| self.member.liveness.is_alive(id)).count() as u32;
        Ok(Response::new(pb::ClusterStatus {
            this_member: self.member.id,
            leader_id: leader,
            term: metrics.current_term,
            commit_index: self.member.log.committed_index(),
            applied_index: metrics.last_applied.map(|l| l.index),
            members,
            functions,
            nodes_ready: ready,
            nodes_total: node_ids.len() as u32,
        }))
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
}
