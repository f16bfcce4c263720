//! fjord-aws against a real (local) AWS API: moto's server, started per test on a free loopback
//! port and killed when the test ends ([`fjord_aws::testing`], which also says where moto comes
//! from and when a missing moto fails the tests rather than skipping them).

use base64::Engine;
use fjord_aws::testing::{
    create_auto_scaling_group, static_sdk_config, GroupSize, MotoServer, MOTO_ACCOUNT_ID as ACCOUNT,
    TEST_REGION as REGION,
};
use fjord_aws::{AsgProvider, EcrCredentials, EcrError, RetryPolicy};
use fjord_decisions::capacity::{CapacityProvider, GroupSnapshot, InstanceState, ProviderError};
use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, SystemTime};

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
    let Some(moto) = MotoServer::start() else { return };
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
    let creds = EcrCredentials::builder(&static_sdk_config(None))
        .endpoint_url(moto.endpoint_url())
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
    let Some(moto) = MotoServer::start() else { return };
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
    let creds = EcrCredentials::builder(&static_sdk_config(None))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build();
    let host = format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com");
    let err = creds.credentials(&host).await.expect_err("nothing listens");
    assert!(err.retryable(), "{err}");
    assert!(err.to_string().contains(&host), "{err}");
    assert!(err.to_string().contains("GetAuthorizationToken"), "{err}");
}

// ---------------------------------------------------------------- Auto Scaling

/// The group every Auto Scaling test starts from: min 0, max 10, one instance.
async fn create_group(config: &fjord_aws::SdkConfig, name: &str) -> Vec<String> {
    let size = GroupSize {
        min: 0,
        max: 10,
        desired: 1,
    };
    create_auto_scaling_group(config, name, size).await
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
    let Some(moto) = MotoServer::start() else { return };
    let zones = create_group(&moto.sdk_config(), "fjord-nodes").await;

    let provider = AsgProvider::with_endpoint_url(&static_sdk_config(None), "fjord-nodes", Some(moto.endpoint_url()))
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
    let Some(moto) = MotoServer::start() else { return };
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
    let Some(moto) = MotoServer::start() else { return };
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
    let provider = AsgProvider::with_endpoint_url(&static_sdk_config(None), "fjord-nodes", Some(&url))
        .with_retry_policy(fast_retries());
    let err = provider.describe().await.expect_err("nothing listens");
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err:?}");
    assert!(err.retryable());
    assert!(err.to_string().contains("DescribeAutoScalingGroups"), "{err}");
}
