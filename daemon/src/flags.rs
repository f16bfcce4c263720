//! Flags every daemon that talks to the control plane shares (the lb and the node agent), one
//! declaration flattened into each daemon's `Args`, so they are spelled, documented and read
//! from the environment the same way everywhere.

use crate::LogFormat;
use std::path::PathBuf;

/// How a daemon reaches the control plane.
#[derive(Debug, Clone, clap::Args)]
pub struct ControlPlaneArgs {
    /// Control-plane members, comma-separated; any member will do, the others are tried in
    /// turn when it stops answering.
    #[arg(
        long = "control-plane",
        env = "FJORD_CONTROL_PLANE",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:7400"
    )]
    pub endpoints: Vec<String>,
    /// File holding the join token (or the admin token) (default: the FJORD_TOKEN variable).
    #[arg(long, env = "FJORD_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// How a daemon reaches the durable queue (NATS JetStream) of asynchronous calls and cron.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NatsArgs {
    /// NATS servers with JetStream, comma-separated (nats://host:4222). Without it, the
    /// asynchronous routes answer 503 and scheduled functions do not fire.
    #[arg(long = "nats-url", env = "FJORD_NATS_URL", value_delimiter = ',')]
    pub nats_urls: Vec<String>,
    /// File holding the NATS client token.
    #[arg(long = "nats-token-file", env = "FJORD_NATS_TOKEN_FILE")]
    pub nats_token_file: Option<PathBuf>,
    /// Replicas of the streams Fjord creates (1 for one server, 3 for a JetStream cluster).
    #[arg(long = "nats-replicas", env = "FJORD_NATS_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_replicas: u8,
}

/// How a daemon logs.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log format: text or json.
    #[arg(long, env = "FJORD_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Daemon {
        #[command(flatten)]
        control_plane: ControlPlaneArgs,
        #[command(flatten)]
        log: LogArgs,
    }

    #[test]
    fn the_shared_flags_parse_with_their_defaults_and_lists() {
        let d = Daemon::try_parse_from(["d"]).unwrap();
        assert_eq!(d.control_plane.endpoints, vec!["http://127.0.0.1:7400".to_string()]);
        assert_eq!(d.log.log_format, LogFormat::Text);
        let d = Daemon::try_parse_from([
            "d",
            "--control-plane",
            "http://a:7400,http://b:7400",
            "--token-file",
            "/t",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(d.control_plane.endpoints.len(), 2);
        assert_eq!(d.control_plane.token_file, Some(PathBuf::from("/t")));
        assert_eq!(d.log.log_format, LogFormat::Json);
        assert!(Daemon::try_parse_from(["d", "--log-format", "xml"]).is_err());
    }
}
