//! The control plane's Admin API as the gateway calls it: one lazily connected channel per
//! `--control-plane` member, each call carrying the caller's own token, and the next member
//! tried when one is unavailable (down, or without a leader), as the route watch does.

use super::auth::Credentials;
use crate::error::ProxyError;
use fjord_proto::v1::admin_client::AdminClient;
use std::future::Future;
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Largest Admin answer read (a list page of 1000 functions).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// An Admin client that sends one caller's token.
pub type Admin = AdminClient<InterceptedService<Channel, Bearer>>;

/// Adds the caller's `authorization` to every request of a client.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub struct ControlPlane {
    members: Vec<(String, Channel)>,
}

impl ControlPlane {
    /// Channels to `endpoints` (`http://host:port`); nothing is connected until a call.
    pub fn new(endpoints: &[String]) -> Result<ControlPlane, String> {
        let members = endpoints
            .iter()
            .map(|endpoint| {
                let channel = Endpoint::from_shared(endpoint.clone())
                    .map_err(|e| format!("--control-plane {endpoint}: {e}"))?
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(30))
                    .tcp_nodelay(true)
                    .connect_lazy();
                Ok((endpoint.clone(), channel))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ControlPlane { members })
    }

    /// Runs `rpc` against the first member that is available, as the caller. Any other refusal
    /// is the answer; `function` is named in the error.
    pub async fn call<T, F, Fut>(
        &self,
        credentials: &Credentials,
        function: Option<&str>,
        rpc: F,
    ) -> Result<T, ProxyError>
    where
        F: Fn(Admin) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut last = tonic::Status::unavailable("no --control-plane address");
        for (endpoint, channel) in &self.members {
            let admin = AdminClient::with_interceptor(channel.clone(), Bearer(credentials.bearer.clone()))
                .max_decoding_message_size(MAX_ANSWER_BYTES);
            match rpc(admin).await {
                Ok(answer) => return Ok(answer.into_inner()),
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    tracing::warn!(control_plane = %endpoint, error = %status.message(), "gateway: member unavailable, trying the next");
                    last = status;
                }
                Err(status) => return Err(ProxyError::from_status(&status, function)),
            }
        }
        Err(ProxyError::from_status(&last, function))
    }

    /// Every item of an Admin list, page after page: `page` asks for the page after `token`
    /// ("" for the first) and answers its items and the next token ("" after the last).
    pub async fn all_pages<T, F, Fut>(&self, credentials: &Credentials, page: F) -> Result<Vec<T>, ProxyError>
    where
        F: Fn(Admin, String) -> Fut,
        Fut: Future<Output = Result<(Vec<T>, String), tonic::Status>>,
    {
        let mut items = Vec::new();
        let mut token = String::new();
        loop {
            let (more, next) = self
                .call(credentials, None, |admin| {
                    let answer = page(admin, token.clone());
                    async move { answer.await.map(tonic::Response::new) }
                })
                .await?;
            items.extend(more);
            if next.is_empty() {
                return Ok(items);
            }
            token = next;
        }
    }
}
