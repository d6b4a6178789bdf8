//! `clawgate`: the command-line entry point. Each subcommand lives in its own module; `main`
//! parses the arguments, sets up logging and maps the outcome to an exit code.

mod config_cmd;
mod sandbox_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "clawgate", version, about = "Personal AI assistant gateway")]
struct Cli {
    /// Config file (default: $CLAWGATE_CONFIG, else ~/.clawgate/clawgate.json).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check or print the configuration.
    Config {
        #[command(subcommand)]
        action: config_cmd::ConfigAction,
    },
    /// See and manage the Docker sandboxes tool calls run in.
    Sandbox {
        #[command(subcommand)]
        action: sandbox_cmd::SandboxAction,
    },
}

/// Loads the config for a command that needs one; a broken config is reported and exits 1.
fn with_config(
    path: Option<&std::path::Path>,
    run: impl FnOnce(infra::config::Config) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let (config, _) = infra::config::Config::load(path)?;
    run(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    infra::telemetry::init();
    let outcome = match cli.command {
        Command::Config { action } => config_cmd::run(action, cli.config.as_deref()),
        Command::Sandbox { action } => with_config(cli.config.as_deref(), |config| {
            tokio::runtime::Runtime::new()?.block_on(sandbox_cmd::run(action, &config))
        }),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
