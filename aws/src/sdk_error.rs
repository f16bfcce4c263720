//! Sorting an AWS failure into what a caller decides on: try again later, or give up and tell
//! the operator. One place, so ECR, Auto Scaling and the EC2 client (`crate::ec2`, which reuses
//! [`classify_code`]) agree on what "throttled" means.

use aws_sdk_autoscaling::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use fjord_decisions::capacity::ProviderError;

/// What kind of failure an SDK call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureClass {
    /// Rate-limited, or the resource is busy with another change: retry later.
    Throttled,
    /// The service failed on its side (5xx, unparseable answer): retry later.
    Server,
    /// Timeout or connection failure before an answer: retry later.
    Unavailable,
    /// Credentials lack a permission or are not accepted.
    AccessDenied,
    /// The request itself was refused or could not be built.
    Invalid,
}

impl FailureClass {
    pub(crate) fn retryable(self) -> bool {
        matches!(self, Self::Throttled | Self::Server | Self::Unavailable)
    }
}

/// An SDK failure, classified, with a message that names the operation and what AWS said.
#[derive(Debug, Clone)]
pub(crate) struct SdkFailure {
    pub class: FailureClass,
    pub code: Option<String>,
    pub message: String,
}

impl SdkFailure {
    /// The capacity-provider error for this failure. Unknown groups are recognised by the
    /// caller, which knows the group's name.
    pub(crate) fn into_provider_error(self) -> ProviderError {
        let message = self.message;
        match self.class {
            FailureClass::Throttled => ProviderError::Throttled { message },
            FailureClass::Server => ProviderError::Server { message },
            FailureClass::Unavailable => ProviderError::Unavailable { message },
            FailureClass::AccessDenied => ProviderError::AccessDenied { message },
            FailureClass::Invalid => ProviderError::InvalidRequest { message },
        }
    }
}

/// Error codes AWS services use for rate limiting, or for "busy, come back later".
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "TransactionInProgressException",
    // Auto Scaling: another change to the group is under way.
    "ResourceContention",
    "ScalingActivityInProgress",
];

/// Error codes for a service-side failure.
const SERVER_CODES: &[&str] = &[
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "InternalServiceError",
    "ServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
];

/// Error codes for credentials that are refused or lack a permission.
const ACCESS_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AuthFailure",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "MissingAuthenticationToken",
];

/// Classifies a service's answer from its error code and HTTP status.
pub(crate) fn classify_code(code: Option<&str>, status: Option<u16>) -> FailureClass {
    let code = code.unwrap_or("");
    if THROTTLING_CODES.contains(&code) || status == Some(429) {
        FailureClass::Throttled
    } else if SERVER_CODES.contains(&code) || status.is_some_and(|s| s >= 500) {
        FailureClass::Server
    } else if ACCESS_CODES.contains(&code) || status == Some(403) {
        FailureClass::AccessDenied
    } else {
        FailureClass::Invalid
    }
}

/// Classifies any SDK failure of `operation` (e.g. `"SetDesiredCapacity"`).
pub(crate) fn classify<E>(operation: &str, err: &SdkError<E>) -> SdkFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let (class, code) = match err {
        SdkError::ServiceError(_) => {
            let code = err.code().map(str::to_string);
            (classify_code(code.as_deref(), status), code)
        }
        SdkError::TimeoutError(_) => (FailureClass::Unavailable, None),
        SdkError::DispatchFailure(d) if d.is_user() => (FailureClass::Invalid, None),
        SdkError::DispatchFailure(_) => (FailureClass::Unavailable, None),
        SdkError::ResponseError(_) if status == Some(429) => (FailureClass::Throttled, None),
        SdkError::ResponseError(_) => (FailureClass::Server, None),
        // Construction failures (no region, bad input) and anything a newer SDK adds.
        _ => (FailureClass::Invalid, None),
    };
    let message = match (&code, err.message()) {
        (Some(code), Some(msg)) => format!("{operation}: {code}: {msg}"),
        (Some(code), None) => format!("{operation}: {code}"),
        _ => format!("{operation}: {}", DisplayErrorContext(err)),
    };
    SdkFailure { class, code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_sort_into_classes() {
        assert_eq!(classify_code(Some("Throttling"), Some(400)), FailureClass::Throttled);
        assert_eq!(
            classify_code(Some("RequestLimitExceeded"), Some(503)),
            FailureClass::Throttled
        );
        assert_eq!(classify_code(None, Some(429)), FailureClass::Throttled);
        assert_eq!(classify_code(Some("InternalFailure"), Some(500)), FailureClass::Server);
        assert_eq!(classify_code(Some("Whatever"), Some(502)), FailureClass::Server);
        assert_eq!(
            classify_code(Some("AccessDenied"), Some(403)),
            FailureClass::AccessDenied
        );
        assert_eq!(
            classify_code(Some("UnauthorizedOperation"), Some(400)),
            FailureClass::AccessDenied
        );
        assert_eq!(classify_code(Some("ValidationError"), Some(400)), FailureClass::Invalid);
        assert_eq!(classify_code(None, None), FailureClass::Invalid);
    }

    #[test]
    fn only_transient_classes_retry() {
        assert!(FailureClass::Throttled.retryable());
        assert!(FailureClass::Server.retryable());
        assert!(FailureClass::Unavailable.retryable());
        assert!(!FailureClass::AccessDenied.retryable());
        assert!(!FailureClass::Invalid.retryable());
    }

    #[test]
    fn provider_errors_keep_the_message_and_retryability() {
        for class in [
            FailureClass::Throttled,
            FailureClass::Server,
            FailureClass::Unavailable,
            FailureClass::AccessDenied,
            FailureClass::Invalid,
        ] {
            let failure = SdkFailure {
                class,
                code: None,
                message: "Op: Code: said so".into(),
            };
            let err = failure.into_provider_error();
            assert_eq!(err.retryable(), class.retryable(), "{err}");
            assert!(err.to_string().contains("Op: Code: said so"), "{err}");
        }
    }
}
