use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    fjord_node_agent::main_with(fjord_node_agent::Args::parse()).await?;
    Ok(())
}
