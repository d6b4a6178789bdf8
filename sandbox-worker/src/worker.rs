//! The worker (DESIGN §2.3, §2.5): long-polls the queue with bounded concurrency and runs each
//! job: claim, sender policy, chat commands, transcript, agent loop, reply, finish, ack.
//!
//! Decisions:
//! - The job record's lease, not the queue, decides who works on a job: a redelivered message
//!   whose job another worker holds is left alone, and a finished job is acked and dropped
//!   without a second reply. The record is keyed by the channel event id, not the job id: a
//!   channel retry after SQS's five-minute dedup window arrives as a new job for the same
//!   event, and must find the first one's record.
//! - A heartbeat extends the message's visibility and the lease while a job runs.
//! - Failures the user should hear about (the model is down, a bound was hit) get a short
//!   reply and a `failed` job record, and the message is acked. Failures of our own
//!   infrastructure (store or channel unreachable) leave the message to come back after its
//!   visibility timeout, which is the backoff; after `maxReceiveCount` it is dead-lettered.
//! - On shutdown the worker stops receiving, gives in-flight jobs the drain deadline, then
//!   stops them and releases both the lease and the message, so another worker resumes them at
//!   once from the last checkpoint.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use infra::config::{Config, DmPolicy};
use infra::model::{
    Channel, ChatKind, EntryBody, JobMessage, JobRecord, JobStatus, ReplyTarget, TranscriptEntry,
};
use infra::queue::{JobDelivery, JobQueueExt, QueueError};
use infra::setup::Backends;
use infra::store::{Claim, StoreError};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::agent::{AgentLimits, AgentOutcome, AgentRun, ExtraTools, LazyTools};
use crate::llm::{model_for_agent, LlmError, RetryPolicy};
use crate::phases::timed;
use crate::reply::Outbound;
use crate::sandbox::{SandboxPlan, SandboxRuntime};
use crate::tools::policy::ToolPolicy;
use crate::tools::sessions::SessionTools;
use crate::tools::{builtin_specs, ToolBox};

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
            pairing_ttl: Duration::from_secs(3600),
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
}

/// Why a job attempt did not finish.
#[derive(Debug)]
enum JobError {
    /// Our side failed: leave the message to come back.
    Retry(String),
    /// The job cannot succeed: tell the user (when there is something to say) and record it.
    Fail {
        reason: String,
        tell_user: Option<String>,
    },
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        JobError::Retry(e.to_string())
    }
}

impl From<infra::channels::ChannelError> for JobError {
    fn from(e: infra::channels::ChannelError) -> Self {
        if e.is_retryable() {
            JobError::Retry(e.to_string())
        } else {
            JobError::Fail {
                reason: e.to_string(),
                tell_user: None,
            }
        }
    }
}

/// A job being worked on, for release on shutdown.
struct Running {
    job_id: String,
    receipt: String,
}

impl Worker {
    /// Serves until `shutdown` turns true, then drains.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let settings = &self.settings;
        if let Some(path) = &settings.ready_file {
            let _ = std::fs::write(path, format!("{}\n", settings.worker_id));
        }
        tracing::info!(worker = %settings.worker_id, queue = %self.backends.queue.describe(), "worker started");
        let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        let running: Arc<Mutex<HashMap<String, Running>>> = Arc::default();
        let mut tasks = JoinSet::new();
        loop {
            while tasks.try_join_next().is_some() {}
            if *shutdown.borrow() {
                break;
            }
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = tasks.join_next() => continue,
                    _ = shutdown.changed() => break,
                }
            }
            let received = tokio::select! {
                r = timed("queue", self.backends.queue.receive_jobs(free.min(10), settings.receive_wait)) => r,
                _ = shutdown.changed() => break,
            };
            let jobs = match received {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, retryable = e.is_retryable(), "receive failed; retrying shortly");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for delivery in jobs {
                let permit = slots.clone().acquire_owned().await.expect("never closed");
                let key = delivery.delivery.message_id.clone();
                running.lock().expect("lock").insert(
                    key.clone(),
                    Running {
                        job_id: work_id(&delivery.job).to_string(),
                        receipt: delivery.delivery.receipt.clone(),
                    },
                );
                let (worker, running) = (self.clone(), running.clone());
                tasks.spawn(async move {
                    worker.job_task(delivery).await;
                    running.lock().expect("lock").remove(&key);
                    drop(permit);
                });
            }
        }
        self.drain(tasks, running).await;
    }

    async fn drain(&self, mut tasks: JoinSet<()>, running: Arc<Mutex<HashMap<String, Running>>>) {
        if let Some(path) = &self.settings.ready_file {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!(
            in_flight = tasks.len(),
            deadline_s = self.settings.drain_deadline.as_secs_f64(),
            "draining"
        );
        let deadline = tokio::time::sleep(self.settings.drain_deadline);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                _ = &mut deadline => {
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        let left: Vec<Running> = running
            .lock()
            .expect("lock")
            .drain()
            .map(|(_, r)| r)
            .collect();
        for job in left {
            // Every step is checkpointed, so the next worker resumes where this one stopped.
            let _ = self
                .backends
                .store
                .release_job(&job.job_id, &self.settings.worker_id)
                .await;
            let _ = self.backends.queue.release(&job.receipt).await;
            tracing::info!(job = %job.job_id, "released an unfinished job for another worker");
        }
        tracing::info!("drained");
    }

    async fn job_task(self: Arc<Self>, delivery: JobDelivery) {
        let JobDelivery { delivery, job } = delivery;
        let heartbeat = {
            let (queue, store) = (self.backends.queue.clone(), self.backends.store.clone());
            let (receipt, job_id) = (delivery.receipt.clone(), work_id(&job).to_string());
            let (visibility, lease, every, owner) = (
                self.backends.visibility,
                self.settings.lease,
                self.settings.heartbeat,
                self.settings.worker_id.clone(),
            );
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if let Err(e) = queue.extend(&receipt, visibility).await {
                        tracing::warn!(error = %e, "heartbeat could not extend visibility");
                    }
                    let _ = store.renew_lease(&job_id, &owner, lease).await;
                }
            }))
        };
        let outcome = self.process(&job).await;
        drop(heartbeat);
        match outcome {
            Ok(()) => {
                if let Err(e) = timed("queue", self.backends.queue.ack(&delivery.receipt)).await {
                    tracing::warn!(job = %job.job_id, error = %e, "ack failed; the finished job will be dropped on redelivery");
                }
            }
            Err(reason) => {
                tracing::warn!(job = %job.job_id, receive_count = delivery.receive_count, %reason, "job attempt failed; it will come back after the visibility timeout");
                let _ = self
                    .backends
                    .store
                    .release_job(work_id(&job), &self.settings.worker_id)
                    .await;
            }
        }
    }

    /// One attempt at a job. `Ok` means "ack the message".
    async fn process(&self, job: &JobMessage) -> Result<(), String> {
        let store = &self.backends.store;
        let owner = &self.settings.worker_id;
        let work = work_id(job);
        let claim = timed("store", store.claim_job(work, owner, self.settings.lease)).await;
        let record = match claim.map_err(|e| e.to_string())? {
            Claim::Finished(_) => {
                tracing::info!(job = %job.job_id, "already finished; dropping the redelivery");
                return Ok(());
            }
            Claim::Busy(r) => return Err(format!("held by {}", r.lease_owner.unwrap_or_default())),
            Claim::Claimed(r) => r,
        };
        tracing::info!(job = %job.job_id, session = %job.session_key, attempt = record.attempt, "job claimed");
        match self.run_job(job, &record).await {
            Ok(()) => timed(
                "store",
                store.finish_job(work, owner, JobStatus::Done, None),
            )
            .await
            .map_err(|e| e.to_string()),
            Err(JobError::Retry(reason)) => Err(reason),
            Err(JobError::Fail { reason, tell_user }) => {
                tracing::warn!(job = %job.job_id, %reason, "job failed");
                if let Some(text) = tell_user {
                    if let Err(e) = self.deliver(job, &record, &text).await {
                        tracing::warn!(job = %job.job_id, error = ?e, "could not tell the user about the failure");
                    }
                }
                store
                    .finish_job(work, owner, JobStatus::Failed, Some(&reason))
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    async fn run_job(&self, job: &JobMessage, record: &JobRecord) -> Result<(), JobError> {
        if let Some(answer) = self.sender_policy(job).await? {
            return match answer {
                Some(text) => self.deliver(job, record, &text).await,
                None => Ok(()),
            };
        }
        let store = &self.backends.store;
        let key = &job.session_key;
        let mut transcript = timed("store", store.load_transcript_from(key, 0)).await?;
        if let Some(text) = self.command(job, &mut transcript).await? {
            return self.deliver(job, record, &text).await;
        }
        if !transcript.iter().any(|e| {
            e.job_id.as_deref() == Some(&job.job_id) && matches!(e.body, EntryBody::User { .. })
        }) {
            let entry = TranscriptEntry {
                seq: transcript.last().map_or(0, |e| e.seq + 1),
                at: Utc::now(),
                job_id: Some(job.job_id.clone()),
                body: EntryBody::User {
                    text: job.inbound.text.clone(),
                    sender: Some(job.inbound.sender.clone()),
                },
            };
            transcript
                .push(timed("store", store.append_transcript(key, &job.agent_id, &entry)).await?);
        }
        let model = model_for_agent(
            &self.config,
            &job.agent_id,
            self.http.clone(),
            self.settings.retry.clone(),
        )
        .map_err(|e| JobError::Fail {
            tell_user: Some(format!("⚠️ {e}")),
            reason: e.to_string(),
        })?;
        let policy = ToolPolicy::for_agent(&self.config, &job.agent_id);
        // The container starts while the model thinks (DESIGN §2.4).
        let tools = {
            let (sandbox, config, agent, key) = (
                self.sandbox.clone(),
                self.config.clone(),
                job.agent_id.clone(),
                key.clone(),
            );
            LazyTools::spawn(async move {
                timed(
                    "sandbox",
                    ToolBox::for_session(&sandbox, &config, &agent, &key),
                )
                .await
            })
        };
        let plan = SandboxPlan::for_session(&self.config, &job.agent_id, key);
        let sessions = SessionTools {
            store: store.clone(),
            queue: self.backends.queue.clone(),
            agent: job.agent_id.clone(),
            session: key.clone(),
            status_note: format!(
                "model {}; sandbox {}",
                model.name(),
                if plan.sandboxed {
                    plan.container_name.as_str()
                } else {
                    "off (host)"
                }
            ),
        };
        let specs = builtin_specs()
            .into_iter()
            .chain(sessions.specs())
            .filter(|s| policy.allows(s.name))
            .collect();
        let system = format!(
            "You are a personal assistant ({}), answering through {}. You have tools that run in a sandboxed workspace at {}. Reply in plain, concise text.",
            job.agent_id, job.inbound.channel, plan.workspace_view
        );
        let typing = job
            .reply_to
            .as_ref()
            .and_then(|t| self.outbound.keep_typing(&job.inbound.account, t))
            .map(AbortOnDrop);
        let outcome = AgentRun {
            model: model.as_ref(),
            tools: &tools,
            extra: Some(&sessions),
            policy: &policy,
            specs,
            store: store.as_ref(),
            session: key,
            agent: &job.agent_id,
            job_id: &job.job_id,
            system,
            limits: self.settings.agent.clone(),
        }
        .run(&mut transcript)
        .await;
        drop(typing);
        let text = match outcome {
            Ok(AgentOutcome::Reply(text)) if text.trim().is_empty() => {
                "(the model gave an empty answer)".to_string()
            }
            Ok(AgentOutcome::Reply(text)) | Ok(AgentOutcome::Stopped(text)) => text,
            Err(crate::agent::AgentError::Model(e)) => return Err(model_failure(e)),
            Err(crate::agent::AgentError::Store(e)) => return Err(e.into()),
        };
        self.deliver(job, record, &text).await
    }

    /// `None`: go on. `Some(None)`: stop silently. `Some(Some(text))`: stop with this reply.
    async fn sender_policy(&self, job: &JobMessage) -> Result<Option<Option<String>>, JobError> {
        let inbound = &job.inbound;
        if inbound.chat.kind != ChatKind::Dm {
            return Ok(None); // groups: mention gating happens at ingress
        }
        let (policy, allow_from) = match inbound.channel {
            Channel::Telegram => self
                .config
                .channels
                .telegram
                .as_ref()
                .map_or((DmPolicy::Pairing, vec![]), |t| {
                    (t.dm_policy, t.allow_from.clone())
                }),
            Channel::Slack => self
                .config
                .channels
                .slack
                .as_ref()
                .map_or((DmPolicy::Pairing, vec![]), |s| {
                    (s.dm_policy, s.allow_from.clone())
                }),
            Channel::Webchat | Channel::Hook => return Ok(None),
        };
        let channel = inbound.channel.as_str();
        let peer = &inbound.sender.id;
        let allowed = || async {
            Ok::<_, JobError>(
                allow_from.iter().any(|p| p.to_string() == *peer)
                    || self
                        .backends
                        .store
                        .is_allowed(channel, &inbound.account, peer)
                        .await?,
            )
        };
        match policy {
            DmPolicy::Open => Ok(None),
            DmPolicy::Disabled => Ok(Some(None)),
            DmPolicy::Allowlist => Ok(if allowed().await? { None } else { Some(None) }),
            DmPolicy::Pairing => {
                if allowed().await? {
                    return Ok(None);
                }
                let ttl = self.settings.pairing_ttl;
                let text = match self
                    .backends
                    .store
                    .request_pairing(channel, &inbound.account, peer, inbound.sender.name.as_deref(), ttl)
                    .await
                {
                    Ok(request) => format!(
                        "Hi! I don't know you yet. Your pairing code is {code}.\nAsk my owner to run:\n  clawgate pairing approve {channel} {code}\nThe code expires in {} minutes.",
                        ttl.as_secs() / 60,
                        code = request.code
                    ),
                    Err(StoreError::TooManyPending { .. }) => {
                        "Hi! Too many pairing requests are waiting right now; please try again later.".to_string()
                    }
                    Err(e) => return Err(e.into()),
                };
                Ok(Some(Some(text)))
            }
        }
    }

    /// Chat commands answered without the model: `/new`, `/reset`, `/status`, `/help`.
    async fn command(
        &self,
        job: &JobMessage,
        transcript: &mut Vec<TranscriptEntry>,
    ) -> Result<Option<String>, JobError> {
        let text = job.inbound.text.trim();
        let Some(word) = text
            .split_whitespace()
            .next()
            .filter(|w| w.starts_with('/'))
        else {
            return Ok(None);
        };
        let command = word.split('@').next().unwrap_or(word).to_ascii_lowercase();
        let key = &job.session_key;
        Ok(Some(match command.as_str() {
            "/new" | "/reset" => {
                // A summary that covers everything with no text: later contexts start empty,
                // and the old turns stay in the store.
                let already = transcript.iter().any(|e| e.job_id.as_deref() == Some(&job.job_id));
                if !already {
                    if let Some(last) = transcript.last().map(|e| e.seq) {
                        let entry = TranscriptEntry {
                            seq: last + 1,
                            at: Utc::now(),
                            job_id: Some(job.job_id.clone()),
                            body: EntryBody::Summary { text: String::new(), through_seq: last + 1 },
                        };
                        transcript.push(self.backends.store.append_transcript(key, &job.agent_id, &entry).await?);
                    }
                }
                "Started a new conversation.".to_string()
            }
            "/status" => {
                let plan = SandboxPlan::for_session(&self.config, &job.agent_id, key);
                let model = model_for_agent(&self.config, &job.agent_id, self.http.clone(), RetryPolicy::default())
                    .map_or_else(|e| format!("not configured ({e})"), |m| m.name());
                let mode = serde_json::to_value(plan.mode).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                format!(
                    "Session: {key}\nModel: {model}\nSandbox: mode {mode}, {}\nTranscript: {} entries",
                    if plan.sandboxed { format!("container {}", plan.container_name) } else { "tools run on the host".into() },
                    transcript.len()
                )
            }
            "/help" => "Commands:\n/new or /reset: start a new conversation\n/status: model, sandbox and transcript size\n/help: this list\nAnything else goes to the assistant.".to_string(),
            _ => return Ok(None),
        }))
    }

    /// WebChat has nothing to post to: the reply becomes a `Delivered` transcript entry, which
    /// the page reads (`GET /webchat/history`). One chunk, marked like any channel's.
    async fn deliver_to_webchat(
        &self,
        job: &JobMessage,
        record: &JobRecord,
        text: &str,
    ) -> Result<(), JobError> {
        if record.chunks_sent.contains(&0) {
            return Ok(());
        }
        let store = &self.backends.store;
        let key = &job.session_key;
        let next_seq = timed("store", store.get_session(key))
            .await?
            .map_or(0, |s| s.next_seq);
        let entry = TranscriptEntry {
            seq: next_seq,
            at: Utc::now(),
            job_id: Some(job.job_id.clone()),
            body: EntryBody::Delivered {
                text: text.to_string(),
            },
        };
        timed("store", store.append_transcript(key, &job.agent_id, &entry)).await?;
        timed(
            "store",
            store.mark_chunk_sent(work_id(job), &self.settings.worker_id, 0),
        )
        .await?;
        Ok(())
    }

    /// Posts the reply chunk by chunk, skipping chunks an earlier attempt already sent.
    async fn deliver(
        &self,
        job: &JobMessage,
        record: &JobRecord,
        text: &str,
    ) -> Result<(), JobError> {
        let Some(target) = &job.reply_to else {
            return Ok(());
        };
        if let ReplyTarget::Webchat(_) = target {
            return self.deliver_to_webchat(job, record, text).await;
        }
        for (i, chunk) in self.outbound.chunks(target, text).iter().enumerate() {
            let index = i as u32;
            if record.chunks_sent.contains(&index) {
                continue;
            }
            timed(
                "reply",
                self.outbound.send(&job.inbound.account, target, chunk),
            )
            .await?;
            let store = &self.backends.store;
            timed(
                "store",
                store.mark_chunk_sent(work_id(job), &self.settings.worker_id, index),
            )
            .await?;
        }
        Ok(())
    }
}

/// The key of a job's record: its channel event, which every retry of that event shares.
pub fn work_id(job: &JobMessage) -> &str {
    job.dedup_id()
}

fn model_failure(e: LlmError) -> JobError {
    let tell = match &e {
        LlmError::SpendLimit(_) => "⚠️ The model account is out of quota, so I can't answer right now.".to_string(),
        LlmError::NotConfigured(m) => format!("⚠️ No model is configured: {m}."),
        _ => "⚠️ I couldn't get an answer from the model just now (it kept failing). Please try again in a bit.".to_string(),
    };
    JobError::Fail {
        reason: e.to_string(),
        tell_user: Some(tell),
    }
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
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutdown signal received");
        let _ = tx.send(true);
    });
    rx
}

impl Worker {
    /// The one way a worker is assembled (the binaries, the tests and the benchmark): an HTTP
    /// client with timeouts, the channel clients, and the sandbox runtime (`DOCKER_HOST` when it
    /// names a unix socket, activity recorded under `state_dir`).
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
        Ok(Worker {
            outbound: Outbound::from_config(&config, http.clone()),
            sandbox: Arc::new(SandboxRuntime::new(
                socket,
                state_dir.join("sandbox-activity"),
            )),
            config: Arc::new(config),
            backends,
            http,
            settings,
        })
    }
}

impl Worker {
    /// The sandbox runtime, for a status report (`clawgate up`).
    pub fn sandbox(&self) -> &SandboxRuntime {
        &self.sandbox
    }
}

/// Builds a worker from the config and serves until SIGTERM/SIGINT (the `sandbox-worker` binary
/// and `clawgate worker`).
///
/// With `CLAWGATE_SECRETS_ARN`, the secrets (bot tokens, model keys) come from that Secrets
/// Manager secret, a JSON object of environment-variable names (`infra::aws::secret_env`).
pub async fn serve(
    mut config: Config,
    state_dir: PathBuf,
    settings: WorkerSettings,
) -> Result<(), QueueErrorOrSetup> {
    if let Ok(arn) = std::env::var("CLAWGATE_SECRETS_ARN") {
        let sdk = infra::aws::load_sdk_config().await;
        let secrets = infra::aws::secret_env(&sdk, &arn)
            .await
            .map_err(QueueErrorOrSetup::Secrets)?;
        config.apply_env(|name| secrets.get(name).cloned());
    }
    let backends = infra::setup::open_backends(&config, &state_dir).await?;
    let worker = Arc::new(Worker::new(config, backends, &state_dir, settings)?);
    worker.run(shutdown_on_signals()).await;
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
    #[error("secrets: {0}")]
    Secrets(String),
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
        settings.drain_deadline = Duration::from_secs_f64(self.drain_seconds.max(0.0));
        settings.ready_file = self.ready_file.clone();
        if let Some(id) = &self.worker_id {
            settings.worker_id = id.clone();
        }
        settings
    }
}
