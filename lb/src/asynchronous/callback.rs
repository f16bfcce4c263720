//! Posting a call's result to its `X-Callback-Url`: the function's status, headers and body,
//! plus `X-Call-Id`, `X-Function-Name`, `X-Function-Status`, `X-Duration-Seconds`,
//! `X-Attempt` and `X-Max-Attempts`. Retried (connection failures, 408, 429, 5xx) up to 5 times
//! over about 15 s, then given up; the addresses a name resolves to are checked again before
//! each try, so a name pointing at a metadata address is refused.

use bytes::Bytes;
use fjord_events::callback::{check_callback_url, is_link_local_or_metadata};
use fjord_events::contract::http_headers as h;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

const ATTEMPTS: u32 = 5;
const FIRST_WAIT: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the function answered, for the callback.
pub struct Result<'a> {
    pub call_id: &'a str,
    pub function: &'a str,
    /// The last status (502 when no attempt got an answer).
    pub status: u16,
    pub headers: &'a http::HeaderMap,
    pub body: Bytes,
    pub duration: Duration,
    pub attempt: u32,
    pub max_attempts: u32,
}

pub struct Callbacks {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    allow_link_local: bool,
}

impl Callbacks {
    pub fn new(allow_link_local: bool) -> Callbacks {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(3)));
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if added == 0 {
            tracing::warn!("no system CA certificates found: https callbacks will fail");
        }
        let tls = rustls::ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Callbacks {
            client: Client::builder(TokioExecutor::new()).build(https),
            allow_link_local,
        }
    }

    /// Delivers the callback; returns how it went, for the call's record (`delivered (200)` or
    /// why it was given up) and whether it was delivered.
    pub async fn deliver(&self, url: &str, result: &Result<'_>) -> (String, bool) {
        let uri = match check_callback_url(url, self.allow_link_local) {
            Ok(uri) => uri,
            Err(e) => return (format!("given up: {e}"), false),
        };
        let mut wait = FIRST_WAIT;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            if let Err(reason) = self.resolves_safely(&uri).await {
                return (format!("given up: {reason}"), false);
            }
            match tokio::time::timeout(TIMEOUT, self.client.request(request(&uri, result))).await {
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    let _ = response.into_body().collect().await;
                    if status < 400 {
                        return (format!("delivered ({status})"), true);
                    }
                    last = format!("the callback answered {status}");
                    if !fjord_events::retry::is_retryable_status(status) {
                        break;
                    }
                }
                Ok(Err(e)) => last = format!("the callback failed: {e}"),
                Err(_) => last = format!("the callback did not answer within {}s", TIMEOUT.as_secs()),
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        (format!("given up after {ATTEMPTS} tries: {last}"), false)
    }

    async fn resolves_safely(&self, uri: &http::Uri) -> std::result::Result<(), String> {
        if self.allow_link_local {
            return Ok(());
        }
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let addresses = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("the callback host {host:?} does not resolve: {e}"))?;
        for address in addresses {
            if is_link_local_or_metadata(address.ip()) {
                return Err(format!(
                    "the callback host {host:?} resolves to {}, a link-local or metadata address",
                    address.ip()
                ));
            }
        }
        Ok(())
    }
}

fn request(uri: &http::Uri, result: &Result<'_>) -> http::Request<Full<Bytes>> {
    let mut request = http::Request::post(uri.clone());
    if let Some(headers) = request.headers_mut() {
        for (name, value) in result.headers {
            if !matches!(
                name.as_str(),
                "content-length" | "transfer-encoding" | "connection" | "keep-alive" | "date" | "server"
            ) {
                headers.append(name.clone(), value.clone());
            }
        }
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        };
        set(h::CALL_ID, result.call_id.to_string());
        set(h::FUNCTION_NAME, result.function.to_string());
        set(h::FUNCTION_STATUS, result.status.to_string());
        set(h::DURATION_SECONDS, format!("{:.3}", result.duration.as_secs_f64()));
        set(h::ATTEMPT, result.attempt.to_string());
        set(h::MAX_ATTEMPTS, result.max_attempts.to_string());
    }
    request
        .body(Full::new(result.body.clone()))
        .expect("a callback request from a checked URI")
}
