//! Secret files on this node. A function's secrets are fetched from the control plane when an
//! instance of it is about to start (so a node holds only the secrets of functions it runs),
//! kept in memory, and written as one file per name into a directory on a tmpfs (never the
//! disk), which the runtime mounts read-only into the instance.
//!
//! Each set of versions gets its own directory (`<base>/<function>/<fingerprint>`), written
//! whole before use and never changed: a running instance keeps the values it started with,
//! and an instance started after a rotation gets a new directory with the new ones. The base
//! directory is 0700, so nobody else on the host reads through it.

use fjord_core::FunctionSpec;
use fjord_proto::v1 as pb;
use fjord_proto::v1::agent_client::AgentClient;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// Directories kept per function: the current one and a few older ones that instances started
/// before a rotation may still use.
const KEPT_PER_FUNCTION: usize = 4;

/// Where secret files go unless `--secrets-dir` says otherwise: tmpfs, one directory per agent
/// process (two agents on one host never share one).
pub fn default_dir(node_id: &str) -> PathBuf {
    PathBuf::from("/dev/shm/fjord-secrets").join(format!("{node_id}-{}", std::process::id()))
}

pub struct SecretFiles {
    base: PathBuf,
    /// The current version of each secret, from the latest assignments.
    versions: Mutex<BTreeMap<String, u64>>,
    /// Values fetched, by name and version.
    values: Mutex<HashMap<(String, u64), Vec<u8>>>,
    /// Directories written per function, oldest first.
    dirs: Mutex<HashMap<String, Vec<PathBuf>>>,
    client: Mutex<Option<(AgentClient<Channel>, String)>>,
    node_id: String,
}

impl SecretFiles {
    /// Nothing is created until a function with secrets starts.
    pub fn new(base: PathBuf, node_id: &str) -> SecretFiles {
        SecretFiles {
            base,
            versions: Mutex::default(),
            values: Mutex::default(),
            dirs: Mutex::default(),
            client: Mutex::default(),
            node_id: node_id.to_string(),
        }
    }

    /// The control-plane member to fetch values from, with the token to present.
    pub fn set_client(&self, client: AgentClient<Channel>, token: &str) {
        *self.client.lock().expect("secrets lock") = Some((client, token.to_string()));
    }

    /// The current versions (from assignments); values of other versions are forgotten.
    pub fn set_versions(&self, versions: BTreeMap<String, u64>) {
        self.values
            .lock()
            .expect("secrets lock")
            .retain(|(name, version), _| versions.get(name) == Some(version));
        *self.versions.lock().expect("secrets lock") = versions;
    }

    /// The directory holding `spec`'s secrets at their current versions, written if needed;
    /// `None` for a spec that names none. `for_containers` makes the files readable by any user
    /// inside the instance (a container's user is the image's), behind the 0700 base.
    pub async fn prepare(&self, spec: &FunctionSpec, for_containers: bool) -> Result<Option<PathBuf>, String> {
        let names = spec.secrets.names();
        if names.is_empty() {
            return Ok(None);
        }
        let wanted: Vec<(String, Option<u64>)> = {
            let versions = self.versions.lock().expect("secrets lock");
            names.iter().map(|n| (n.clone(), versions.get(n).copied())).collect()
        };
        let missing = {
            let values = self.values.lock().expect("secrets lock");
            wanted
                .iter()
                .any(|(name, version)| version.is_none_or(|v| !values.contains_key(&(name.clone(), v))))
        };
        if missing {
            self.fetch(&spec.name).await?;
        }
        // After a fetch, the versions it returned are the ones to use.
        let chosen: Vec<(String, u64, Vec<u8>)> = {
            let versions = self.versions.lock().expect("secrets lock");
            let values = self.values.lock().expect("secrets lock");
            names
                .iter()
                .map(|name| {
                    let version = *versions
                        .get(name)
                        .ok_or_else(|| format!("secret {name:?} is not known to this node"))?;
                    let value = values
                        .get(&(name.clone(), version))
                        .ok_or_else(|| format!("secret {name:?} (version {version}) was not fetched"))?;
                    Ok((name.clone(), version, value.clone()))
                })
                .collect::<Result<_, String>>()?
        };
        let fingerprint = chosen
            .iter()
            .map(|(name, version, _)| format!("{name}={version}"))
            .collect::<Vec<_>>()
            .join(",");
        let tag = format!("{:016x}", fnv1a(fingerprint.as_bytes()) ^ u64::from(for_containers));
        let dir = self.base.join(&spec.name).join(tag);
        if dir.is_dir() {
            return Ok(Some(dir));
        }
        write_dir(&self.base, &dir, &chosen, for_containers)
            .map_err(|e| format!("writing the secret files under {}: {e}", self.base.display()))?;
        self.keep_recent(&spec.name, dir.clone());
        Ok(Some(dir))
    }

    async fn fetch(&self, function: &str) -> Result<(), String> {
        let (mut client, token) = self
            .client
            .lock()
            .expect("secrets lock")
            .clone()
            .ok_or("no control-plane member is reachable to fetch them from")?;
        let mut request = tonic::Request::new(pb::FunctionSecretsRequest {
            node_id: self.node_id.clone(),
            function: function.to_string(),
        });
        if let Ok(value) = MetadataValue::try_from(format!("Bearer {token}")) {
            request.metadata_mut().insert("authorization", value);
        }
        request.set_timeout(std::time::Duration::from_secs(5));
        let answer = client
            .function_secrets(request)
            .await
            .map_err(|status| format!("the control plane refused them: {}", status.message()))?
            .into_inner();
        let mut versions = self.versions.lock().expect("secrets lock");
        let mut values = self.values.lock().expect("secrets lock");
        for secret in answer.secrets {
            versions.insert(secret.name.clone(), secret.version);
            values.insert((secret.name, secret.version), secret.value);
        }
        Ok(())
    }

    fn keep_recent(&self, function: &str, dir: PathBuf) {
        let mut dirs = self.dirs.lock().expect("secrets lock");
        let list = dirs.entry(function.to_string()).or_default();
        list.push(dir);
        while list.len() > KEPT_PER_FUNCTION {
            let old = list.remove(0);
            let _ = std::fs::remove_dir_all(old);
        }
    }

    /// A function left this node: its secret files go.
    pub fn forget(&self, function: &str) {
        if self.dirs.lock().expect("secrets lock").remove(function).is_some() {
            let _ = std::fs::remove_dir_all(self.base.join(function));
        }
    }

    /// Removes every file this agent wrote (when it stops).
    pub fn clear(&self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }

    /// Removes what agents that are no longer running left beside this agent's base directory.
    pub fn sweep_dead_agents(&self) {
        let Some(parent) = self.base.parent() else { return };
        let Ok(entries) = std::fs::read_dir(parent) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let pid = name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
}

/// Writes the files into a temporary directory beside `dir`, then renames it into place, so an
/// instance never sees a half-written set.
fn write_dir(base: &Path, dir: &Path, secrets: &[(String, u64, Vec<u8>)], for_containers: bool) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true).mode(0o700);
    if let Some(parent) = base.parent() {
        builder.create(parent)?;
    }
    builder.create(base)?;
    std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o700))?;
    let parent = dir.parent().expect("a function directory");
    builder.create(parent)?;
    let (dir_mode, file_mode) = if for_containers { (0o755, 0o444) } else { (0o700, 0o400) };
    // The function's directory is crossed by the instance's user only inside a container
    // (through the mount); on the host the 0700 base stops everyone else.
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let staging = parent.join(format!(".writing-{n}"));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    for (name, _, value) in secrets {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file_mode)
            .open(staging.join(name))?;
        file.write_all(value)?;
    }
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(dir_mode))?;
    match std::fs::rename(&staging, dir) {
        Ok(()) => Ok(()),
        // Another start wrote the same set first: theirs is as good.
        Err(_) if dir.is_dir() => std::fs::remove_dir_all(&staging),
        Err(e) => Err(e),
    }
}

/// A stable 64-bit hash for directory names (not a secret: it covers names and versions only).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
impl SecretFiles {
    /// A value as if fetched, for tests without a control plane.
    fn insert(&self, name: &str, version: u64, value: &[u8]) {
        self.versions.lock().unwrap().insert(name.to_string(), version);
        self.values
            .lock()
            .unwrap()
            .insert((name.to_string(), version), value.to_vec());
    }
}

#[cfg(test)]
mod tests;
