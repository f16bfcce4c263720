//! The network function containers run on, and the host firewall rules that keep them away from
//! the platform.
//!
//! Containers join one bridge network per node ([`FunctionNetwork`], `fjord-functions` on the
//! Linux bridge `fjord0` by default) created with inter-container traffic off, so one function
//! cannot call another's instance directly. The agent reaches an instance through the loopback
//! port the engine publishes for it; nothing else needs to enter the host from the bridge. The
//! [`HostFirewall`] therefore installs, idempotently, with `iptables`:
//!
//! - `INPUT -i <bridge> -m conntrack --ctstate NEW -j DROP`: a function opens no connection to
//!   the node itself, whatever it listens on (the agent's port, a control-plane member on the
//!   same host, the engine's API if exposed, another instance's published port). Answers to the
//!   connections the host opens to instances are not new, so they pass.
//! - in `DOCKER-USER` (the chain the engine leaves to operators, consulted before its own
//!   forwarding rules): `-i <bridge> -d 169.254.169.254 -j DROP`, so a function cannot read the
//!   node's cloud credentials from the instance metadata service, and `-i <bridge> -p tcp
//!   --dport P -j DROP` for every platform port the agent knows (the control plane's and its
//!   own), so a function cannot reach the control plane or another node's agent over the
//!   network either.
//!
//! Other outbound traffic (the internet, the function's own databases) is left alone. The rules
//! outlive the agent on purpose: they name only the bridge, and the next agent finds them in
//! place. Where the engine is not the host's (rootless, Docker Desktop) the rules cannot be set;
//! the agent then refuses to start unless told `--function-firewall false`, and says so.

use bollard::models::NetworkCreateRequest;
use bollard::Docker;
use std::collections::HashMap;
use std::process::Command;

/// The network function containers join, and the Linux bridge behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionNetwork {
    /// The engine's network name.
    pub name: String,
    /// The Linux bridge interface (at most 15 characters).
    pub bridge: String,
}

impl Default for FunctionNetwork {
    fn default() -> Self {
        FunctionNetwork {
            name: "fjord-functions".into(),
            bridge: "fjord0".into(),
        }
    }
}

/// The bridge option the engine names its Linux bridge with.
const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";
/// The bridge option that allows containers on one network to reach each other.
const ICC_OPTION: &str = "com.docker.network.bridge.enable_icc";
/// The instance metadata service of EC2 and most other clouds.
pub const METADATA_ADDRESS: &str = "169.254.169.254";

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("--function-bridge {0:?}: a Linux interface name has 1 to 15 letters, digits, '-' or '_'")]
    BadBridgeName(String),
    #[error("creating the function network {network:?}: {source}")]
    Create {
        network: String,
        source: bollard::errors::Error,
    },
    #[error(
        "the network {network:?} exists on bridge {found:?}, not {wanted:?}; remove it \
         (docker network rm {network}) or pass --function-bridge {found}"
    )]
    BridgeMismatch {
        network: String,
        found: String,
        wanted: String,
    },
    #[error(
        "installing the firewall rule `iptables {rule}`: {reason}. Functions could reach this \
         node's services and the metadata service without it; run the agent as root on a host \
         whose Docker engine uses iptables, or pass --function-firewall false to run without \
         (not for functions you do not trust)"
    )]
    Firewall { rule: String, reason: String },
}

impl FunctionNetwork {
    pub fn new(name: &str, bridge: &str) -> Result<Self, NetworkError> {
        let valid = (1..=15).contains(&bridge.len())
            && bridge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(NetworkError::BadBridgeName(bridge.to_string()));
        }
        Ok(FunctionNetwork {
            name: name.to_string(),
            bridge: bridge.to_string(),
        })
    }

    /// Makes sure the network exists on the expected bridge, creating it if not. Several agents
    /// on one host may race to create it: the loser finds the winner's.
    pub async fn ensure(&self, docker: &Docker) -> Result<(), NetworkError> {
        if let Some(found) = self.existing_bridge(docker).await {
            return self.check_bridge(found);
        }
        let request = NetworkCreateRequest {
            name: self.name.clone(),
            driver: Some("bridge".into()),
            options: Some(HashMap::from([
                (BRIDGE_NAME_OPTION.to_string(), self.bridge.clone()),
                (ICC_OPTION.to_string(), "false".to_string()),
            ])),
            labels: Some(HashMap::from([(super::LABEL_MANAGED.to_string(), "true".to_string())])),
            ..Default::default()
        };
        match docker.create_network(request).await {
            Ok(_) => Ok(()),
            Err(source) => match self.existing_bridge(docker).await {
                Some(found) => self.check_bridge(found),
                None => Err(NetworkError::Create {
                    network: self.name.clone(),
                    source,
                }),
            },
        }
    }

    /// The bridge an existing network of this name is on (its name option, or the engine's
    /// default naming when it has none); `None` when there is no such network.
    async fn existing_bridge(&self, docker: &Docker) -> Option<String> {
        let network = docker.inspect_network(&self.name, None).await.ok()?;
        let options = network.options.unwrap_or_default();
        Some(options.get(BRIDGE_NAME_OPTION).cloned().unwrap_or_else(|| {
            let id = network.id.unwrap_or_default();
            format!("br-{}", &id[..id.len().min(12)])
        }))
    }

    fn check_bridge(&self, found: String) -> Result<(), NetworkError> {
        if found == self.bridge {
            Ok(())
        } else {
            Err(NetworkError::BridgeMismatch {
                network: self.name.clone(),
                found,
                wanted: self.bridge.clone(),
            })
        }
    }
}

/// The firewall rules that keep functions on `bridge` off the node and the platform's ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFirewall {
    pub bridge: String,
    /// TCP ports of the platform (control plane, agents) no function may connect to, anywhere.
    pub platform_ports: Vec<u16>,
}

impl HostFirewall {
    /// Each rule as `(chain, match-and-target)`, in the order they are checked.
    pub fn rules(&self) -> Vec<(&'static str, Vec<String>)> {
        let bridge = self.bridge.clone();
        let mut rules = vec![
            (
                "INPUT",
                vec![
                    "-i".into(),
                    bridge.clone(),
                    "-m".into(),
                    "conntrack".into(),
                    "--ctstate".into(),
                    "NEW".into(),
                    "-j".into(),
                    "DROP".into(),
                ],
            ),
            (
                "DOCKER-USER",
                vec![
                    "-i".into(),
                    bridge.clone(),
                    "-d".into(),
                    format!("{METADATA_ADDRESS}/32"),
                    "-j".into(),
                    "DROP".into(),
                ],
            ),
        ];
        let mut ports = self.platform_ports.clone();
        ports.sort_unstable();
        ports.dedup();
        for port in ports {
            rules.push((
                "DOCKER-USER",
                vec![
                    "-i".into(),
                    bridge.clone(),
                    "-p".into(),
                    "tcp".into(),
                    "--dport".into(),
                    port.to_string(),
                    "-j".into(),
                    "DROP".into(),
                ],
            ));
        }
        rules
    }

    /// Installs every rule that is not in place yet (`iptables -C`, then `-I` at the top of its
    /// chain). Blocking: run it off the async threads.
    pub fn install(&self) -> Result<usize, NetworkError> {
        let mut added = 0;
        for (chain, rule) in self.rules() {
            let shown = format!("-I {chain} {}", rule.join(" "));
            let check: Vec<String> = ["-C".to_string(), chain.to_string()]
                .into_iter()
                .chain(rule.iter().cloned())
                .collect();
            let failed = |reason: String| NetworkError::Firewall {
                rule: shown.clone(),
                reason,
            };
            if iptables(&check).map_err(failed)? {
                continue;
            }
            let insert: Vec<String> = ["-I".to_string(), chain.to_string(), "1".to_string()]
                .into_iter()
                .chain(rule.iter().cloned())
                .collect();
            if !iptables(&insert).map_err(failed)? {
                return Err(failed("iptables refused it".into()));
            }
            added += 1;
        }
        Ok(added)
    }
}

/// Runs `iptables -w ARGS`: `Ok(true)` on success, `Ok(false)` when it ran and said no (a `-C`
/// that found no such rule), `Err` when it could not run or failed for another reason.
fn iptables<S: AsRef<str>>(args: &[S]) -> Result<bool, String> {
    let output = Command::new("iptables")
        .arg("-w")
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .map_err(|e| format!("cannot run iptables: {e}"))?;
    if output.status.success() {
        return Ok(true);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let check = args.first().map(|a| a.as_ref()) == Some("-C");
    // `-C` exits 1 with "does a matching rule exist" (nf_tables) or "Bad rule" (legacy) when the
    // rule is absent; a missing chain or no permission is a real failure.
    let absent = stderr.contains("does a matching rule exist") || stderr.contains("Bad rule");
    if check && output.status.code() == Some(1) && absent {
        return Ok(false);
    }
    Err(stderr.trim().lines().last().unwrap_or("iptables failed").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_drop_new_connections_to_the_host_the_metadata_service_and_platform_ports() {
        let firewall = HostFirewall {
            bridge: "fjord0".into(),
            platform_ports: vec![7500, 7400, 7500],
        };
        let rules: Vec<String> = firewall
            .rules()
            .into_iter()
            .map(|(chain, rule)| format!("{chain} {}", rule.join(" ")))
            .collect();
        assert_eq!(
            rules,
            vec![
                "INPUT -i fjord0 -m conntrack --ctstate NEW -j DROP",
                "DOCKER-USER -i fjord0 -d 169.254.169.254/32 -j DROP",
                "DOCKER-USER -i fjord0 -p tcp --dport 7400 -j DROP",
                "DOCKER-USER -i fjord0 -p tcp --dport 7500 -j DROP",
            ]
        );
    }

    #[test]
    fn a_bridge_name_must_be_a_linux_interface_name() {
        assert!(FunctionNetwork::new("fjord-functions", "fjord0").is_ok());
        for bad in ["", "a-name-that-is-too-long", "br 0", "br/0"] {
            let error = FunctionNetwork::new("n", bad).unwrap_err().to_string();
            assert!(error.contains("--function-bridge"), "{error}");
        }
    }
}
