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
    if let Ok(dir) = std::env::var("XDG_DATA_HOME") {
        if !dir.is_empty() {
            return PathBuf::from(dir).join("fjord/dev");
        }
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".local/share/fjord/dev")
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Control-plane addresses, comma-separated; the first that answers is used.
    #[arg(
        long,
        global = true,
        env = "FJORD_ADDR",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:7400"
    )]
    pub addr: Vec<String>,
    /// Admin token (default: FJORD_TOKEN_FILE, else the token `fjord dev` wrote).
    #[arg(long, global = true, env = "FJORD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the admin token.
    #[arg(long, global = true, env = "FJORD_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

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
    pub fn token(&self) -> anyhow::Result<Option<String>> {
        if let Some(token) = &self.token {
            return Ok(Some(token.trim().to_string()));
        }
        let path = match &self.token_file {
            Some(path) => path.clone(),
            None => {
                let dev = default_dev_dir().join("admin.token");
                if !dev.exists() {
                    return Ok(None);
                }
                dev
            }
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
        let mut failures = Vec::new();
        for addr in &self.addr {
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
            "cannot reach the control plane ({}).\nIs it running? `fjord dev` starts one locally; elsewhere set FJORD_ADDR.",
            failures.join("; ")
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
        tonic::Code::Unauthenticated => anyhow::anyhow!(
            "the control plane refused the request: {message}.\nSet FJORD_TOKEN or --token-file (fjord dev writes its token to {}).",
            default_dev_dir().join("admin.token").display()
        ),
        tonic::Code::Unavailable => anyhow::anyhow!("the control plane is unavailable: {message}"),
        _ => anyhow::anyhow!("{message}"),
    }
}
