//! Names of functions and nodes: DNS labels (RFC 1123), so they fit in URLs, container names,
//! hostnames and metric labels without escaping.

/// Longest DNS label.
pub const MAX_NAME_LEN: usize = 63;

/// Checks that `name` is a DNS label: 1 to 63 characters of lowercase ASCII letters, digits and
/// `-`, starting with a letter and not ending with `-`. Returns the reason when it is not.
pub fn check_dns_label(name: &str) -> Result<(), String> {
    check_length(name, MAX_NAME_LEN)?;
    let first = name.as_bytes()[0];
    if !first.is_ascii_lowercase() {
        return Err(format!("{name:?} must start with a lowercase letter"));
    }
    if name.ends_with('-') {
        return Err(format!("{name:?} must not end with '-'"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "{name:?} contains {bad:?}; use lowercase letters, digits and '-' only"
        ));
    }
    Ok(())
}

/// A name of 1 to `max` bytes.
pub(crate) fn check_length(name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > max {
        return Err(format!("is {} characters long; the limit is {max}", name.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_dns_label;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "echo", "my-func-2", &"a".repeat(63)] {
            assert!(check_dns_label(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_dns_label() {
        for bad in [
            "",
            "Echo",
            "2fast",
            "trailing-",
            "under_score",
            "dot.ted",
            "sp ace",
            &"a".repeat(64),
        ] {
            assert!(check_dns_label(bad).is_err(), "{bad}");
        }
    }
}
