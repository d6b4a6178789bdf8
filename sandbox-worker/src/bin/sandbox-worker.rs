//! `sandbox-worker`: takes agent jobs from the queue until SIGTERM (the fleet's service).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use infra::config::DEFAULT_SANDBOX_IMAGE;
use sandbox_worker::sandbox::docker::DockerSandboxes;
use sandbox_worker::worker::{serve, WorkerArgs};

#[derive(Parser)]
#[command(
    name = "sandbox-worker",
    version,
    about = "clawgate sandbox worker",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file (default: $CLAWGATE_CONFIG, else ~/.clawgate/clawgate.json); ignored when
    /// CLAWGATE_CONFIG_PARAMETER names an SSM parameter to read it from.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    worker: WorkerArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Build the sandbox image from the compiled-in Dockerfile.sandbox (the fleet's user data
    /// runs this; the same as `clawgate sandbox build`).
    BuildImage {
        /// The image to make.
        #[arg(long, default_value = DEFAULT_SANDBOX_IMAGE)]
        tag: String,
        /// The Debian base (default: $CLAWGATE_SANDBOX_BASE, else debian:bookworm-slim).
        #[arg(long, value_name = "IMAGE")]
        base: Option<String>,
        /// Do nothing when the image already exists.
        #[arg(long)]
        if_missing: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    infra::telemetry::init();
    if let Some(Command::BuildImage {
        tag,
        base,
        if_missing,
    }) = cli.command
    {
        let docker = DockerSandboxes::connect(None, &std::env::temp_dir(), "all").await?;
        docker
            .build_command(&tag, base.as_deref(), if_missing)
            .await?;
        return Ok(());
    }
    if cli.worker.ingress {
        anyhow::bail!("--ingress is served by `clawgate worker --ingress` (this binary has no channel ingress)");
    }
    let (config, origin) = infra::aws::load_deployed_config(cli.config.as_deref()).await?;
    tracing::info!(config = %origin, "config loaded");
    let visibility = Duration::from_secs(u64::from(config.queue.visibility_timeout_seconds));
    let settings = cli.worker.settings(visibility);
    serve(config, cli.worker.state_dir(), settings)
        .await
        .context("worker")
}
