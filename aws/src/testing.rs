//! Test support for a local AWS endpoint: [`MotoServer`] starts moto's server on a free loopback
//! port and kills it when dropped, [`static_sdk_config`] gives clients fake credentials that
//! moto accepts, and [`create_auto_scaling_group`] sets up a launch template and an Auto Scaling
//! group there. For tests only (fjord-aws's own and the end-to-end suite): nothing in Fjord's
//! daemons calls it.
//!
//! moto comes from the venv `scripts/install-infra-tools.sh` creates
//! (`$FJORD_TOOLS_DIR/moto/bin/moto_server`, by default under `$HOME/.cache/fjord-tools`), or
//! from `FJORD_MOTO_SERVER`. Without it [`MotoServer::start`] prints why and returns `None`, so
//! the test passes having checked nothing, unless `FJORD_REQUIRE_DOCKER=1` or `CI=true` says the
//! environment must have it: then it panics. Setup failures panic too, naming the call that
//! failed: they are the test's failure, not a condition to handle.

use crate::ec2::Ec2Client;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_autoscaling::config::{Credentials, SharedCredentialsProvider};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The account moto's resources belong to.
pub const MOTO_ACCOUNT_ID: &str = "123456789012";
/// The region the fake credentials and [`create_auto_scaling_group`] use.
pub const TEST_REGION: &str = "us-east-1";
/// What a daemon under test needs in its environment to reach moto through the standard AWS
/// chain (the endpoint itself goes on its command line): fake credentials and the region.
pub const TEST_AWS_ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_SESSION_TOKEN", "testing"),
    ("AWS_REGION", TEST_REGION),
];

/// How long moto may take to answer after it was started (a cold Python start on a busy machine).
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Attempts at a free port: one freed just now can be taken before moto binds it.
const START_ATTEMPTS: usize = 3;

/// A moto server process on a loopback port, killed (and its log removed) on drop.
pub struct MotoServer {
    child: Child,
    endpoint_url: String,
    log_path: PathBuf,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

impl MotoServer {
    /// Starts moto and waits until it answers HTTP; `None` (after printing why) when it is not
    /// installed and the environment does not require it.
    ///
    /// # Panics
    ///
    /// When moto is missing but required (`FJORD_REQUIRE_DOCKER=1` or `CI=true`), or when it
    /// does not answer within a minute (its log is in the message).
    pub fn start() -> Option<MotoServer> {
        let program = moto_program();
        if !program.is_file() {
            let why = format!(
                "moto_server not found at {}; run `bash scripts/install-infra-tools.sh` or set FJORD_MOTO_SERVER",
                program.display()
            );
            assert!(
                !moto_required(),
                "{why} (required because FJORD_REQUIRE_DOCKER=1 or CI=true)"
            );
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::spawn(&program) {
                Ok(moto) => return Some(moto),
                Err(failure) => last_failure = failure,
            }
        }
        panic!("moto_server did not start: {last_failure}");
    }

    fn spawn(program: &Path) -> Result<MotoServer, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let log_path = std::env::temp_dir().join(format!("fjord-moto-{}-{port}.log", std::process::id()));
        let log = std::fs::File::create(&log_path).map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        let mut moto = MotoServer {
            child,
            endpoint_url: format!("http://127.0.0.1:{port}"),
            log_path,
        };

        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("moto exited with {status}: {}", moto.log()));
            }
            if answers_http(addr) {
                return Ok(moto);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "moto did not answer on {addr} within {START_DEADLINE:?}: {}",
                    moto.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`, for every service.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint_url
    }

    /// What moto printed so far (its request log and any error).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A configuration for clients of this server: [`static_sdk_config`] with its endpoint.
    pub fn sdk_config(&self) -> SdkConfig {
        static_sdk_config(Some(&self.endpoint_url))
    }
}

/// Where moto's server program is expected.
fn moto_program() -> PathBuf {
    if let Some(path) = std::env::var_os("FJORD_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let tools = match std::env::var_os("FJORD_TOOLS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/fjord-tools"),
    };
    tools.join("moto/bin/moto_server")
}

/// Whether the environment says tests must not be skipped for want of moto.
fn moto_required() -> bool {
    std::env::var("FJORD_REQUIRE_DOCKER").is_ok_and(|v| v == "1") || std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether an HTTP server at `addr` answers a request (any status).
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(2));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    let request = format!("GET /moto-api/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut start = [0u8; 5];
    stream.read_exact(&mut start).is_ok() && &start == b"HTTP/"
}

/// A configuration with fake static credentials and [`TEST_REGION`], nothing read from the
/// process environment; every service at `endpoint_url` when given.
pub fn static_sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    let credentials = Credentials::new("testing", "testing", Some("testing".into()), None, "fjord-aws-testing");
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(crate::sdk_http_client());
    if let Some(url) = endpoint_url {
        config = config.endpoint_url(url);
    }
    config.build()
}

/// The sizes of an Auto Scaling group to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSize {
    pub min: u32,
    pub max: u32,
    pub desired: u32,
}

/// Creates the launch template `{name}-template` (one of moto's AMIs, t3.micro) and the Auto
/// Scaling group `name` over the default subnets of two zones, and returns those two zones.
///
/// # Panics
///
/// When a call fails, naming it; or when the default VPC has subnets in fewer than two zones.
pub async fn create_auto_scaling_group(config: &SdkConfig, name: &str, size: GroupSize) -> Vec<String> {
    let ec2 = Ec2Client::new(config, None, Duration::from_secs(3), Duration::from_secs(60));
    let call = |action: &'static str, params: Vec<(String, String)>| {
        let ec2 = ec2.clone();
        async move {
            ec2.call(action, &params)
                .await
                .unwrap_or_else(|e| panic!("{}", e.failure(action).message))
        }
    };
    let images = call("DescribeImages", vec![]).await;
    let image_id = images
        .items("imagesSet")
        .find_map(|i| i.child_text("imageId"))
        .expect("moto ships AMIs")
        .to_string();

    let default_for_zone = vec![
        ("Filter.1.Name".to_string(), "default-for-az".to_string()),
        ("Filter.1.Value.1".to_string(), "true".to_string()),
    ];
    let subnets = call("DescribeSubnets", default_for_zone).await;
    let mut zone_subnets: Vec<(String, String)> = subnets
        .items("subnetSet")
        .filter_map(|s| {
            Some((
                s.child_text("availabilityZone")?.to_string(),
                s.child_text("subnetId")?.to_string(),
            ))
        })
        .collect();
    zone_subnets.sort();
    zone_subnets.dedup_by(|a, b| a.0 == b.0);
    assert!(
        zone_subnets.len() >= 2,
        "the default VPC should have subnets in two zones: {zone_subnets:?}"
    );
    zone_subnets.truncate(2);

    let template_name = format!("{name}-template");
    let template = vec![
        ("LaunchTemplateName".to_string(), template_name.clone()),
        ("LaunchTemplateData.ImageId".to_string(), image_id),
        ("LaunchTemplateData.InstanceType".to_string(), "t3.micro".to_string()),
    ];
    call("CreateLaunchTemplate", template).await;

    let template = aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
        .launch_template_name(&template_name)
        .version("$Latest")
        .build();
    let subnet_ids: Vec<&str> = zone_subnets.iter().map(|(_, subnet)| subnet.as_str()).collect();
    let count = |n: u32| i32::try_from(n).expect("a group size fits in i32");
    aws_sdk_autoscaling::Client::new(config)
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_template(template)
        .min_size(count(size.min))
        .max_size(count(size.max))
        .desired_capacity(count(size.desired))
        .vpc_zone_identifier(subnet_ids.join(","))
        .send()
        .await
        .expect("CreateAutoScalingGroup");
    zone_subnets.into_iter().map(|(zone, _)| zone).collect()
}

/// An Auto Scaling group as AWS itself describes it, read without Fjord's provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    /// Instance id and lifecycle state (`InService`, `Terminating`...), in AWS's order.
    pub instances: Vec<(String, String)>,
}

impl GroupState {
    /// The instances not on their way out (any lifecycle state but `Terminat*`).
    pub fn live_instances(&self) -> Vec<&str> {
        self.instances
            .iter()
            .filter(|(_, state)| !state.starts_with("Terminat"))
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

/// Reads group `name` with DescribeAutoScalingGroups; `Err` says what went wrong (the call
/// failed, or no such group), for a test that polls.
pub async fn describe_group(config: &SdkConfig, name: &str) -> Result<GroupState, String> {
    let output = aws_sdk_autoscaling::Client::new(config)
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .map_err(|e| {
            format!(
                "DescribeAutoScalingGroups {name}: {}",
                aws_sdk_autoscaling::error::DisplayErrorContext(e)
            )
        })?;
    let group = output
        .auto_scaling_groups()
        .iter()
        .find(|g| g.auto_scaling_group_name() == Some(name))
        .ok_or_else(|| format!("no Auto Scaling group {name}"))?;
    let size = |n: Option<i32>| n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    Ok(GroupState {
        desired: size(group.desired_capacity()),
        min: size(group.min_size()),
        max: size(group.max_size()),
        instances: group
            .instances()
            .iter()
            .filter_map(|i| {
                let state = i.lifecycle_state().map_or(String::new(), |s| s.as_str().to_string());
                Some((i.instance_id()?.to_string(), state))
            })
            .collect(),
    })
}
