//! fjord-aws against a real (local) AWS API: moto's server, started per test on a free loopback
//! port and killed when the test ends.
//!
//! moto comes from the venv `scripts/install-infra-tools.sh` creates
//! (`$HOME/.cache/fjord-tools/moto/bin/moto_server`, or `FJORD_MOTO_SERVER`). Without it the
//! tests print why and pass, unless `FJORD_REQUIRE_DOCKER=1` or `CI=true` says the environment
//! must have it, in which case they fail.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ecr::config::{Credentials, SharedCredentialsProvider};
use base64::Engine;
use fjord_aws::{AsgProvider, EcrCredentials, EcrError, RetryPolicy};
use fjord_core::capacity::{CapacityProvider, GroupSnapshot, InstanceState, ProviderError};
use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// moto's default account.
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// A moto server process, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
    _log_dir: tempfile::TempDir,
    log_path: PathBuf,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto, or returns `None` (after saying why) when it is not installed and the
    /// environment does not require it.
    fn start() -> Option<Moto> {
        let path = match std::env::var_os("FJORD_MOTO_SERVER") {
            Some(path) => PathBuf::from(path),
            None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/fjord-tools/moto/bin/moto_server"),
        };
        if !path.is_file() {
            let required = std::env::var("FJORD_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
                || std::env::var("CI").is_ok_and(|v| v == "true");
            let why = format!(
                "moto_server not found at {}; run `bash scripts/install-infra-tools.sh` or set FJORD_MOTO_SERVER",
                path.display()
            );
            assert!(!required, "{why} (required because FJORD_REQUIRE_DOCKER=1 or CI=true)");
            eprintln!("SKIPPED: {why}");
            return None;
        }
        // A port freed just now can be taken by someone else before moto binds it; then moto
        // exits and we try another.
        let mut last_failure = String::new();
        for _ in 0..3 {
            match Self::spawn(&path) {
                Ok(moto) => return Some(moto),
                Err(failure) => last_failure = failure,
            }
        }
        panic!("moto_server did not start: {last_failure}");
    }

    fn spawn(path: &PathBuf) -> Result<Moto, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let log_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let log_path = log_dir.path().join("moto.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let child = Command::new(path)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            _log_dir: log_dir,
            log_path,
        };

        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("moto exited with {status}: {}", moto.log()));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(moto);
            }
            if Instant::now() > deadline {
                return Err(format!("moto did not listen on {addr} within 60 s: {}", moto.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Fake static credentials and region, nothing read from the process environment.
    fn sdk_config(&self) -> SdkConfig {
        sdk_config(Some(&self.endpoint))
    }
}

fn sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    let credentials = Credentials::new("testing", "testing", Some("testing".into()), None, "moto-tests");
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(credentials));
    if let Some(url) = endpoint_url {
        config = config.endpoint_url(url);
    }
    config.build()
}

/// Calls `check` until it yields a value, or panics naming `what` after `within`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if tokio::time::Instant::now() >= deadline => {
                panic!("{what} did not happen within {within:?}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

// ---------------------------------------------------------------- ECR

#[tokio::test]
async fn ecr_credentials_are_fetched_cached_and_refreshed() {
    let Some(moto) = Moto::start() else { return };
    let setup = moto.sdk_config();
    let ecr = aws_sdk_ecr::Client::new(&setup);
    ecr.create_repository()
        .repository_name("fjord/echo")
        .send()
        .await
        .expect("create repository");

    // What ECR itself answers, to compare the cache's decoding against.
    let raw = ecr
        .get_authorization_token()
        .send()
        .await
        .expect("GetAuthorizationToken");
    let raw_token = raw.authorization_data()[0]
        .authorization_token()
        .expect("token")
        .to_string();
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(&raw_token).unwrap()).unwrap();
    let expires_at = SystemTime::try_from(*raw.authorization_data()[0].expires_at().expect("expiresAt")).unwrap();

    // moto's tokens carry a fixed expiresAt in the past (2015); a clock set a day before it makes
    // them live tokens. The SDK config has no endpoint: the override is the builder's.
    let clock = move || expires_at - Duration::from_secs(24 * 3600);
    let creds = EcrCredentials::builder(&sdk_config(None))
        .endpoint_url(&moto.endpoint)
        .clock(clock)
        .build();
    let host = format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com");

    let (user, password) = creds.credentials(&host).await.expect("credentials");
    assert_eq!(user, "AWS");
    assert!(!password.is_empty());
    assert_eq!(format!("{user}:{password}"), decoded);
    assert_eq!(creds.token_requests(), 1);

    // Served from the cache, also with the host in another case.
    assert_eq!(
        creds.credentials(&host).await.unwrap(),
        (user.clone(), password.clone())
    );
    assert_eq!(
        creds.credentials(&host.to_uppercase()).await.unwrap(),
        (user.clone(), password.clone())
    );
    assert_eq!(creds.token_requests(), 1);

    // After an auth failure the caller invalidates: one new request, then cached again.
    creds.invalidate(&host);
    assert_eq!(
        creds.credentials(&host).await.unwrap(),
        (user.clone(), password.clone())
    );
    assert_eq!(creds.token_requests(), 2);
    assert_eq!(
        creds.credentials(&host).await.unwrap(),
        (user.clone(), password.clone())
    );
    assert_eq!(creds.token_requests(), 2);

    // Another region is another registry, with its own token.
    let other = format!("{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com");
    assert_eq!(creds.credentials(&other).await.unwrap().0, "AWS");
    assert_eq!(creds.token_requests(), 3);

    // A host that only looks like ECR gets nothing, and costs no request.
    for bad in ["ghcr.io", "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example"] {
        match creds.credentials(bad).await {
            Err(EcrError::NotEcr { host }) => assert_eq!(host, bad),
            other => panic!("{bad}: expected NotEcr, got {other:?}"),
        }
    }
    assert_eq!(creds.token_requests(), 3);
}

#[tokio::test]
async fn ecr_concurrent_callers_share_one_request_and_expired_tokens_are_refetched() {
    let Some(moto) = Moto::start() else { return };
    let host = format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com");

    // With a clock well before moto's fixed expiry, eight callers at once cost one request.
    let before_expiry = || SystemTime::UNIX_EPOCH + Duration::from_secs(1_400_000_000); // 2014
    let creds = EcrCredentials::builder(&moto.sdk_config()).clock(before_expiry).build();
    let all = futures::future::join_all((0..8).map(|_| creds.credentials(&host))).await;
    let first = all[0].clone().expect("credentials");
    for result in &all {
        assert_eq!(result.as_ref().expect("credentials"), &first);
    }
    assert_eq!(creds.token_requests(), 1);

    // With the real clock moto's tokens have expired: nothing is reused.
    let creds = EcrCredentials::new(&moto.sdk_config());
    creds.credentials(&host).await.expect("credentials");
    creds.credentials(&host).await.expect("credentials");
    assert_eq!(creds.token_requests(), 2);

    // A margin wider than the time left to expiry also means nothing is reused.
    let creds = EcrCredentials::builder(&moto.sdk_config())
        .clock(before_expiry)
        .refresh_before_expiry(Duration::from_secs(10 * 365 * 24 * 3600))
        .build();
    creds.credentials(&host).await.expect("credentials");
    creds.credentials(&host).await.expect("credentials");
    assert_eq!(creds.token_requests(), 2);
}

#[tokio::test]
async fn ecr_unreachable_endpoint_is_a_retryable_error_naming_the_host() {
    // No moto needed: nothing listens on a port just freed.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let creds = EcrCredentials::builder(&sdk_config(None))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build();
    let host = format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com");
    let err = creds.credentials(&host).await.expect_err("nothing listens");
    assert!(err.retryable(), "{err}");
    assert!(err.to_string().contains(&host), "{err}");
    assert!(err.to_string().contains("GetAuthorizationToken"), "{err}");
}

// ---------------------------------------------------------------- Auto Scaling

/// Creates a launch template and an Auto Scaling group (min 0, max 10, desired 1) over the
/// default subnets of two zones.
async fn create_group(config: &SdkConfig, name: &str) -> Vec<String> {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let images = ec2.describe_images().send().await.expect("DescribeImages");
    let image_id = images
        .images()
        .iter()
        .find_map(|i| i.image_id())
        .expect("moto ships AMIs")
        .to_string();

    let default_subnets = aws_sdk_ec2::types::Filter::builder()
        .name("default-for-az")
        .values("true")
        .build();
    let subnets = ec2
        .describe_subnets()
        .filters(default_subnets)
        .send()
        .await
        .expect("DescribeSubnets");
    let mut by_zone: Vec<(String, String)> = subnets
        .subnets()
        .iter()
        .filter_map(|s| Some((s.availability_zone()?.to_string(), s.subnet_id()?.to_string())))
        .collect();
    by_zone.sort();
    by_zone.dedup_by(|a, b| a.0 == b.0);
    assert!(
        by_zone.len() >= 2,
        "moto's default VPC should have subnets in two zones: {by_zone:?}"
    );
    by_zone.truncate(2);

    let data = aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
        .image_id(&image_id)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .build();
    ec2.create_launch_template()
        .launch_template_name(format!("{name}-template"))
        .launch_template_data(data)
        .send()
        .await
        .expect("CreateLaunchTemplate");

    let template = aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
        .launch_template_name(format!("{name}-template"))
        .version("$Latest")
        .build();
    let subnet_ids: Vec<&str> = by_zone.iter().map(|(_, subnet)| subnet.as_str()).collect();
    aws_sdk_autoscaling::Client::new(config)
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_template(template)
        .min_size(0)
        .max_size(10)
        .desired_capacity(1)
        .vpc_zone_identifier(subnet_ids.join(","))
        .send()
        .await
        .expect("CreateAutoScalingGroup");
    by_zone.into_iter().map(|(zone, _)| zone).collect()
}

fn live(snapshot: &GroupSnapshot) -> Vec<&str> {
    snapshot
        .instances
        .iter()
        .filter(|i| i.state != InstanceState::Terminating)
        .map(|i| i.instance_id.as_str())
        .collect()
}

#[tokio::test]
async fn asg_describe_scale_up_and_terminate() {
    let Some(moto) = Moto::start() else { return };
    let zones = create_group(&moto.sdk_config(), "fjord-nodes").await;

    let provider = AsgProvider::with_endpoint_url(&sdk_config(None), "fjord-nodes", Some(&moto.endpoint))
        .with_retry_policy(fast_retries());
    assert_eq!(provider.kind(), "aws-asg");
    assert_eq!(provider.group(), "fjord-nodes");

    let snap = provider.describe().await.expect("describe");
    assert_eq!(
        (snap.name.as_str(), snap.desired, snap.min, snap.max),
        ("fjord-nodes", 1, 0, 10)
    );
    assert_eq!(snap.instances.len(), 1, "{snap:?}");
    let first = &snap.instances[0];
    assert!(first.instance_id.starts_with("i-"), "{first:?}");
    assert!(zones.contains(&first.zone), "zone {} not among {zones:?}", first.zone);
    let ip = first.private_ip.as_deref().expect("a private IP");
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");
    assert_eq!(first.state, InstanceState::InService);

    provider.set_desired(3).await.expect("set_desired");
    let snap = eventually("the group to run 3 instances", Duration::from_secs(30), || async {
        let snap = provider.describe().await.map_err(|e| e.to_string())?;
        if snap.desired == 3 && live(&snap).len() == 3 && snap.instances.iter().all(|i| i.private_ip.is_some()) {
            Ok(snap)
        } else {
            Err(format!("{snap:?}"))
        }
    })
    .await;

    let victim = live(&snap)[1].to_string();
    provider.terminate(&victim).await.expect("terminate");
    let snap = eventually(
        "the group to drop the terminated instance",
        Duration::from_secs(30),
        || async {
            let snap = provider.describe().await.map_err(|e| e.to_string())?;
            if snap.desired == 2 && live(&snap).len() == 2 && !live(&snap).contains(&victim.as_str()) {
                Ok(snap)
            } else {
                Err(format!("{snap:?}"))
            }
        },
    )
    .await;
    assert!(snap
        .instances
        .iter()
        .all(|i| i.instance_id != victim || i.state == InstanceState::Terminating));

    // An instance that is not in the group is refused, permanently, and nothing changes.
    let err = provider.terminate("i-0123456789abcdef0").await.expect_err("not ours");
    assert!(!err.retryable(), "{err}");
    assert!(err.to_string().contains("i-0123456789abcdef0"), "{err}");
    assert_eq!(provider.describe().await.unwrap().desired, 2);
}

#[tokio::test]
async fn asg_terminate_refuses_another_groups_instance() {
    let Some(moto) = Moto::start() else { return };
    create_group(&moto.sdk_config(), "fjord-nodes").await;
    let other = aws_sdk_autoscaling::Client::new(&moto.sdk_config());
    let template = aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
        .launch_template_name("fjord-nodes-template")
        .version("$Latest")
        .build();
    other
        .create_auto_scaling_group()
        .auto_scaling_group_name("someone-else")
        .launch_template(template)
        .min_size(1)
        .max_size(1)
        .availability_zones(format!("{REGION}a"))
        .send()
        .await
        .expect("second group");

    let theirs = AsgProvider::new(&moto.sdk_config(), "someone-else");
    let their_instance = theirs.describe().await.expect("describe").instances[0]
        .instance_id
        .clone();
    let ours = AsgProvider::new(&moto.sdk_config(), "fjord-nodes").with_retry_policy(fast_retries());
    let err = ours
        .terminate(&their_instance)
        .await
        .expect_err("another group's instance");
    assert!(matches!(err, ProviderError::InvalidRequest { .. }), "{err}");
    assert!(err.to_string().contains("someone-else"), "{err}");
    assert_eq!(theirs.describe().await.unwrap().desired, 1);
}

#[tokio::test]
async fn asg_unknown_group_is_a_permanent_error_naming_it() {
    let Some(moto) = Moto::start() else { return };
    let provider = AsgProvider::new(&moto.sdk_config(), "no-such-group").with_retry_policy(fast_retries());
    let err = provider.describe().await.expect_err("unknown group");
    assert!(
        matches!(&err, ProviderError::UnknownGroup { group, .. } if group == "no-such-group"),
        "{err:?}"
    );
    assert!(!err.retryable());
    assert!(err.to_string().contains("no-such-group"), "{err}");
}

#[tokio::test]
async fn asg_unreachable_endpoint_is_retryable_after_the_policy_gave_up() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let provider =
        AsgProvider::with_endpoint_url(&sdk_config(None), "fjord-nodes", Some(&url)).with_retry_policy(fast_retries());
    let err = provider.describe().await.expect_err("nothing listens");
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err:?}");
    assert!(err.retryable());
    assert!(err.to_string().contains("DescribeAutoScalingGroups"), "{err}");
}
