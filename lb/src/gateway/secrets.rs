//! `/system/secrets`: Fjord's named secrets as OpenFaaS's. POST creates (201; 409 if it
//! exists), PUT replaces the value (200; 404 if none), DELETE removes (204; 409 while a
//! function names it), GET lists names only: no value ever leaves the control plane.

use super::auth::Credentials;
use super::{json, read_json, text, Gateway};
use crate::error::ProxyError;
use fjord_daemon::HttpBody;
use fjord_openfaas::gateway::{Secret, SecretDescription, DEFAULT_NAMESPACE};
use fjord_proto::v1 as pb;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Write {
    Create,
    Update,
}

fn name_of(name: &str) -> Result<String, ProxyError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ProxyError::BadBody {
            function: None,
            reason: "name: give the secret's name".into(),
        });
    }
    Ok(name.to_string())
}

impl Gateway {
    pub(super) async fn list_secrets(&self, credentials: &Credentials) -> Result<Response<HttpBody>, ProxyError> {
        let secrets = self
            .control_plane
            .all_pages(credentials, |mut admin, page_token| async move {
                let request = pb::ListSecretsRequest {
                    page_size: super::functions::PAGE_SIZE,
                    page_token,
                    ..Default::default()
                };
                let page = admin.list_secrets(request).await?.into_inner();
                Ok((page.secrets, page.next_page_token))
            })
            .await?;
        let secrets: Vec<SecretDescription> = secrets
            .into_iter()
            .map(|s| SecretDescription {
                name: s.name,
                namespace: Some(DEFAULT_NAMESPACE.into()),
            })
            .collect();
        Ok(json(StatusCode::OK, &secrets))
    }

    pub(super) async fn put_secret(
        &self,
        credentials: &Credentials,
        request: Request<Incoming>,
        write: Write,
    ) -> Result<Response<HttpBody>, ProxyError> {
        let (secret, _): (Secret, _) = read_json(request, "Secret").await?;
        let name = name_of(&secret.name)?;
        let value = secret.bytes().map_err(|e| ProxyError::BadBody {
            function: None,
            reason: e.to_string(),
        })?;
        let (mode, status) = match write {
            Write::Create => (pb::put_secret_request::Mode::Create, StatusCode::CREATED),
            Write::Update => (pb::put_secret_request::Mode::Update, StatusCode::OK),
        };
        let request = pb::PutSecretRequest {
            name,
            value,
            mode: mode as i32,
        };
        self.control_plane
            .call(credentials, None, |mut admin| {
                let request = request.clone();
                async move { admin.put_secret(request).await }
            })
            .await?;
        Ok(text(status, String::new()))
    }

    pub(super) async fn remove_secret(
        &self,
        credentials: &Credentials,
        request: Request<Incoming>,
    ) -> Result<Response<HttpBody>, ProxyError> {
        let (secret, _): (SecretDescription, _) = read_json(request, "SecretDescription").await?;
        let name = name_of(&secret.name)?;
        self.control_plane
            .call(credentials, None, |mut admin| {
                let request = pb::RemoveSecretRequest { name: name.clone() };
                async move { admin.remove_secret(request).await }
            })
            .await?;
        Ok(text(StatusCode::NO_CONTENT, String::new()))
    }
}
