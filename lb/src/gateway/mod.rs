//! The OpenFaaS gateway's REST API (`/system/*`) on the lb, so faas-cli, CI scripts and other
//! OpenFaaS clients work unchanged: functions (list, deploy, update, remove, one function's
//! status, scale), secrets, logs and info, each answered through the control plane's Admin API
//! with the caller's own token ([`auth`], [`control_plane`]). `/healthz` stays public and
//! `/function/{name}` is the lb's ordinary routing.
//!
//! The bodies are `fjord_openfaas::gateway`'s wire types, and a deployment is translated by the
//! same rules as a stack file's function. Every refusal is a [`ProxyError`], mapped to HTTP in
//! one place (a control plane's gRPC code included).

pub mod auth;
pub mod control_plane;
mod functions;
mod logs;
mod secrets;

use crate::error::ProxyError;
use crate::proxy::Proxy;
use auth::Credentials;
use bytes::Bytes;
use control_plane::ControlPlane;
use fjord_daemon::{full_body, HttpBody};
use fjord_openfaas::gateway::{parse_body, GatewayInfo, MAX_BODY_BYTES};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use std::sync::Arc;

pub struct Gateway {
    control_plane: Arc<ControlPlane>,
    proxy: Arc<Proxy>,
}

impl Gateway {
    pub fn new(endpoints: &[String], proxy: Arc<Proxy>) -> Result<Gateway, String> {
        Ok(Gateway {
            control_plane: Arc::new(ControlPlane::new(endpoints)?),
            proxy,
        })
    }

    /// Whether `path` is the gateway API's.
    pub fn owns(path: &str) -> bool {
        path == "/system" || path.starts_with("/system/")
    }

    pub async fn handle(&self, request: Request<Incoming>) -> Response<HttpBody> {
        self.route(request).await.unwrap_or_else(ProxyError::into_response)
    }

    async fn route(&self, request: Request<Incoming>) -> Result<Response<HttpBody>, ProxyError> {
        let credentials = auth::credentials(request.headers())?;
        let path = request.uri().path().to_string();
        let method = request.method().clone();
        let not_allowed = |allowed: &'static str| ProxyError::MethodNotAllowed {
            method: method.to_string(),
            path: path.clone(),
            allowed,
        };
        match path.as_str() {
            "/system/functions" => match method {
                Method::GET => self.list_functions(&credentials).await,
                Method::POST => self.deploy(&credentials, request, functions::Write::Create).await,
                Method::PUT => self.deploy(&credentials, request, functions::Write::Update).await,
                Method::DELETE => self.remove_function(&credentials, request).await,
                _ => Err(not_allowed("GET, POST, PUT, DELETE")),
            },
            "/system/secrets" => match method {
                Method::GET => self.list_secrets(&credentials).await,
                Method::POST => self.put_secret(&credentials, request, secrets::Write::Create).await,
                Method::PUT => self.put_secret(&credentials, request, secrets::Write::Update).await,
                Method::DELETE => self.remove_secret(&credentials, request).await,
                _ => Err(not_allowed("GET, POST, PUT, DELETE")),
            },
            "/system/logs" => match method {
                Method::GET => self.logs(&credentials, &request).await,
                _ => Err(not_allowed("GET")),
            },
            "/system/info" => match method {
                Method::GET => self.info(&credentials).await,
                _ => Err(not_allowed("GET")),
            },
            _ => {
                if let Some(name) = path.strip_prefix("/system/function/").filter(|n| !n.is_empty()) {
                    return match method {
                        Method::GET => self.function(&credentials, name).await,
                        _ => Err(not_allowed("GET")),
                    };
                }
                if let Some(name) = path.strip_prefix("/system/scale-function/").filter(|n| !n.is_empty()) {
                    return match method {
                        Method::POST => self.scale(&credentials, name, request).await,
                        _ => Err(not_allowed("POST")),
                    };
                }
                Err(ProxyError::NoSuchPath { path })
            }
        }
    }

    /// `GET /system/info`. The Admin `Status` call checks the credentials first.
    async fn info(&self, credentials: &Credentials) -> Result<Response<HttpBody>, ProxyError> {
        self.control_plane
            .call(credentials, None, |mut admin| async move {
                admin.status(fjord_proto::v1::StatusRequest {}).await
            })
            .await?;
        let info = GatewayInfo::fjord(env!("CARGO_PKG_VERSION"), std::env::consts::ARCH);
        Ok(json(StatusCode::OK, &info))
    }
}

/// Reads a body of at most [`MAX_BODY_BYTES`] and parses it as `T` (`what` names it).
async fn read_json<T: DeserializeOwned>(
    request: Request<Incoming>,
    what: &'static str,
) -> Result<(T, Vec<String>), ProxyError> {
    let body: Bytes = match Limited::new(request.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ProxyError::BodyTooLarge {
                function: None,
                limit_bytes: MAX_BODY_BYTES,
            })
        }
        Err(e) => {
            return Err(ProxyError::BadBody {
                function: None,
                reason: format!("reading the body failed: {e}"),
            })
        }
    };
    parse_body(what, &body).map_err(|e| ProxyError::BadBody {
        function: None,
        reason: e.to_string(),
    })
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<HttpBody> {
    let body = serde_json::to_vec(value).expect("the gateway's bodies serialize");
    let mut response = Response::new(full_body(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An answer with a plain-text body (empty for none).
fn text(status: StatusCode, body: String) -> Response<HttpBody> {
    let mut response = Response::new(full_body(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
