//! `clawgate worker` (the sandbox worker in this process) and `clawgate pairing list|approve`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use infra::config::Config;
use sandbox_worker::worker::{serve_until, shutdown_on_signals, WorkerArgs};

/// The config comes as the fleet's does: the SSM parameter when `CLAWGATE_CONFIG_PARAMETER`
/// names one, else the file, with `CLAWGATE_SECRETS_ARN`'s secrets applied.
pub async fn worker(
    config_path: Option<&std::path::Path>,
    args: WorkerArgs,
) -> anyhow::Result<ExitCode> {
    let (config, origin) = infra::aws::load_deployed_config(config_path).await?;
    tracing::info!(config = %origin, "config loaded");
    let visibility = Duration::from_secs(u64::from(config.queue.visibility_timeout_seconds));
    let settings = args.settings(visibility);
    let stop = shutdown_on_signals();
    if args.ingress {
        start_ingress(&config, &args.state_dir(), stop.clone()).await?;
    }
    serve_until(config, args.state_dir(), settings, stop).await?;
    Ok(ExitCode::SUCCESS)
}

/// `--ingress`: the transports that need no public URL, on this process's queue. Refuses to
/// start when the config asks for none of them (the flag would do nothing).
async fn start_ingress(
    config: &Config,
    state_dir: &std::path::Path,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let backends = infra::setup::open_backends(config, state_dir).await?;
    let lines = functions::local_ingress::start(config, backends.queue, state_dir, stop).await;
    if lines.is_empty() {
        anyhow::bail!("--ingress: no channel is set up for an ingress without a public URL (a Telegram bot without webhookSecret, a Slack appToken without signingSecret, or a Discord token)");
    }
    for (ok, line) in lines {
        if ok {
            tracing::info!(%line, "ingress");
        } else {
            tracing::warn!(%line, "ingress");
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum PairingAction {
    /// Pending pairing requests of a channel.
    List {
        /// telegram or slack.
        channel: String,
        /// The channel account (channels.telegram.accounts.<name>).
        #[arg(long, default_value = "default")]
        account: String,
        /// As a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Approve a code: its sender may talk to the bot from now on.
    Approve {
        /// telegram or slack.
        channel: String,
        /// The code the sender was given, e.g. K7M2Q9.
        code: String,
        /// The channel account (channels.telegram.accounts.<name>).
        #[arg(long, default_value = "default")]
        account: String,
    },
}

pub async fn pairing(
    config: Config,
    state_dir: std::path::PathBuf,
    action: PairingAction,
) -> anyhow::Result<ExitCode> {
    let backends = infra::setup::open_backends(&config, &state_dir).await?;
    match action {
        PairingAction::List {
            channel,
            account,
            json,
        } => {
            let pending = backends.store.list_pairing(&channel, &account).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&pending)?);
                return Ok(ExitCode::SUCCESS);
            }
            if pending.is_empty() {
                eprintln!("no pending pairing requests for {channel}/{account}");
            }
            for request in pending {
                let left =
                    (request.expires_ms - chrono::Utc::now().timestamp_millis()).max(0) / 60_000;
                println!(
                    "{}  {} {}  expires in {left} min",
                    request.code,
                    request.peer,
                    request.peer_name.as_deref().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PairingAction::Approve {
            channel,
            code,
            account,
        } => {
            match backends
                .store
                .approve_pairing(&channel, &account, &code)
                .await?
            {
                Some(request) => {
                    println!(
                        "approved {} {} on {channel}/{account}",
                        request.peer,
                        request.peer_name.as_deref().unwrap_or("")
                    );
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("no pending request with code {code} on {channel}/{account} (it may have expired)");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
