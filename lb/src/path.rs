//! Parsing `/function/{name}[/{rest}]`: pure, total, and fuzzed, since every byte of it comes
//! from the internet.

/// The function name and the rest of the path (always starting with `/`), or `None` when the
/// path is not a function call. The name is not validated here.
pub fn parse_function_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/function/")?;
    Some(fjord_core::agent_http::split_name_and_tail(rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn splits_name_and_rest() {
        assert_eq!(parse_function_path("/function/echo"), Some(("echo", "/")));
        assert_eq!(parse_function_path("/function/echo/"), Some(("echo", "/")));
        assert_eq!(parse_function_path("/function/echo/a/b"), Some(("echo", "/a/b")));
        assert_eq!(parse_function_path("/function/"), Some(("", "/")));
        assert_eq!(parse_function_path("/functions/echo"), None);
        assert_eq!(parse_function_path("/healthz"), None);
    }

    #[test]
    fn random_paths_never_panic_and_the_rest_always_starts_with_a_slash() {
        let alphabet: Vec<char> = "/function/echo%2F..\\?#é\u{0}ab-_ ".chars().collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200_000 {
            let len = rng.random_range(0..40);
            let mut path: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            if rng.random_bool(0.5) {
                path.insert_str(0, "/function/");
            }
            if let Some((name, rest)) = parse_function_path(&path) {
                assert!(rest.starts_with('/'), "{path:?}");
                assert!(!name.contains('/'), "{path:?}");
            }
        }
    }
}
