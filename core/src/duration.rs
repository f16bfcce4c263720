//! Human durations in specs and flags: `250ms`, `30s`, `5m`, `1h`, serialized back the same way.

use std::time::Duration;

/// Parses `<integer><unit>` with unit `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| match text {
        "" => "is empty; write a duration such as 30s, 500ms, 5m or 1h".to_string(),
        digits => format!("{digits:?} has no unit; write {digits}s or {digits}ms"),
    })?;
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number"))?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => return Err(format!("{text:?} has unknown unit {other:?}; use ms, s, m or h")),
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Reads a duration as a YAML file holds it: a string such as `30s`, or a bare number, which is
/// refused for having no unit (`timeout: 30`) just as `"30"` is. The caller names the field.
pub fn parse_yaml_duration(value: &serde_yaml_ng::Value) -> Result<Duration, String> {
    match value {
        serde_yaml_ng::Value::String(text) => parse_duration(text),
        serde_yaml_ng::Value::Number(n) => parse_duration(&n.to_string()),
        _ => Err("is not a duration; write for example 30s, 500ms, 5m or 1h".into()),
    }
}

/// Writes a duration in the largest unit that represents it exactly.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    for (unit, per) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

/// serde adapter: a `Duration` as a human duration string.
pub mod serde_human {
    use super::{format_duration, parse_duration};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
    }

    #[test]
    fn refuses_missing_or_unknown_units() {
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("3d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn a_missing_unit_is_named_with_the_fix() {
        assert_eq!(
            parse_duration("30").unwrap_err(),
            r#""30" has no unit; write 30s or 30ms"#
        );
        assert!(parse_duration("").unwrap_err().contains("is empty"));
    }

    #[test]
    fn yaml_numbers_have_no_unit_and_strings_parse() {
        let value = |text: &str| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text).unwrap();
        assert_eq!(
            parse_yaml_duration(&value("30")).unwrap_err(),
            r#""30" has no unit; write 30s or 30ms"#
        );
        assert_eq!(parse_yaml_duration(&value("\"30s\"")).unwrap(), Duration::from_secs(30));
        assert_eq!(parse_yaml_duration(&value("5m")).unwrap(), Duration::from_secs(300));
        assert!(parse_yaml_duration(&value("[1]"))
            .unwrap_err()
            .contains("is not a duration"));
    }

    #[test]
    fn formats_round_trip() {
        for text in ["250ms", "30s", "5m", "2h", "1500ms"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
