//! The agent's IMDSv2 client against a local stand-in for the metadata service that, like the
//! real one, refuses reads without a session token from `PUT /latest/api/token`.

use bytes::Bytes;
use fjord_node_agent::ec2_metadata::{fetch_identity, Ec2Identity, MetadataError};
use http_body_util::Full;
use hyper::{Request, Response};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const SESSION: &str = "session-token-1";

async fn stand_in(instance_id: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let counter = refused.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let counter = counter.clone();
                    async move {
                        let path = request.uri().path().to_string();
                        let token = request
                            .headers()
                            .get("x-aws-ec2-metadata-token")
                            .and_then(|v| v.to_str().ok());
                        let (status, body) = match (request.method().as_str(), path.as_str()) {
                            ("PUT", "/latest/api/token")
                                if request.headers().contains_key("x-aws-ec2-metadata-token-ttl-seconds") =>
                            {
                                (200, SESSION)
                            }
                            ("PUT", "/latest/api/token") => (400, ""),
                            ("GET", _) if token != Some(SESSION) => {
                                counter.fetch_add(1, Ordering::SeqCst);
                                (401, "")
                            }
                            ("GET", "/latest/meta-data/instance-id") => (200, instance_id),
                            ("GET", "/latest/meta-data/placement/availability-zone") => (200, "eu-north-1b\n"),
                            _ => (404, ""),
                        };
                        let mut response = Response::new(Full::new(Bytes::from(body)));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), refused)
}

#[tokio::test]
async fn reads_instance_id_and_zone_with_a_session_token() {
    let (endpoint, refused) = stand_in("i-0abc123def4567890").await;
    let identity = fetch_identity(&endpoint).await.unwrap();
    assert_eq!(
        identity,
        Ec2Identity {
            instance_id: "i-0abc123def4567890".into(),
            availability_zone: "eu-north-1b".into()
        }
    );
    assert_eq!(
        refused.load(Ordering::SeqCst),
        0,
        "a read went out without the session token"
    );
}

#[tokio::test]
async fn an_unusable_instance_id_is_refused_with_what_was_wrong() {
    let (endpoint, _) = stand_in("I_Am Not An Id").await;
    let err = fetch_identity(&endpoint).await.unwrap_err();
    assert!(
        matches!(
            err,
            MetadataError::Invalid {
                what: "instance id",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn no_metadata_service_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = fetch_identity(&format!("http://127.0.0.1:{port}")).await.unwrap_err();
    assert!(err.to_string().contains("did not answer /latest/api/token"), "{err}");
}
