use super::quantity::{cpu_millis, go_bool, go_duration, memory_mib};
use super::substitute::substitute;
use super::*;
use std::collections::BTreeMap;
use std::time::Duration;

fn no_env(_: &str) -> Option<String> {
    None
}

/// Parses `text` with no environment and translates every function, from `dir`.
fn translate_all(text: &str, dir: &Path) -> Result<(Stack, Vec<Translation>), StackError> {
    let stack = Stack::parse(text, &no_env)?;
    let names: Vec<String> = stack.function_names().iter().map(|n| n.to_string()).collect();
    let translations = names
        .iter()
        .map(|name| stack.translate(name, dir))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((stack, translations))
}

fn one(text: &str) -> Translation {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut all) = translate_all(text, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn error_of(text: &str) -> StackError {
    let dir = tempfile::tempdir().unwrap();
    match translate_all(text, dir.path()) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

fn keys(notices: &[Notice]) -> Vec<&str> {
    notices.iter().map(|n| n.key.as_str()).collect()
}

fn message<'a>(notices: &'a [Notice], key: &str) -> &'a str {
    notices
        .iter()
        .find(|n| n.key == key)
        .map(|n| n.message.as_str())
        .unwrap_or_else(|| panic!("no notice for {key}: {notices:?}"))
}

const HEADER: &str = "version: 1.0\nprovider:\n  name: openfaas\nfunctions:\n";

// --- substitution ---

#[test]
fn substitution_reads_plain_default_and_assign_forms_from_the_lookup() {
    let env = |name: &str| match name {
        "TAG" => Some("1.4".to_string()),
        "EMPTY" => Some(String::new()),
        "INNER" => Some("inner".to_string()),
        _ => None,
    };
    let cases = [
        ("image: app:${TAG}", "image: app:1.4"),
        ("image: app:${MISSING:-latest}", "image: app:latest"),
        ("image: app:${TAG:-latest}", "image: app:1.4"),
        ("x: ${EMPTY:-fallback}", "x: fallback"),
        ("x: ${EMPTY:=fallback}", "x: fallback"),
        ("x: '${EMPTY=fallback}'", "x: ''"),
        ("x: ${MISSING=fallback}", "x: fallback"),
        ("x: ${MISSING:-${INNER}}", "x: inner"),
        ("x: ${MISSING:-${ALSO_MISSING:-deep}}", "x: deep"),
        ("x: $$HOME and $${TAG}", "x: $HOME and ${TAG}"),
        ("x: a$b $ c}", "x: a$b $ c}"),
    ];
    for (text, expected) in cases {
        let (out, unset) = substitute(text, &env).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(out, expected, "{text}");
        assert!(unset.is_empty(), "{text}: {unset:?}");
    }
}

#[test]
fn an_unset_variable_becomes_empty_and_is_reported_once_with_its_line() {
    let (out, unset) = substitute("a: 1\nb: ${NOPE}\nc: ${NOPE}\n", &no_env).unwrap();
    assert_eq!(out, "a: 1\nb: \nc: \n");
    assert_eq!(unset.len(), 1);
    assert_eq!(unset[0].name, "NOPE");
    assert_eq!(unset[0].line, 2);

    let stack = Stack::parse(&format!("{HEADER}  api:\n    image: \"reg/api:${{TAG}}\"\n"), &no_env).unwrap();
    assert_eq!(
        message(stack.notices(), "line 6"),
        "${TAG} is not set; substituted an empty string"
    );
}

#[test]
fn a_substitution_fjord_does_not_read_is_refused_with_its_line() {
    for (text, line, says) in [
        (
            "a: 1\nb: ${TAG^^}\n",
            2,
            "`${TAG^^}` is a substitution Fjord does not read",
        ),
        ("a: 1\n\nb: ${TAG#v}\n", 3, "`${TAG#v}`"),
        ("b: ${TAG\nc: 2\n", 1, "no closing `}`"),
        ("b: ${TAG:-x\n", 1, "no closing `}`"),
        ("b: ${}\n", 1, "does not start with a variable name"),
        ("b: ${1X}\n", 1, "does not start with a variable name"),
    ] {
        let err = Stack::parse(text, &no_env).unwrap_err();
        assert_eq!(err.line(), Some(line), "{text}: {err}");
        assert!(err.to_string().starts_with(&format!("line {line}: ")), "{err}");
        assert!(err.to_string().contains(says), "{text}: {err}");
    }
}

#[test]
fn substitution_runs_before_parsing_so_it_can_fill_any_value() {
    let env = |name: &str| (name == "MEM").then(|| "256Mi".to_string());
    let stack = Stack::parse(
        &format!("{HEADER}  api:\n    image: reg/api:1\n    limits:\n      memory: ${{MEM}}\n"),
        &env,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(stack.translate("api", dir.path()).unwrap().spec.memory_mib, 256);
}

// --- amounts and durations ---

#[test]
fn memory_amounts_become_whole_mib_rounded_up() {
    for (text, mib) in [
        ("128Mi", 128),
        ("1Gi", 1024),
        ("0.5Gi", 512),
        ("512M", 489),
        ("1G", 954),
        ("134217728", 128),
        ("2048Ki", 2),
        ("1Ti", 1 << 20),
        ("100k", 1),
        (" 64Mi ", 64),
    ] {
        assert_eq!(memory_mib(text), Ok(mib), "{text}");
    }
    let milli = memory_mib("128m").unwrap_err();
    assert!(
        milli.contains("thousandths of a byte") && milli.contains("128Mi or 128M"),
        "{milli}"
    );
    for bad in ["", "Mi", "12MB", "1.2.3Mi", "-5Mi", "0Mi", "1e9", "99999999999Ti"] {
        assert!(memory_mib(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn cpu_amounts_become_millicores() {
    for (text, millis) in [
        ("100m", 100),
        ("0.5", 500),
        ("1", 1000),
        ("2.25", 2250),
        ("1500m", 1500),
        ("0.001", 1),
    ] {
        assert_eq!(cpu_millis(text), Ok(millis), "{text}");
    }
    assert!(cpu_millis("0.0005").unwrap_err().contains("finer than a millicore"));
    assert!(cpu_millis("1.5m").unwrap_err().contains("whole number of m"));
    for bad in ["", "m", "0", "0m", "1 core", "1Gi"] {
        assert!(cpu_millis(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn durations_and_booleans_read_as_go_writes_them() {
    for (text, expected) in [
        ("15m", Duration::from_secs(900)),
        ("1h30m", Duration::from_secs(5400)),
        ("90s", Duration::from_secs(90)),
        ("1.5h", Duration::from_secs(5400)),
        ("500ms", Duration::from_millis(500)),
        ("1m30.5s", Duration::from_millis(90_500)),
        ("0", Duration::ZERO),
    ] {
        assert_eq!(go_duration(text), Ok(expected), "{text}");
    }
    assert!(go_duration("15").unwrap_err().contains("without a unit"));
    assert!(go_duration("3d").unwrap_err().contains("unknown unit \"d\""));
    assert!(go_duration("").is_err());
    for yes in ["true", "True", "TRUE", "t", "1"] {
        assert_eq!(go_bool(yes), Ok(true), "{yes}");
    }
    for no in ["false", "F", "0"] {
        assert_eq!(go_bool(no), Ok(false), "{no}");
    }
    assert!(go_bool("yes").is_err());
}

// --- translation ---

#[test]
fn a_full_function_translates_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("common.yml"),
        "environment:\n  LOG_LEVEL: info\n  REGION: eu\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("env")).unwrap();
    std::fs::write(dir.path().join("env/prod.yml"), "environment:\n  REGION: us\n").unwrap();
    let text = format!(
        "{HEADER}  api:
    image: registry.example.com/api:1.4
    fprocess: ./handler
    environment:
      GREETING: hello
      LOG_LEVEL: debug
      WORKERS: 4
      VERSION: 1.10
    environment_file:
      - common.yml
      - env/prod.yml
    limits:
      memory: 256Mi
      cpu: 500m
    labels:
      com.openfaas.scale.min: 2
      com.openfaas.scale.max: 8
      com.openfaas.scale.target: 10
      com.openfaas.scale.type: capacity
      com.openfaas.scale.target-proportion: 0.8
      team: payments
    annotations:
      topic: cron-function
      schedule: \"*/5 * * * *; 0 3 * * *\"
"
    );
    let (_, mut all) = translate_all(&text, dir.path()).unwrap();
    let t = all.remove(0);
    let spec = &t.spec;
    assert_eq!(spec.name, "api");
    assert_eq!(spec.image, "registry.example.com/api:1.4");
    assert!(spec.command.is_empty());
    let env: BTreeMap<&str, &str> = spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        env,
        BTreeMap::from([
            ("GREETING", "hello"),
            // The files win over `environment`, and a later file over an earlier one.
            ("LOG_LEVEL", "info"),
            ("REGION", "us"),
            // Scalars keep their text as written.
            ("WORKERS", "4"),
            ("VERSION", "1.10"),
            ("fprocess", "./handler"),
        ])
    );
    assert_eq!(spec.memory_mib, 256);
    assert_eq!(spec.cpu_millis, 500);
    assert_eq!((spec.min, spec.max, spec.concurrency), (2, 8, 10));
    assert_eq!(spec.target_utilization, 0.8);
    assert_eq!(
        spec.labels,
        BTreeMap::from([("team".to_string(), "payments".to_string())])
    );
    assert_eq!(spec.schedule, vec!["*/5 * * * *".to_string(), "0 3 * * *".to_string()]);
    assert_eq!(t.set_fields, vec!["concurrency", "target_utilization", "min", "max"]);
    assert!(t.notices.is_empty(), "{:?}", t.notices);
}

#[test]
fn every_key_fjord_does_not_honour_is_named() {
    let text = "version: 1.0
provider:
  name: openfaas
  gateway: http://127.0.0.1:8080
  network: func_functions
configuration:
  templates:
    - name: python3-http
functions:
  api:
    lang: python3-http
    handler: ./api
    image: reg/api:1
    build_args:
      ADDITIONAL_PACKAGE: curl
    build_options: [dev]
    platforms: linux/amd64
    skip_build: true
    secrets:
      - db-password
      - api-key
    annotations:
      prometheus.io.scrape: \"true\"
      com.openfaas.health.http.path: /healthz
      topic: payments.received,cron-function
    labels:
      com.openfaas.scale.factor: 20
      com.openfaas.scale.zero-duration: 5m
    constraints:
      - node.platform.os == linux
    readonly_root_filesystem: false
    namespace: openfaas-fn
    limits:
      gpu: 1
    topic: cron-function
    healthcheck: /ready
";
    let dir = tempfile::tempdir().unwrap();
    let (stack, all) = translate_all(text, dir.path()).unwrap();
    assert_eq!(
        keys(stack.notices()),
        vec!["provider.gateway", "configuration", "provider.network"]
    );
    assert_eq!(message(stack.notices(), "provider.network"), "unknown key, ignored");
    let notices = &all[0].notices;
    let mut found = keys(notices);
    found.sort();
    let mut expected = vec![
        "functions.api.build_options",
        "functions.api.platforms",
        "functions.api.annotations.prometheus.io.scrape",
        "functions.api.annotations.com.openfaas.health.http.path",
        "functions.api.annotations.topic",
        "functions.api.annotations.topic",
        "functions.api.labels.com.openfaas.scale.factor",
        "functions.api.labels.com.openfaas.scale.zero-duration",
        "functions.api.constraints",
        "functions.api.readonly_root_filesystem",
        "functions.api.namespace",
        "functions.api.limits.gpu",
        "functions.api.topic",
        "functions.api.healthcheck",
    ];
    expected.sort();
    assert_eq!(found, expected, "{notices:#?}");
    assert_eq!(
        message(notices, "functions.api.annotations.prometheus.io.scrape"),
        "not supported, ignored"
    );
    assert_eq!(
        Notice::new(
            "functions.api.annotations.prometheus.io.scrape",
            "not supported, ignored"
        )
        .to_string(),
        "functions.api.annotations.prometheus.io.scrape: not supported, ignored"
    );
    assert_eq!(
        all[0].spec.secrets.names(),
        ["db-password".to_string(), "api-key".to_string()],
        "named secrets are Fjord's own"
    );
    let settings = stack.build_settings("api").unwrap();
    assert_eq!(settings.lang.as_deref(), Some("python3-http"));
    assert_eq!(settings.handler.as_deref(), Some("./api"));
    assert_eq!(settings.image.as_deref(), Some("reg/api:1"));
    assert_eq!(settings.build_args["ADDITIONAL_PACKAGE"], "curl");
    assert!(message(notices, "functions.api.topic").contains("reads annotations.topic"));
    assert_eq!(message(notices, "functions.api.healthcheck"), "unknown key, ignored");
    assert_eq!(message(notices, "functions.api.limits.gpu"), "unknown key, ignored");
    let topics: Vec<&str> = notices
        .iter()
        .filter(|n| n.key == "functions.api.annotations.topic")
        .map(|n| n.message.as_str())
        .collect();
    assert!(
        topics
            .iter()
            .any(|m| m.starts_with("payments.received: event-connector topics")),
        "{topics:?}"
    );
    assert!(
        topics.iter().any(|m| m.contains("without a schedule annotation")),
        "{topics:?}"
    );
    // The function still deploys, with what Fjord does honour.
    assert_eq!(all[0].spec.image, "reg/api:1");
    assert!(all[0].spec.labels.is_empty(), "scale labels are not kept as labels");
}

#[test]
fn a_memory_request_without_a_limit_is_the_limit_and_a_differing_one_is_named() {
    let both = one(&format!(
        "{HEADER}  a:\n    image: r/a:1\n    limits: {{memory: 128Mi, cpu: '1'}}\n    requests: {{memory: 64Mi, cpu: 1000m}}\n"
    ));
    assert_eq!((both.spec.memory_mib, both.spec.cpu_millis), (128, 1000));
    assert_eq!(
        keys(&both.notices),
        vec!["functions.a.requests.memory"],
        "an equal cpu request says nothing"
    );
    assert!(
        both.notices[0].message.starts_with("64Mi: not used"),
        "{}",
        both.notices[0]
    );

    let request = one(&format!(
        "{HEADER}  a:\n    image: r/a:1\n    requests:\n      memory: 1Gi\n"
    ));
    assert_eq!(request.spec.memory_mib, 1024);
    assert!(message(&request.notices, "functions.a.requests.memory").contains("also the instance's limit"));

    let none = one(&format!("{HEADER}  a:\n    image: r/a:1\n"));
    assert_eq!(none.spec.memory_mib, fjord_core::spec::DEFAULT_MEMORY_MIB);
    assert_eq!(none.spec.cpu_millis, fjord_core::spec::DEFAULT_CPU_MILLIS);
}

#[test]
fn scale_to_zero_follows_openfaas_defaults() {
    let base = format!("{HEADER}  a:\n    image: r/a:1\n");
    // Without scale.zero, OpenFaaS keeps a replica: min 1.
    let kept = one(&base);
    assert_eq!(kept.spec.min, 1);
    assert_eq!(kept.set_fields, vec!["min"]);
    assert!(kept.notices.is_empty(), "{:?}", kept.notices);

    let zero = one(&format!("{base}    labels:\n      com.openfaas.scale.zero: true\n"));
    assert_eq!(zero.spec.min, 0);
    assert_eq!(zero.spec.scale_to_zero_after, Duration::from_secs(15 * 60));
    assert_eq!(zero.set_fields, vec!["scale_to_zero_after", "min"]);

    let timed = one(&format!(
        "{base}    labels:\n      com.openfaas.scale.zero: 'true'\n      com.openfaas.scale.zero-duration: 2m30s\n      com.openfaas.scale.min: 1\n"
    ));
    assert_eq!(timed.spec.min, 0);
    assert_eq!(timed.spec.scale_to_zero_after, Duration::from_secs(150));
    assert!(
        timed.notices.is_empty(),
        "min 1 with scale to zero is what Fjord's min 0 does: {:?}",
        timed.notices
    );

    let floor = one(&format!(
        "{base}    labels:\n      com.openfaas.scale.zero: true\n      com.openfaas.scale.min: 3\n"
    ));
    assert_eq!(floor.spec.min, 0);
    assert!(message(&floor.notices, "functions.a.labels.com.openfaas.scale.min").starts_with("3: "));

    let off = one(&format!(
        "{base}    labels:\n      com.openfaas.scale.zero: false\n      com.openfaas.scale.min: 0\n"
    ));
    assert_eq!(off.spec.min, 1);
    assert!(message(&off.notices, "functions.a.labels.com.openfaas.scale.min").contains("raised to 1"));
}

#[test]
fn the_scale_target_is_read_as_concurrency_and_other_types_are_named() {
    let base = format!("{HEADER}  a:\n    image: r/a:1\n    labels:\n");
    let default_type = one(&format!("{base}      com.openfaas.scale.target: 50\n"));
    assert_eq!(default_type.spec.concurrency, 50);
    assert!(
        message(&default_type.notices, "functions.a.labels.com.openfaas.scale.target").contains("default type, rps")
    );

    let rps = one(&format!(
        "{base}      com.openfaas.scale.target: 20\n      com.openfaas.scale.type: rps\n"
    ));
    assert_eq!(rps.spec.concurrency, 20);
    assert_eq!(keys(&rps.notices), vec!["functions.a.labels.com.openfaas.scale.type"]);

    let cpu = one(&format!(
        "{base}      com.openfaas.scale.target: 500\n      com.openfaas.scale.type: cpu\n      com.openfaas.scale.target-proportion: 0.5\n"
    ));
    assert_eq!(cpu.spec.concurrency, fjord_core::spec::DEFAULT_CONCURRENCY);
    assert_eq!(
        cpu.spec.target_utilization,
        fjord_core::spec::DEFAULT_TARGET_UTILIZATION
    );
    let mut found = keys(&cpu.notices);
    found.sort();
    assert_eq!(
        found,
        vec![
            "functions.a.labels.com.openfaas.scale.target",
            "functions.a.labels.com.openfaas.scale.target-proportion",
            "functions.a.labels.com.openfaas.scale.type",
        ]
    );
    assert!(!cpu.set_fields.contains(&"concurrency"));
}

#[test]
fn a_schedule_needs_the_cron_topic() {
    let base = format!("{HEADER}  a:\n    image: r/a:1\n    annotations:\n");
    let alone = one(&format!("{base}      schedule: '*/5 * * * *'\n"));
    assert!(alone.spec.schedule.is_empty());
    assert!(message(&alone.notices, "functions.a.annotations.schedule").contains("only with topic: cron-function"));
    let err = error_of(&format!("{base}      topic: cron-function\n      schedule: ' ; '\n"));
    assert_eq!(err.key(), Some("functions.a.annotations.schedule"), "{err}");
}

// --- errors ---

#[test]
fn malformed_yaml_names_the_line_and_column() {
    let text = "version: 1.0\nprovider:\n  name: openfaas\nfunctions:\n  api:\n    image: reg/api:1\n   limits: {}\n";
    let err = error_of(text);
    assert!(matches!(err, StackError::Yaml(_)), "{err:?}");
    assert_eq!(err.line(), Some(7), "{err}");
    assert!(err.to_string().contains("line 7 column"), "{err}");

    let unclosed = error_of(&format!("{HEADER}  api:\n    image: [reg/api:1\n"));
    assert!(unclosed.line().is_some(), "{unclosed}");
}

#[test]
fn a_value_of_the_wrong_shape_names_its_key_and_line() {
    let err = error_of(&format!(
        "{HEADER}  api:\n    image: reg/api:1\n    secrets: db-password\n"
    ));
    let text = err.to_string();
    assert!(text.starts_with("functions.api.secrets: invalid type"), "{text}");
    assert_eq!(err.line(), Some(7), "{text}");

    let err = error_of(&format!(
        "{HEADER}  api:\n    image: reg/api:1\n    environment:\n      A: 1\n      A: 2\n"
    ));
    assert!(err.to_string().contains("`A` is given twice"), "{err}");
    assert!(err.line().is_some(), "{err}");
}

#[test]
fn a_bad_memory_or_cpu_value_names_its_key_and_line() {
    let err = error_of(&format!(
        "{HEADER}  api:\n    image: reg/api:1\n    limits:\n      memory: 128Q\n"
    ));
    let text = err.to_string();
    assert!(
        text.starts_with("functions.api.limits.memory: \"128Q\" is not a memory amount"),
        "{text}"
    );
    assert!(text.contains("at line 8 column"), "{text}");
    assert_eq!(err.line(), Some(8));

    let err = error_of(&format!(
        "{HEADER}  api:\n    image: reg/api:1\n    requests:\n      cpu: lots\n"
    ));
    assert!(err.to_string().starts_with("functions.api.requests.cpu: "), "{err}");
    assert_eq!(err.line(), Some(8));
}

#[test]
fn a_bad_scale_label_names_it() {
    for (label, value, says) in [
        ("min", "two", "is not a whole number"),
        ("max", "-1", "is not a whole number"),
        ("zero", "maybe", "is not a boolean"),
        ("zero-duration", "15", "without a unit"),
        ("target-proportion", "most", "is not a number"),
    ] {
        let err = error_of(&format!(
            "{HEADER}  api:\n    image: reg/api:1\n    labels:\n      com.openfaas.scale.{label}: {value}\n"
        ));
        assert_eq!(
            err.key(),
            Some(format!("functions.api.labels.com.openfaas.scale.{label}").as_str()),
            "{err}"
        );
        assert!(err.to_string().contains(says), "{err}");
    }
}

#[test]
fn a_spec_that_fails_validation_names_the_function_and_the_stack_key() {
    let base = format!("{HEADER}  api:\n    image: reg/api:1\n");
    for (extra, key, field) in [
        (
            "    limits:\n      memory: 8Mi\n",
            "functions.api.limits.memory",
            "memory_mib",
        ),
        (
            "    requests:\n      cpu: 1m\n",
            "functions.api.requests.cpu",
            "cpu_millis",
        ),
        (
            "    environment:\n      PORT: 9000\n",
            "functions.api.environment.PORT",
            "env.PORT",
        ),
        (
            "    labels:\n      com.openfaas.scale.min: 5\n      com.openfaas.scale.max: 2\n",
            "functions.api.labels.com.openfaas.scale.min",
            "min",
        ),
        (
            "    labels:\n      com.openfaas.scale.target: 0\n",
            "functions.api.labels.com.openfaas.scale.target",
            "concurrency",
        ),
        (
            "    labels:\n      com.openfaas.scale.zero: true\n      com.openfaas.scale.zero-duration: 48h\n",
            "functions.api.labels.com.openfaas.scale.zero-duration",
            "scale_to_zero_after",
        ),
    ] {
        let err = error_of(&format!("{base}{extra}"));
        let StackError::Spec { key: found, error } = &err else {
            panic!("expected a spec error for {extra}: {err:?}");
        };
        assert_eq!(found, key, "{err}");
        assert_eq!(error.field_name(), Some(field), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("{key}: invalid function spec: field `{field}`")),
            "{err}"
        );
    }
    let err = error_of(&format!("{HEADER}  Bad_Name:\n    image: reg/api:1\n"));
    assert_eq!(err.key(), Some("functions.Bad_Name"), "{err}");
    assert!(err.to_string().contains("field `name`"), "{err}");
}

#[test]
fn a_function_without_an_image_is_refused_saying_what_the_image_names() {
    let err = error_of(&format!("{HEADER}  api:\n    lang: python3-http\n    handler: ./api\n"));
    assert_eq!(err.key(), Some("functions.api.image"));
    let text = err.to_string();
    assert!(text.contains("built from ./api with template python3-http"), "{text}");
    assert!(text.contains("`fjord build` tags"), "{text}");
}

#[test]
fn environment_files_are_read_beside_the_stack_and_their_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Stack::parse(
        &format!("{HEADER}  api:\n    image: r/a:1\n    environment_file: [nope.yml]\n"),
        &no_env,
    )
    .unwrap()
    .translate("api", dir.path())
    .unwrap_err();
    assert_eq!(missing.key(), Some("functions.api.environment_file[0]"));
    assert!(
        missing
            .to_string()
            .contains(&dir.path().join("nope.yml").display().to_string()),
        "{missing}"
    );

    std::fs::write(dir.path().join("bad.yml"), "environment:\n  A: 1\n B: 2\n").unwrap();
    let bad = Stack::parse(
        &format!("{HEADER}  api:\n    image: r/a:1\n    environment_file: [bad.yml]\n"),
        &no_env,
    )
    .unwrap()
    .translate("api", dir.path())
    .unwrap_err();
    assert!(
        bad.to_string().contains("bad.yml") && bad.to_string().contains("line 3"),
        "{bad}"
    );

    // A flat file of variables is not faas-cli's format: its keys are named, not read.
    std::fs::write(dir.path().join("flat.yml"), "A: 1\n").unwrap();
    let flat = Stack::parse(
        &format!("{HEADER}  api:\n    image: r/a:1\n    environment_file: [flat.yml]\n"),
        &no_env,
    )
    .unwrap()
    .translate("api", dir.path())
    .unwrap();
    assert!(flat.spec.env.is_empty());
    assert!(message(&flat.notices, "functions.api.environment_file[0]").contains("flat.yml: unknown key `A`"));
}

#[test]
fn a_file_without_functions_is_refused() {
    for text in ["", "version: 1.0\nprovider: {name: openfaas}\n", "functions: {}\n"] {
        assert!(
            matches!(Stack::parse(text, &no_env), Err(StackError::NoFunctions)),
            "{text:?}"
        );
    }
    let big = "#".repeat(MAX_STACK_BYTES + 1);
    assert!(matches!(Stack::parse(&big, &no_env), Err(StackError::TooLarge { .. })));
}

// --- selecting and recognising ---

#[test]
fn filters_select_by_name_or_glob_and_an_unmatched_one_lists_the_names() {
    let stack = Stack::parse(
        &format!("{HEADER}  api:\n    image: r/a:1\n  api-worker:\n    image: r/w:1\n  cron:\n    image: r/c:1\n"),
        &no_env,
    )
    .unwrap();
    assert_eq!(
        stack.function_names(),
        vec!["api", "api-worker", "cron"],
        "the file's order"
    );
    let select = |patterns: &[&str]| {
        stack
            .select(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>())
            .map(|names| names.join(" "))
    };
    assert_eq!(select(&[]).unwrap(), "api api-worker cron");
    assert_eq!(select(&["cron", "api"]).unwrap(), "api cron");
    assert_eq!(select(&["api*"]).unwrap(), "api api-worker");
    assert_eq!(select(&["*-worker"]).unwrap(), "api-worker");
    assert_eq!(select(&["a*r*"]).unwrap(), "api-worker");
    let err = select(&["api", "web"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--filter web: no function of the file matches; it has api, api-worker, cron"
    );
}

#[test]
fn stack_files_are_told_from_fjord_specs() {
    assert!(is_stack_file(Some("stack.yml"), "name: x\n"));
    assert!(is_stack_file(Some("stack.yaml"), ""));
    assert!(is_stack_file(Some("app.yml"), HEADER));
    assert!(is_stack_file(None, "provider:\n  name: openfaas\nfunctions:\n  a: [\n"));
    assert!(is_stack_file(None, "version: 1.0\nfunctions:\n"));
    assert!(!is_stack_file(Some("fjord.yaml"), "name: api\nimage: r/a:1\n"));
    assert!(
        !is_stack_file(None, "functions:\n  a: {}\n"),
        "functions alone is not enough"
    );
    assert!(!is_stack_file(None, "name: a\nlabels:\n  functions: x\n  version: y\n"));
}
