//! The worker: long-polls the queue with bounded concurrency and runs each job through claim,
//! gate, chat commands, transcript, agent loop, reply, finish and ack.
//!
//! One module per step, in the order a job walks them: [`scheduler`] (receive, one job per
//! session at a time, drain), [`job`] (claim, lease, the run), [`gate`] (who may reach the
//! agent, rate limits), [`commands`] (`/new`, `/status`, `/help`), [`delivery`] (the reply).

mod collect;
mod commands;
mod delivery;
mod extras;
mod gate;
mod job;
mod live;
mod scheduler;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use infra::config::{AgentProfile, Config};
use infra::metrics::{Metrics, Sink};
use infra::model::JobMessage;
use infra::queue::QueueError;
use infra::setup::Backends;
use tokio::sync::watch;

use crate::agent::AgentLimits;
use crate::llm::RetryPolicy;
use crate::reply::Outbound;
use crate::sandbox::SandboxRuntime;

pub use gate::Gate;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub worker_id: String,
    pub concurrency: usize,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub drain_deadline: Duration,
    pub receive_wait: Duration,
    pub agent: AgentLimits,
    pub retry: RetryPolicy,
    /// Written while the worker takes jobs, removed when it drains (fleet readiness).
    pub ready_file: Option<PathBuf>,
    pub pairing_ttl: Duration,
    /// Where job metrics go.
    pub metrics: MetricsMode,
    /// Lets `web_fetch` reach loopback: the tests' fake sites. Never set from the config.
    pub web_allow_loopback: bool,
}

/// Where a worker's metrics go (`--metrics`, `CLAWGATE_METRICS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsMode {
    /// Nowhere.
    Off,
    /// CloudWatch embedded metric format lines on stdout (the fleet: the CloudWatch agent
    /// ships them).
    Emf,
    /// Hourly counters in the state store, read by `clawgate status`.
    Store,
}

impl WorkerSettings {
    /// Defaults sized to the queue's visibility timeout: heartbeat at a third of it.
    pub fn new(visibility: Duration) -> Self {
        WorkerSettings {
            worker_id: format!(
                "{}-{}",
                hostname(),
                ulid::Ulid::new().to_string().to_lowercase()
            ),
            concurrency: 4,
            lease: visibility,
            heartbeat: (visibility / 3).max(Duration::from_millis(200)),
            drain_deadline: Duration::from_secs(30),
            receive_wait: Duration::from_secs(20),
            agent: AgentLimits::default(),
            retry: RetryPolicy::default(),
            ready_file: None,
            metrics: MetricsMode::Off,
            pairing_ttl: Duration::from_secs(3600),
            web_allow_loopback: false,
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "worker".into(), |h| h.trim().to_string())
}

/// Everything a worker needs, built once by `main`.
pub struct Worker {
    pub config: Arc<Config>,
    pub backends: Backends,
    pub sandbox: Arc<SandboxRuntime>,
    pub outbound: Outbound,
    pub http: reqwest::Client,
    pub settings: WorkerSettings,
    /// Every agent the config names, resolved once.
    profiles: HashMap<String, Arc<AgentProfile>>,
    pub metrics: Metrics,
    /// The memory-search indexes of the workspaces this worker has served.
    memory: Arc<crate::tools::memory::MemoryIndexes>,
    /// Each model provider's API keys and their rate-limit cool-downs.
    model_keys: crate::llm::KeyRings,
    /// `web_fetch`'s guarded client, unless `tools.web.fetch.enabled` is false.
    web: Option<Arc<crate::web::fetch::WebFetch>>,
    /// `web_search`'s provider and cache, when one is configured.
    web_search: Option<Arc<crate::web::search::WebSearch>>,
    /// The `mcp.servers` connections, when any is configured.
    mcp: Option<Arc<crate::tools::mcp::McpServers>>,
}

impl Worker {
    /// The one way a worker is assembled (the binaries, the tests and the benchmark): an HTTP
    /// client with timeouts, the channel clients, the sandbox runtime (`DOCKER_HOST` when it
    /// names a unix socket, activity recorded under `state_dir`), and every agent's profile.
    pub fn new(
        config: Config,
        backends: Backends,
        state_dir: &std::path::Path,
        mut settings: WorkerSettings,
    ) -> Result<Self, QueueErrorOrSetup> {
        settings.lease = backends.visibility;
        settings.heartbeat = (backends.visibility / 3).max(Duration::from_millis(200));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| QueueErrorOrSetup::Http(e.to_string()))?;
        let socket = std::env::var("DOCKER_HOST")
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(str::to_string));
        let profiles = config
            .agent_ids()
            .into_iter()
            .map(|id| (id.to_string(), Arc::new(config.agent_profile(id))))
            .collect();
        let metrics = match settings.metrics {
            MetricsMode::Off => Metrics::default(),
            MetricsMode::Emf => Metrics::emf_stdout("worker"),
            MetricsMode::Store => Metrics::new("worker", Sink::Store(backends.store.clone())),
        };
        let web = config
            .tools
            .web
            .fetch
            .enabled
            .then(|| {
                crate::web::fetch::WebFetch::new(&config.tools.web, settings.web_allow_loopback)
            })
            .transpose()
            .map_err(|e| QueueErrorOrSetup::Http(format!("the web_fetch client: {e}")))?
            .map(Arc::new);
        let web_search = crate::web::search::WebSearch::from_config(&config.tools.web.search)
            .map_err(|e| QueueErrorOrSetup::Http(format!("the web_search client: {e}")))?
            .map(Arc::new);
        if let (Some(name), None) = (config.tools.web.search.provider, &web_search) {
            tracing::warn!(provider = ?name, "tools.web.search names a provider without its key or URL: web_search is not offered");
        }
        let mcp = crate::tools::mcp::McpServers::from_config(
            &config.mcp,
            &config.tools.web,
            settings.web_allow_loopback,
        )
        .map_err(|e| QueueErrorOrSetup::Http(format!("the MCP client: {e}")))?
        .map(Arc::new);
        Ok(Worker {
            web,
            web_search,
            mcp,
            outbound: Outbound::from_config(&config, http.clone()),
            sandbox: Arc::new(
                SandboxRuntime::new(socket, state_dir.join("sandbox-activity"))
                    .with_metrics(metrics.clone())
                    .with_egress(crate::web::egress::EgressProxy::new(
                        crate::web::guard::EgressPolicy::from_config(
                            &config.tools.web,
                            settings.web_allow_loopback,
                        ),
                    )),
            ),
            metrics,
            config: Arc::new(config),
            backends,
            http,
            settings,
            profiles,
            memory: Arc::default(),
            model_keys: Default::default(),
        })
    }

    /// The sandbox runtime, for a status report (`clawgate up`).
    pub fn sandbox(&self) -> &SandboxRuntime {
        &self.sandbox
    }

    /// The profile of the agent a job names (an agent the config does not name gets the
    /// defaults, as `Config::agent_profile` says).
    fn profile(&self, agent: &str) -> Arc<AgentProfile> {
        self.profiles
            .get(agent)
            .cloned()
            .unwrap_or_else(|| Arc::new(self.config.agent_profile(agent)))
    }
}

/// `secs` as a duration when it is a number of seconds from 0 to a day, else `default` (a
/// command-line float may be `NaN` or `inf`).
pub fn seconds(secs: f64, default: Duration) -> Duration {
    Duration::try_from_secs_f64(secs.clamp(0.0, 86_400.0)).unwrap_or(default)
}

/// The key of a job's record: its channel event, which every retry of that event shares.
pub fn work_id(job: &JobMessage) -> &str {
    job.dedup_id()
}

/// Aborts a background task when dropped, so no heartbeat or typing loop outlives its job.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Receives SIGTERM or SIGINT into a shutdown flag.
pub fn shutdown_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            tracing::error!("cannot listen for SIGTERM; stop the worker with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            let _ = tx.send(true);
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutdown signal received");
        let _ = tx.send(true);
    });
    rx
}

/// Builds a worker from the config and serves until SIGTERM/SIGINT (the `sandbox-worker` binary
/// and `clawgate worker`). The config comes from `infra::aws::load_deployed_config`: the SSM
/// parameter or the file, with the deployment's secrets applied.
pub async fn serve(
    config: Config,
    state_dir: PathBuf,
    settings: WorkerSettings,
) -> Result<(), QueueErrorOrSetup> {
    serve_until(config, state_dir, settings, shutdown_on_signals()).await
}

/// [`serve`] until `stop` turns true.
pub async fn serve_until(
    mut config: Config,
    state_dir: PathBuf,
    settings: WorkerSettings,
    stop: watch::Receiver<bool>,
) -> Result<(), QueueErrorOrSetup> {
    let choice = crate::llm::resolve_default_model(&mut config, &reqwest::Client::new()).await;
    tracing::info!(?choice, model = %config.agent_profile(config.default_agent()).model, "model");
    let backends = infra::setup::open_backends(&config, &state_dir).await?;
    let worker = Arc::new(Worker::new(config, backends, &state_dir, settings)?);
    worker.run(stop).await;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum QueueErrorOrSetup {
    #[error(transparent)]
    Setup(#[from] infra::setup::SetupError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("HTTP client: {0}")]
    Http(String),
}

/// Command-line options shared by the `sandbox-worker` binary and `clawgate worker`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Where SQLite state and sandbox activity live (default ~/.clawgate).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Jobs run at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds in-flight jobs get to finish on SIGTERM before they are released.
    #[arg(long, default_value_t = 30.0)]
    pub drain_seconds: f64,
    /// A file that exists while the worker takes jobs (readiness for the fleet).
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
    /// A stable worker id (default: hostname plus a random suffix).
    #[arg(long)]
    pub worker_id: Option<String>,
    /// Where job metrics go: emf (stdout, for CloudWatch), store (counters `clawgate status`
    /// reads) or off.
    #[arg(long, env = "CLAWGATE_METRICS", value_enum, default_value_t = MetricsMode::Store)]
    pub metrics: MetricsMode,
    /// Also take events in this process over the transports that need no public URL: Telegram
    /// long polling, Slack Socket Mode, the Discord Gateway (`clawgate worker` only; run it on
    /// one instance of a fleet).
    #[arg(long)]
    pub ingress: bool,
}

impl WorkerArgs {
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(infra::config::default_dir)
    }

    pub fn settings(&self, visibility: Duration) -> WorkerSettings {
        let mut settings = WorkerSettings::new(visibility);
        settings.concurrency = self.concurrency.max(1);
        settings.drain_deadline = seconds(self.drain_seconds, settings.drain_deadline);
        settings.ready_file = self.ready_file.clone();
        settings.metrics = self.metrics;
        if let Some(id) = &self.worker_id {
            settings.worker_id = id.clone();
        }
        settings
    }
}
