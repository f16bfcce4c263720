//! The control plane's errors, in the caller's terms, and their one mapping to gRPC status.

use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ControlPlaneError {
    #[error("function {0:?} is not deployed (see `fjord list`)")]
    FunctionNotFound(String),
    #[error("invalid function spec: field `{field}` {reason}")]
    InvalidSpec { field: String, reason: String },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// One argument of a request is wrong: `field` names it, `reason` is the stable code.
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        field: String,
        reason: &'static str,
        message: String,
    },
    #[error("node {0:?} is not registered (see `fjord nodes`)")]
    NodeNotFound(String),
    #[error("{0}")]
    InvalidPolicy(String),
    #[error("no control-plane leader is elected right now; retry in a moment")]
    NoLeader,
    #[error("the control plane cannot commit writes right now: {0}")]
    Unavailable(String),
    #[error(
        "the write was not confirmed within {0:?}: no quorum of control-plane members answered. It may \
         or may not take effect; retrying is safe (deploy, scale and remove are idempotent)"
    )]
    Unconfirmed(std::time::Duration),
    #[error("membership change refused: {0}")]
    Membership(String),
    #[error("secret {0:?} does not exist (see `fjord secret ls`; create it with `fjord secret create {0}`)")]
    SecretNotFound(String),
    #[error("secret {0:?} already exists; to rotate its value, use `fjord secret update {0}`")]
    SecretExists(String),
    #[error("secret {name:?} is named by {}; remove it from their specs and deploy them first", .by.join(", "))]
    SecretInUse { name: String, by: Vec<String> },
    #[error(
        "this control-plane member was started without --secrets-key-file, so it cannot store or open \
         secrets; start every member with the cluster's key file (`fjord dev` makes one)"
    )]
    NoSecretsKey,
    /// A stored secret that this member cannot open (another key, damage).
    #[error("{0}")]
    SecretUnreadable(String),
    #[error("internal control-plane error: {0}")]
    Internal(String),
    /// From the queue of asynchronous calls.
    #[error("{0}")]
    Queue(#[from] fjord_events::QueueError),
}

/// The domain of every `google.rpc.ErrorInfo` the control plane attaches.
pub(crate) const ERROR_DOMAIN: &str = "fjord.v1";

impl ControlPlaneError {
    /// The machine-readable reason (`google.rpc.ErrorInfo.reason`) and its metadata.
    fn reason(&self) -> (&'static str, Vec<(&'static str, String)>) {
        use fjord_events::QueueError;
        match self {
            ControlPlaneError::FunctionNotFound(name) => ("FUNCTION_NOT_FOUND", vec![("function", name.clone())]),
            ControlPlaneError::InvalidSpec { field, .. } => ("INVALID_SPEC", vec![("field", field.clone())]),
            ControlPlaneError::InvalidRequest(_) => ("INVALID_REQUEST", vec![]),
            ControlPlaneError::InvalidArgument { field, reason, .. } => (reason, vec![("field", field.clone())]),
            ControlPlaneError::NodeNotFound(node) => ("NODE_NOT_FOUND", vec![("node", node.clone())]),
            ControlPlaneError::InvalidPolicy(_) => ("INVALID_POLICY", vec![]),
            ControlPlaneError::NoLeader => ("NO_LEADER", vec![]),
            ControlPlaneError::Unavailable(_) => ("UNAVAILABLE", vec![]),
            ControlPlaneError::Unconfirmed(_) => ("UNCONFIRMED", vec![]),
            ControlPlaneError::Membership(_) => ("MEMBERSHIP_REFUSED", vec![]),
            ControlPlaneError::SecretNotFound(name) => ("SECRET_NOT_FOUND", vec![("secret", name.clone())]),
            ControlPlaneError::SecretExists(name) => ("SECRET_EXISTS", vec![("secret", name.clone())]),
            ControlPlaneError::SecretInUse { name, by } => (
                "SECRET_IN_USE",
                vec![("secret", name.clone()), ("used_by", by.join(","))],
            ),
            ControlPlaneError::NoSecretsKey => ("NO_SECRETS_KEY", vec![]),
            ControlPlaneError::SecretUnreadable(_) => ("SECRET_UNREADABLE", vec![]),
            ControlPlaneError::Internal(_) => ("INTERNAL", vec![]),
            ControlPlaneError::Queue(e) => match e {
                QueueError::NoSuchCall { id } => ("CALL_NOT_FOUND", vec![("call", id.clone())]),
                QueueError::WrongState { id, state, .. } => (
                    "CALL_WRONG_STATE",
                    vec![("call", id.clone()), ("state", state.to_string())],
                ),
                QueueError::Config(_) => ("NO_QUEUE", vec![]),
                QueueError::Refused(_) => ("QUEUE_FULL", vec![]),
                QueueError::Unreachable { .. } | QueueError::Failed(_) => ("QUEUE_UNAVAILABLE", vec![]),
            },
        }
    }

    fn code(&self) -> tonic::Code {
        use fjord_events::QueueError;
        use tonic::Code;
        match self {
            ControlPlaneError::FunctionNotFound(_)
            | ControlPlaneError::NodeNotFound(_)
            | ControlPlaneError::SecretNotFound(_) => Code::NotFound,
            ControlPlaneError::SecretExists(_) => Code::AlreadyExists,
            ControlPlaneError::SecretInUse { .. }
            | ControlPlaneError::NoSecretsKey
            | ControlPlaneError::SecretUnreadable(_)
            | ControlPlaneError::Membership(_) => Code::FailedPrecondition,
            ControlPlaneError::InvalidSpec { .. }
            | ControlPlaneError::InvalidRequest(_)
            | ControlPlaneError::InvalidArgument { .. }
            | ControlPlaneError::InvalidPolicy(_) => Code::InvalidArgument,
            ControlPlaneError::NoLeader | ControlPlaneError::Unavailable(_) => Code::Unavailable,
            ControlPlaneError::Unconfirmed(_) => Code::DeadlineExceeded,
            ControlPlaneError::Internal(_) => Code::Internal,
            ControlPlaneError::Queue(e) => match e {
                QueueError::NoSuchCall { .. } => Code::NotFound,
                QueueError::WrongState { .. } | QueueError::Config(_) => Code::FailedPrecondition,
                QueueError::Refused(_) | QueueError::Unreachable { .. } | QueueError::Failed(_) => Code::Unavailable,
            },
        }
    }
}

/// The one mapping to gRPC: the status code, the message in the caller's terms, and a
/// `google.rpc.ErrorInfo` with the reason and what it concerns (the field of an invalid spec,
/// the function or secret named), so a program need not parse the message.
impl From<ControlPlaneError> for Status {
    fn from(e: ControlPlaneError) -> Status {
        use tonic_types::{ErrorDetails, StatusExt};
        let (reason, metadata) = e.reason();
        let metadata: std::collections::HashMap<String, String> =
            metadata.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        Status::with_error_details(
            e.code(),
            e.to_string(),
            ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata),
        )
    }
}
