use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    fjord_lb::main_with(fjord_lb::Args::parse()).await?;
    Ok(())
}
