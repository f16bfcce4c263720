//! `fjord secret`: named secrets, stored encrypted by the control plane and mounted as files in
//! the instances of the functions that name them. Values go in; they never come back out.

use crate::connect::{explain, ConnectArgs};
use crate::output::outln;
use fjord_proto::v1 as pb;
use serde_json::json;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum SecretCommand {
    /// Store a new secret. The value comes from --from-literal, --from-file, or standard input
    /// (piped). Functions read it as the file /var/fjord/secrets/NAME (also at OpenFaaS's
    /// /var/openfaas/secrets/NAME), or $FJORD_SECRETS_DIR/NAME for a command function, once their
    /// fjord.yaml names it: `secrets: [NAME]`.
    Create(ValueArgs),
    /// Rotate a secret's value. Instances already running keep the value they started with;
    /// instances started from now on read the new one (restart them with a redeploy or a scale
    /// to zero to move every instance over).
    Update(ValueArgs),
    /// List secrets: name, version, when last changed, the functions that name them (never
    /// their values).
    #[command(alias = "list")]
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Remove a secret. Refused while a function names it.
    #[command(alias = "remove")]
    Rm { name: String },
}

#[derive(clap::Args)]
pub struct ValueArgs {
    /// Letters, digits, '.', '_' and '-'; it is the file name the function reads.
    pub name: String,
    /// The value itself (it stays in your shell's history: prefer --from-file or stdin).
    #[arg(long, conflicts_with = "from_file")]
    pub from_literal: Option<String>,
    /// A file whose bytes are the value, as they are (a trailing newline included).
    #[arg(long)]
    pub from_file: Option<PathBuf>,
}

impl ValueArgs {
    fn value(&self) -> anyhow::Result<Vec<u8>> {
        if let Some(literal) = &self.from_literal {
            return Ok(literal.as_bytes().to_vec());
        }
        if let Some(path) = &self.from_file {
            return std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()));
        }
        if std::io::stdin().is_terminal() {
            anyhow::bail!(
                "give the value of secret {:?} with --from-literal VALUE, --from-file PATH, or on standard input (echo -n VALUE | fjord secret create {})",
                self.name,
                self.name
            );
        }
        let mut value = Vec::new();
        std::io::stdin().read_to_end(&mut value)?;
        Ok(value)
    }
}

async fn put(
    admin: &mut crate::connect::Admin,
    args: ValueArgs,
    mode: pb::put_secret_request::Mode,
) -> anyhow::Result<pb::SecretInfo> {
    let value = args.value()?;
    Ok(admin
        .put_secret(pb::PutSecretRequest {
            name: args.name,
            value,
            mode: mode as i32,
        })
        .await
        .map_err(explain)?
        .into_inner())
}

pub async fn run(connect: &ConnectArgs, command: SecretCommand) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    match command {
        SecretCommand::Create(args) => {
            let info = put(&mut admin, args, pb::put_secret_request::Mode::Create).await?;
            outln!(
                "secret {} created; name it in a fjord.yaml (secrets: [{}]) and read /var/fjord/secrets/{}",
                info.name,
                info.name,
                info.name
            );
        }
        SecretCommand::Update(args) => {
            let info = put(&mut admin, args, pb::put_secret_request::Mode::Update).await?;
            outln!(
                "secret {} updated to version {}; instances started from now on read it{}",
                info.name,
                info.version,
                if info.used_by.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (running instances of {} keep the old value until they restart)",
                        info.used_by.join(", ")
                    )
                }
            );
        }
        SecretCommand::Ls { json } => {
            let secrets = crate::listing::secrets(&mut admin).await?;
            if json {
                let values: Vec<serde_json::Value> = secrets
                    .iter()
                    .map(|s| {
                        json!({
                            "name": s.name,
                            "version": s.version,
                            "created_ms": s.created_at_ms,
                            "updated_ms": s.updated_at_ms,
                            "used_by": s.used_by,
                        })
                    })
                    .collect();
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&values).expect("JSON values serialize")
                );
                return Ok(());
            }
            if secrets.is_empty() {
                outln!("no secrets (create one with `fjord secret create NAME --from-file PATH`)");
                return Ok(());
            }
            outln!("{:<32} {:>7}  {:<20} USED BY", "NAME", "VERSION", "UPDATED");
            for s in &secrets {
                outln!(
                    "{:<32} {:>7}  {:<20} {}",
                    s.name,
                    s.version,
                    fjord_decisions::schedule::format_utc_minute(s.updated_at_ms),
                    if s.used_by.is_empty() {
                        "-".to_string()
                    } else {
                        s.used_by.join(", ")
                    }
                );
            }
        }
        SecretCommand::Rm { name } => {
            admin
                .remove_secret(pb::RemoveSecretRequest { name: name.clone() })
                .await
                .map_err(explain)?;
            outln!("secret {name} removed");
        }
    }
    Ok(())
}
