//! `/system/functions`, `/system/function/{name}` and `/system/scale-function/{name}`.
//!
//! POST creates and is refused (409) for a function that exists; PUT updates and is refused
//! (404) for one that does not (faas-cli deploy tries PUT, then POST on 404). Both answer with
//! the translation's notices, one `warning: KEY: MESSAGE` line each.
//!
//! Scale: OpenFaaS's `replicas` is a desired count. Fjord's Admin `Scale` sets the floor and
//! the ceiling, so `replicas: N` sets `min` to N (N instances kept warm, 0 allowed: the function
//! then scales to zero when idle and a call starts it again) and raises `max` to N if it was
//! lower, leaving the autoscaler to add instances under load up to `max`, as OpenFaaS's does.

use super::auth::Credentials;
use super::{json, read_json, text, Gateway};
use crate::error::ProxyError;
use fjord_core::FunctionSpec;
use fjord_daemon::HttpBody;
use fjord_openfaas::gateway::status::Replicas;
use fjord_openfaas::gateway::{DeleteFunctionRequest, FunctionDeployment, FunctionStatus, ScaleServiceRequest};
use fjord_proto::v1 as pb;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

/// A list page's size.
pub(super) const PAGE_SIZE: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Write {
    Create,
    Update,
}

impl Gateway {
    pub(super) async fn list_functions(&self, credentials: &Credentials) -> Result<Response<HttpBody>, ProxyError> {
        let statuses = self
            .control_plane
            .all_pages(credentials, |mut admin, page_token| async move {
                let request = pb::ListFunctionsRequest {
                    page_size: PAGE_SIZE,
                    page_token,
                    ..Default::default()
                };
                let page = admin.list_functions(request).await?.into_inner();
                Ok((page.functions, page.next_page_token))
            })
            .await?;
        let functions = statuses
            .iter()
            .map(|status| self.status_of(status))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(json(StatusCode::OK, &functions))
    }

    pub(super) async fn function(
        &self,
        credentials: &Credentials,
        name: &str,
    ) -> Result<Response<HttpBody>, ProxyError> {
        let status = self.get(credentials, name).await?;
        Ok(json(StatusCode::OK, &self.status_of(&status)?))
    }

    pub(super) async fn deploy(
        &self,
        credentials: &Credentials,
        request: Request<Incoming>,
        write: Write,
    ) -> Result<Response<HttpBody>, ProxyError> {
        let (deployment, unknown): (FunctionDeployment, _) = read_json(request, "FunctionDeployment").await?;
        let function = Some(deployment.service.clone()).filter(|s| !s.is_empty());
        let translation = deployment.translate(&unknown).map_err(|e| ProxyError::BadBody {
            function: function.clone(),
            reason: e.to_string(),
        })?;
        let name = translation.spec.name.clone();
        let exists = match self.get(credentials, &name).await {
            Ok(_) => true,
            Err(ProxyError::ControlPlane {
                code: tonic::Code::NotFound,
                ..
            }) => false,
            Err(e) => return Err(e),
        };
        let refuse = |code, message: String| ProxyError::ControlPlane {
            code,
            message,
            function: Some(name.clone()),
        };
        match (write, exists) {
            (Write::Create, true) => {
                return Err(refuse(
                    tonic::Code::AlreadyExists,
                    format!("function {name:?} is already deployed: update it with PUT /system/functions"),
                ))
            }
            (Write::Update, false) => {
                return Err(refuse(
                    tonic::Code::NotFound,
                    format!("function {name:?} is not deployed: create it with POST /system/functions"),
                ))
            }
            _ => {}
        }
        let request = pb::DeployRequest {
            spec: Some(pb::FunctionSpec::from(&translation.spec)),
            defaulted: translation.defaulted_fields(),
        };
        self.control_plane
            .call(credentials, Some(&name), |mut admin| {
                let request = request.clone();
                async move { admin.deploy(request).await }
            })
            .await?;
        let mut body = String::new();
        for notice in &translation.notices {
            tracing::info!(function = %name, %notice, "gateway deploy: not honoured");
            body.push_str(&format!("warning: {notice}\n"));
        }
        let status = match write {
            Write::Create => StatusCode::ACCEPTED,
            Write::Update => StatusCode::OK,
        };
        Ok(text(status, body))
    }

    pub(super) async fn remove_function(
        &self,
        credentials: &Credentials,
        request: Request<Incoming>,
    ) -> Result<Response<HttpBody>, ProxyError> {
        let (delete, _): (DeleteFunctionRequest, _) = read_json(request, "DeleteFunctionRequest").await?;
        let name = delete.function_name.trim().to_string();
        if name.is_empty() {
            return Err(ProxyError::BadBody {
                function: None,
                reason: "functionName: give the name of the function to remove".into(),
            });
        }
        self.control_plane
            .call(credentials, Some(&name), |mut admin| {
                let request = pb::RemoveFunctionRequest { name: name.clone() };
                async move { admin.remove_function(request).await }
            })
            .await?;
        Ok(text(StatusCode::OK, String::new()))
    }

    pub(super) async fn scale(
        &self,
        credentials: &Credentials,
        name: &str,
        request: Request<Incoming>,
    ) -> Result<Response<HttpBody>, ProxyError> {
        let (scale, _): (ScaleServiceRequest, _) = read_json(request, "ScaleServiceRequest").await?;
        let bad = |reason: String| ProxyError::BadBody {
            function: Some(name.to_string()),
            reason,
        };
        if !scale.service_name.is_empty() && scale.service_name != name {
            return Err(bad(format!(
                "serviceName: {:?} is not the function of the path, {name:?}",
                scale.service_name
            )));
        }
        let replicas = u32::try_from(scale.replicas)
            .map_err(|_| bad(format!("replicas: {} is more than {}", scale.replicas, u32::MAX)))?;
        let current = self.get(credentials, name).await?;
        let max = current
            .record
            .as_ref()
            .and_then(|r| r.spec.as_ref())
            .map_or(0, |s| s.max_instances);
        let request = pb::ScaleRequest {
            name: name.to_string(),
            min_instances: Some(replicas),
            max_instances: Some(max.max(replicas)),
        };
        self.control_plane
            .call(credentials, Some(name), |mut admin| {
                let request = request.clone();
                async move { admin.scale(request).await }
            })
            .await?;
        Ok(text(StatusCode::ACCEPTED, String::new()))
    }

    async fn get(&self, credentials: &Credentials, name: &str) -> Result<pb::FunctionStatus, ProxyError> {
        self.control_plane
            .call(credentials, Some(name), |mut admin| {
                let request = pb::GetFunctionRequest { name: name.to_string() };
                async move { admin.get_function(request).await }
            })
            .await
    }

    /// A control plane's function status as OpenFaaS's, with this lb's count of its calls.
    fn status_of(&self, status: &pb::FunctionStatus) -> Result<FunctionStatus, ProxyError> {
        let broken = |why: String| ProxyError::ControlPlane {
            code: tonic::Code::Internal,
            message: format!("the control plane's answer cannot be read: {why}"),
            function: None,
        };
        let record = status
            .record
            .as_ref()
            .ok_or_else(|| broken("a function without its record".into()))?;
        let spec = record
            .spec
            .clone()
            .ok_or_else(|| broken("a record without its spec".into()))?;
        let spec = FunctionSpec::try_from(spec).map_err(|e| broken(e.to_string()))?;
        let replicas = Replicas {
            desired: u64::from(status.desired),
            available: status.instances.iter().map(|i| u64::from(i.ready)).sum(),
            invocations: self.proxy.metrics.requests_of(&spec.name),
        };
        Ok(FunctionStatus::of(
            &spec,
            &record.image_ref,
            replicas,
            record.created_at_ms,
        ))
    }
}
