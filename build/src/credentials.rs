//! Registry logins from docker's client configuration (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): the basic entries of its `auths` (an `auth` of base64
//! `user:password`, or `username` and `password`). Credential helpers (`credsStore`,
//! `credHelpers`) are not run.

use crate::{BuildError, RegistryLogin};
use base64::Engine as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where docker's client configuration is.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(Path::new(&dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker/config.json"))
}

#[derive(serde::Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

#[derive(serde::Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The login docker's configuration at `path` holds for registry `host`, if any; a missing
/// file holds none.
pub fn docker_config_login(path: &Path, host: &str) -> Result<Option<RegistryLogin>, BuildError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(BuildError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let bad = |reason: String| BuildError::DockerConfig {
        path: path.to_path_buf(),
        reason,
    };
    let config: DockerConfig = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let entry = config.auths.iter().find(|(key, _)| {
        let key = key.trim_start_matches("https://").trim_start_matches("http://");
        key.split('/').next() == Some(host)
    });
    let Some((key, entry)) = entry else {
        return Ok(None);
    };
    let (username, password) = match (&entry.auth, &entry.username, &entry.password) {
        (Some(auth), _, _) if !auth.is_empty() => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| bad(format!("auths.{key}.auth: {e}")))?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad(format!("auths.{key}.auth: not UTF-8")))?;
            let (user, password) = decoded
                .split_once(':')
                .ok_or_else(|| bad(format!("auths.{key}.auth: not base64 of user:password")))?;
            (user.to_string(), password.to_string())
        }
        (_, Some(user), Some(password)) => (user.clone(), password.clone()),
        _ => return Ok(None),
    };
    Ok(Some(RegistryLogin {
        username,
        password,
        server: host.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auths_entries_are_read_by_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &path,
            format!(r#"{{"auths": {{"127.0.0.1:5000": {{"auth": "{auth}"}}, "https://reg.example.com/v1/": {{"username": "bob", "password": "pw"}}}}, "credsStore": "x"}}"#),
        )
        .unwrap();
        let login = docker_config_login(&path, "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!((login.username.as_str(), login.password.as_str()), ("alice", "s3cret"));
        let login = docker_config_login(&path, "reg.example.com").unwrap().unwrap();
        assert_eq!(login.username, "bob");
        assert!(docker_config_login(&path, "other:1").unwrap().is_none());
        assert!(docker_config_login(&dir.path().join("none.json"), "x")
            .unwrap()
            .is_none());
    }
}
