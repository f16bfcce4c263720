//! Every refusal the lb answers itself, and the one function that maps it to HTTP: status,
//! `Retry-After` where waiting a moment helps, and a JSON body `{"error", "code", "function"}`
//! whose `code` is stable for machines to match on while `error` is for people.
//!
//! Answers of a node agent (the function's own, or the agent's refusals) pass through as they
//! came; these are the lb's own.

use fjord_daemon::HttpBody;
use http::{header, HeaderValue, Response, StatusCode};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "no such path {path:?}: functions are called at /function/{{name}}, queued calls made at \
         /async-function/{{name}} and looked up at /async-calls/{{id}}"
    )]
    NoSuchPath { path: String },
    #[error("{name:?} is not a function name (a DNS label: lowercase letters, digits, '-')")]
    BadFunctionName { name: String },
    #[error("function {function:?} is not deployed")]
    FunctionNotFound { function: String },
    #[error("function {function:?} was removed")]
    FunctionRemoved { function: String },
    #[error("the request body is larger than the limit of {limit_bytes} bytes")]
    BodyTooLarge {
        function: Option<String>,
        limit_bytes: usize,
    },
    #[error("reading the request body failed: {reason}")]
    BodyUnreadable { function: String, reason: String },
    #[error("invalid request: {reason}")]
    InvalidRequest { function: String, reason: String },
    #[error("the platform is at its limit of requests in progress; retry shortly")]
    Overloaded { function: Option<String> },
    #[error("function {function:?} is limited to {per_second} requests per second")]
    RateLimited { function: String, per_second: f64 },
    #[error("no node is ready to run function {function:?}")]
    NoCapacity { function: String },
    #[error(
        "function {function:?} is at capacity: every node is busy ({}) and {waiting} requests already wait",
        refusals.join("; ")
    )]
    QueueFull {
        function: String,
        /// Why each node refused, `node: reason`.
        refusals: Vec<String>,
        waiting: u32,
    },
    #[error("node {node} failed while serving function {function:?}: {reason}")]
    NodeFailed {
        function: String,
        node: String,
        reason: String,
    },
    #[error(
        "function {:?} did not answer within {} (its timeout plus the platform's margin)",
        function.as_deref().unwrap_or_default(),
        fjord_core::duration::format_duration(*limit)
    )]
    Timeout { function: Option<String>, limit: Duration },
    #[error("asynchronous calls are not configured on this lb (start it with --nats-url)")]
    AsyncOff { function: Option<String> },
    #[error("the queue of asynchronous calls is unavailable, nothing was stored: {reason}")]
    QueueUnavailable { function: Option<String>, reason: String },
    #[error("the queue of asynchronous calls is full, nothing was stored: {reason}")]
    AsyncQueueFull { function: String, reason: String },
    #[error("X-Call-Id {id:?} {reason}")]
    BadCallId {
        function: String,
        id: String,
        reason: String,
    },
    #[error("{reason}")]
    BadCallbackUrl { function: String, reason: String },
    #[error("no call {id:?} is known (records are kept 7 days)")]
    NoSuchCall { id: String },
    #[error("{reason}")]
    CallConflict { reason: String },
    /// The OpenFaaS gateway API (`/system/*`) needs the caller's admin credentials.
    #[error("{reason}")]
    Unauthorized { reason: String },
    #[error("{method} is not allowed on {path}; it takes {allowed}")]
    MethodNotAllowed {
        method: String,
        path: String,
        allowed: &'static str,
    },
    /// A gateway API body or query that cannot be read, naming the field.
    #[error("{reason}")]
    BadBody { function: Option<String>, reason: String },
    /// The control plane refused or failed a gateway API request; its message names what.
    #[error("{message}")]
    ControlPlane {
        code: tonic::Code,
        message: String,
        function: Option<String>,
    },
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoSuchPath { .. }
            | ProxyError::BadFunctionName { .. }
            | ProxyError::FunctionNotFound { .. }
            | ProxyError::FunctionRemoved { .. } => StatusCode::NOT_FOUND,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyUnreadable { .. } | ProxyError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ProxyError::Overloaded { .. } | ProxyError::NoCapacity { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::RateLimited { .. } | ProxyError::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::NodeFailed { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::AsyncOff { .. } | ProxyError::QueueUnavailable { .. } | ProxyError::AsyncQueueFull { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::BadCallId { .. } | ProxyError::BadCallbackUrl { .. } => StatusCode::BAD_REQUEST,
            ProxyError::NoSuchCall { .. } => StatusCode::NOT_FOUND,
            ProxyError::CallConflict { .. } => StatusCode::CONFLICT,
            ProxyError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::BadBody { .. } => StatusCode::BAD_REQUEST,
            ProxyError::ControlPlane { code, .. } => match code {
                tonic::Code::NotFound => StatusCode::NOT_FOUND,
                tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition => StatusCode::CONFLICT,
                tonic::Code::InvalidArgument | tonic::Code::OutOfRange => StatusCode::BAD_REQUEST,
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => StatusCode::UNAUTHORIZED,
                tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                tonic::Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// The stable, machine-readable name of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::NoSuchPath { .. } => "no_such_path",
            ProxyError::BadFunctionName { .. } => "invalid_function_name",
            ProxyError::FunctionNotFound { .. } | ProxyError::FunctionRemoved { .. } => "function_not_found",
            ProxyError::BodyTooLarge { .. } => "body_too_large",
            ProxyError::BodyUnreadable { .. } | ProxyError::InvalidRequest { .. } => "bad_request",
            ProxyError::Overloaded { .. } => "overloaded",
            ProxyError::RateLimited { .. } => "rate_limited",
            ProxyError::NoCapacity { .. } => "no_capacity",
            ProxyError::QueueFull { .. } => "queue_full",
            ProxyError::NodeFailed { .. } => "node_failed",
            ProxyError::Timeout { .. } => "timeout",
            ProxyError::AsyncOff { .. } => "async_not_configured",
            ProxyError::QueueUnavailable { .. } => "queue_unavailable",
            ProxyError::AsyncQueueFull { .. } => "async_queue_full",
            ProxyError::BadCallId { .. } => "bad_call_id",
            ProxyError::BadCallbackUrl { .. } => "bad_callback_url",
            ProxyError::NoSuchCall { .. } => "no_such_call",
            ProxyError::CallConflict { .. } => "call_conflict",
            ProxyError::Unauthorized { .. } => "unauthorized",
            ProxyError::MethodNotAllowed { .. } => "method_not_allowed",
            ProxyError::BadBody { .. } => "bad_body",
            ProxyError::ControlPlane { code, .. } => match code {
                tonic::Code::NotFound => "not_found",
                tonic::Code::AlreadyExists => "already_exists",
                tonic::Code::FailedPrecondition => "failed_precondition",
                tonic::Code::InvalidArgument | tonic::Code::OutOfRange => "invalid_argument",
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => "unauthorized",
                tonic::Code::Unavailable => "control_plane_unavailable",
                tonic::Code::ResourceExhausted => "control_plane_busy",
                tonic::Code::DeadlineExceeded => "unconfirmed",
                _ => "control_plane_failed",
            },
        }
    }

    /// Whether the client should come back in a moment (`Retry-After: 1`).
    pub fn retry_after(&self) -> bool {
        matches!(
            self,
            ProxyError::Overloaded { .. }
                | ProxyError::RateLimited { .. }
                | ProxyError::NoCapacity { .. }
                | ProxyError::QueueFull { .. }
                | ProxyError::QueueUnavailable { .. }
                | ProxyError::AsyncQueueFull { .. }
                | ProxyError::ControlPlane {
                    code: tonic::Code::Unavailable,
                    ..
                }
        )
    }

    /// The function the request was for, when the path named one.
    pub fn function(&self) -> Option<&str> {
        match self {
            ProxyError::NoSuchPath { .. }
            | ProxyError::BadFunctionName { .. }
            | ProxyError::NoSuchCall { .. }
            | ProxyError::CallConflict { .. }
            | ProxyError::Unauthorized { .. }
            | ProxyError::MethodNotAllowed { .. } => None,
            ProxyError::BadBody { function, .. } | ProxyError::ControlPlane { function, .. } => function.as_deref(),
            ProxyError::BodyTooLarge { function, .. }
            | ProxyError::Overloaded { function }
            | ProxyError::AsyncOff { function }
            | ProxyError::QueueUnavailable { function, .. }
            | ProxyError::Timeout { function, .. } => function.as_deref(),
            ProxyError::AsyncQueueFull { function, .. }
            | ProxyError::BadCallId { function, .. }
            | ProxyError::BadCallbackUrl { function, .. } => Some(function),
            ProxyError::FunctionNotFound { function }
            | ProxyError::FunctionRemoved { function }
            | ProxyError::BodyUnreadable { function, .. }
            | ProxyError::InvalidRequest { function, .. }
            | ProxyError::RateLimited { function, .. }
            | ProxyError::NoCapacity { function }
            | ProxyError::QueueFull { function, .. }
            | ProxyError::NodeFailed { function, .. } => Some(function),
        }
    }

    /// The answer the client gets.
    pub fn into_response(self) -> Response<HttpBody> {
        let mut response = fjord_daemon::json_error(self.status(), self.code(), &self.to_string(), self.function());
        if self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status() == StatusCode::UNAUTHORIZED {
            // What makes a browser or curl --anyauth offer basic credentials.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"fjord\""),
            );
        }
        if let ProxyError::MethodNotAllowed { allowed, .. } = &self {
            if let Ok(value) = HeaderValue::from_str(allowed) {
                response.headers_mut().insert(header::ALLOW, value);
            }
        }
        response
    }

    /// A control plane's refusal, as the gateway API answers it.
    pub fn from_status(status: &tonic::Status, function: Option<&str>) -> ProxyError {
        let message = match status.code() {
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => format!(
                "the control plane refused the credentials ({}): give the cluster's admin token as the \
                 password of user admin, or as Authorization: Bearer TOKEN",
                status.message()
            ),
            tonic::Code::Unavailable => format!("the control plane is unavailable: {}", status.message()),
            _ => status.message().to_string(),
        };
        ProxyError::ControlPlane {
            code: status.code(),
            message,
            function: function.map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(response: Response<HttpBody>) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_refusal_carries_status_code_message_and_function() {
        let response = ProxyError::QueueFull {
            function: "echo".into(),
            refusals: vec!["node-0: busy".into(), "node-1: busy".into()],
            waiting: 3,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = body_of(response).await;
        assert_eq!(body["code"], "queue_full");
        assert_eq!(body["function"], "echo");
        assert_eq!(
            body["error"],
            "function \"echo\" is at capacity: every node is busy (node-0: busy; node-1: busy) and 3 requests already wait"
        );
    }

    #[tokio::test]
    async fn only_refusals_worth_a_retry_say_when() {
        let not_found = ProxyError::FunctionNotFound {
            function: "gone".into(),
        }
        .into_response();
        assert_eq!(not_found.status(), StatusCode::NOT_FOUND);
        assert!(!not_found.headers().contains_key(header::RETRY_AFTER));
        let body = body_of(not_found).await;
        assert_eq!(body["code"], "function_not_found");
        assert_eq!(body["error"], "function \"gone\" is not deployed");

        let no_capacity = ProxyError::NoCapacity { function: "f".into() }.into_response();
        assert_eq!(no_capacity.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(no_capacity.headers()[header::RETRY_AFTER], "1");

        let bad_name = ProxyError::BadFunctionName {
            name: "Bad_Name".into(),
        };
        assert_eq!(bad_name.function(), None);
        assert_eq!(
            body_of(bad_name.into_response()).await["function"],
            serde_json::Value::Null
        );
    }

    #[tokio::test]
    async fn control_plane_codes_map_to_http_and_401_asks_for_basic_credentials() {
        let cases = [
            (tonic::Code::NotFound, StatusCode::NOT_FOUND),
            (tonic::Code::AlreadyExists, StatusCode::CONFLICT),
            (tonic::Code::FailedPrecondition, StatusCode::CONFLICT),
            (tonic::Code::InvalidArgument, StatusCode::BAD_REQUEST),
            (tonic::Code::Unauthenticated, StatusCode::UNAUTHORIZED),
            (tonic::Code::PermissionDenied, StatusCode::UNAUTHORIZED),
            (tonic::Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
            (tonic::Code::Internal, StatusCode::BAD_GATEWAY),
        ];
        for (code, status) in cases {
            let error = ProxyError::from_status(&tonic::Status::new(code, "why"), Some("f"));
            assert_eq!(error.status(), status, "{code:?}");
        }
        let response = ProxyError::from_status(&tonic::Status::unauthenticated("invalid token"), None).into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Basic realm=\"fjord\"");
        let body = body_of(response).await;
        assert_eq!(body["code"], "unauthorized");
        assert!(body["error"].as_str().unwrap().contains("invalid token"), "{body}");
        let response = ProxyError::from_status(&tonic::Status::unavailable("no leader"), None).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let response = ProxyError::MethodNotAllowed {
            method: "PATCH".into(),
            path: "/system/secrets".into(),
            allowed: "GET, POST, PUT, DELETE",
        }
        .into_response();
        assert_eq!(response.headers()[header::ALLOW], "GET, POST, PUT, DELETE");
    }

    #[test]
    fn every_refusal_has_a_distinct_status_or_code() {
        let all = [
            ProxyError::NoSuchPath { path: "/x".into() },
            ProxyError::BadFunctionName { name: "A".into() },
            ProxyError::FunctionNotFound { function: "f".into() },
            ProxyError::BodyTooLarge {
                function: None,
                limit_bytes: 1,
            },
            ProxyError::BodyUnreadable {
                function: "f".into(),
                reason: "reset".into(),
            },
            ProxyError::Overloaded { function: None },
            ProxyError::RateLimited {
                function: "f".into(),
                per_second: 1.0,
            },
            ProxyError::NoCapacity { function: "f".into() },
            ProxyError::QueueFull {
                function: "f".into(),
                refusals: vec![],
                waiting: 0,
            },
            ProxyError::NodeFailed {
                function: "f".into(),
                node: "n".into(),
                reason: "reset".into(),
            },
            ProxyError::Timeout {
                function: Some("f".into()),
                limit: Duration::from_secs(1),
            },
            ProxyError::AsyncOff { function: None },
            ProxyError::QueueUnavailable {
                function: None,
                reason: "down".into(),
            },
            ProxyError::AsyncQueueFull {
                function: "f".into(),
                reason: "full".into(),
            },
            ProxyError::BadCallId {
                function: "f".into(),
                id: "a.b".into(),
                reason: "dots".into(),
            },
            ProxyError::BadCallbackUrl {
                function: "f".into(),
                reason: "ftp".into(),
            },
            ProxyError::NoSuchCall { id: "x".into() },
            ProxyError::CallConflict {
                reason: "running".into(),
            },
            ProxyError::Unauthorized { reason: "no".into() },
            ProxyError::MethodNotAllowed {
                method: "PATCH".into(),
                path: "/system/functions".into(),
                allowed: "GET, POST",
            },
            ProxyError::BadBody {
                function: None,
                reason: "not JSON".into(),
            },
            ProxyError::ControlPlane {
                code: tonic::Code::NotFound,
                message: "no".into(),
                function: None,
            },
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(ProxyError::code).collect();
        assert_eq!(codes.len(), all.len());
        assert!(all
            .iter()
            .all(|e| e.status().is_client_error() || e.status().is_server_error()));
    }
}
