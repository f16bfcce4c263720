use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    fjord_control_plane::main_with(fjord_control_plane::Args::parse()).await?;
    Ok(())
}
