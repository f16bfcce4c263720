//! The plain-HTTP contract of a node agent's port, the one place its paths and headers are
//! spelled: the lb builds invoke paths and reads the answer's headers here, the agent parses
//! the paths and writes the headers here, and the control plane builds its logs and image
//! calls here.
//!
//! - `ANY /invoke/{function}{tail}`: an invocation; the tail (always starting with `/`, with
//!   the caller's query) is what the instance sees as its path. The name is percent-encoded
//!   as a path segment; the tail travels as the lb received it.
//! - `GET /v1/logs/{function}?tail=N`: the function's captured log lines.
//! - `GET /v1/images/resolve?image=<reference>`: an image reference pinned to a digest.
//! - Answer headers: [`BUSY`] (the agent refused before reading the body, so another node may
//!   take the request), [`NODE`], [`INSTANCE`] and [`COLD_START`] (who served a call).
//!
//! Pure: it builds and parses strings and header maps, and does no I/O.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Set on a refusal given before the request body was read: the caller may try another node.
pub const BUSY: HeaderName = HeaderName::from_static("x-fjord-busy");
/// Set when the call waited for an instance to start.
pub const COLD_START: HeaderName = HeaderName::from_static("x-fjord-cold-start");
/// The id of the instance that served the call.
pub const INSTANCE: HeaderName = HeaderName::from_static("x-fjord-instance");
/// The id of the node that served the call.
pub const NODE: HeaderName = HeaderName::from_static("x-fjord-node");
/// The value of the flag headers ([`BUSY`], [`COLD_START`]); their presence is what counts.
const FLAG: HeaderValue = HeaderValue::from_static("1");

const INVOKE_PREFIX: &str = "/invoke/";
const LOGS_PREFIX: &str = "/v1/logs/";
/// The image resolution endpoint.
pub const RESOLVE_IMAGE_PATH: &str = "/v1/images/resolve";
const IMAGE_PARAM: &str = "image";
const TAIL_PARAM: &str = "tail";
/// Log lines a logs call returns without `?tail=`.
pub const DEFAULT_LOG_TAIL: usize = 100;

/// What a function name must have escaped to stay one path segment.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');
/// Everything but RFC 3986's unreserved characters, for query values.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The URL of `path_and_query` on the agent at `addr` (`host:port`).
pub fn agent_url(addr: &str, path_and_query: &str) -> String {
    format!("http://{addr}{path_and_query}")
}

/// Splits `{name}[/{rest}]` into the name and the rest, which always starts with `/` (`/` when
/// there is none). Shared by the lb's public `/function/` path and the agent's invoke path.
pub fn split_name_and_tail(rest: &str) -> (&str, &str) {
    match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    }
}

/// `/invoke/{function}{tail}`; `tail` may carry a query. A tail not starting with `/` gets one.
pub fn invoke_path(function: &str, tail: &str) -> String {
    let slash = if tail.starts_with('/') { "" } else { "/" };
    format!(
        "{INVOKE_PREFIX}{}{slash}{tail}",
        utf8_percent_encode(function, PATH_SEGMENT)
    )
}

/// The function (percent-decoded) and the tail of an invoke path (a URI's path, without the
/// query), or `None` when `path` is not an invocation or its name is not UTF-8.
pub fn parse_invoke_path(path: &str) -> Option<(Cow<'_, str>, &str)> {
    let (name, tail) = split_name_and_tail(path.strip_prefix(INVOKE_PREFIX)?);
    Some((percent_decode_str(name).decode_utf8().ok()?, tail))
}

/// `/v1/logs/{function}?tail={tail}`.
pub fn logs_path(function: &str, tail: usize) -> String {
    format!(
        "{LOGS_PREFIX}{}?{TAIL_PARAM}={tail}",
        utf8_percent_encode(function, PATH_SEGMENT)
    )
}

/// The function of a logs path (percent-decoded), or `None` when `path` is not one.
pub fn parse_logs_path(path: &str) -> Option<Cow<'_, str>> {
    percent_decode_str(path.strip_prefix(LOGS_PREFIX)?).decode_utf8().ok()
}

/// The lines a logs call asks for: `?tail=N`, else [`DEFAULT_LOG_TAIL`].
pub fn logs_tail(query: Option<&str>) -> usize {
    query_param(query, TAIL_PARAM)
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_LOG_TAIL)
}

/// `/v1/images/resolve?image={image}`, the reference percent-encoded.
pub fn resolve_image_path(image: &str) -> String {
    format!(
        "{RESOLVE_IMAGE_PATH}?{IMAGE_PARAM}={}",
        utf8_percent_encode(image, QUERY_VALUE)
    )
}

/// How a resolve call is written, for error messages.
pub fn resolve_image_usage() -> String {
    format!("GET {RESOLVE_IMAGE_PATH}?{IMAGE_PARAM}=<reference>")
}

/// The image reference a resolve call asks for, or `None` when it names none (or a blank one).
pub fn resolve_image_param(query: Option<&str>) -> Option<String> {
    query_param(query, IMAGE_PARAM).filter(|image| !image.trim().is_empty())
}

/// The first value of `key` in a URL query, percent-decoded (`+` is a space). A malformed
/// escape is kept as written; bytes that are not UTF-8 become U+FFFD.
fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    let value = query?.split('&').find_map(|pair| match pair.split_once('=') {
        Some((k, v)) if k == key => Some(v),
        None if pair == key => Some(""),
        _ => None,
    })?;
    let spaced = value.replace('+', " ");
    Some(percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
}

/// Marks an answer as a refusal given before the request body was read.
pub fn mark_busy(headers: &mut HeaderMap) {
    headers.insert(BUSY, FLAG);
}

/// Whether the agent refused the request before reading its body.
pub fn is_busy(headers: &HeaderMap) -> bool {
    headers.contains_key(BUSY)
}

/// Says on an answer which node and instance served it, and whether it waited for a start.
/// An id that is not a valid header value is left out.
pub fn mark_served_by(headers: &mut HeaderMap, node: &str, instance: &str, cold_start: bool) {
    if let Ok(value) = HeaderValue::from_str(instance) {
        headers.insert(INSTANCE, value);
    }
    if let Ok(value) = HeaderValue::from_str(node) {
        headers.insert(NODE, value);
    }
    if cold_start {
        headers.insert(COLD_START, FLAG);
    }
}

/// Whether the call waited for an instance to start.
pub fn is_cold_start(headers: &HeaderMap) -> bool {
    headers.contains_key(COLD_START)
}

/// The node that served the call, as the answer says.
pub fn served_by_node(headers: &HeaderMap) -> Option<&str> {
    headers.get(NODE)?.to_str().ok()
}

/// The instance that served the call, as the answer says.
pub fn served_by_instance(headers: &HeaderMap) -> Option<&str> {
    headers.get(INSTANCE)?.to_str().ok()
}

/// One line of `GET /v1/logs/{function}`'s answer (a JSON array of them, oldest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub instance_id: String,
    /// "stdout", "stderr" or "platform" (lines the agent writes about the instance).
    pub stream: String,
    pub timestamp_ms: u64,
    pub line: String,
}

/// `GET /v1/images/resolve`'s answer: an image reference pinned to its manifest's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedImage {
    /// The reference as given.
    #[serde(rename = "image")]
    pub reference: String,
    /// The manifest's digest, `sha256:<hex>`.
    pub digest: String,
    /// The repository with the digest and without the tag: `repo@sha256:<hex>`, what nodes run.
    pub pinned: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds as the lb does, sends through `http::Uri` as the wire does, parses as the agent does.
    fn round_trip(function: &str, tail: &str) -> (String, String, Option<String>) {
        let uri: http::Uri = agent_url("10.0.0.7:7500", &invoke_path(function, tail))
            .parse()
            .unwrap();
        let (name, parsed_tail) = parse_invoke_path(uri.path()).unwrap();
        (
            name.into_owned(),
            parsed_tail.to_string(),
            uri.query().map(str::to_string),
        )
    }

    #[test]
    fn invoke_paths_round_trip() {
        assert_eq!(invoke_path("echo", "/a/b"), "/invoke/echo/a/b");
        assert_eq!(round_trip("echo", "/"), ("echo".into(), "/".into(), None));
        assert_eq!(round_trip("echo", "/a/b"), ("echo".into(), "/a/b".into(), None));
        assert_eq!(round_trip("f-1", "/x/"), ("f-1".into(), "/x/".into(), None));
    }

    #[test]
    fn tails_keep_their_query_and_their_escapes() {
        assert_eq!(
            round_trip("echo", "/any/path?x=1&y=a%20b"),
            ("echo".into(), "/any/path".into(), Some("x=1&y=a%20b".into()))
        );
        assert_eq!(
            round_trip("echo", "/?ms=1"),
            ("echo".into(), "/".into(), Some("ms=1".into()))
        );
        // The tail is the function's business: its escapes are not decoded on the way.
        assert_eq!(round_trip("echo", "/a%2Fb").1, "/a%2Fb");
        // A tail without its slash gets one, so the name stays one segment.
        assert_eq!(invoke_path("echo", "?q=1"), "/invoke/echo/?q=1");
        assert_eq!(invoke_path("echo", ""), "/invoke/echo/");
    }

    #[test]
    fn names_are_percent_encoded_as_one_segment() {
        assert_eq!(invoke_path("a/b", "/"), "/invoke/a%2Fb/");
        assert_eq!(round_trip("a/b", "/t").0, "a/b");
        assert_eq!(round_trip("50% off?", "/t"), ("50% off?".into(), "/t".into(), None));
        assert_eq!(round_trip("é", "/").0, "é");
        assert_eq!(parse_invoke_path("/invoke/ech%6F/x"), Some(("echo".into(), "/x")));
    }

    #[test]
    fn bad_invoke_paths_are_refused_or_kept_whole() {
        assert_eq!(parse_invoke_path("/invoke/echo"), Some(("echo".into(), "/")));
        assert_eq!(parse_invoke_path("/invoke/"), Some(("".into(), "/")));
        assert_eq!(parse_invoke_path("/invoke"), None);
        assert_eq!(parse_invoke_path("/function/echo"), None);
        assert_eq!(parse_invoke_path("/v1/logs/echo"), None);
        assert_eq!(parse_invoke_path("/invoke/%FF/x"), None, "a name that is not UTF-8");
        // A malformed escape is no escape: kept as written.
        assert_eq!(parse_invoke_path("/invoke/a%zz"), Some(("a%zz".into(), "/")));
    }

    #[test]
    fn logs_paths_round_trip() {
        let uri: http::Uri = agent_url("n:1", &logs_path("echo", 25)).parse().unwrap();
        assert_eq!(uri.path(), "/v1/logs/echo");
        assert_eq!(parse_logs_path(uri.path()).as_deref(), Some("echo"));
        assert_eq!(logs_tail(uri.query()), 25);
        assert_eq!(logs_tail(None), DEFAULT_LOG_TAIL);
        assert_eq!(logs_tail(Some("tail=many")), DEFAULT_LOG_TAIL);
        assert_eq!(
            parse_logs_path(&logs_path("a/b", 1).replace("?tail=1", "")).as_deref(),
            Some("a/b")
        );
        assert_eq!(parse_logs_path("/v1/log/echo"), None);
    }

    #[test]
    fn image_references_are_encoded_for_the_query_and_decoded_back() {
        assert_eq!(
            resolve_image_path("127.0.0.1:5000/echo:test"),
            "/v1/images/resolve?image=127.0.0.1%3A5000%2Fecho%3Atest"
        );
        for image in ["127.0.0.1:5000/team/echo:v1", "r/x@sha256:abc", "a b+c&d=e"] {
            let uri: http::Uri = agent_url("n:1", &resolve_image_path(image)).parse().unwrap();
            assert_eq!(uri.path(), RESOLVE_IMAGE_PATH);
            assert_eq!(resolve_image_param(uri.query()).as_deref(), Some(image));
        }
        assert_eq!(resolve_image_param(Some("image=")), None);
        assert_eq!(resolve_image_param(Some("image=%20")), None);
        assert_eq!(resolve_image_param(None), None);
        assert_eq!(resolve_image_usage(), "GET /v1/images/resolve?image=<reference>");
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let q = Some("tail=5&image=127.0.0.1%3A5000%2Fteam%2Fecho%3Av1&x");
        assert_eq!(query_param(q, "image").as_deref(), Some("127.0.0.1:5000/team/echo:v1"));
        assert_eq!(query_param(q, "tail").as_deref(), Some("5"));
        assert_eq!(query_param(q, "x").as_deref(), Some(""));
        assert_eq!(query_param(q, "missing"), None);
        assert_eq!(query_param(None, "image"), None);
        assert_eq!(query_param(Some("image=a+b%2"), "image").as_deref(), Some("a b%2"));
        assert_eq!(query_param(Some("image=%zz"), "image").as_deref(), Some("%zz"));
        assert_eq!(query_param(Some("image=a%2Bb"), "image").as_deref(), Some("a+b"));
    }

    #[test]
    fn answer_headers_are_written_and_read_back() {
        let mut headers = HeaderMap::new();
        assert!(!is_busy(&headers) && !is_cold_start(&headers));
        mark_busy(&mut headers);
        assert!(is_busy(&headers));
        assert_eq!(headers.get("x-fjord-busy").unwrap(), "1");

        let mut headers = HeaderMap::new();
        mark_served_by(&mut headers, "node-0", "echo-3", true);
        assert_eq!(served_by_node(&headers), Some("node-0"));
        assert_eq!(served_by_instance(&headers), Some("echo-3"));
        assert!(is_cold_start(&headers));
        assert!(!is_busy(&headers));

        let mut warm = HeaderMap::new();
        mark_served_by(&mut warm, "node-0", "bad\nid", false);
        assert!(!is_cold_start(&warm));
        assert_eq!(
            served_by_instance(&warm),
            None,
            "an id that is no header value is left out"
        );
        assert_eq!(served_by_node(&warm), Some("node-0"));
    }
}
