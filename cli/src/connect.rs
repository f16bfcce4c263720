//! Reaching the control plane: addresses, the token, and errors a user can act on.

use fjord_proto::v1::admin_client::AdminClient;
use std::path::PathBuf;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// Where `fjord dev` keeps its state unless told otherwise; the CLI finds the dev token here.
pub fn default_dev_dir() -> PathBuf {
    crate::context::xdg_dir("XDG_DATA_HOME", ".local/share").join("fjord/dev")
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectArgs {
    /// Control-plane addresses, comma-separated; the first that answers is used (default: the
    /// current context `fjord dev` recorded, else http://127.0.0.1:7400).
    #[arg(long, global = true, env = "FJORD_ADDR", value_delimiter = ',')]
    pub addr: Vec<String>,
    /// Admin token (default: FJORD_TOKEN_FILE, else the current context's token file, else the
    /// token `fjord dev` wrote in its default data dir).
    #[arg(long, global = true, env = "FJORD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the admin token.
    #[arg(long, global = true, env = "FJORD_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// Where the CLI takes the cluster from, and why: what `fjord context` prints and what an error
/// points at.
#[derive(Debug, Clone)]
pub struct Target {
    pub addrs: Vec<String>,
    pub addrs_from: String,
    pub token_file: Option<PathBuf>,
    pub token_from: String,
}

/// The target the last connection used, so an error from its answer can say where the token
/// came from.
static TARGET_IN_USE: std::sync::OnceLock<Target> = std::sync::OnceLock::new();

pub type Admin = AdminClient<InterceptedService<Channel, TokenInterceptor>>;

#[derive(Clone)]
pub struct TokenInterceptor(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl ConnectArgs {
    /// Resolves addresses and the token's source: flags and variables first, then the current
    /// context, then the defaults.
    pub fn target(&self) -> anyhow::Result<Target> {
        let context = if self.addr.is_empty() || (self.token.is_none() && self.token_file.is_none()) {
            crate::context::load()?
        } else {
            None
        };
        let context_from = || format!("the current context ({})", crate::context::path().display());
        let (addrs, addrs_from) = match (&self.addr, &context) {
            (addrs, _) if !addrs.is_empty() => (addrs.clone(), "--addr or FJORD_ADDR".to_string()),
            (_, Some(c)) => (c.control_plane_urls.clone(), context_from()),
            _ => (
                vec![crate::context::DEFAULT_ADDR.to_string()],
                "the default".to_string(),
            ),
        };
        let (token_file, token_from) = match (&self.token, &self.token_file, &context) {
            (Some(_), _, _) => (None, "--token or FJORD_TOKEN".to_string()),
            (None, Some(path), _) => (
                Some(path.clone()),
                format!("--token-file or FJORD_TOKEN_FILE ({})", path.display()),
            ),
            (None, None, Some(c)) => (
                Some(c.token_file.clone()),
                format!("{} ({})", context_from(), c.token_file.display()),
            ),
            (None, None, None) => {
                let dev = default_dev_dir().join("admin.token");
                if dev.exists() {
                    (
                        Some(dev.clone()),
                        format!("fjord dev's default data dir ({})", dev.display()),
                    )
                } else {
                    (
                        None,
                        "none: set FJORD_TOKEN or FJORD_TOKEN_FILE, or run `fjord dev`".to_string(),
                    )
                }
            }
        };
        Ok(Target {
            addrs,
            addrs_from,
            token_file,
            token_from,
        })
    }

    pub fn token(&self) -> anyhow::Result<Option<String>> {
        if let Some(token) = &self.token {
            return Ok(Some(token.trim().to_string()));
        }
        let Some(path) = self.target()?.token_file else {
            return Ok(None);
        };
        let token = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("reading the token file {}: {e}", path.display()))?;
        Ok(Some(token.trim().to_string()))
    }

    /// Connects to the first control-plane member that answers.
    pub async fn admin(&self) -> anyhow::Result<Admin> {
        let token = self.token()?;
        let header = match token {
            Some(t) => Some(
                MetadataValue::try_from(format!("Bearer {t}"))
                    .map_err(|_| anyhow::anyhow!("the token contains characters that cannot go in a header"))?,
            ),
            None => None,
        };
        let target = self.target()?;
        let _ = TARGET_IN_USE.set(target.clone());
        let mut failures = Vec::new();
        for addr in &target.addrs {
            let uri = if addr.contains("://") {
                addr.clone()
            } else {
                format!("http://{addr}")
            };
            let endpoint = match Endpoint::from_shared(uri) {
                Ok(e) => e
                    .connect_timeout(Duration::from_secs(3))
                    .timeout(Duration::from_secs(30)),
                Err(e) => {
                    failures.push(format!("{addr}: not a valid address ({e})"));
                    continue;
                }
            };
            match endpoint.connect().await {
                Ok(channel) => {
                    return Ok(AdminClient::with_interceptor(channel, TokenInterceptor(header.clone()))
                        .max_decoding_message_size(64 * 1024 * 1024))
                }
                Err(e) => failures.push(format!("{addr}: {}", source_chain(&e))),
            }
        }
        anyhow::bail!(
            "cannot reach the control plane ({}; addresses from {}).\nIs it running? `fjord dev` starts one locally; elsewhere set FJORD_ADDR.",
            failures.join("; "),
            target.addrs_from
        )
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Turns a gRPC status into an error that says what to do.
pub fn explain(status: Status) -> anyhow::Error {
    let message = status.message().to_string();
    match status.code() {
        tonic::Code::Unauthenticated => {
            let from = TARGET_IN_USE
                .get()
                .map(|t| t.token_from.clone())
                .unwrap_or_else(|| "nowhere".into());
            anyhow::anyhow!(
                "the control plane refused the request: {message}.\nThe token came from {from}. Set FJORD_TOKEN or --token-file to the cluster's admin token (`fjord context` shows what is in force)."
            )
        }
        tonic::Code::Unavailable => anyhow::anyhow!("the control plane is unavailable: {message}"),
        _ => anyhow::anyhow!("{message}"),
    }
}
