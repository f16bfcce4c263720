//! The caller's credentials for the gateway API. The lb holds no admin token: it forwards the
//! one the caller presents to the control plane, which checks it on every Admin call (so the
//! join token, which the control plane refuses on Admin, opens nothing here either).
//!
//! Two forms: HTTP basic auth with user `admin` and the admin token as the password (what
//! `faas-cli login --password TOKEN` stores and sends; OpenFaaS's user is `admin` too, and
//! another user name is refused so that a mistyped one is told rather than ignored), or
//! `Authorization: Bearer TOKEN`, as Fjord's own clients send it.

use crate::error::ProxyError;
use base64::Engine;
use http::{header, HeaderMap};
use tonic::metadata::{Ascii, MetadataValue};

/// The only user name accepted in basic auth.
pub const USER: &str = "admin";

const HOW: &str = "give the cluster's admin token as the password of user admin (faas-cli login --gateway URL \
                   --password TOKEN) or as Authorization: Bearer TOKEN";

/// A token as the control plane's `authorization` metadata.
#[derive(Clone)]
pub struct Credentials {
    pub bearer: MetadataValue<Ascii>,
}

/// Never shows the token.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

/// The token a request carries, or why it carries none that could be one.
pub fn credentials(headers: &HeaderMap) -> Result<Credentials, ProxyError> {
    let refuse = |why: String| ProxyError::Unauthorized {
        reason: format!("{why}: {HOW}"),
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(refuse("this route needs credentials".into()));
    };
    let value = value
        .to_str()
        .map_err(|_| refuse("the Authorization header is not text".into()))?
        .trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let token = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| refuse("the basic credentials are not base64".into()))?;
        let decoded = String::from_utf8(decoded).map_err(|_| refuse("the basic credentials are not text".into()))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| refuse("the basic credentials have no password".into()))?;
        if user != USER {
            return Err(refuse(format!("user {user:?} is not known; the user is {USER}")));
        }
        password.to_string()
    } else if scheme.eq_ignore_ascii_case("bearer") {
        rest.trim().to_string()
    } else {
        return Err(refuse(format!(
            "the Authorization scheme {scheme:?} is not Basic or Bearer"
        )));
    };
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(refuse(
            "the token is empty or has spaces or characters that are not ASCII".into(),
        ));
    }
    let bearer =
        MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| refuse("the token cannot be sent on".into()))?;
    Ok(Credentials { bearer })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(authorization: &str) -> Result<String, String> {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        credentials(&headers)
            .map(|c| c.bearer.to_str().unwrap().to_string())
            .map_err(|e| e.to_string())
    }

    fn basic(user_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
    }

    #[test]
    fn basic_auth_as_admin_and_bearer_tokens_are_passed_on() {
        assert_eq!(with(&basic("admin:s3cret-token")).unwrap(), "Bearer s3cret-token");
        assert_eq!(with("Bearer s3cret-token").unwrap(), "Bearer s3cret-token");
        assert_eq!(with("bearer  s3cret-token ").unwrap(), "Bearer s3cret-token");
        assert_eq!(
            with(&basic("admin:a:b")).unwrap(),
            "Bearer a:b",
            "only the first colon splits"
        );
    }

    #[test]
    fn missing_or_malformed_credentials_are_refused_saying_how_to_give_them() {
        assert!(credentials(&HeaderMap::new())
            .unwrap_err()
            .to_string()
            .starts_with("this route needs credentials: give the cluster's admin token"));
        for (authorization, why) in [
            (basic("root:token").as_str(), "user \"root\" is not known"),
            (&basic("admin"), "no password"),
            (&basic("admin:"), "the token is empty"),
            ("Basic !!!", "not base64"),
            ("Digest abc", "\"Digest\" is not Basic or Bearer"),
            ("Bearer", "the token is empty"),
        ] {
            let error = with(authorization).unwrap_err();
            assert!(error.contains(why), "{authorization}: {error}");
            assert!(error.contains("faas-cli login"), "{error}");
        }
    }
}
