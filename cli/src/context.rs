//! The current context: which cluster the CLI talks to when no flag or variable says. `fjord
//! dev` records the control-plane addresses, the token file and the lb of the cluster it runs
//! in `$XDG_CONFIG_HOME/fjord/context.json` (default `~/.config/fjord/context.json`); every
//! other command reads it. An explicit `--addr`/`FJORD_ADDR`, `--token`/`FJORD_TOKEN`,
//! `--token-file`/`FJORD_TOKEN_FILE` or `--lb`/`FJORD_LB` always wins, and `fjord context` shows
//! what is in force and where each value came from.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the CLI uses when nothing else is said.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:7400";
pub const DEFAULT_LB: &str = "http://127.0.0.1:8080";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Where the context came from: `fjord dev` and its data dir.
    pub source: String,
    pub control_plane_urls: Vec<String>,
    pub token_file: PathBuf,
    pub lb_url: String,
}

/// The context file's path.
pub fn path() -> PathBuf {
    xdg_dir("XDG_CONFIG_HOME", ".config").join("fjord/context.json")
}

/// An XDG base directory: `$VAR` when set and not empty, else `$HOME/<under_home>`.
pub fn xdg_dir(var: &str, under_home: &str) -> PathBuf {
    match std::env::var(var) {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into())).join(under_home),
    }
}

/// The recorded context, if there is one. A file that cannot be read or parsed is reported, not
/// silently ignored: the user would otherwise talk to a cluster they did not mean.
pub fn load() -> anyhow::Result<Option<Context>> {
    load_from(&path())
}

pub fn load_from(path: &Path) -> anyhow::Result<Option<Context>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("reading the CLI context {}: {e}", path.display()),
    };
    let context = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "the CLI context {} is not valid ({e}); delete it, or run `fjord dev` to write it again",
            path.display()
        )
    })?;
    Ok(Some(context))
}

/// Writes the context atomically (a reader never sees half a file).
pub fn save(context: &Context) -> anyhow::Result<PathBuf> {
    save_to(&path(), context)?;
    Ok(path())
}

pub fn save_to(path: &Path, context: &Context) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(context)?)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_context_loads_back_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fjord/context.json");
        assert_eq!(load_from(&path).unwrap(), None);
        let context = Context {
            source: "fjord dev (/tmp/x)".into(),
            control_plane_urls: vec!["http://127.0.0.1:7400".into(), "http://127.0.0.1:7401".into()],
            token_file: "/tmp/x/admin.token".into(),
            lb_url: "http://127.0.0.1:8080".into(),
        };
        save_to(&path, &context).unwrap();
        assert_eq!(load_from(&path).unwrap(), Some(context));
    }

    #[test]
    fn a_broken_context_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("context.json");
        std::fs::write(&path, "{not json").unwrap();
        let e = load_from(&path).unwrap_err().to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains("delete it"),
            "{e}"
        );
    }
}
