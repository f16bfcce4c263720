//! Signing a request with AWS Signature Version 4, header form: `Authorization`, `X-Amz-Date`
//! and, for temporary credentials, `X-Amz-Security-Token`.
//!
//! The canonicalisation and HMAC chain are `aws-sigv4`'s, the crate the SDK signs with (it is in
//! the build already); this module only puts a request, its body, the credentials, region,
//! service and time together. It signs every header the request carries when it is signed, so
//! `Host` and `Content-Type` must be set before.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{self, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use std::time::SystemTime;

/// What is signed for: a service's signing name (`ec2`) in a region.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
}

/// Adds the signature headers to `request` for `credentials` at `time`. Fails only for a request
/// that cannot be signed (a header value that is not text, a URI without a host).
pub(crate) fn sign(
    request: &mut http::Request<Bytes>,
    credentials: &Credentials,
    scope: Scope<'_>,
    time: SystemTime,
) -> Result<(), String> {
    let identity = Identity::from(credentials.clone());
    let params: http_request::SigningParams<'_> = v4::SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();

    let mut headers = Vec::with_capacity(request.headers().len());
    for (name, value) in request.headers() {
        let value = value
            .to_str()
            .map_err(|_| format!("header {name} is not text and cannot be signed"))?;
        headers.push((name.as_str(), value));
    }
    let uri = request.uri().to_string();
    let signable = SignableRequest::new(
        request.method().as_str(),
        uri,
        headers.into_iter(),
        SignableBody::Bytes(request.body()),
    )
    .map_err(|e| format!("request cannot be signed: {e}"))?;
    let (instructions, _signature) = http_request::sign(signable, &params)
        .map_err(|e| format!("signing failed: {e}"))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The example key pair of AWS's Signature Version 4 documentation and test suite.
    fn example_credentials(session_token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token.map(str::to_string),
            None,
            "test",
        )
    }

    /// 2015-08-30T12:36:00Z, the time of those examples.
    fn example_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn header<'a>(request: &'a http::Request<Bytes>, name: &str) -> &'a str {
        request
            .headers()
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }

    #[test]
    fn signs_the_documented_iam_list_users_example() {
        // AWS's worked example of the signing process: GET ?Action=ListUsers to IAM in
        // us-east-1 at 20150830T123600Z, whose signature the documentation gives.
        let mut request = http::Request::get("https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08")
            .header("host", "iam.amazonaws.com")
            .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
            .body(Bytes::new())
            .unwrap();
        let scope = Scope {
            region: "us-east-1",
            service: "iam",
        };
        sign(&mut request, &example_credentials(None), scope, example_time()).unwrap();
        assert_eq!(header(&request, "x-amz-date"), "20150830T123600Z");
        assert_eq!(
            header(&request, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        assert!(request.headers().get("x-amz-security-token").is_none());
    }

    #[test]
    fn signs_the_test_suites_form_encoded_post() {
        // The test suite's `post-x-www-form-urlencoded` case: the body is hashed into the
        // signature, as for every EC2 Query call.
        let mut request = http::Request::post("https://example.amazonaws.com/")
            .header("host", "example.amazonaws.com")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Bytes::from_static(b"Param1=value1"))
            .unwrap();
        let scope = Scope {
            region: "us-east-1",
            service: "service",
        };
        sign(&mut request, &example_credentials(None), scope, example_time()).unwrap();
        assert_eq!(
            header(&request, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );

        // Another body is another signature.
        let mut other = http::Request::post("https://example.amazonaws.com/")
            .header("host", "example.amazonaws.com")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Bytes::from_static(b"Param1=value2"))
            .unwrap();
        sign(&mut other, &example_credentials(None), scope, example_time()).unwrap();
        assert_ne!(header(&other, "authorization"), header(&request, "authorization"));
    }

    #[test]
    fn temporary_credentials_send_and_sign_their_session_token() {
        let mut request = http::Request::post("https://ec2.us-east-1.amazonaws.com/")
            .header("host", "ec2.us-east-1.amazonaws.com")
            .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
            .body(Bytes::from_static(b"Action=DescribeInstances&Version=2016-11-15"))
            .unwrap();
        let scope = Scope {
            region: "us-east-1",
            service: "ec2",
        };
        sign(
            &mut request,
            &example_credentials(Some("the-token")),
            scope,
            example_time(),
        )
        .unwrap();
        assert_eq!(header(&request, "x-amz-security-token"), "the-token");
        let authorization = header(&request, "authorization");
        assert!(
            authorization.contains("/20150830/us-east-1/ec2/aws4_request")
                && authorization.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"),
            "{authorization}"
        );
    }
}
