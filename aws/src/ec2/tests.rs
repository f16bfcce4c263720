use super::*;
use crate::testing::static_sdk_config;
use aws_credential_types::provider::{error::CredentialsError, future};
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// A DescribeInstances answer in EC2's shape: two reservations, three instances. The first
/// instance lists its network interface (with other `privateIpAddress`es, deeper) before its own
/// address; the second has no address yet.
const DESCRIBE_INSTANCES_ANSWER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
    <reservationSet>
        <item>
            <reservationId>r-1234567890abcdef0</reservationId>
            <ownerId>123456789012</ownerId>
            <groupSet/>
            <instancesSet>
                <item>
                    <instanceId>i-1234567890abcdef0</instanceId>
                    <imageId>ami-bff32ccc</imageId>
                    <instanceState>
                        <code>16</code>
                        <name>running</name>
                    </instanceState>
                    <networkInterfaceSet>
                        <item>
                            <networkInterfaceId>eni-0f62d866</networkInterfaceId>
                            <privateIpAddress>10.0.9.9</privateIpAddress>
                            <privateIpAddressesSet>
                                <item>
                                    <privateIpAddress>10.0.9.10</privateIpAddress>
                                    <primary>false</primary>
                                </item>
                            </privateIpAddressesSet>
                        </item>
                    </networkInterfaceSet>
                    <instanceType>t3.micro</instanceType>
                    <placement>
                        <availabilityZone>eu-west-1c</availabilityZone>
                        <groupName/>
                        <tenancy>default</tenancy>
                    </placement>
                    <privateIpAddress>10.0.1.88</privateIpAddress>
                    <groupSet>
                        <item>
                            <groupId>sg-e4076980</groupId>
                            <groupName>fjord-nodes</groupName>
                        </item>
                    </groupSet>
                    <tagSet>
                        <item><key>Name</key><value>node &amp; friends</value></item>
                    </tagSet>
                </item>
                <item>
                    <instanceId>i-0aaaaaaaaaaaaaaa1</instanceId>
                    <instanceState><code>0</code><name>pending</name></instanceState>
                    <placement><availabilityZone>eu-west-1a</availabilityZone></placement>
                    <privateIpAddress/>
                </item>
            </instancesSet>
        </item>
        <item>
            <reservationId>r-0bbbbbbbbbbbbbbb2</reservationId>
            <instancesSet>
                <item>
                    <instanceId>i-0ccccccccccccccc3</instanceId>
                    <instanceState><code>48</code><name>terminated</name></instanceState>
                    <placement><availabilityZone>eu-west-1b</availabilityZone></placement>
                    <privateIpAddress>10.0.2.7</privateIpAddress>
                </item>
            </instancesSet>
        </item>
    </reservationSet>
    <nextToken>eyJ2IjoiMiJ9</nextToken>
</DescribeInstancesResponse>"#;

fn not_found_answer(id: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID '{id}' does not exist</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"#
    )
}

fn instance(id: &str, ip: Option<&str>, zone: &str, state: &str) -> Ec2Instance {
    Ec2Instance {
        instance_id: id.into(),
        private_ip: ip.map(str::to_string),
        zone: Some(zone.into()),
        state: Some(state.into()),
    }
}

#[test]
fn describe_instances_answers_are_read_from_each_instances_own_fields() {
    let page = instances_page(&xml::parse(DESCRIBE_INSTANCES_ANSWER).unwrap()).unwrap();
    assert_eq!(
        page.instances,
        [
            instance("i-1234567890abcdef0", Some("10.0.1.88"), "eu-west-1c", "running"),
            instance("i-0aaaaaaaaaaaaaaa1", None, "eu-west-1a", "pending"),
            instance("i-0ccccccccccccccc3", Some("10.0.2.7"), "eu-west-1b", "terminated"),
        ]
    );
    assert_eq!(page.next_token.as_deref(), Some("eyJ2IjoiMiJ9"));
}

#[test]
fn an_empty_describe_instances_answer_is_an_empty_last_page() {
    let answer = r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
        <requestId>x</requestId><reservationSet/></DescribeInstancesResponse>"#;
    let page = instances_page(&xml::parse(answer).unwrap()).unwrap();
    assert_eq!(
        page,
        InstancesPage {
            instances: vec![],
            next_token: None
        }
    );
    // Another action's answer is not taken for this one.
    let other = xml::parse("<DescribeImagesResponse/>").unwrap();
    assert!(instances_page(&other).unwrap_err().contains("DescribeImagesResponse"));
}

#[test]
fn error_answers_keep_code_and_message_and_classify_like_the_sdk() {
    let err = service_error(400, &not_found_answer("i-1"));
    assert_eq!(err.code(), Some("InvalidInstanceID.NotFound"));
    let failure = err.failure("DescribeInstances");
    assert_eq!(failure.class, FailureClass::Invalid);
    assert_eq!(
        failure.message,
        "DescribeInstances: InvalidInstanceID.NotFound: The instance ID 'i-1' does not exist"
    );

    let throttled = service_error(
        503,
        "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors></Response>",
    );
    assert_eq!(throttled.failure("DescribeInstances").class, FailureClass::Throttled);
    let denied = service_error(
        403,
        "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>no</Message></Error></Errors></Response>",
    );
    assert_eq!(denied.failure("DescribeInstances").class, FailureClass::AccessDenied);
    // The awsQuery shape some mocks and proxies answer with.
    let bare = service_error(
        400,
        "<ErrorResponse><Error><Code>AuthFailure</Code></Error></ErrorResponse>",
    );
    assert_eq!(bare.code(), Some("AuthFailure"));
    assert_eq!(
        bare.failure("DescribeInstances").message,
        "DescribeInstances: AuthFailure"
    );

    // No XML: the status decides, and the body's start is the message.
    let gateway = service_error(502, "<html>Bad Gateway</html>");
    assert_eq!(gateway.code(), None);
    let failure = gateway.failure("DescribeInstances");
    assert_eq!(failure.class, FailureClass::Server);
    assert!(failure.message.contains("Bad Gateway"), "{}", failure.message);
    assert_eq!(
        service_error(429, "slow down").failure("X").class,
        FailureClass::Throttled
    );
}

#[test]
fn failures_without_an_answer_classify_like_the_sdks() {
    let cases = [
        (Ec2Error::Timeout(Duration::from_secs(1)), FailureClass::Unavailable),
        (
            Ec2Error::Dispatch {
                reason: "connection refused".into(),
                user: false,
            },
            FailureClass::Unavailable,
        ),
        (
            Ec2Error::Dispatch {
                reason: "bad request".into(),
                user: true,
            },
            FailureClass::Invalid,
        ),
        (
            Ec2Error::Credentials("IMDS timed out".into()),
            FailureClass::Unavailable,
        ),
        (Ec2Error::Request("no region".into()), FailureClass::Invalid),
        (
            Ec2Error::BadAnswer {
                status: 200,
                reason: "malformed".into(),
            },
            FailureClass::Server,
        ),
    ];
    for (err, class) in cases {
        let failure = err.failure("DescribeInstances");
        assert_eq!(failure.class, class, "{err}");
        assert!(
            failure.message.starts_with("DescribeInstances: "),
            "{}",
            failure.message
        );
        assert_eq!(failure.code, None);
    }
}

#[test]
fn form_bodies_encode_everything_but_the_unreserved_characters() {
    let params = [
        numbered("InstanceId", ["i-1".to_string(), "i-2".to_string()]),
        vec![("NextToken".to_string(), "a+b/c= d~e".to_string())],
    ]
    .concat();
    assert_eq!(
        form_body("DescribeInstances", &params),
        "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-1&InstanceId.2=i-2&NextToken=a%2Bb%2Fc%3D%20d~e"
    );
    assert_eq!(
        form_body("DescribeImages", &[]),
        "Action=DescribeImages&Version=2016-11-15"
    );
}

#[test]
fn endpoints_follow_the_override_then_the_config_then_the_region() {
    let plain = static_sdk_config(None);
    assert_eq!(
        endpoint_url_for(&plain, None, Some("eu-west-1")).unwrap(),
        "https://ec2.eu-west-1.amazonaws.com"
    );
    assert_eq!(
        endpoint_url_for(&plain, Some("http://127.0.0.1:5000"), Some("eu-west-1")).unwrap(),
        "http://127.0.0.1:5000"
    );
    let with_endpoint = static_sdk_config(Some("http://localhost:4566"));
    assert_eq!(
        endpoint_url_for(&with_endpoint, None, Some("eu-west-1")).unwrap(),
        "http://localhost:4566"
    );
    assert!(endpoint_url_for(&plain, None, None).unwrap_err().contains("region"));

    assert_eq!(
        regional_endpoint("cn-north-1", false, false),
        "https://ec2.cn-north-1.amazonaws.com.cn"
    );
    assert_eq!(
        regional_endpoint("us-east-1", true, false),
        "https://ec2-fips.us-east-1.amazonaws.com"
    );
    assert_eq!(
        regional_endpoint("us-east-1", false, true),
        "https://ec2.us-east-1.api.aws"
    );
    assert_eq!(
        regional_endpoint("cn-northwest-1", true, true),
        "https://ec2-fips.cn-northwest-1.api.amazonwebservices.com.cn"
    );
}

#[test]
fn endpoint_urls_give_the_signed_host_and_a_root_path() {
    let e = Endpoint::parse("http://127.0.0.1:5000").unwrap();
    assert_eq!(
        (e.uri.to_string().as_str(), e.host.as_str()),
        ("http://127.0.0.1:5000/", "127.0.0.1:5000")
    );
    let e = Endpoint::parse("https://ec2.eu-west-1.amazonaws.com:443").unwrap();
    assert_eq!(e.host, "ec2.eu-west-1.amazonaws.com");
    let e = Endpoint::parse("https://vpce-1.ec2.eu-west-1.vpce.amazonaws.com/prefix/").unwrap();
    assert_eq!(e.uri.path(), "/prefix/");
    for bad in ["", "ec2.eu-west-1.amazonaws.com", "ftp://example.com", "http://"] {
        assert!(Endpoint::parse(bad).is_err(), "{bad:?}");
    }
}

/// A request as the fake endpoint received it.
#[derive(Debug)]
struct Received {
    head: String,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

/// A one-request HTTP endpoint on loopback answering `status` and `body`, and handing back
/// what it was sent.
async fn fake_endpoint(status: u16, body: String) -> (String, tokio::sync::oneshot::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed before sending a whole request");
            bytes.extend_from_slice(&buf[..n]);
            if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = String::from_utf8(bytes[..head_end].to_vec()).unwrap();
        let received = Received {
            head,
            body: String::new(),
        };
        let length: usize = received.header("content-length").map_or(0, |v| v.parse().unwrap());
        while bytes.len() < head_end + length {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed before sending the whole body");
            bytes.extend_from_slice(&buf[..n]);
        }
        let received = Received {
            body: String::from_utf8(bytes[head_end..].to_vec()).unwrap(),
            ..received
        };
        let answer = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: text/xml;charset=UTF-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
        let _ = tx.send(received);
    });
    (url, rx)
}

#[tokio::test]
async fn describe_instances_sends_a_signed_form_post_and_reads_the_answer() {
    let (url, received) = fake_endpoint(200, DESCRIBE_INSTANCES_ANSWER.to_string()).await;
    let client = Ec2Client::new(&static_sdk_config(None), Some(&url), CONNECT_TIMEOUT, ATTEMPT_TIMEOUT);
    let ids = ["i-1234567890abcdef0".to_string(), "i-0aaaaaaaaaaaaaaa1".to_string()];
    let page = client.describe_instances(&ids, Some("page/2")).await.expect("describe");
    assert_eq!(page.instances.len(), 3, "{page:?}");
    assert_eq!(page.instances[0].private_ip.as_deref(), Some("10.0.1.88"));

    let received = received.await.unwrap();
    assert!(received.head.starts_with("POST / HTTP/1.1\r\n"), "{}", received.head);
    let host = url.strip_prefix("http://").unwrap();
    assert_eq!(received.header("host"), Some(host));
    assert_eq!(received.header("content-type"), Some(FORM_CONTENT_TYPE));
    assert_eq!(
        received.body,
        "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-1234567890abcdef0&InstanceId.2=i-0aaaaaaaaaaaaaaa1&NextToken=page%2F2"
    );
    // Signed for EC2 in the configuration's region with its (temporary) test credentials.
    assert_eq!(received.header("x-amz-security-token"), Some("testing"));
    let authorization = received.header("authorization").expect("signed");
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=testing/")
            && authorization.contains("/us-east-1/ec2/aws4_request, ")
            && authorization.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="),
        "{authorization}"
    );
}

#[tokio::test]
async fn an_error_answer_is_a_service_error_with_its_code() {
    let (url, _received) = fake_endpoint(400, not_found_answer("i-0123456789abcdef0")).await;
    let client = Ec2Client::new(&static_sdk_config(None), Some(&url), CONNECT_TIMEOUT, ATTEMPT_TIMEOUT);
    let err = client
        .describe_instances(&["i-0123456789abcdef0".to_string()], None)
        .await
        .expect_err("not found");
    assert_eq!(err.code(), Some("InvalidInstanceID.NotFound"), "{err}");
    assert!(matches!(err, Ec2Error::Service { status: 400, .. }), "{err:?}");
}

#[tokio::test]
async fn an_unreadable_success_is_a_server_failure() {
    let (url, _received) = fake_endpoint(200, "<DescribeInstancesResponse><oops>".to_string()).await;
    let client = Ec2Client::new(&static_sdk_config(None), Some(&url), CONNECT_TIMEOUT, ATTEMPT_TIMEOUT);
    let err = client.describe_instances(&[], None).await.expect_err("malformed");
    assert!(matches!(err, Ec2Error::BadAnswer { status: 200, .. }), "{err:?}");
    assert_eq!(err.failure("DescribeInstances").class, FailureClass::Server);
}

#[tokio::test]
async fn an_endpoint_that_never_answers_times_out_as_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Accepts the connection and holds it without a word.
    let holder = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(stream);
    });
    let attempt = Duration::from_millis(300);
    let client = Ec2Client::new(&static_sdk_config(None), Some(&url), CONNECT_TIMEOUT, attempt);
    let err = client.describe_instances(&[], None).await.expect_err("no answer");
    assert_eq!(err, Ec2Error::Timeout(attempt));
    assert_eq!(err.failure("DescribeInstances").class, FailureClass::Unavailable);
    holder.abort();
}

#[tokio::test]
async fn an_endpoint_nobody_listens_on_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let client = Ec2Client::new(&static_sdk_config(None), Some(&url), CONNECT_TIMEOUT, ATTEMPT_TIMEOUT);
    let err = client.describe_instances(&[], None).await.expect_err("refused");
    assert!(matches!(err, Ec2Error::Dispatch { user: false, .. }), "{err:?}");
    let failure = err.failure("DescribeInstances");
    assert_eq!(failure.class, FailureClass::Unavailable);
    assert!(
        failure.message.starts_with("DescribeInstances: request not delivered"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn a_config_without_region_or_credentials_fails_each_call_clearly() {
    let no_region = SdkConfig::builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKID", "secret", None, None, "test",
        )))
        .build();
    let client = Ec2Client::new(&no_region, None, CONNECT_TIMEOUT, ATTEMPT_TIMEOUT);
    let err = client.describe_instances(&[], None).await.expect_err("no region");
    assert!(matches!(&err, Ec2Error::Request(m) if m.contains("region")), "{err:?}");
    assert_eq!(err.failure("DescribeInstances").class, FailureClass::Invalid);

    let no_credentials = SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let client = Ec2Client::new(
        &no_credentials,
        Some("http://127.0.0.1:9"),
        CONNECT_TIMEOUT,
        ATTEMPT_TIMEOUT,
    );
    let err = client.describe_instances(&[], None).await.expect_err("no credentials");
    assert!(matches!(err, Ec2Error::Credentials(_)), "{err:?}");
}

/// A credentials provider that counts its calls and hands out keys expiring at `expiry`.
#[derive(Debug)]
struct CountingProvider {
    calls: Arc<AtomicU32>,
    expiry: Option<SystemTime>,
}

impl ProvideCredentials for CountingProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let credentials = Credentials::new("AKID", "secret", None, self.expiry, "counting");
        future::ProvideCredentials::ready(Ok::<_, CredentialsError>(credentials))
    }
}

async fn provider_calls_for_two_reads(expiry: Option<SystemTime>) -> u32 {
    let calls = Arc::new(AtomicU32::new(0));
    let cache = CredentialsCache::new(SharedCredentialsProvider::new(CountingProvider {
        calls: calls.clone(),
        expiry,
    }));
    cache.get().await.unwrap();
    cache.get().await.unwrap();
    calls.load(Ordering::SeqCst)
}

#[tokio::test]
async fn credentials_are_reused_until_shortly_before_they_expire() {
    let now = SystemTime::now();
    assert_eq!(
        provider_calls_for_two_reads(Some(now + Duration::from_secs(3600))).await,
        1
    );
    assert_eq!(provider_calls_for_two_reads(None).await, 1);
    // Inside the refresh margin: read again each time.
    assert_eq!(
        provider_calls_for_two_reads(Some(now + Duration::from_secs(60))).await,
        2
    );
}
