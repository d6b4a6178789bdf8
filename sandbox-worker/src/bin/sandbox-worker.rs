//! `sandbox-worker`: takes agent jobs from the queue until SIGTERM (the fleet's service).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sandbox_worker::worker::{serve, WorkerArgs};

#[derive(Parser)]
#[command(name = "sandbox-worker", version, about = "clawgate sandbox worker")]
struct Cli {
    /// Config file (default: $CLAWGATE_CONFIG, else ~/.clawgate/clawgate.json); ignored when
    /// CLAWGATE_CONFIG_PARAMETER names an SSM parameter to read it from.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    worker: WorkerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    infra::telemetry::init();
    let (config, origin) = infra::aws::load_deployed_config(cli.config.as_deref()).await?;
    tracing::info!(config = %origin, "config loaded");
    let visibility = Duration::from_secs(u64::from(config.queue.visibility_timeout_seconds));
    let settings = cli.worker.settings(visibility);
    serve(config, cli.worker.state_dir(), settings)
        .await
        .context("worker")
}
