//! One job, start to end: claim its record, keep its lease and message alive, run it (gate,
//! commands, transcript, agent loop, reply), finish it, and ack or leave its message.
//!
//! Decisions:
//! - The job record's lease, not the queue, decides who works on a job: a redelivered message
//!   whose job another worker holds is left alone, and a finished job is acked and dropped
//!   without a second reply. The record is keyed by the channel event id, not the job id: a
//!   channel retry after SQS's five-minute dedup window arrives as a new job for the same
//!   event, and must find the first one's record.
//! - A heartbeat extends the message's visibility and the lease while a job runs. When a
//!   renewal is refused (the lease is lost: this worker stalled past it and another took the
//!   job), the job stops before its next side effect and leaves everything to the new holder.
//! - Failures the user should hear about (the model is down, a bound was hit) get a short
//!   reply and a `failed` job record, and the message is acked. Failures of our own
//!   infrastructure (store or channel unreachable) leave the message to come back after its
//!   visibility timeout, which is the backoff; after `maxReceiveCount` it is dead-lettered.
//! - A first attempt reads the transcript from its latest compaction on, so a job's store cost
//!   does not grow with the session's history. A resumed attempt reads the whole history: its
//!   own earlier steps may lie before a compaction it made.
//! - A panic while running a job (a bug) fails that job with a short notice instead of taking
//!   the worker, or a crash loop, with it.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use infra::channels::ChannelError;
use infra::metrics::Metric;
use infra::model::{EntryBody, JobMessage, JobRecord, JobStatus, ReplyTarget, Tokens, Transcript};
use infra::queue::JobDelivery;
use infra::store::{Claim, StoreError};
use tracing::Instrument;

use super::collect;
use super::commands::Command;
use super::live::{Preview, Watch};
use super::{work_id, AbortOnDrop, Gate, Worker};
use crate::agent::{
    orphaned_results, AgentError, AgentLimits, AgentOutcome, AgentRun, LazyTools, Lease, ToolBudget,
};
use crate::compaction::{self, Compacted};
use crate::llm::{model_for, LlmError};
use crate::persona;
use crate::phase;
use crate::profile::SessionSetup;
use crate::sandbox::Cancel;
use crate::tools::ToolBox;

/// Why a job attempt did not finish.
#[derive(Debug)]
pub(super) enum JobError {
    /// Our side failed, or the lease was lost: leave the message to come back.
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

impl From<ChannelError> for JobError {
    fn from(e: ChannelError) -> Self {
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

impl From<AgentError> for JobError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Model(e) => model_failure(e),
            AgentError::Store(e) => e.into(),
            AgentError::LeaseLost => JobError::Retry(AgentError::LeaseLost.to_string()),
        }
    }
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

const INTERNAL_ERROR_NOTICE: &str =
    "⚠️ Something went wrong inside the assistant while answering this; it has been logged.";

impl Worker {
    /// Runs one delivery with its heartbeat. True when the message was acked (the job is
    /// finished), false when it was left to come back.
    pub(super) async fn job_task(self: &Arc<Self>, delivery: JobDelivery) -> bool {
        let JobDelivery { delivery, job } = delivery;
        let lease = Lease::default();
        let heartbeat = self.heartbeat(&delivery.receipt, work_id(&job), lease.clone());
        let outcome = AssertUnwindSafe(self.process(&job, &lease))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(job = %job.job_id, "a job panicked; failing it instead of retrying it forever");
                Err(Attempt::Panicked)
            });
        drop(heartbeat);
        let finished = match outcome {
            Ok(()) => true,
            Err(Attempt::Panicked) => self.fail_after_panic(&job).await,
            Err(Attempt::Unfinished(reason)) => {
                tracing::warn!(job = %job.job_id, receive_count = delivery.receive_count, %reason, "job attempt failed; it will come back after the visibility timeout");
                if lease.check().is_ok() {
                    let _ = self
                        .backends
                        .store
                        .release_job(work_id(&job), &self.settings.worker_id)
                        .await;
                }
                false
            }
        };
        if finished {
            let acked = self
                .backends
                .queue
                .ack(&delivery.receipt)
                .instrument(phase::span("queue"))
                .await;
            if let Err(e) = acked {
                tracing::warn!(job = %job.job_id, error = %e, "ack failed; the finished job will be dropped on redelivery");
            }
        }
        finished
    }

    /// Extends the message's visibility and the job's lease until dropped; marks `lease` lost
    /// when a renewal is refused.
    fn heartbeat(&self, receipt: &str, job_id: &str, lease: Lease) -> AbortOnDrop {
        let (queue, store) = (self.backends.queue.clone(), self.backends.store.clone());
        let (receipt, job_id) = (receipt.to_string(), job_id.to_string());
        let (visibility, lease_for, every, owner) = (
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
                match store.renew_lease(&job_id, &owner, lease_for).await {
                    Ok(()) => {}
                    Err(StoreError::LeaseLost { .. }) => {
                        tracing::warn!(job = %job_id, "the lease was lost; stopping before the next side effect");
                        lease.mark_lost();
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat could not renew the lease"),
                }
            }
        }))
    }

    /// After a panic: tell the user once and record the job as failed, so it is not retried.
    async fn fail_after_panic(&self, job: &JobMessage) -> bool {
        let (store, owner) = (&self.backends.store, &self.settings.worker_id);
        let Ok(Claim::Claimed(record)) = store
            .claim_job(work_id(job), owner, self.settings.lease)
            .await
        else {
            return false;
        };
        let preview = Preview::for_job(self, job, record.preview.clone());
        let _ = self
            .deliver(
                job,
                &record,
                &preview,
                &Lease::default(),
                INTERNAL_ERROR_NOTICE,
            )
            .await;
        store
            .finish_job(
                work_id(job),
                owner,
                JobStatus::Failed,
                Some("internal error (a panic)"),
                None,
            )
            .await
            .is_ok()
    }

    /// One attempt at a job. `Ok` means "ack the message".
    async fn process(&self, job: &JobMessage, lease: &Lease) -> Result<(), Attempt> {
        let store = &self.backends.store;
        let owner = &self.settings.worker_id;
        let work = work_id(job);
        let claim = store
            .claim_job(work, owner, self.settings.lease)
            .instrument(phase::span("store"))
            .await;
        let record = match claim.map_err(|e| Attempt::Unfinished(e.to_string()))? {
            Claim::Finished(_) => {
                tracing::info!(job = %job.job_id, "already finished; dropping the redelivery");
                return Ok(());
            }
            Claim::Busy(r) => {
                return Err(Attempt::Unfinished(format!(
                    "held by {}",
                    r.lease_owner.unwrap_or_default()
                )))
            }
            Claim::Claimed(r) => r,
        };
        tracing::info!(job = %job.job_id, session = %job.session_key, attempt = record.attempt, "job claimed");
        let started = std::time::Instant::now();
        self.metrics.count(Metric::JobsStarted, &[]).await;
        if record.attempt <= 1 {
            let waited = (chrono::Utc::now() - job.inbound.received_at)
                .to_std()
                .unwrap_or_default();
            self.metrics.time(Metric::QueueWait, waited, &[]).await;
        }
        // Every model call of this attempt adds its tokens here; the job record keeps the sum.
        let spent = std::sync::Mutex::new(Tokens::default());
        let finish = |status, detail: Option<String>, usage: Tokens| async move {
            store
                .finish_job(
                    work,
                    owner,
                    status,
                    detail.as_deref(),
                    (!usage.is_zero()).then_some(usage),
                )
                .instrument(phase::span("store"))
                .await
                .map_err(|e| Attempt::Unfinished(e.to_string()))
        };
        let preview = Preview::for_job(self, job, record.preview.clone());
        let outcome = self.run_job(job, &record, &preview, lease, &spent).await;
        let usage = *spent.lock().unwrap_or_else(|p| p.into_inner());
        let ended = match &outcome {
            Ok(()) => Some(Metric::JobsFinished),
            Err(JobError::Fail { .. }) => Some(Metric::JobsFailed),
            Err(JobError::Retry(_)) => None,
        };
        if let Some(metric) = ended {
            self.metrics.count(metric, &[]).await;
            self.metrics
                .time(Metric::JobDuration, started.elapsed(), &[])
                .await;
        }
        match outcome {
            Ok(()) => finish(JobStatus::Done, None, usage).await,
            Err(JobError::Retry(reason)) => Err(Attempt::Unfinished(reason)),
            Err(JobError::Fail { reason, tell_user }) => {
                tracing::warn!(job = %job.job_id, %reason, "job failed");
                if let Some(text) = tell_user {
                    if let Err(e) = self.deliver(job, &record, &preview, lease, &text).await {
                        tracing::warn!(job = %job.job_id, error = ?e, "could not tell the user about the failure");
                    }
                }
                finish(JobStatus::Failed, Some(reason), usage).await
            }
        }
    }

    async fn run_job(
        &self,
        job: &JobMessage,
        record: &JobRecord,
        preview: &Preview,
        lease: &Lease,
        spent: &std::sync::Mutex<Tokens>,
    ) -> Result<(), JobError> {
        let setup = SessionSetup::new(&self.config, self.profile(&job.agent_id), &job.session_key);
        match self.gate(job, record).await? {
            Gate::Proceed => {}
            Gate::Drop(why) => {
                tracing::info!(job = %job.job_id, session = %job.session_key, why, "not answered");
                return Ok(());
            }
            Gate::Answer(text) => return self.deliver(job, record, preview, lease, &text).await,
        }
        let mut transcript = self.load_transcript(job, record).await?;
        let compact = match self.command(job, &setup, &mut transcript).await? {
            Some(Command::Answer(text)) => {
                return self.deliver(job, record, preview, lease, &text).await
            }
            Some(Command::Done) => return Ok(()),
            Some(Command::Compact(instructions)) => Some(instructions),
            None => None,
        };
        let cancel = Cancel::default();
        let _stop_watch = self.watch_for_stop(job, &cancel).await;
        if cancel.is_cancelled() {
            tracing::info!(job = %job.job_id, session = %job.session_key, "stopped before it started (/stop came after it)");
            return Ok(());
        }
        if job.collected && collect::nothing_to_answer(&transcript) {
            tracing::info!(job = %job.job_id, "collected turn: an earlier one answered everything");
            return Ok(());
        }
        if self.collects(job, &transcript) {
            let received = self.receive_media(job, &setup, &transcript).await;
            self.append_user_message(job, &mut transcript, &received.notes)
                .await?;
            return self.queue_collected_turn(job).await;
        }
        let owner = setup.trust == infra::config::Trust::Owner;
        let model = model_for(
            &setup.profile_for(&transcript.options),
            &self.config.models.providers,
            &self.model_keys,
            self.http.clone(),
            self.settings.retry.clone(),
        )
        .map_err(model_failure)?;
        // The container starts while the model thinks.
        let tools = {
            let (runtime, plan, policy) = (
                self.sandbox.clone(),
                setup.plan.clone(),
                setup.policy.clone(),
            );
            let cancel = cancel.clone();
            LazyTools::spawn(async move {
                ToolBox::for_plan(&runtime, &plan, policy)
                    .instrument(phase::span("sandbox"))
                    .await
                    .with_cancel(cancel)
            })
        };
        let status_note = format!("model {}; sandbox {}", model.name(), setup.sandbox_line());
        let served = self
            .job_tools(job, record, lease, &setup, status_note, &tools, &transcript)
            .await;
        let extra = served.list();
        let mut files = persona::read_bootstrap(
            &setup.profile.workspace,
            owner,
            setup.profile.bootstrap_max_chars,
        );
        if job.heartbeat.is_some() {
            files.extend(persona::read_heartbeat(
                &setup.profile.workspace,
                setup.profile.bootstrap_max_chars,
            ));
        }
        let mut system = persona::system_prompt(
            &persona::PromptContext {
                agent: &job.agent_id,
                channel: job.inbound.channel.as_str(),
                workspace_view: &setup.plan.workspace_view,
            },
            &files,
        );
        if let Some(section) = crate::skills::prompt_section(&served.skills.skills) {
            system.push_str("\n\n");
            system.push_str(&section);
        }
        let ritual = files.iter().any(|f| f.name == persona::BOOTSTRAP_FILE);
        let flush = &setup.profile.memory_flush;
        let watch = Watch {
            worker: self,
            job,
            lease,
            preview,
        };
        let received = self.receive_media(job, &setup, &transcript).await;
        let run = AgentRun {
            model: model.as_ref(),
            tools: &tools,
            extra: &extra,
            policy: &setup.policy,
            secrets: &setup.plan.secrets,
            specs: setup.specs(&extra),
            store: self.backends.store.as_ref(),
            budget: Some(ToolBudget {
                counters: self.backends.store.as_ref(),
                per_hour: self.config.limits.session_tool_calls_per_hour,
            }),
            lease,
            session: &job.session_key,
            agent: &job.agent_id,
            job_id: &job.job_id,
            system,
            limits: AgentLimits {
                compact_at_tokens: setup.profile.compact_at_tokens,
                ..self.settings.agent.clone()
            },
            metrics: &self.metrics,
            usage: Some(self.backends.store.as_ref()),
            job_usage: Some(spent),
            thinking: transcript.options.thinking,
            flush_prompt: (owner && flush.enabled).then(|| {
                flush
                    .prompt
                    .clone()
                    .unwrap_or_else(|| compaction::DEFAULT_FLUSH_PROMPT.to_string())
            }),
            progress: Some(&watch),
            cancel: Some(&cancel),
            images: &received.images,
        };
        if let Some(instructions) = compact {
            let text = match run.compact(&mut transcript, instructions.as_deref()).await? {
                Compacted::Summarised { through_seq, before_tokens } => format!(
                    "Compacted: the conversation up to entry {through_seq} (about {before_tokens} tokens of context) is now a summary."
                ),
                Compacted::NothingToDo => "Nothing to compact yet: the conversation is all recent.".to_string(),
            };
            return self.deliver(job, record, preview, lease, &text).await;
        }
        self.append_user_message(job, &mut transcript, &received.notes)
            .await?;
        if record.attempt > 1 {
            preview.resume_lines(&transcript, &job.job_id).await;
        }
        let typing = job
            .reply_to
            .as_ref()
            .and_then(|t| self.outbound.keep_typing(&job.inbound.account, t))
            .map(AbortOnDrop);
        let outcome = preview.during(&watch, run.run(&mut transcript)).await;
        drop(typing);
        let outcome = outcome?;
        if ritual {
            // The first-run ritual ran once: it is not carried into the next turn.
            let path = setup.profile.workspace.join(persona::BOOTSTRAP_FILE);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(error = %e, "could not remove BOOTSTRAP.md after the first run");
            }
        }
        let text = match outcome {
            // A heartbeat with nothing to report stays quiet.
            AgentOutcome::Reply(text) if job.heartbeat.is_some_and(|rule| rule.is_ack(&text)) => {
                tracing::info!(job = %job.job_id, "heartbeat: nothing to report; not delivered");
                return Ok(());
            }
            AgentOutcome::Reply(text) if text.trim().is_empty() => {
                "(the model gave an empty answer)".to_string()
            }
            AgentOutcome::Reply(text) | AgentOutcome::Stopped(text) => text,
            // The `/stop` job confirms the stop in the chat (a preview says it ended here);
            // on WebChat this job says it, in the session's own lane.
            AgentOutcome::Cancelled => {
                tracing::info!(job = %job.job_id, "stopped by /stop");
                if !matches!(job.reply_to, Some(ReplyTarget::Webchat(_))) {
                    preview.finish(&watch, "⏹ Stopped.").await;
                    return Ok(());
                }
                "⏹ Stopped.".to_string()
            }
        };
        self.deliver(job, record, preview, lease, &text).await
    }

    /// The part of the session this attempt needs (see the module's decisions).
    async fn load_transcript(
        &self,
        job: &JobMessage,
        record: &JobRecord,
    ) -> Result<Transcript, JobError> {
        let store = &self.backends.store;
        let key = &job.session_key;
        let loaded = if record.attempt <= 1 {
            store
                .load_context(key)
                .instrument(phase::span("store"))
                .await?
        } else {
            let entries = store
                .load_transcript_from(key, 0)
                .instrument(phase::span("store"))
                .await?;
            Transcript::whole(entries)
        };
        Ok(loaded)
    }

    /// Closes tool calls an earlier job left unanswered, then appends this job's message (once,
    /// whatever the number of attempts), with a line per file that came with it.
    async fn append_user_message(
        &self,
        job: &JobMessage,
        transcript: &mut Transcript,
        file_notes: &[String],
    ) -> Result<(), JobError> {
        // A collected turn brings no message: the ones it answers are in already.
        if job.collected || transcript.has_message_of(&job.job_id) {
            return Ok(());
        }
        let mut bodies = orphaned_results(transcript, &job.job_id);
        let mut text = job.inbound.text.clone();
        for note in file_notes {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(note);
        }
        bodies.push(EntryBody::User {
            text,
            sender: Some(job.inbound.sender.clone()),
        });
        for body in bodies {
            self.append(job, transcript, body).await?;
        }
        Ok(())
    }

    /// Appends one entry of this job to the session.
    pub(super) async fn append(
        &self,
        job: &JobMessage,
        transcript: &mut Transcript,
        body: EntryBody,
    ) -> Result<(), JobError> {
        let entry = transcript.next_entry(Some(&job.job_id), body);
        let stored = self
            .backends
            .store
            .append_transcript(&job.session_key, &job.agent_id, &entry)
            .instrument(phase::span("store"))
            .await?;
        transcript.push(stored);
        Ok(())
    }
}

/// How an attempt ended, when it did not end in "ack".
enum Attempt {
    Unfinished(String),
    Panicked,
}
