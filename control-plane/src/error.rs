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

impl From<ControlPlaneError> for Status {
    fn from(e: ControlPlaneError) -> Status {
        let message = e.to_string();
        match e {
            ControlPlaneError::FunctionNotFound(_)
            | ControlPlaneError::NodeNotFound(_)
            | ControlPlaneError::SecretNotFound(_) => Status::not_found(message),
            ControlPlaneError::SecretExists(_) => Status::already_exists(message),
            ControlPlaneError::SecretInUse { .. }
            | ControlPlaneError::NoSecretsKey
            | ControlPlaneError::SecretUnreadable(_) => Status::failed_precondition(message),
            ControlPlaneError::InvalidSpec { .. }
            | ControlPlaneError::InvalidRequest(_)
            | ControlPlaneError::InvalidPolicy(_) => Status::invalid_argument(message),
            ControlPlaneError::NoLeader | ControlPlaneError::Unavailable(_) => Status::unavailable(message),
            ControlPlaneError::Unconfirmed(_) => Status::deadline_exceeded(message),
            ControlPlaneError::Membership(_) => Status::failed_precondition(message),
            ControlPlaneError::Internal(_) => Status::internal(message),
            ControlPlaneError::Queue(e) => match e {
                fjord_events::QueueError::NoSuchCall { .. } => Status::not_found(message),
                fjord_events::QueueError::WrongState { .. } => Status::failed_precondition(message),
                fjord_events::QueueError::Config(_) => Status::failed_precondition(message),
                fjord_events::QueueError::Refused(_)
                | fjord_events::QueueError::Unreachable { .. }
                | fjord_events::QueueError::Failed(_) => Status::unavailable(message),
            },
        }
    }
}
