//! Which callback addresses a caller may give in `X-Callback-Url`.
//!
//! http or https with a host; never a link-local address (169.254.0.0/16, fe80::/10), where
//! clouds serve instance metadata and credentials, nor the metadata addresses themselves,
//! unless the operator allows it (`--callback-allow-link-local`). Checked on the literal
//! address at enqueue and on the resolved addresses before each delivery, so a name that
//! resolves to a metadata address is refused too.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("X-Callback-Url {url:?} {reason}")]
pub struct CallbackUrlError {
    pub url: String,
    pub reason: String,
}

pub const MAX_CALLBACK_URL_LEN: usize = 2048;

/// Checks a callback address; `allow_link_local` lifts the link-local rule.
pub fn check_callback_url(url: &str, allow_link_local: bool) -> Result<http::Uri, CallbackUrlError> {
    let fail = |reason: &str| CallbackUrlError {
        url: url.chars().take(200).collect(),
        reason: reason.to_string(),
    };
    if url.len() > MAX_CALLBACK_URL_LEN {
        return Err(fail("is longer than 2048 bytes"));
    }
    let uri: http::Uri = url.parse().map_err(|_| fail("is not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(fail("must start with http:// or https://")),
    }
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        return Err(fail("has no host"));
    };
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        if !allow_link_local && is_link_local_or_metadata(ip) {
            return Err(fail(
                "names a link-local or metadata address, which callbacks may not reach \
                 (the lb's --callback-allow-link-local lifts this)",
            ));
        }
    }
    Ok(uri)
}

/// Link-local (IPv4 169.254/16, IPv6 fe80::/10) or a cloud metadata address (AWS's IPv6
/// fd00:ec2::254 included).
pub fn is_link_local_or_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.is_link_local();
            }
            let first = v6.segments()[0];
            (first & 0xffc0) == 0xfe80 || v6 == "fd00:ec2::254".parse::<std::net::Ipv6Addr>().expect("an address")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_https_pass_and_the_rest_is_refused_naming_why() {
        assert!(check_callback_url("http://127.0.0.1:9000/done", false).is_ok());
        assert!(check_callback_url("https://hooks.example.com/x?y=1", false).is_ok());
        let reason = |url: &str| check_callback_url(url, false).unwrap_err().reason;
        assert!(reason("ftp://example.com/").contains("http://"));
        assert!(reason("not a url").contains("not a URL") || reason("not a url").contains("http"));
        assert!(reason("http://169.254.169.254/latest/meta-data").contains("link-local"));
        assert!(reason("http://[fe80::1]/").contains("link-local"));
        assert!(reason("http://[fd00:ec2::254]/").contains("link-local"));
        assert!(reason("http://[::ffff:169.254.1.1]/").contains("link-local"));
        assert!(check_callback_url("http://169.254.169.254/", true).is_ok());
        assert!(reason(&format!("http://a/{}", "x".repeat(3000))).contains("2048"));
    }
}
