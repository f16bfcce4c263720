//! The function spec (`fjord.yaml`): its fields, their defaults and bounds, and validation that
//! names the field at fault.
//!
//! ```yaml
//! name: echo
//! image: registry.example.com/team/echo:1.4     # for the docker runtime
//! command: ["/usr/local/bin/echo-fn"]            # for the process runtime
//! env: { GREETING: hello }
//! secrets: [db-password]                         # files in /var/fjord/secrets (fjord secret create)
//! memory_mib: 128
//! cpu_millis: 500
//! timeout: 30s
//! concurrency: 1
//! min: 0
//! max: 20
//! scale_to_zero_after: 5m
//! keep_alive: fixed                              # or adaptive
//! async:                                         # calls through /async-function/{name}
//!   concurrency: 10                              # at once, over the whole cluster
//!   max_attempts: 3
//!   min_backoff: 1s
//!   max_backoff: 5m
//!   max_age: 6h
//! ```

use crate::duration::serde_human;
use crate::name::check_dns_label;
use crate::secret::{self, Secrets};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The scaling fields of a spec that the cluster policy may default (`DeployRequest.defaulted`),
/// as `fjord.yaml` names them.
pub const DEFAULTABLE_FIELDS: [&str; 6] = [
    "min",
    "max",
    "concurrency",
    "target_utilization",
    "scale_to_zero_after",
    "keep_alive",
];

pub const DEFAULT_MEMORY_MIB: u32 = 128;
pub const DEFAULT_CPU_MILLIS: u32 = 1000;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_CONCURRENCY: u32 = 1;
pub const DEFAULT_MAX_INSTANCES: u32 = 100;
pub const DEFAULT_SCALE_TO_ZERO_AFTER: Duration = Duration::from_secs(300);
pub const DEFAULT_TARGET_UTILIZATION: f64 = 0.7;

pub const MEMORY_MIB_RANGE: (u32, u32) = (16, 65_536);
pub const CPU_MILLIS_RANGE: (u32, u32) = (10, 64_000);
pub const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(900));
pub const CONCURRENCY_RANGE: (u32, u32) = (1, 1_000);
pub const MAX_INSTANCES_LIMIT: u32 = 1_000;
pub const SCALE_TO_ZERO_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(86_400));
/// The spec file and each value in it stay small: specs live in the replicated log.
pub const MAX_SPEC_BYTES: usize = 64 * 1024;
const MAX_ENV_ENTRIES: usize = 256;
const MAX_VALUE_BYTES: usize = 16 * 1024;
const RESERVED_ENV: &[&str] = &["PORT"];

/// What a user deploys. Field names are the YAML keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    pub name: String,
    /// OCI image reference (docker runtime).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Program and arguments (process runtime).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Names of stored secrets, mounted as files (see [`crate::secret`]).
    #[serde(default, skip_serializing_if = "Secrets::is_empty")]
    pub secrets: Secrets,
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u32,
    #[serde(default = "default_cpu_millis")]
    pub cpu_millis: u32,
    #[serde(default = "default_timeout", with = "serde_human")]
    pub timeout: Duration,
    /// Requests one instance serves at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Instances kept warm at all times.
    #[serde(default)]
    pub min: u32,
    /// Instances at most, over the whole cluster.
    #[serde(default = "default_max")]
    pub max: u32,
    #[serde(default = "default_target_utilization")]
    pub target_utilization: f64,
    #[serde(default = "default_scale_to_zero_after", with = "serde_human")]
    pub scale_to_zero_after: Duration,
    /// When an idle function (with `min: 0`) gives its instances back.
    #[serde(default, skip_serializing_if = "KeepAlive::is_fixed")]
    pub keep_alive: KeepAlive,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// How calls through the durable queue (`/async-function/{name}`) are delivered.
    #[serde(rename = "async", default, skip_serializing_if = "AsyncPolicy::is_default")]
    pub async_policy: AsyncPolicy,
    /// Cron expressions (UTC, 5 fields or a shorthand such as `@daily`) whose ticks enqueue an
    /// asynchronous call with `X-Fjord-Trigger: cron`. Their syntax is checked by the control
    /// plane at deploy (the cron parser lives with the schedules it drives, in fjord-decisions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<String>,
}

pub const DEFAULT_ASYNC_CONCURRENCY: u32 = 10;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
pub const DEFAULT_MIN_BACKOFF: Duration = Duration::from_secs(1);
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Lambda's default for asynchronous events.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(6 * 3600);
pub const ASYNC_CONCURRENCY_RANGE: (u32, u32) = (1, 10_000);
pub const MAX_ATTEMPTS_RANGE: (u32, u32) = (1, 100);
pub const BACKOFF_RANGE: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(3600));
pub const MAX_AGE_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(7 * 86_400));
pub const MAX_SCHEDULES: usize = 16;

/// The `async:` section of a spec: delivery of queued calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsyncPolicy {
    /// Queued calls of this function running at once, over the whole cluster.
    #[serde(default = "default_async_concurrency")]
    pub concurrency: u32,
    /// Attempts in all (the first one included) before a call goes to the dead letters.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles per attempt (with jitter) up to `max_backoff`.
    #[serde(default = "default_min_backoff", with = "serde_human")]
    pub min_backoff: Duration,
    #[serde(default = "default_max_backoff", with = "serde_human")]
    pub max_backoff: Duration,
    /// A call older than this (since it was enqueued) is not attempted again.
    #[serde(default = "default_max_age", with = "serde_human")]
    pub max_age: Duration,
}

impl Default for AsyncPolicy {
    fn default() -> Self {
        AsyncPolicy {
            concurrency: DEFAULT_ASYNC_CONCURRENCY,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            min_backoff: DEFAULT_MIN_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            max_age: DEFAULT_MAX_AGE,
        }
    }
}

impl AsyncPolicy {
    pub fn is_default(&self) -> bool {
        *self == AsyncPolicy::default()
    }

    fn validate(&self) -> Result<(), SpecError> {
        check_range("async.concurrency", self.concurrency, ASYNC_CONCURRENCY_RANGE, "")?;
        check_range("async.max_attempts", self.max_attempts, MAX_ATTEMPTS_RANGE, "")?;
        check_duration("async.min_backoff", self.min_backoff, BACKOFF_RANGE)?;
        check_duration("async.max_backoff", self.max_backoff, BACKOFF_RANGE)?;
        if self.min_backoff > self.max_backoff {
            return Err(SpecError::field(
                "async.min_backoff",
                "must not exceed async.max_backoff",
            ));
        }
        check_duration("async.max_age", self.max_age, MAX_AGE_RANGE)
    }
}

fn default_async_concurrency() -> u32 {
    DEFAULT_ASYNC_CONCURRENCY
}
fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}
fn default_min_backoff() -> Duration {
    DEFAULT_MIN_BACKOFF
}
fn default_max_backoff() -> Duration {
    DEFAULT_MAX_BACKOFF
}
fn default_max_age() -> Duration {
    DEFAULT_MAX_AGE
}

/// The keep-alive policy of a function with `min: 0`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeepAlive {
    /// Keep one instance until the function has been idle for `scale_to_zero_after`.
    #[default]
    Fixed,
    /// Learn the function's idle times (the hybrid histogram policy): once they are predictable,
    /// give the instance back as soon as a call ends and start one again shortly before the
    /// next call is expected; until then, and when they are not, behave as `fixed`.
    Adaptive,
}

impl KeepAlive {
    pub fn is_fixed(&self) -> bool {
        *self == KeepAlive::Fixed
    }

    /// The name `fjord.yaml` uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeepAlive::Fixed => "fixed",
            KeepAlive::Adaptive => "adaptive",
        }
    }
}

impl std::str::FromStr for KeepAlive {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "fixed" => Ok(KeepAlive::Fixed),
            "adaptive" => Ok(KeepAlive::Adaptive),
            other => Err(format!("must be `fixed` or `adaptive` (got {other:?})")),
        }
    }
}

fn default_memory_mib() -> u32 {
    DEFAULT_MEMORY_MIB
}
fn default_cpu_millis() -> u32 {
    DEFAULT_CPU_MILLIS
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_concurrency() -> u32 {
    DEFAULT_CONCURRENCY
}
fn default_max() -> u32 {
    DEFAULT_MAX_INSTANCES
}
fn default_target_utilization() -> f64 {
    DEFAULT_TARGET_UTILIZATION
}
fn default_scale_to_zero_after() -> Duration {
    DEFAULT_SCALE_TO_ZERO_AFTER
}

/// A spec that is not acceptable, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The text is not a spec at all (YAML syntax, wrong type, unknown key).
    #[error("invalid function spec: {0}")]
    Parse(String),
    /// One field's value is out of bounds or malformed.
    #[error("invalid function spec: field `{field}` {reason}")]
    Field { field: String, reason: String },
}

impl SpecError {
    fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field at fault, when one is known.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            SpecError::Field { field, .. } => Some(field),
            SpecError::Parse(_) => None,
        }
    }
}

impl FunctionSpec {
    /// A spec with every default and the given name and command: what tests and `fjord dev` start
    /// from.
    pub fn with_command(name: &str, command: Vec<String>) -> Self {
        FunctionSpec {
            name: name.to_string(),
            image: String::new(),
            command,
            env: BTreeMap::new(),
            secrets: Secrets::default(),
            memory_mib: DEFAULT_MEMORY_MIB,
            cpu_millis: DEFAULT_CPU_MILLIS,
            timeout: DEFAULT_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            min: 0,
            max: DEFAULT_MAX_INSTANCES,
            target_utilization: DEFAULT_TARGET_UTILIZATION,
            scale_to_zero_after: DEFAULT_SCALE_TO_ZERO_AFTER,
            keep_alive: KeepAlive::Fixed,
            labels: BTreeMap::new(),
            async_policy: AsyncPolicy::default(),
            schedule: Vec::new(),
        }
    }

    /// Parses and validates a `fjord.yaml`.
    pub fn from_yaml(text: &str) -> Result<Self, SpecError> {
        if text.len() > MAX_SPEC_BYTES {
            return Err(SpecError::Parse(format!(
                "the file is {} bytes; a spec may be at most {MAX_SPEC_BYTES}",
                text.len()
            )));
        }
        check_duration_fields(text)?;
        let spec: FunctionSpec = serde_yaml_ng::from_str(text).map_err(|e| SpecError::Parse(e.to_string()))?;
        spec.check_deployable()?;
        Ok(spec)
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("a FunctionSpec always serializes")
    }

    /// [`FunctionSpec::validate`], and what only a new deploy is refused for: inline secret
    /// values, which specs stored by earlier versions may still hold.
    pub fn check_deployable(&self) -> Result<(), SpecError> {
        if self.secrets.inline().is_some() {
            return Err(SpecError::field("secrets", secret::INLINE_REFUSED));
        }
        self.validate()
    }

    /// Checks every bound; the first field at fault is reported.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_dns_label(&self.name).map_err(|r| SpecError::field("name", r))?;
        if self.image.is_empty() && self.command.is_empty() {
            return Err(SpecError::field(
                "image",
                "is missing: give an image (docker runtime) or a command (process runtime)",
            ));
        }
        check_value_size("image", &self.image)?;
        if self.command.first().is_some_and(|program| program.trim().is_empty()) {
            return Err(SpecError::field(
                "command",
                "must start with a program, not an empty string",
            ));
        }
        for (i, arg) in self.command.iter().enumerate() {
            check_value_size(&format!("command[{i}]"), arg)?;
        }
        check_env("env", &self.env)?;
        match &self.secrets {
            Secrets::Inline(values) => check_env("secrets", values)?,
            Secrets::Named(names) => {
                if names.len() > secret::MAX_PER_FUNCTION {
                    return Err(SpecError::field(
                        "secrets",
                        format!("names more than {} secrets", secret::MAX_PER_FUNCTION),
                    ));
                }
                for (i, name) in names.iter().enumerate() {
                    secret::check_name(name).map_err(|r| SpecError::field(format!("secrets[{i}]"), r))?;
                    if names[..i].contains(name) {
                        return Err(SpecError::field(
                            format!("secrets[{i}]"),
                            format!("{name:?} is named twice"),
                        ));
                    }
                }
            }
        }
        check_range("memory_mib", self.memory_mib, MEMORY_MIB_RANGE, " MiB")?;
        check_range("cpu_millis", self.cpu_millis, CPU_MILLIS_RANGE, " millicores")?;
        check_duration("timeout", self.timeout, TIMEOUT_RANGE)?;
        check_range("concurrency", self.concurrency, CONCURRENCY_RANGE, "")?;
        check_range("max", self.max, (1, MAX_INSTANCES_LIMIT), "")?;
        if self.min > self.max {
            return Err(SpecError::field(
                "min",
                format!("is {} but max is {}; min must not exceed max", self.min, self.max),
            ));
        }
        if !(self.target_utilization > 0.05 && self.target_utilization <= 1.0) {
            return Err(SpecError::field(
                "target_utilization",
                format!("must be above 0.05 and at most 1.0 (got {})", self.target_utilization),
            ));
        }
        check_duration("scale_to_zero_after", self.scale_to_zero_after, SCALE_TO_ZERO_RANGE)?;
        if self.labels.len() > MAX_ENV_ENTRIES {
            return Err(SpecError::field(
                "labels",
                format!("has more than {MAX_ENV_ENTRIES} entries"),
            ));
        }
        for (key, value) in &self.labels {
            if key.is_empty() || key.len() > 63 {
                return Err(SpecError::field(
                    format!("labels.{key}"),
                    "key must be 1 to 63 characters",
                ));
            }
            check_value_size(&format!("labels.{key}"), value)?;
        }
        self.async_policy.validate()?;
        if self.schedule.len() > MAX_SCHEDULES {
            return Err(SpecError::field(
                "schedule",
                format!("has more than {MAX_SCHEDULES} entries"),
            ));
        }
        for (i, text) in self.schedule.iter().enumerate() {
            if text.trim().is_empty() {
                return Err(SpecError::field(
                    format!("schedule[{i}]"),
                    "is empty: write a cron expression such as \"*/5 * * * *\" or \"@daily\"",
                ));
            }
        }
        Ok(())
    }
}

fn check_range(field: &str, value: u32, (low, high): (u32, u32), unit: &str) -> Result<(), SpecError> {
    if value < low || value > high {
        return Err(SpecError::field(
            field,
            format!("must be between {low}{unit} and {high}{unit} (got {value})"),
        ));
    }
    Ok(())
}

/// The spec's fields that hold a duration (`30s`): read through `serde_human`.
const DURATION_FIELDS: [&str; 2] = ["timeout", "scale_to_zero_after"];
/// The same, inside the `async:` section.
const ASYNC_DURATION_FIELDS: [&str; 3] = ["min_backoff", "max_backoff", "max_age"];

/// Reads each duration field of a `fjord.yaml` first, so that a malformed one is reported with
/// its name (for example: field `timeout` "30" has no unit; write 30s or 30ms): serde's own
/// error for it would not name the field. Text that is not a mapping is left to the full parse to report.
fn check_duration_fields(text: &str) -> Result<(), SpecError> {
    let Ok(serde_yaml_ng::Value::Mapping(fields)) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) else {
        return Ok(());
    };
    for field in DURATION_FIELDS {
        if let Some(value) = fields.get(field) {
            crate::duration::parse_yaml_duration(value).map_err(|reason| SpecError::field(field, reason))?;
        }
    }
    if let Some(serde_yaml_ng::Value::Mapping(section)) = fields.get("async") {
        for field in ASYNC_DURATION_FIELDS {
            if let Some(value) = section.get(field) {
                crate::duration::parse_yaml_duration(value)
                    .map_err(|reason| SpecError::field(format!("async.{field}"), reason))?;
            }
        }
    }
    Ok(())
}

fn check_duration(field: &str, value: Duration, (low, high): (Duration, Duration)) -> Result<(), SpecError> {
    use crate::duration::format_duration as f;
    if value < low || value > high {
        return Err(SpecError::field(
            field,
            format!("must be between {} and {} (got {})", f(low), f(high), f(value)),
        ));
    }
    Ok(())
}

fn check_value_size(field: &str, value: &str) -> Result<(), SpecError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(SpecError::field(
            field,
            format!("is longer than {MAX_VALUE_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn check_env(field: &str, vars: &BTreeMap<String, String>) -> Result<(), SpecError> {
    if vars.len() > MAX_ENV_ENTRIES {
        return Err(SpecError::field(
            field,
            format!("has more than {MAX_ENV_ENTRIES} entries"),
        ));
    }
    for (key, value) in vars {
        let valid = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(SpecError::field(
                format!("{field}.{key}"),
                "is not a valid variable name (letters, digits and '_', not starting with a digit)",
            ));
        }
        if RESERVED_ENV.contains(&key.as_str()) || key.starts_with("FJORD_") {
            return Err(SpecError::field(
                format!("{field}.{key}"),
                "is set by the platform (PORT and FJORD_*); choose another name",
            ));
        }
        check_value_size(&format!("{field}.{key}"), value)?;
    }
    Ok(())
}

/// A function as the control plane stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub spec: FunctionSpec,
    /// Bumped on every deploy or scale of this function; instances of an older revision drain.
    pub revision: u64,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// The image reference as deployed (usually a tag) when `spec.image` holds the digest it
    /// was resolved to at deploy time; empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_ref: String,
}

impl fmt::Display for FunctionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (revision {})", self.spec.name, self.revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(yaml: &str) -> String {
        match FunctionSpec::from_yaml(yaml) {
            Err(SpecError::Field { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn a_duration_without_a_unit_names_its_field_and_the_fix() {
        for (yaml, field) in [
            ("timeout: 30", "timeout"),
            ("timeout: \"30\"", "timeout"),
            ("scale_to_zero_after: 90", "scale_to_zero_after"),
        ] {
            let text = format!("name: f\ncommand: [\"true\"]\n{yaml}\n");
            let err = FunctionSpec::from_yaml(&text).unwrap_err();
            assert_eq!(err.field_name(), Some(field), "{err}");
            let digits = yaml.rsplit(' ').next().unwrap().trim_matches('"');
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid function spec: field `{field}` \"{digits}\" has no unit; write {digits}s or {digits}ms"
                )
            );
        }
        let err = FunctionSpec::from_yaml("name: f\ncommand: [\"true\"]\ntimeout: 3d\n").unwrap_err();
        assert_eq!(err.field_name(), Some("timeout"), "{err}");
        assert!(err.to_string().contains("unknown unit"), "{err}");
        let spec = FunctionSpec::from_yaml("name: f\ncommand: [\"true\"]\ntimeout: 5s\n").unwrap();
        assert_eq!(spec.timeout, Duration::from_secs(5));
    }

    #[test]
    fn minimal_spec_takes_defaults() {
        let spec = FunctionSpec::from_yaml("name: echo\ncommand: [fjord-echo]\n").unwrap();
        assert_eq!(spec.memory_mib, DEFAULT_MEMORY_MIB);
        assert_eq!(spec.timeout, DEFAULT_TIMEOUT);
        assert_eq!(spec.concurrency, 1);
        assert_eq!(spec.scale_to_zero_after, Duration::from_secs(300));
    }

    #[test]
    fn full_spec_round_trips_through_yaml() {
        let yaml = "name: api\nimage: reg.local/api:1\nenv: {A: b}\nsecrets: [db-password, api.key]\nmemory_mib: 256\n\
                    cpu_millis: 250\ntimeout: 2s\nconcurrency: 8\nmin: 1\nmax: 4\nscale_to_zero_after: 90s\n\
                    labels: {team: pay}\ntarget_utilization: 0.5\nkeep_alive: adaptive\n";
        let spec = FunctionSpec::from_yaml(yaml).unwrap();
        assert_eq!(spec.timeout, Duration::from_secs(2));
        assert_eq!(spec.keep_alive, KeepAlive::Adaptive);
        assert_eq!(FunctionSpec::from_yaml(&spec.to_yaml()).unwrap(), spec);
    }

    #[test]
    fn secrets_are_names_and_inline_values_are_refused_saying_how_to_move() {
        let spec = FunctionSpec::from_yaml("name: f\ncommand: [x]\nsecrets: [db-password]\n").unwrap();
        assert_eq!(spec.secrets.names(), ["db-password".to_string()]);
        let err = FunctionSpec::from_yaml("name: f\ncommand: [x]\nsecrets: {KEY: v}\n").unwrap_err();
        assert_eq!(err.field_name(), Some("secrets"));
        assert!(err.to_string().contains("fjord secret create"), "{err}");
        assert_eq!(field_of("name: f\ncommand: [x]\nsecrets: [a, a]\n"), "secrets[1]");
        assert_eq!(field_of("name: f\ncommand: [x]\nsecrets: [ok, ../x]\n"), "secrets[1]");
        // A spec stored by an earlier version, with inline values, is still valid as stored.
        let mut stored = FunctionSpec::with_command("f", vec!["x".into()]);
        stored.secrets = Secrets::Inline([("KEY".to_string(), "v".to_string())].into());
        assert!(stored.validate().is_ok());
        assert!(stored.check_deployable().is_err());
    }

    #[test]
    fn each_bad_field_is_named() {
        let base = "command: [x]\n";
        assert_eq!(field_of(&format!("name: Bad_Name\n{base}")), "name");
        assert_eq!(field_of("name: a\n"), "image");
        assert_eq!(field_of(&format!("name: a\n{base}memory_mib: 1\n")), "memory_mib");
        assert_eq!(field_of(&format!("name: a\n{base}cpu_millis: 1\n")), "cpu_millis");
        assert_eq!(field_of(&format!("name: a\n{base}timeout: 1h\n")), "timeout");
        assert_eq!(field_of(&format!("name: a\n{base}concurrency: 0\n")), "concurrency");
        assert_eq!(field_of(&format!("name: a\n{base}min: 5\nmax: 2\n")), "min");
        assert_eq!(field_of(&format!("name: a\n{base}max: 0\n")), "max");
        assert_eq!(field_of(&format!("name: a\n{base}env: {{PORT: '1'}}\n")), "env.PORT");
        assert_eq!(field_of(&format!("name: a\n{base}env: {{1X: '1'}}\n")), "env.1X");
        assert_eq!(
            field_of(&format!("name: a\n{base}target_utilization: 2\n")),
            "target_utilization"
        );
        assert_eq!(
            field_of(&format!("name: a\n{base}scale_to_zero_after: 0s\n")),
            "scale_to_zero_after"
        );
        assert_eq!(field_of("name: a\ncommand: ['']\n"), "command");
    }

    #[test]
    fn keep_alive_is_fixed_unless_asked_and_a_bad_value_names_the_field() {
        let spec = FunctionSpec::from_yaml("name: a\ncommand: [x]\n").unwrap();
        assert_eq!(spec.keep_alive, KeepAlive::Fixed);
        assert!(!spec.to_yaml().contains("keep_alive"), "the default is not written out");
        let err = FunctionSpec::from_yaml("name: a\ncommand: [x]\nkeep_alive: sometimes\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("keep_alive") && text.contains("adaptive"), "{text}");
        assert_eq!("adaptive".parse::<KeepAlive>(), Ok(KeepAlive::Adaptive));
        assert!("Fixed"
            .parse::<KeepAlive>()
            .unwrap_err()
            .contains("`fixed` or `adaptive`"));
    }

    #[test]
    fn async_section_and_schedule_take_defaults_round_trip_and_name_bad_fields() {
        let spec = FunctionSpec::from_yaml("name: a\ncommand: [x]\n").unwrap();
        assert_eq!(spec.async_policy, AsyncPolicy::default());
        assert_eq!(spec.async_policy.max_attempts, 3);
        assert_eq!(spec.async_policy.max_age, Duration::from_secs(6 * 3600));
        assert!(!spec.to_yaml().contains("async"), "the default is not written out");
        let yaml = "name: a\ncommand: [x]\nasync: {concurrency: 2, max_attempts: 5, min_backoff: 100ms, \
                    max_backoff: 2s, max_age: 1h}\n";
        let spec = FunctionSpec::from_yaml(yaml).unwrap();
        assert_eq!(spec.async_policy.concurrency, 2);
        assert_eq!(spec.async_policy.max_attempts, 5);
        assert_eq!(spec.async_policy.min_backoff, Duration::from_millis(100));
        assert_eq!(FunctionSpec::from_yaml(&spec.to_yaml()).unwrap(), spec);
        let base = "name: a\ncommand: [x]\n";
        assert_eq!(
            field_of(&format!("{base}async: {{max_attempts: 0}}\n")),
            "async.max_attempts"
        );
        assert_eq!(
            field_of(&format!("{base}async: {{concurrency: 0}}\n")),
            "async.concurrency"
        );
        assert_eq!(field_of(&format!("{base}async: {{max_age: 30}}\n")), "async.max_age");
        assert_eq!(
            field_of(&format!("{base}async: {{min_backoff: 10s, max_backoff: 1s}}\n")),
            "async.min_backoff"
        );
        let scheduled = FunctionSpec::from_yaml(&format!("{base}schedule: ['*/5 * * * *', '@daily']\n")).unwrap();
        assert_eq!(
            scheduled.schedule,
            vec!["*/5 * * * *".to_string(), "@daily".to_string()]
        );
        assert!(scheduled.validate().is_ok());
        assert_eq!(field_of(&format!("{base}schedule: ['@daily', ' ']\n")), "schedule[1]");
        let err = FunctionSpec::from_yaml(&format!("{base}async: {{retries: 2}}\n")).unwrap_err();
        assert!(err.to_string().contains("retries"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_syntax_are_parse_errors_that_say_what() {
        let err = FunctionSpec::from_yaml("name: a\ncommand: [x]\nmemroy_mib: 5\n").unwrap_err();
        assert!(err.to_string().contains("memroy_mib"), "{err}");
        let err = FunctionSpec::from_yaml("name: a\ncommand: [x]\ntimeout: 30\n").unwrap_err();
        assert!(err.to_string().contains("unit"), "{err}");
        assert!(matches!(FunctionSpec::from_yaml("name: [\n"), Err(SpecError::Parse(_))));
    }
}
