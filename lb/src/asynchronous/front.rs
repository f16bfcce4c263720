//! The asynchronous routes: `POST|PUT /async-function/{name}[/{rest}]` (enqueue, 202) and
//! `GET|DELETE /async-calls/{id}` (the call's record; cancel a queued call).
//!
//! A call is stored before it is acknowledged: 202 means JetStream wrote it. Refused (with
//! nothing stored): an unknown function (404), a body over the limit (413), a bad `X-Call-Id`
//! or `X-Callback-Url` (400), a queue that is full or unreachable (503).

use super::{passed_headers, AsyncSettings, QueueHandle};
use crate::error::ProxyError;
use crate::metrics::AsyncEvent;
use crate::proxy::Proxy;
use fjord_daemon::{full_body, HttpBody};
use fjord_events::contract::{self, http_headers as h};
use fjord_events::queue::{QueueError, QueuedCall};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::sync::Arc;

pub const ENQUEUE_PREFIX: &str = "/async-function/";
pub const CALLS_PREFIX: &str = "/async-calls/";

pub struct AsyncFront {
    pub proxy: Arc<Proxy>,
    pub queue: QueueHandle,
    pub settings: AsyncSettings,
}

impl AsyncFront {
    /// Whether `path` is one of the asynchronous routes.
    pub fn owns(path: &str) -> bool {
        path.starts_with(ENQUEUE_PREFIX) || path.starts_with(CALLS_PREFIX)
    }

    pub async fn handle(&self, request: Request<Incoming>) -> Response<HttpBody> {
        let path = request.uri().path().to_string();
        let result = if let Some(rest) = path.strip_prefix(ENQUEUE_PREFIX) {
            self.enqueue(rest, request).await
        } else {
            let id = path
                .strip_prefix(CALLS_PREFIX)
                .unwrap_or_default()
                .trim_end_matches('/');
            self.call(id, request.method()).await
        };
        result.unwrap_or_else(ProxyError::into_response)
    }

    async fn enqueue(&self, rest: &str, request: Request<Incoming>) -> Result<Response<HttpBody>, ProxyError> {
        let (name, tail) = fjord_core::agent_http::split_name_and_tail(rest);
        let name = name.to_string();
        if fjord_core::name::check_dns_label(&name).is_err() {
            return Err(ProxyError::BadFunctionName { name });
        }
        if !matches!(*request.method(), Method::POST | Method::PUT) {
            return Err(ProxyError::InvalidRequest {
                function: name,
                reason: format!(
                    "{} is not accepted at /async-function/: use POST or PUT",
                    request.method()
                ),
            });
        }
        if !self.proxy.knows(&name).await {
            return Err(ProxyError::FunctionNotFound { function: name });
        }
        let Some(queue) = self.queue.get() else {
            return Err(self.unavailable(Some(&name)));
        };
        let call_id = match request.headers().get(h::CALL_ID) {
            Some(value) => {
                let id = value.to_str().unwrap_or("\u{fffd}").to_string();
                contract::check_call_id(&id).map_err(|reason| ProxyError::BadCallId {
                    function: name.clone(),
                    id: id.clone(),
                    reason,
                })?;
                id
            }
            None => contract::new_call_id(),
        };
        let callback_url = match request.headers().get(h::CALLBACK_URL) {
            Some(value) => {
                let url = value.to_str().map_err(|_| ProxyError::BadCallbackUrl {
                    function: name.clone(),
                    reason: "X-Callback-Url is not visible ASCII".into(),
                })?;
                fjord_events::callback::check_callback_url(url, self.settings.allow_link_local_callbacks).map_err(
                    |e| ProxyError::BadCallbackUrl {
                        function: name.clone(),
                        reason: e.to_string(),
                    },
                )?;
                Some(url.to_string())
            }
            None => None,
        };
        let trigger = request
            .headers()
            .get(h::TRIGGER)
            .and_then(|v| v.to_str().ok())
            .filter(|t| *t == contract::TRIGGER_CRON)
            .unwrap_or(contract::TRIGGER_HTTP)
            .to_string();
        let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        let method = request.method().to_string();
        let headers = passed_headers(request.headers());
        let limit = self.settings.body_limit_bytes;
        let body = match Limited::new(request.into_body(), limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                return Err(ProxyError::BodyTooLarge {
                    function: Some(name),
                    limit_bytes: limit,
                })
            }
            Err(e) => {
                return Err(ProxyError::BodyUnreadable {
                    function: name,
                    reason: e.to_string(),
                })
            }
        };
        let max_attempts = self
            .proxy
            .routes
            .borrow()
            .functions
            .get(&name)
            .map_or(fjord_core::spec::DEFAULT_MAX_ATTEMPTS, |f| f.async_policy.max_attempts);
        let enqueued = queue
            .enqueue(
                QueuedCall {
                    function: name.clone(),
                    call_id: call_id.clone(),
                    method,
                    path: format!("{tail}{query}"),
                    headers,
                    body,
                    callback_url,
                    trigger,
                    enqueued_ms: 0,
                },
                max_attempts,
            )
            .await
            .map_err(|e| match e {
                QueueError::Refused(reason) => ProxyError::AsyncQueueFull {
                    function: name.clone(),
                    reason,
                },
                other => ProxyError::QueueUnavailable {
                    function: Some(name.clone()),
                    reason: other.to_string(),
                },
            })?;
        if !enqueued.duplicate {
            self.proxy.metrics.count_async(&name, AsyncEvent::Enqueued);
        }
        let body = serde_json::json!({
            "call_id": call_id,
            "function": name,
            "status_url": format!("{CALLS_PREFIX}{call_id}"),
            "duplicate": enqueued.duplicate,
        });
        let mut response = Response::new(full_body(format!("{body}\n")));
        *response.status_mut() = StatusCode::ACCEPTED;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(value) = HeaderValue::from_str(&call_id) {
            headers.insert(h::CALL_ID, value);
        }
        Ok(response)
    }

    async fn call(&self, id: &str, method: &Method) -> Result<Response<HttpBody>, ProxyError> {
        let Some(queue) = self.queue.get() else {
            return Err(self.unavailable(None));
        };
        let record = match *method {
            Method::GET | Method::HEAD => queue.find(id).await,
            Method::DELETE => queue.cancel(id).await,
            _ => {
                return Err(ProxyError::InvalidRequest {
                    function: String::new(),
                    reason: format!("{method} is not accepted at /async-calls/: use GET or DELETE"),
                })
            }
        }
        .map_err(|e| match e {
            QueueError::NoSuchCall { id } => ProxyError::NoSuchCall { id },
            wrong @ QueueError::WrongState { .. } => ProxyError::CallConflict {
                reason: wrong.to_string(),
            },
            other => ProxyError::QueueUnavailable {
                function: None,
                reason: other.to_string(),
            },
        })?;
        let text = serde_json::to_string(&record).expect("a record serializes");
        let mut response = Response::new(full_body(format!("{text}\n")));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(response)
    }

    fn unavailable(&self, function: Option<&str>) -> ProxyError {
        let function = function.map(str::to_string);
        if self.queue.configured() {
            ProxyError::QueueUnavailable {
                function,
                reason: "this lb has not reached NATS yet (see its log)".into(),
            }
        } else {
            ProxyError::AsyncOff { function }
        }
    }
}
