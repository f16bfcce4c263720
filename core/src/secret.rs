//! Named secrets as a function sees them: the names a spec gives (`secrets: [db-password]`),
//! the rules for a name and a value, and where the files appear in an instance.
//!
//! A secret is stored once, by name, encrypted by the control plane; a spec only names it. An
//! instance reads `NAME` as a file in [`CONTAINER_DIRS`] (containers: both paths, OpenFaaS's
//! and Fjord's) or in the directory `$FJORD_SECRETS_DIR` (processes). Values never become
//! environment variables.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a container finds its secrets, one file per name, read-only. The first is where
/// functions built for OpenFaaS look.
pub const CONTAINER_DIRS: [&str; 2] = ["/var/openfaas/secrets", "/var/fjord/secrets"];
/// The environment variable naming a process instance's secrets directory (mode 0700).
pub const DIR_ENV: &str = "FJORD_SECRETS_DIR";
/// A value is at most this many bytes (they travel through the replicated log).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// A name is at most this long (a Kubernetes object name's limit, which OpenFaaS uses).
pub const MAX_NAME_LEN: usize = 253;
/// Secrets one spec may name.
pub const MAX_PER_FUNCTION: usize = 64;

/// What a spec's `secrets:` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Secrets {
    /// Names of stored secrets, mounted as files.
    Named(Vec<String>),
    /// Values written in the spec itself, as versions before named secrets stored them. A
    /// function stored so keeps running (the values as environment variables) until it is
    /// redeployed; a deploy refuses them with [`INLINE_REFUSED`].
    Inline(BTreeMap<String, String>),
}

/// Why a deploy with inline values is refused, and what to do instead.
pub const INLINE_REFUSED: &str = "holds values; secrets are stored by name now, encrypted, and \
    mounted as files: create each one with `fjord secret create NAME --from-literal VALUE` (or \
    --from-file), list the names here (`secrets: [NAME]`), and read /var/fjord/secrets/NAME in \
    the function ($FJORD_SECRETS_DIR/NAME for a command function)";

impl Default for Secrets {
    fn default() -> Self {
        Secrets::Named(Vec::new())
    }
}

impl Secrets {
    pub fn is_empty(&self) -> bool {
        match self {
            Secrets::Named(names) => names.is_empty(),
            Secrets::Inline(values) => values.is_empty(),
        }
    }

    /// The names of stored secrets this spec mounts (none for inline values).
    pub fn names(&self) -> &[String] {
        match self {
            Secrets::Named(names) => names,
            Secrets::Inline(_) => &[],
        }
    }

    /// Inline values of a spec stored by an earlier version.
    pub fn inline(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            Secrets::Inline(values) if !values.is_empty() => Some(values),
            _ => None,
        }
    }

    /// Blanks inline values (for answers that show a spec).
    pub fn blank_values(&mut self) {
        if let Secrets::Inline(values) = self {
            for value in values.values_mut() {
                *value = String::new();
            }
        }
    }
}

/// Checks a secret's name: 1 to 253 characters of ASCII letters, digits, `.`, `_` and `-`,
/// starting with a letter or digit (so it is a plain file name). Returns the reason when not.
pub fn check_name(name: &str) -> Result<(), String> {
    crate::name::check_length(name, MAX_NAME_LEN)?;
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(format!("{name:?} must start with a letter or a digit"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{name:?} contains {bad:?}; use letters, digits, '.', '_' and '-' only"
        ));
    }
    Ok(())
}

/// Checks a value's size.
pub fn check_value(value: &[u8]) -> Result<(), String> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "is {} bytes; a secret may be at most {MAX_VALUE_BYTES} bytes",
            value.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_file_names() {
        for ok in ["db-password", "DB_PASSWORD", "api.key", "0auth", &"a".repeat(253)] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".hidden", "-x", "a/b", "../x", "sp ace", "é", &"a".repeat(254)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_value(&vec![0; MAX_VALUE_BYTES]).is_ok());
        assert!(check_value(&vec![0; MAX_VALUE_BYTES + 1])
            .unwrap_err()
            .contains("at most 65536"));
    }

    #[test]
    fn a_list_is_names_and_a_map_is_inline_values_of_an_earlier_version() {
        let named: Secrets = serde_json::from_str(r#"["a","b"]"#).unwrap();
        assert_eq!(named.names(), ["a".to_string(), "b".to_string()]);
        assert_eq!(named.inline(), None);
        let mut inline: Secrets = serde_json::from_str(r#"{"KEY":"v"}"#).unwrap();
        assert!(inline.names().is_empty());
        assert_eq!(inline.inline().unwrap()["KEY"], "v");
        inline.blank_values();
        assert_eq!(inline.inline().unwrap()["KEY"], "");
        assert!(Secrets::default().is_empty());
    }
}
