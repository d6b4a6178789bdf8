//! `clawgate up`: the whole gateway on one machine. The webhook Router and WebChat on
//! 127.0.0.1:18789, a worker in this process, the scheduler's tick every two seconds, the
//! SQLite queue and store under the state directory (or SQS/DynamoDB at `AWS_ENDPOINT_URL`
//! with `--aws`), and Docker sandboxes.
//!
//! Decisions:
//! - Every start-up problem the user can fix (a broken config, a port in use, an unwritable
//!   state directory, a public bind without a token) is one line naming it and the fix, and
//!   exit 1.
//! - WebChat and `/hooks/agent` always need a token. Without `gateway.token`, the first run
//!   makes one in `<state dir>/gateway-token` (mode 0600) and prints the page's address with it
//!   once; later runs say where it is. A public bind needs a configured token. Missing optional parts (no model key, no Docker, no channel) do not stop it: they
//!   are listed with their fix, because WebChat and `/status` still work without them.
//! - The model: `--model` / `CLAWGATE_MODEL` / the config, else with `OPENAI_BASE_URL` alone
//!   the first model that server lists (`llm::resolve_default_model`), else Anthropic's.
//! - The sandbox image is checked before the report: when the default image is missing it is
//!   built from the compiled-in `Dockerfile.sandbox` (a progress bar; minutes, once). A custom
//!   `docker.image` is never built from our Dockerfile: the report says what to run.
//! - `--aws` creates the table `clawgate-state` and the queue `clawgate-jobs.fifo` when the
//!   config names none (both idempotent), so LocalStack or moto work with no other setup.
//! - Ctrl-C (or SIGTERM) stops taking requests, lets the worker drain its jobs for up to
//!   `--drain-seconds`, then exits 0. Everything that must survive is in the store.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use infra::config::{
    Config, QueueBackend, SandboxMode, Secret, StateBackend, DEFAULT_SANDBOX_IMAGE,
};
use infra::setup::TokenSource;
use sandbox_worker::llm::ModelChoice;
use sandbox_worker::sandbox::docker::{base_image, dockerfile_digest};
use sandbox_worker::sandbox::SandboxRuntime;
use sandbox_worker::worker::{Worker, WorkerSettings};

/// Names `--aws` uses when the config gives none.
const AWS_TABLE: &str = "clawgate-state";
const AWS_QUEUE: &str = "clawgate-jobs";

#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Port to listen on (default: gateway.port, 18789; 0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to bind (default: gateway.bind, 127.0.0.1). Anything but loopback needs
    /// gateway.token.
    #[arg(long)]
    pub bind: Option<String>,
    /// Where state lives (default ~/.clawgate).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Use SQS and DynamoDB at AWS_ENDPOINT_URL (LocalStack, moto) instead of SQLite.
    #[arg(long)]
    pub aws: bool,
    /// Jobs the in-process worker runs at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Seconds running jobs get to finish on Ctrl-C.
    #[arg(long, default_value_t = 10.0)]
    pub drain_seconds: f64,
}

/// A start-up problem the user can fix: `main` prints it as one line and exits 1.
fn refuse(message: String) -> anyhow::Error {
    anyhow::anyhow!(message)
}

/// The state directory exists (private: `0700`) and takes a file, or a one-line refusal.
fn check_state_dir(dir: &Path) -> anyhow::Result<()> {
    let probe = dir.join(".clawgate-write-test");
    infra::embedded::private_dir(dir)
        .and_then(|_| std::fs::write(&probe, b"ok"))
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            refuse(format!(
                "state directory {} is not writable ({e}): pass --state-dir DIR, or fix its permissions",
                dir.display()
            ))
        })
}

/// Points the config at SQS and DynamoDB on the emulator, creating what it names none of.
async fn use_aws(config: &mut Config) -> anyhow::Result<()> {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        return Err(refuse(
            "--aws needs AWS_ENDPOINT_URL (e.g. http://127.0.0.1:4566 for LocalStack); to use real AWS, deploy with terraform/ instead".into(),
        ));
    }
    let sdk = infra::aws::load_sdk_config().await;
    let visibility = Duration::from_secs(u64::from(config.queue.visibility_timeout_seconds));
    if config.queue.url.is_none() {
        let queue = infra::queue::sqs::SqsQueue::create_fifo(
            &sdk,
            AWS_QUEUE,
            config.queue.max_receive_count,
            visibility,
        )
        .await
        .map_err(|e| {
            refuse(format!(
                "cannot create the SQS queue at AWS_ENDPOINT_URL: {e}"
            ))
        })?;
        config.queue.url = Some(queue.url().to_string());
    }
    if config.state.table.is_none() {
        infra::store::dynamo::DynamoStore::create_table(&sdk, AWS_TABLE)
            .await
            .map_err(|e| {
                refuse(format!(
                    "cannot create the DynamoDB table at AWS_ENDPOINT_URL: {e}"
                ))
            })?;
        config.state.table = Some(AWS_TABLE.into());
    }
    config.queue.backend = QueueBackend::Sqs;
    config.state.backend = StateBackend::Dynamodb;
    Ok(())
}

/// The sandbox's state after start-up's check: a report line and whether it is usable.
struct SandboxLine {
    ok: bool,
    text: String,
}

/// Checks Docker and the image; builds the default image when it is missing.
async fn prepare_sandbox(config: &Config, sandbox: &SandboxRuntime) -> SandboxLine {
    let profile = config.agent_profile(config.default_agent());
    let mode = profile.sandbox.mode;
    let image = profile.sandbox.docker.image;
    if mode == SandboxMode::Off {
        return SandboxLine {
            ok: true,
            text: "sandbox off: tools run on this host, with NO isolation".into(),
        };
    }
    let docker = match sandbox.docker(mode).await {
        Ok(docker) => docker,
        Err(e) => return SandboxLine {
            ok: false,
            text: format!("Docker: {e}. Start it (sudo systemctl start docker) or set agents.defaults.sandbox.mode: \"off\""),
        },
    };
    let fail = |text: String| SandboxLine { ok: false, text };
    match docker.image_status(&image).await {
        Err(e) => fail(format!("sandbox image {image}: {e}")),
        Ok(Some(status)) => SandboxLine {
            ok: true,
            text: match status.dockerfile_sha256 {
                Some(sha) if sha != dockerfile_digest() => format!(
                    "Docker sandboxes (image {image}, built from an older Dockerfile.sandbox: `clawgate sandbox build` refreshes it)"
                ),
                _ => format!("Docker sandboxes (image {image})"),
            },
        },
        Ok(None) if image != DEFAULT_SANDBOX_IMAGE => fail(format!(
            "sandbox image {image} is missing. Build your image, or `clawgate sandbox build --tag {image}` for the default one"
        )),
        Ok(None) => {
            let base = base_image(None);
            eprintln!("building the sandbox image {image} from {base} (once; a few minutes)…");
            match docker.build_image_with_progress(&image, &base).await {
                Ok(_) => SandboxLine {
                    ok: true,
                    text: format!("Docker sandboxes (image {image}, built now)"),
                },
                Err(e) => fail(format!("{e}. Retry with `clawgate sandbox build`")),
            }
        }
    }
}

/// On the first run with the default workspace, writes the starter persona files there
/// (`clawgate setup` does the same for any agent); says what it did.
fn first_run_workspace(config: &Config) -> Option<String> {
    if config.agents.defaults.workspace != infra::config::DEFAULT_WORKSPACE {
        return None;
    }
    let workspace = config.agent_profile(config.default_agent()).workspace;
    if workspace.exists() {
        return None;
    }
    Some(match sandbox_worker::persona::write_templates(&workspace) {
        Ok(written) => format!(
            "✓ wrote {} starter files (AGENTS.md, SOUL.md, USER.md, …) to {}: edit them, they are the assistant's persona",
            written.len(),
            workspace.display()
        ),
        Err(e) => format!("✗ could not write the starter files to {} ({e})", workspace.display()),
    })
}

/// The model line: what runs, or what is missing and how to fix it.
fn model_line(config: &Config, choice: &ModelChoice) -> (bool, String) {
    let model = config.agent_profile(config.default_agent()).model;
    let providers = &config.models.providers;
    let ok = if model.starts_with("anthropic/") {
        providers.anthropic.api_key.is_some()
    } else {
        providers.openai.api_key.is_some() || providers.openai.base_url.is_some()
    };
    let text = match choice {
        _ if !ok => format!("model {model}: no key. Set ANTHROPIC_API_KEY, or OPENAI_BASE_URL for a local OpenAI-compatible server (Ollama, vLLM), or --model openai/<model> with OPENAI_API_KEY"),
        ModelChoice::FromServer { model, listed } => format!(
            "model {model} (the first of {listed} at OPENAI_BASE_URL; choose with --model openai/<name>)"
        ),
        ModelChoice::ServerSilent { base_url, reason } => format!(
            "model {model}: {base_url} gave no model list ({reason}); pass --model openai/<name>"
        ),
        ModelChoice::Configured => format!("model {model}"),
    };
    (
        ok && !matches!(choice, ModelChoice::ServerSilent { .. }),
        text,
    )
}

/// What is configured and what is missing, each missing part with its fix.
fn report(
    config: &Config,
    model: (bool, String),
    sandbox: &SandboxLine,
    addr: SocketAddr,
    token: &Secret,
    token_source: &TokenSource,
    polling: &[(bool, String)],
) {
    let url = format!("http://{addr}");
    eprintln!("clawgate is up: WebChat at {url}/");
    eprintln!("  Control UI at {url}/control");
    let line = |ok: bool, what: String| eprintln!("  {} {what}", if ok { "✓" } else { "✗" });
    line(model.0, model.1);
    line(sandbox.ok, sandbox.text.clone());
    for (ok, text) in polling {
        line(*ok, text.clone());
    }
    match &config.channels.telegram {
        _ if !polling.is_empty() => {}
        Some(tg) if tg.enabled && tg.bot_token.is_some() => line(
            tg.webhook_secret.is_some(),
            if tg.webhook_secret.is_some() {
                format!("Telegram: POST {url}/telegram (register: clawgate telegram set-webhook --url https://<public host>/telegram)")
            } else {
                "Telegram: no webhookSecret, so every update is refused. Run clawgate telegram set-webhook --url https://<public host>/telegram".into()
            },
        ),
        _ => line(
            false,
            "Telegram: not configured (set TELEGRAM_BOT_TOKEN)".into(),
        ),
    }
    match &config.channels.slack {
        _ if polling.iter().any(|(_, text)| text.starts_with("Slack")) => {}
        Some(s) if s.enabled && s.bot_token.is_some() && s.signing_secret.is_some() => line(
            true,
            format!("Slack: POST {url}/slack/events"),
        ),
        _ => line(false, "Slack: not configured (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET; clawgate slack manifest --url … prints the app manifest)".into()),
    }
    match token_source {
        TokenSource::Config => line(
            true,
            "gateway token from the config: WebChat and /hooks/agent need it".into(),
        ),
        TokenSource::File {
            path,
            created: true,
        } => {
            line(
                true,
                format!(
                    "made a gateway token in {} (mode 0600): WebChat and /hooks/agent need it",
                    path.display()
                ),
            );
            eprintln!("  open {url}/#token={} (shown this once)", token.expose());
        }
        TokenSource::File {
            path,
            created: false,
        } => line(
            true,
            format!(
                "gateway token in {}: open {url}/ and paste it, or use `clawgate chat`",
                path.display()
            ),
        ),
    }
    eprintln!("Ctrl-C to stop.");
}

/// How long requests in flight get after Ctrl-C before open event streams are closed.
const HTTP_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);
/// How often `clawgate up` looks for due scheduled jobs: one indexed query.
const CRON_TICK: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn run(mut config: Config, args: UpArgs) -> anyhow::Result<ExitCode> {
    let bind = args.bind.unwrap_or_else(|| config.gateway.bind.clone());
    let ip: IpAddr = bind.parse().map_err(|_| {
        refuse(format!(
            "--bind {bind:?} is not an IP address: use 127.0.0.1, or 0.0.0.0 with a gateway token"
        ))
    })?;
    if !ip.is_loopback() && config.gateway.token.is_none() {
        return Err(refuse(format!(
            "binding {ip} (not loopback) needs a gateway token: set gateway.token or CLAWGATE_GATEWAY_TOKEN, or bind 127.0.0.1"
        )));
    }
    let state_dir = args.state_dir.unwrap_or_else(infra::config::default_dir);
    check_state_dir(&state_dir)?;
    if args.aws {
        use_aws(&mut config).await?;
    }
    let choice =
        sandbox_worker::llm::resolve_default_model(&mut config, &reqwest::Client::new()).await;
    let port = args.port.unwrap_or(config.gateway.port);
    let addr = SocketAddr::new(ip, port);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        refuse(format!(
            "cannot listen on {addr} ({e}): another process has the port; pass --port N or stop it"
        ))
    })?;
    let backends = infra::setup::open_backends(&config, &state_dir)
        .await
        .map_err(|e| refuse(format!("cannot open the queue and store: {e}")))?;
    let mut settings = WorkerSettings::new(backends.visibility);
    settings.concurrency = args.concurrency.max(1);
    settings.metrics = sandbox_worker::worker::MetricsMode::Store;
    settings.drain_deadline =
        sandbox_worker::worker::seconds(args.drain_seconds, settings.drain_deadline);
    let worker = Arc::new(Worker::new(
        config.clone(),
        backends.clone(),
        &state_dir,
        settings,
    )?);
    let (token, token_source) =
        infra::setup::gateway_token(&config, &state_dir).map_err(|e| refuse(format!("{e}")))?;
    let files = crate::session_files::LocalWorkspaces {
        config: Arc::new(config.clone()),
    };
    let app = functions::router_with_webchat(
        &config,
        backends.queue.clone(),
        backends.store.clone(),
        token.clone(),
        ip.is_loopback(),
        Some(Arc::new(files)),
    )
    .merge(crate::control::routes(crate::control::Control {
        config: Arc::new(config.clone()),
        backends: backends.clone(),
        token: token.clone(),
        loopback_only: ip.is_loopback(),
    }));
    let local = listener.local_addr()?;
    let stop = sandbox_worker::worker::shutdown_on_signals();
    let polling =
        functions::local_ingress::start(&config, backends.queue.clone(), &state_dir, stop.clone())
            .await;
    let sandbox = prepare_sandbox(&config, worker.sandbox()).await;
    let starter = first_run_workspace(&config);
    report(
        &config,
        model_line(&config, &choice),
        &sandbox,
        local,
        &token,
        &token_source,
        &polling,
    );
    if let Some(line) = starter {
        eprintln!("  {line}");
    }
    eprintln!(
        "  state: {} · queue: {}",
        state_dir.display(),
        backends.queue.describe()
    );

    let worker_task = tokio::spawn(worker.clone().run(stop.clone()));
    // Scheduled jobs: this process ticks (on AWS a scheduled Lambda does, `scheduler-tick`).
    if config.cron.enabled {
        tokio::spawn(infra::cron::run_scheduler(
            config.clone(),
            backends.store.clone(),
            backends.queue.clone(),
            CRON_TICK,
            stop.clone(),
        ));
    }
    let (mut http_stop, mut streams_stop) = (stop.clone(), stop.clone());
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = http_stop.wait_for(|stopped| *stopped).await;
    });
    // An open WebChat page holds an event stream for minutes: requests in flight get
    // `HTTP_DRAIN` to finish, then the streams are closed (the page reconnects to the next run).
    tokio::select! {
        served = std::future::IntoFuture::into_future(server) => served?,
        () = async move {
            let _ = streams_stop.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(HTTP_DRAIN).await;
        } => {}
    }
    eprintln!("stopping: letting running jobs finish…");
    worker_task.await?;
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}
