//! One stack function to one Fjord spec, key by key:
//!
//! | stack.yml | Fjord spec |
//! |---|---|
//! | the key under `functions:` | `name` |
//! | `image` | `image` (required: it also names what `fjord build` tags) |
//! | `lang`, `handler`, `build_args` | not in the spec: read by `fjord build` and `fjord up` ([`super::Stack::build_settings`]) |
//! | `environment`, then `environment_file` (in order; the files win, as in faas-cli) | `env` |
//! | `fprocess` | `env.fprocess`, which OpenFaaS's watchdogs read |
//! | `limits.memory`, else `requests.memory` (`128Mi`, `1Gi`, `512M`) | `memory_mib`, rounded up |
//! | `limits.cpu`, else `requests.cpu` (`100m`, `0.5`, `1`) | `cpu_millis` |
//! | label `com.openfaas.scale.min` (default 1) | `min`; 0 when `com.openfaas.scale.zero` is true |
//! | label `com.openfaas.scale.max` | `max` |
//! | label `com.openfaas.scale.target` | `concurrency`: requests in flight per instance |
//! | label `com.openfaas.scale.target-proportion` | `target_utilization` |
//! | label `com.openfaas.scale.zero: true`, `com.openfaas.scale.zero-duration` (default 15m) | `min: 0`, `scale_to_zero_after` |
//! | other labels | `labels` |
//! | annotations `topic: cron-function` and `schedule` (`;`-separated) | `schedule` |
//!
//! OpenFaaS scales on `target` per replica of a measure chosen by `com.openfaas.scale.type`:
//! `capacity` (requests in flight) is what Fjord's autoscaler measures too, with the same
//! formula (`desired = load / (target × proportion)`), so it maps exactly, except that Fjord's
//! `concurrency` also caps what one instance is given at once. The default type, `rps`
//! (requests per second), has no Fjord counterpart: its target is read as requests in flight
//! and a notice says so. `cpu` and other types are not supported.
//!
//! Without `com.openfaas.scale.zero: true` an OpenFaaS function keeps at least one replica;
//! the translation keeps that (`min` at least 1), so a function scales to zero in Fjord only
//! where it did in OpenFaaS.

use super::file::{Amount, EnvironmentFile, Function, StackFile, UnknownKey};
use super::quantity;
use super::{validated, Notice, Origins, StackError, SCHEMA_VERSION};
use fjord_core::FunctionSpec;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// OpenFaaS's idle time before scaling to zero when `com.openfaas.scale.zero-duration` is not given.
pub const DEFAULT_ZERO_DURATION: Duration = Duration::from_secs(15 * 60);
/// The label prefix of OpenFaaS's autoscaler settings.
const SCALE_LABEL: &str = "com.openfaas.scale.";
/// The cron-connector's topic.
const CRON_TOPIC: &str = "cron-function";

/// A function of the stack as Fjord will deploy it.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    /// Validated.
    pub spec: FunctionSpec,
    /// The scaling fields, as `fjord.yaml` names them (`min`, `max`, `concurrency`,
    /// `target_utilization`, `scale_to_zero_after`), that the stack set. The others are the
    /// cluster policy's to default, as for a `fjord.yaml` that leaves them out.
    pub set_fields: Vec<&'static str>,
    /// What this function's entry says that Fjord does not honour.
    pub notices: Vec<Notice>,
}

/// Notices for what the file says outside its functions.
pub(crate) fn file_notices(file: &StackFile, unknown: &[UnknownKey]) -> Vec<Notice> {
    let mut notices = Vec::new();
    if let Some(version) = file.version.as_deref().filter(|v| *v != SCHEMA_VERSION) {
        notices.push(Notice::new(
            "version",
            format!("{version:?}: faas-cli knows only {SCHEMA_VERSION}; read as {SCHEMA_VERSION}"),
        ));
    }
    if let Some(provider) = &file.provider {
        if let Some(name) = provider.name.as_deref().filter(|n| !matches!(*n, "openfaas" | "faas")) {
            notices.push(Notice::new(
                "provider.name",
                format!("{name:?}: faas-cli accepts only openfaas; read as an OpenFaaS stack anyway"),
            ));
        }
        if provider.gateway.is_some() {
            notices.push(Notice::new(
                "provider.gateway",
                "not used: fjord deploys through the cluster's Admin API (its current context, --addr or FJORD_ADDR)",
            ));
        }
    }
    if file.configuration.is_some() {
        notices.push(Notice::new(
            "configuration",
            "faas-cli's template store and copy, ignored: fjord build uses its own templates",
        ));
    }
    notices.extend(
        unknown
            .iter()
            .filter(|u| u.function.is_none())
            .map(|u| Notice::new(&u.path, "unknown key, ignored")),
    );
    notices
}

/// How the keys that notices and errors name are spelled: by their path in a stack file
/// (`functions.api.fprocess`), or as the fields of the gateway's `FunctionDeployment` body
/// (`envProcess`). The rules are the same for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyStyle {
    Stack,
    Gateway,
}

/// Translates function `name`; `unknown` are the keys of its entry the schema does not know.
pub(crate) fn translate(
    name: &str,
    function: &Function,
    base_dir: &Path,
    unknown: &[&UnknownKey],
    style: KeyStyle,
) -> Result<Translation, StackError> {
    let mut t = Translator {
        function_key: match style {
            KeyStyle::Stack => format!("functions.{name}"),
            KeyStyle::Gateway => "service".into(),
        },
        style,
        spec: FunctionSpec::with_command(name, Vec::new()),
        origins: Vec::new(),
        set_fields: Vec::new(),
        notices: Vec::new(),
    };
    t.origins.push(("name".into(), t.function_key.clone()));
    t.image(function)?;
    t.environment(function, base_dir)?;
    t.secrets(function);
    t.resources(function);
    t.labels(function)?;
    t.annotations(function)?;
    t.unsupported(function);
    for key in unknown {
        let hint = match key.path.rsplit('.').next() {
            Some("topic" | "schedule") if key.path.matches('.').count() == 2 => {
                " (OpenFaaS's cron-connector reads annotations.topic and annotations.schedule)"
            }
            _ => "",
        };
        t.notices
            .push(Notice::new(&key.path, format!("unknown key, ignored{hint}")));
    }
    let spec = validated(t.spec, &t.function_key, &t.origins)?;
    Ok(Translation {
        spec,
        set_fields: t.set_fields,
        notices: t.notices,
    })
}

struct Translator {
    /// `functions.NAME`, or `service` for the gateway.
    function_key: String,
    style: KeyStyle,
    spec: FunctionSpec,
    origins: Origins,
    set_fields: Vec<&'static str>,
    notices: Vec<Notice>,
}

impl Translator {
    /// `functions.NAME.<rest>`, or the gateway's name for the same field.
    fn key(&self, rest: &str) -> String {
        match self.style {
            KeyStyle::Stack => format!("{}.{rest}", self.function_key),
            KeyStyle::Gateway => gateway_key(rest),
        }
    }

    fn notice(&mut self, rest: &str, message: impl Into<String>) {
        let key = self.key(rest);
        self.notices.push(Notice::new(key, message));
    }

    /// Sets where spec field `field` came from.
    fn origin(&mut self, field: impl Into<String>, key: String) {
        let field = field.into();
        self.origins.retain(|(f, _)| *f != field);
        self.origins.push((field, key));
    }

    fn value_error(&self, rest: &str, reason: impl Into<String>) -> StackError {
        StackError::Value {
            key: self.key(rest),
            reason: reason.into(),
        }
    }

    fn image(&mut self, function: &Function) -> Result<(), StackError> {
        let Some(image) = function.image.as_deref().map(str::trim).filter(|i| !i.is_empty()) else {
            let built_from = match (&function.lang, &function.handler) {
                (Some(lang), Some(handler)) => format!(" (built from {handler} with template {lang})"),
                (Some(lang), None) => format!(" (built with template {lang})"),
                (None, Some(handler)) => format!(" (built from {handler})"),
                (None, None) => String::new(),
            };
            return Err(self.value_error(
                "image",
                format!(
                    "is missing{built_from}: it names the image that `fjord build` tags and `fjord push` \
                     pushes (registry/name:tag), and the one deployed"
                ),
            ));
        };
        self.spec.image = image.to_string();
        self.origin("image", self.key("image"));
        // `lang`, `handler` and `build_args` are read by `fjord build` and `fjord up`.
        for (key, present) in [
            ("build_options", function.build_options.is_some()),
            ("build_secrets", function.build_secrets.is_some()),
            ("platforms", function.platforms.is_some()),
        ] {
            if present {
                self.notice(key, "not supported by fjord build, ignored");
            }
        }
        Ok(())
    }

    /// `environment`, then each `environment_file` over it, then `fprocess`.
    fn environment(&mut self, function: &Function, base_dir: &Path) -> Result<(), StackError> {
        let mut env = BTreeMap::new();
        for (name, value) in function.environment.iter().flat_map(|e| e.0.iter()) {
            env.insert(name.clone(), value.clone());
            self.origin(format!("env.{name}"), self.key(&format!("environment.{name}")));
        }
        for (i, path) in function.environment_file.iter().flatten().enumerate() {
            let key = self.key(&format!("environment_file[{i}]"));
            let file = base_dir.join(path);
            let file_error = |reason: String| StackError::EnvironmentFile {
                key: key.clone(),
                file: file.clone(),
                reason,
            };
            let text = std::fs::read_to_string(&file).map_err(|e| file_error(e.to_string()))?;
            let (variables, unknown): (EnvironmentFile, _) =
                super::file::parse(&text).map_err(|e| file_error(e.to_string()))?;
            for u in unknown {
                self.notices.push(Notice::new(
                    &key,
                    format!(
                        "{path}: unknown key `{}`, ignored (faas-cli reads the variables under `environment:`)",
                        u.path
                    ),
                ));
            }
            for (name, value) in variables.environment.iter().flat_map(|e| e.0.iter()) {
                env.insert(name.clone(), value.clone());
                self.origin(format!("env.{name}"), format!("{key} ({path}): {name}"));
            }
        }
        if let Some(fprocess) = &function.fprocess {
            env.insert("fprocess".into(), fprocess.clone());
            self.origin("env.fprocess", self.key("fprocess"));
        }
        self.origin("env", self.key("environment"));
        self.spec.env = env;
        Ok(())
    }

    /// Named secrets, as OpenFaaS has them: each a file at /var/openfaas/secrets/NAME (Fjord
    /// mounts it there too); the deploy is refused, naming it, if one was not created.
    fn secrets(&mut self, function: &Function) {
        let names: Vec<String> = function.secrets.iter().flatten().cloned().collect();
        if names.is_empty() {
            return;
        }
        self.origin("secrets", self.key("secrets"));
        self.spec.secrets = fjord_core::secret::Secrets::Named(names);
    }

    fn resources(&mut self, function: &Function) {
        let limits = function.limits.as_ref();
        let requests = function.requests.as_ref();
        if let Some((mib, key)) = self.pick(
            "memory",
            limits.and_then(|l| l.memory.as_ref()),
            requests.and_then(|r| r.memory.as_ref()),
        ) {
            self.spec.memory_mib = mib;
            self.origin("memory_mib", key);
        }
        if let Some((millis, key)) = self.pick(
            "cpu",
            limits.and_then(|l| l.cpu.as_ref()),
            requests.and_then(|r| r.cpu.as_ref()),
        ) {
            self.spec.cpu_millis = millis;
            self.origin("cpu_millis", key);
        }
    }

    /// One amount from a limit and a request: Fjord reserves and limits the same amount.
    fn pick<U>(&mut self, what: &str, limit: Option<&Amount<U>>, request: Option<&Amount<U>>) -> Option<(u32, String)> {
        match (limit, request) {
            (Some(limit), Some(request)) => {
                if limit.value != request.value {
                    self.notice(
                        &format!("requests.{what}"),
                        format!(
                            "{}: not used; Fjord reserves and limits one amount per instance, limits.{what} ({})",
                            request.text, limit.text
                        ),
                    );
                }
                Some((limit.value, self.key(&format!("limits.{what}"))))
            }
            (Some(limit), None) => Some((limit.value, self.key(&format!("limits.{what}")))),
            (None, Some(request)) => {
                self.notice(
                    &format!("requests.{what}"),
                    format!(
                        "{}: also the instance's limit, as Fjord reserves and limits one amount per instance",
                        request.text
                    ),
                );
                Some((request.value, self.key(&format!("requests.{what}"))))
            }
            (None, None) => None,
        }
    }

    fn labels(&mut self, function: &Function) -> Result<(), StackError> {
        let mut scale: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, value) in function.labels.iter().flat_map(|l| l.0.iter()) {
            match name.strip_prefix(SCALE_LABEL) {
                Some(
                    setting @ ("min" | "max" | "target" | "target-proportion" | "type" | "zero" | "zero-duration"),
                ) => {
                    scale.insert(setting, value.as_str());
                }
                Some(_) => self.notice(&format!("labels.{name}"), "not supported, ignored"),
                None => {
                    self.spec.labels.insert(name.clone(), value.clone());
                    self.origin(format!("labels.{name}"), self.key(&format!("labels.{name}")));
                }
            }
        }
        self.scale(&scale)
    }

    fn scale(&mut self, labels: &BTreeMap<&str, &str>) -> Result<(), StackError> {
        let key_of = |setting: &str| format!("labels.{SCALE_LABEL}{setting}");
        let read = |setting: &str| labels.get(setting).copied();
        let parse = |setting: &str, parse: fn(&str) -> Result<u32, String>| -> Result<Option<u32>, StackError> {
            read(setting)
                .map(|text| parse(text).map_err(|reason| self.value_error(&key_of(setting), reason)))
                .transpose()
        };
        let min = parse("min", quantity::whole_number)?;
        let max = parse("max", quantity::whole_number)?;
        let target = parse("target", quantity::whole_number)?;
        let proportion = read("target-proportion")
            .map(|text| {
                text.trim().parse::<f64>().map_err(|_| {
                    self.value_error(
                        &key_of("target-proportion"),
                        format!("{:?} is not a number; write for example 0.9", text.trim()),
                    )
                })
            })
            .transpose()?;
        let zero = read("zero")
            .map(|text| quantity::go_bool(text).map_err(|reason| self.value_error(&key_of("zero"), reason)))
            .transpose()?
            .unwrap_or(false);
        let zero_duration = read("zero-duration")
            .map(|text| {
                quantity::go_duration(text).map_err(|reason| self.value_error(&key_of("zero-duration"), reason))
            })
            .transpose()?;

        // What the target counts.
        let kind = read("type").map(str::trim);
        let by_concurrency = match kind {
            None | Some("capacity") => true,
            Some("rps") => {
                self.notice(
                    &key_of("type"),
                    "rps: Fjord does not scale on requests per second; com.openfaas.scale.target is read as \
                     requests in flight per instance (type capacity)",
                );
                true
            }
            Some(other) => {
                self.notice(
                    &key_of("type"),
                    format!("{other}: not supported; Fjord scales on requests in flight per instance (type capacity)"),
                );
                false
            }
        };
        if by_concurrency {
            if let Some(target) = target {
                if kind.is_none() {
                    self.notice(
                        &key_of("target"),
                        "read as requests in flight per instance (type capacity): OpenFaaS's default type, rps, \
                         counts requests per second, which Fjord does not scale on",
                    );
                }
                self.spec.concurrency = target;
                self.set("concurrency", key_of("target"));
            }
            if let Some(proportion) = proportion {
                self.spec.target_utilization = proportion;
                self.set("target_utilization", key_of("target-proportion"));
            }
        } else {
            for setting in ["target", "target-proportion"] {
                if read(setting).is_some() {
                    self.notice(&key_of(setting), "ignored with this com.openfaas.scale.type");
                }
            }
        }

        // Scale to zero, and the floor.
        if zero {
            if let Some(min) = min.filter(|m| *m >= 2) {
                self.notice(
                    &key_of("min"),
                    format!(
                        "{min}: OpenFaaS keeps it only while the function is busy, Fjord's min would keep it idle too, \
                         against com.openfaas.scale.zero: true; set to 0 (the autoscaler still follows the load)"
                    ),
                );
            }
            self.spec.min = 0;
            self.spec.scale_to_zero_after = zero_duration.unwrap_or(DEFAULT_ZERO_DURATION);
            let zero_key = if zero_duration.is_some() {
                key_of("zero-duration")
            } else {
                key_of("zero")
            };
            self.set("scale_to_zero_after", zero_key);
            self.set("min", key_of("zero"));
        } else {
            if zero_duration.is_some() {
                self.notice(&key_of("zero-duration"), "ignored: com.openfaas.scale.zero is not true");
            }
            self.spec.min = match min {
                Some(0) => {
                    self.notice(
                        &key_of("min"),
                        "0: raised to 1, as OpenFaaS keeps one replica unless com.openfaas.scale.zero is true",
                    );
                    1
                }
                Some(min) => min,
                None => 1,
            };
            let min_key = if min.is_some() { key_of("min") } else { String::new() };
            self.set("min", min_key);
        }
        if let Some(max) = max {
            self.spec.max = max;
            self.set("max", key_of("max"));
        }
        Ok(())
    }

    /// Marks scaling field `field` as set by the stack, from label key `rest` (the function
    /// itself when empty).
    fn set(&mut self, field: &'static str, rest: String) {
        if !self.set_fields.contains(&field) {
            self.set_fields.push(field);
        }
        let key = if rest.is_empty() {
            self.function_key.clone()
        } else {
            self.key(&rest)
        };
        self.origin(field, key);
    }

    fn annotations(&mut self, function: &Function) -> Result<(), StackError> {
        let Some(annotations) = &function.annotations else {
            return Ok(());
        };
        let topics: Vec<&str> = annotations
            .get("topic")
            .map(|t| t.split(',').map(str::trim).filter(|t| !t.is_empty()).collect())
            .unwrap_or_default();
        let cron = topics.contains(&CRON_TOPIC);
        let others: Vec<&str> = topics.iter().copied().filter(|t| *t != CRON_TOPIC).collect();
        if !others.is_empty() {
            self.notice(
                "annotations.topic",
                format!(
                    "{}: event-connector topics are not supported, ignored (only {CRON_TOPIC} is read)",
                    others.join(", ")
                ),
            );
        }
        match (cron, annotations.get("schedule")) {
            (true, Some(schedule)) => {
                let expressions: Vec<String> = schedule
                    .split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if expressions.is_empty() {
                    return Err(self.value_error(
                        "annotations.schedule",
                        "is empty: write a cron expression such as \"*/5 * * * *\"",
                    ));
                }
                self.spec.schedule = expressions;
                self.origin("schedule", self.key("annotations.schedule"));
            }
            (true, None) => self.notice(
                "annotations.topic",
                format!("{CRON_TOPIC} without a schedule annotation: nothing is scheduled"),
            ),
            (false, Some(_)) => self.notice(
                "annotations.schedule",
                format!("ignored: OpenFaaS's cron-connector reads a schedule only with topic: {CRON_TOPIC}"),
            ),
            (false, None) => {}
        }
        for (name, _) in &annotations.0 {
            if name != "topic" && name != "schedule" {
                self.notice(&format!("annotations.{name}"), "not supported, ignored");
            }
        }
        Ok(())
    }

    /// Keys faas-cli's schema has that Fjord cannot honour.
    fn unsupported(&mut self, function: &Function) {
        if function.readonly_root_filesystem == Some(false) {
            self.notice(
                "readonly_root_filesystem",
                "false: not supported; Fjord's containers always have a read-only root filesystem, with /tmp writable",
            );
        }
        if function.constraints.as_ref().is_some_and(|c| !c.is_empty()) {
            self.notice(
                "constraints",
                "not supported, ignored: Fjord places instances by memory, CPU and zone",
            );
        }
        if let Some(namespace) = function.namespace.as_deref().filter(|n| !n.is_empty()) {
            self.notice(
                "namespace",
                format!("{namespace}: not supported, ignored: Fjord has one set of function names"),
            );
        }
    }
}

/// A stack key (`fprocess`, `environment.A`) as the gateway's JSON names the same field.
fn gateway_key(rest: &str) -> String {
    let (head, tail) = match rest.find(['.', '[']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let head = match head {
        "fprocess" => "envProcess",
        "environment" => "envVars",
        "readonly_root_filesystem" => "readOnlyRootFilesystem",
        other => other,
    };
    format!("{head}{tail}")
}
