//! The agent loop: model call → tool calls → tool results → model call …, bounded by turns,
//! tool calls and wall time, with every finished step appended to the transcript before the
//! next begins.
//!
//! Resuming is reading the transcript: the last entry says what comes next. An assistant turn
//! with tool calls lacking results runs just those (a finished tool call has its result stored
//! and is never run again); a user message, tool result or summary calls the model; an
//! assistant turn without tool calls is the answer.
//!
//! Compaction (`crate::compaction`): when the context (entries since the last summary) grows
//! past its token budget, the older part is summarised by the model and a `Summary` entry is
//! appended; later contexts start from it, and so do later jobs' reads. Nothing is dropped:
//! the full history stays in the store.
//!
//! Decisions:
//! - Before every side effect (a model call, a tool call) the job's lease is checked: a worker
//!   whose lease was lost (it stalled past the lease, another worker took the job) stops at
//!   once instead of running the job's side effects a second time.
//! - A tool that panics is a tool error, not a dead worker: the call is caught and the model
//!   is told it failed, and its result is checkpointed like any other, so a resume never
//!   replays it.
//! - Tool calls count against the session's hourly budget (`limits.sessionToolCallsPerHour`)
//!   in the store, so it holds across a fleet; calls over it get an error result.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use infra::metrics::{Metric, Metrics};
use infra::model::{EntryBody, SessionKey, ThinkLevel, ToolCall, Transcript, TranscriptEntry};
use infra::store::{RateCounters, StoreError, TranscriptStore};
use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::llm::{InlineImage, LlmError, Model, ModelReply, ModelRequest, ToolSpec};
use crate::phase;
use crate::sandbox::Cancel;
use crate::tools::policy::ToolPolicy;
use crate::tools::{ExtraTools, ToolBox, ToolOutcome};

/// Bounds on one job's agent run.
#[derive(Debug, Clone)]
pub struct AgentLimits {
    pub max_turns: u32,
    pub max_tool_calls: u32,
    pub wall_time: Duration,
    /// Context size in tokens past which older turns are compacted (`crate::compaction`).
    pub compact_at_tokens: u64,
    /// Entries kept verbatim after a compaction.
    pub keep_recent: usize,
    pub max_tokens: u32,
}

impl Default for AgentLimits {
    fn default() -> Self {
        AgentLimits {
            max_turns: 16,
            max_tool_calls: 48,
            wall_time: Duration::from_secs(600),
            compact_at_tokens: 180_000,
            keep_recent: 12,
            max_tokens: 4096,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentOutcome {
    /// The model's final answer.
    Reply(String),
    /// A bound was hit; the text says which, for the user.
    Stopped(String),
    /// The user stopped the run (`/stop`); the transcript says so.
    Cancelled,
}

/// What the transcript records when a run is stopped: the model reads it next turn.
pub const STOPPED_TEXT: &str = "⏹ Stopped: the user ended this run with /stop.";

/// Told as a run goes, for a preview the user can watch.
#[async_trait::async_trait]
pub trait Progress: Send + Sync {
    /// A tool call is about to run.
    async fn tool_started(&self, call: &ToolCall);
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Model(#[from] LlmError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the job's lease was lost: another worker holds it now")]
    LeaseLost,
}

/// Whether this worker still holds the job's lease. The heartbeat marks it lost when a renewal
/// is refused; the job checks it before each side effect.
#[derive(Debug, Clone, Default)]
pub struct Lease {
    lost: Arc<AtomicBool>,
}

impl Lease {
    pub fn mark_lost(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    pub fn check(&self) -> Result<(), AgentError> {
        if self.lost.load(Ordering::SeqCst) {
            Err(AgentError::LeaseLost)
        } else {
            Ok(())
        }
    }
}

/// The session's tools, built in the background (the container start hides behind the first
/// model call) and awaited when a tool is first needed.
pub struct LazyTools {
    pending: tokio::sync::Mutex<Option<Pin<Box<dyn Future<Output = ToolBox> + Send>>>>,
    ready: OnceCell<Arc<ToolBox>>,
}

impl LazyTools {
    pub fn spawn(build: impl Future<Output = ToolBox> + Send + 'static) -> Self {
        let handle = tokio::spawn(build);
        let waiter = async move {
            handle.await.unwrap_or_else(|e| {
                ToolBox::unavailable(
                    ToolPolicy::new(&Default::default()),
                    format!("the sandbox could not be prepared: {e}"),
                )
            })
        };
        LazyTools {
            pending: tokio::sync::Mutex::new(Some(Box::pin(waiter))),
            ready: OnceCell::new(),
        }
    }

    pub fn ready(tools: ToolBox) -> Self {
        LazyTools {
            pending: tokio::sync::Mutex::new(None),
            ready: OnceCell::new_with(Some(Arc::new(tools))),
        }
    }

    pub async fn get(&self) -> Arc<ToolBox> {
        self.ready
            .get_or_init(|| async {
                match self.pending.lock().await.take() {
                    Some(future) => Arc::new(future.await),
                    // Only reachable if a first `get` was cancelled mid-build.
                    None => Arc::new(ToolBox::unavailable(
                        ToolPolicy::new(&Default::default()),
                        "the sandbox is being prepared; try again".into(),
                    )),
                }
            })
            .await
            .clone()
    }
}

/// A session's hourly tool-call budget, counted in the store.
pub struct ToolBudget<'a> {
    pub counters: &'a dyn RateCounters,
    pub per_hour: u32,
}

/// One job's run over one session.
pub struct AgentRun<'a> {
    pub model: &'a dyn Model,
    pub tools: &'a LazyTools,
    /// Tools the worker serves itself (session tools, memory tools).
    pub extra: &'a [&'a dyn ExtraTools],
    pub policy: &'a ToolPolicy,
    /// The sandbox's secrets, redacted from every tool's output.
    pub secrets: &'a [(String, infra::config::Secret)],
    /// Tool specs offered to the model (policy applied).
    pub specs: Vec<ToolSpec>,
    pub store: &'a dyn TranscriptStore,
    pub budget: Option<ToolBudget<'a>>,
    pub lease: &'a Lease,
    pub session: &'a SessionKey,
    pub agent: &'a str,
    pub job_id: &'a str,
    pub system: String,
    pub limits: AgentLimits,
    pub metrics: &'a Metrics,
    /// Where each call's token usage is added up (`infra::usage`), when anywhere.
    pub usage: Option<&'a dyn RateCounters>,
    /// Where this job's tokens are summed for its record, when anywhere.
    pub job_usage: Option<&'a std::sync::Mutex<infra::model::Tokens>>,
    /// `/think` for this session.
    pub thinking: Option<ThinkLevel>,
    /// The memory-flush instruction run before a compaction; `None` runs none (a guest
    /// session, or `memoryFlush.enabled: false`).
    pub flush_prompt: Option<String>,
    /// Told of each step, when someone watches.
    pub progress: Option<&'a dyn Progress>,
    /// Set by `/stop`: checked before each step, and it cuts a model call or `exec` short.
    pub cancel: Option<&'a Cancel>,
    /// Images that came with this job's message, shown with it on every call of the job.
    pub images: &'a [InlineImage],
}

impl AgentRun<'_> {
    /// Runs to an answer or a bound, appending each step to `transcript` and the store.
    pub async fn run(&self, transcript: &mut Transcript) -> Result<AgentOutcome, AgentError> {
        let started = Instant::now();
        let mut turns = 0;
        let mut tool_calls = self.tool_calls_so_far(transcript);
        loop {
            // Tool calls of the latest model turn that have no result yet: after a crash
            // between two calls of one turn, only the unfinished ones run.
            let pending = pending_calls(&transcript.entries);
            if !pending.is_empty() {
                let mut budget_left = self.budget_left(pending.len()).await?;
                for call in pending {
                    self.lease.check()?;
                    if self.cancelled() {
                        return self.record_stop(transcript).await;
                    }
                    let outcome = if tool_calls >= self.limits.max_tool_calls {
                        ToolOutcome::error(format!(
                            "not run: this job's budget of {} tool calls is spent; answer with what you have",
                            self.limits.max_tool_calls
                        ))
                    } else if budget_left == 0 {
                        ToolOutcome::error(
                            "not run: this session's hourly tool-call limit is spent; answer with what you have",
                        )
                    } else {
                        tool_calls += 1;
                        budget_left -= 1;
                        let began = Instant::now();
                        if let Some(progress) = self.progress {
                            progress.tool_started(&call).await;
                        }
                        let mut outcome = self
                            .run_tool(&call)
                            .instrument(phase::span("sandbox"))
                            .await;
                        if self.cancelled() {
                            outcome = ToolOutcome::error(format!(
                                "stopped by the user (/stop) while running; what it printed:\n{}",
                                outcome.output
                            ));
                        }
                        let tool = [("Tool", call.name.as_str())];
                        self.metrics.count(Metric::ToolCalls, &tool).await;
                        self.metrics
                            .time(Metric::ToolDuration, began.elapsed(), &tool)
                            .await;
                        outcome
                    };
                    self.append(
                        transcript,
                        EntryBody::ToolResult {
                            call_id: call.id.clone(),
                            name: call.name.clone(),
                            output: outcome.output,
                            is_error: outcome.is_error,
                        },
                    )
                    .await?;
                }
                continue;
            }
            // The conversation's last word, not a `Delivered` copy of a reply (a job resumed
            // after its WebChat reply was stored must not ask the model again).
            let last = transcript
                .entries
                .iter()
                .rev()
                .find(|e| !matches!(e.body, EntryBody::Delivered { .. }));
            if let Some(EntryBody::Assistant { text, .. }) = last.map(|e| &e.body) {
                return Ok(AgentOutcome::Reply(text.clone().unwrap_or_default()));
            }
            if turns >= self.limits.max_turns {
                return Ok(AgentOutcome::Stopped(format!(
                    "I stopped after {turns} model turns without a final answer (the limit for one message)."
                )));
            }
            if started.elapsed() > self.limits.wall_time {
                return Ok(AgentOutcome::Stopped(format!(
                    "I stopped after {} seconds without a final answer (the time limit for one message).",
                    self.limits.wall_time.as_secs()
                )));
            }
            self.compact_if_needed(transcript).await?;
            self.lease.check()?;
            if self.cancelled() {
                return self.record_stop(transcript).await;
            }
            let context = context(&transcript.entries);
            let message_seq = transcript
                .entries
                .iter()
                .rev()
                .find(|e| {
                    e.job_id.as_deref() == Some(self.job_id)
                        && matches!(e.body, EntryBody::User { .. })
                })
                .map(|e| e.seq);
            let request = ModelRequest {
                system: &self.system,
                history: &context,
                tools: &self.specs,
                max_tokens: self.limits.max_tokens,
                thinking: self.thinking,
                images: message_seq
                    .filter(|_| !self.images.is_empty())
                    .map(|seq| (seq, self.images)),
            };
            let asked = Instant::now();
            let call = self
                .model
                .complete(&request)
                .instrument(phase::span("model"));
            let reply = match self.cancel {
                Some(cancel) => tokio::select! {
                    reply = call => reply?,
                    () = cancel.cancelled() => return self.record_stop(transcript).await,
                },
                None => call.await?,
            };
            self.metrics
                .time(Metric::ModelLatency, asked.elapsed(), &[])
                .await;
            let answered_by = self.add_usage(&reply).await;
            turns += 1;
            let body = EntryBody::Assistant {
                text: reply.text,
                tool_calls: reply.tool_calls,
                model: Some(answered_by),
                usage: reply.usage,
                reasoning: reply.reasoning,
            };
            self.append(transcript, body).await?;
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(Cancel::is_cancelled)
    }

    /// Ends a stopped run in the transcript: every call of the latest turn still unanswered
    /// gets a "not run" result, and the stop itself is the turn's last word.
    async fn record_stop(&self, transcript: &mut Transcript) -> Result<AgentOutcome, AgentError> {
        for call in pending_calls(&transcript.entries) {
            let body = EntryBody::ToolResult {
                call_id: call.id.clone(),
                name: call.name.clone(),
                output: "not run: the user stopped this run (/stop)".into(),
                is_error: true,
            };
            self.append(transcript, body).await?;
        }
        let stop = EntryBody::Assistant {
            text: Some(STOPPED_TEXT.into()),
            tool_calls: vec![],
            model: None,
            usage: None,
            reasoning: vec![],
        };
        self.append(transcript, stop).await?;
        Ok(AgentOutcome::Cancelled)
    }

    /// How many of `wanted` calls the session's hourly budget still allows (all of them when
    /// there is no budget).
    pub(crate) async fn budget_left(&self, wanted: usize) -> Result<usize, AgentError> {
        let Some(budget) = self.budget.as_ref().filter(|b| b.per_hour > 0) else {
            return Ok(wanted);
        };
        let wanted_u32 = u32::try_from(wanted).unwrap_or(u32::MAX);
        let total = budget
            .counters
            .add(
                &format!("tools:{}", self.session),
                Duration::from_secs(3600),
                wanted_u32,
            )
            .instrument(phase::span("store"))
            .await?;
        let before = total.saturating_sub(u64::from(wanted_u32));
        let left = u64::from(budget.per_hour).saturating_sub(before);
        Ok(left.min(wanted as u64) as usize)
    }

    /// Runs one call where it belongs: a session tool here (the policy checked first, whatever
    /// the model asked), anything else in the tool box, which checks the policy where the tool
    /// runs. A panic inside a tool becomes its error result.
    pub(crate) async fn run_tool(&self, call: &ToolCall) -> ToolOutcome {
        let name = call.name.to_ascii_lowercase();
        let run = async {
            if let Some(extra) = self
                .extra
                .iter()
                .find(|e| e.specs().iter().any(|s| s.name == name))
            {
                if !self.policy.allows(&name) {
                    return ToolOutcome::error(format!(
                        "tool {:?} is not allowed by this agent's tool policy",
                        call.name
                    ));
                }
                if let Some(outcome) = extra.run(&name, &call.input).await {
                    return outcome;
                }
            }
            self.tools.get().await.run(&call.name, &call.input).await
        };
        match AssertUnwindSafe(run).catch_unwind().await {
            Ok(outcome) => outcome.redacted(self.secrets),
            Err(_) => {
                tracing::error!(tool = %call.name, session = %self.session, "a tool panicked; reported to the model as a failed call");
                ToolOutcome::error(format!(
                    "tool {:?} failed inside clawgate (an internal error) and did not complete",
                    call.name
                ))
            }
        }
    }

    fn tool_calls_so_far(&self, transcript: &Transcript) -> u32 {
        transcript
            .entries
            .iter()
            .filter(|e| {
                e.job_id.as_deref() == Some(self.job_id)
                    && matches!(e.body, EntryBody::ToolResult { .. })
            })
            .count() as u32
    }

    /// Appends one step: the checkpoint.
    pub(crate) async fn append(
        &self,
        transcript: &mut Transcript,
        body: EntryBody,
    ) -> Result<(), AgentError> {
        let entry = transcript.next_entry(Some(self.job_id), body);
        let stored = self
            .store
            .append_transcript(self.session, self.agent, &entry)
            .instrument(phase::span("store"))
            .await?;
        transcript.push(stored);
        Ok(())
    }

    /// Adds a call's reported tokens to the metrics and the session's and day's totals;
    /// returns which model answered.
    pub(crate) async fn add_usage(&self, reply: &ModelReply) -> String {
        let answered_by = reply.model.clone().unwrap_or_else(|| self.model.name());
        let Some(usage) = reply.usage else {
            return answered_by;
        };
        if let Some(spent) = self.job_usage {
            spent.lock().unwrap_or_else(|p| p.into_inner()).add(&usage);
        }
        self.metrics
            .record(Metric::ModelInputTokens, usage.input as f64, &[])
            .await;
        self.metrics
            .record(Metric::ModelOutputTokens, usage.output as f64, &[])
            .await;
        if let Some(counters) = self.usage {
            let today = chrono::Utc::now().date_naive();
            if let Err(e) =
                infra::usage::record(counters, self.session, today, &answered_by, &usage)
                    .instrument(phase::span("store"))
                    .await
            {
                tracing::warn!(error = %e, "could not add up token usage");
            }
        }
        answered_by
    }
}

/// Results for the tool calls an earlier job asked for and never ran (it failed, was
/// dead-lettered, or the user started over with `/new`): the conversation must answer every
/// tool call before it goes on, or a provider refuses it.
pub fn orphaned_results(transcript: &Transcript, job_id: &str) -> Vec<EntryBody> {
    let latest = transcript
        .entries
        .iter()
        .rev()
        .find(|e| matches!(e.body, EntryBody::Assistant { .. }));
    if latest.is_none_or(|e| e.job_id.as_deref() == Some(job_id)) {
        return vec![];
    }
    pending_calls(&transcript.entries)
        .into_iter()
        .map(|call| EntryBody::ToolResult {
            call_id: call.id,
            name: call.name,
            output: "not run: the request that asked for this call ended before it ran".into(),
            is_error: true,
        })
        .collect()
}

/// The tool calls of the latest assistant turn that have no result after it, in order.
fn pending_calls(transcript: &[TranscriptEntry]) -> Vec<ToolCall> {
    let Some(at) = transcript
        .iter()
        .rposition(|e| matches!(e.body, EntryBody::Assistant { .. }))
    else {
        return vec![];
    };
    let EntryBody::Assistant { tool_calls, .. } = &transcript[at].body else {
        return vec![];
    };
    tool_calls
        .iter()
        .filter(|call| {
            !transcript[at + 1..].iter().any(
                |e| matches!(&e.body, EntryBody::ToolResult { call_id, .. } if *call_id == call.id),
            )
        })
        .cloned()
        .collect()
}

/// What the model sees: the latest summary (if any) and every entry it does not cover, without
/// the `Delivered` copies of replies and the `Options` records.
pub fn context(transcript: &[TranscriptEntry]) -> Vec<TranscriptEntry> {
    let transcript: Vec<TranscriptEntry> = transcript
        .iter()
        .filter(|e| !matches!(e.body, EntryBody::Delivered { .. } | EntryBody::Options(_)))
        .cloned()
        .collect();
    let latest = transcript
        .iter()
        .rposition(|e| matches!(e.body, EntryBody::Summary { .. }));
    let Some(at) = latest else {
        return transcript;
    };
    let EntryBody::Summary { through_seq, .. } = transcript[at].body else {
        return transcript;
    };
    let mut out = vec![transcript[at].clone()];
    out.extend(
        transcript
            .iter()
            .filter(|e| e.seq > through_seq && !matches!(e.body, EntryBody::Summary { .. }))
            .cloned(),
    );
    // A reset summary covers everything: an empty summary text is not worth sending.
    if matches!(&out[0].body, EntryBody::Summary { text, .. } if text.is_empty()) {
        out.remove(0);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::llm::ModelReply;
    use chrono::Utc;
    use infra::model::Channel;
    use infra::store::sqlite::SqliteStore;
    use std::sync::Mutex;

    /// Answers summary requests with a summary and everything else with "ok", recording what
    /// each call saw.
    struct ScriptedModel {
        seen: Mutex<Vec<(String, Vec<TranscriptEntry>)>>,
    }

    #[async_trait::async_trait]
    impl Model for ScriptedModel {
        async fn complete(&self, request: &ModelRequest<'_>) -> Result<ModelReply, LlmError> {
            self.seen
                .lock()
                .unwrap()
                .push((request.system.to_string(), request.history.to_vec()));
            let text = if request.system.starts_with("Summarise") {
                "the user likes blue"
            } else {
                "ok"
            };
            Ok(ModelReply {
                text: Some(text.into()),
                tool_calls: vec![],
                stop: "end_turn".into(),
                usage: None,
                model: None,
                reasoning: vec![],
            })
        }
        fn name(&self) -> String {
            "scripted".into()
        }
    }

    /// Always asks for another tool call.
    struct EndlessModel {
        calls: Mutex<u32>,
    }

    #[async_trait::async_trait]
    impl Model for EndlessModel {
        async fn complete(&self, _: &ModelRequest<'_>) -> Result<ModelReply, LlmError> {
            let mut n = self.calls.lock().unwrap();
            *n += 1;
            let call = |i: u32| ToolCall {
                id: format!("c{n}-{i}"),
                name: "exec".into(),
                input: serde_json::json!({"command": "true"}),
            };
            Ok(ModelReply {
                text: None,
                tool_calls: vec![call(1), call(2)],
                stop: "tool_use".into(),
                usage: None,
                model: None,
                reasoning: vec![],
            })
        }
        fn name(&self) -> String {
            "endless".into()
        }
    }

    /// Runs the agent loop for session `session` of agent `main` with `model` and no tools: a
    /// tool call gets the error "no sandbox in this test".
    async fn run_without_tools(
        model: &dyn Model,
        store: &SqliteStore,
        session: &SessionKey,
        limits: AgentLimits,
        transcript: &mut Transcript,
    ) -> AgentOutcome {
        let policy = ToolPolicy::new(&Default::default());
        let tools = LazyTools::ready(ToolBox::unavailable(
            policy.clone(),
            "no sandbox in this test".into(),
        ));
        AgentRun {
            model,
            tools: &tools,
            extra: &[],
            policy: &policy,
            secrets: &[],
            specs: vec![],
            store,
            budget: None,
            lease: &Lease::default(),
            session,
            agent: "main",
            job_id: "j",
            system: "be helpful".into(),
            limits,
            metrics: &Metrics::default(),
            usage: None,
            job_usage: None,
            thinking: None,
            flush_prompt: None,
            progress: None,
            cancel: None,
            images: &[],
        }
        .run(transcript)
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_model_that_never_stops_is_bounded_by_turns_and_tool_calls() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let session = SessionKey::dm("main", Channel::Telegram, "1");
        let first = TranscriptEntry {
            seq: 0,
            at: Utc::now(),
            job_id: Some("j".into()),
            body: EntryBody::User {
                text: "loop".into(),
                sender: None,
            },
        };
        let mut transcript = Transcript::whole(vec![store
            .append_transcript(&session, "main", &first)
            .await
            .unwrap()]);
        let model = EndlessModel {
            calls: Mutex::new(0),
        };
        let limits = AgentLimits {
            max_turns: 3,
            max_tool_calls: 4,
            ..AgentLimits::default()
        };

        let outcome = run_without_tools(&model, &store, &session, limits, &mut transcript).await;

        assert!(
            matches!(&outcome, AgentOutcome::Stopped(text) if text.contains("3 model turns")),
            "{outcome:?}"
        );
        assert_eq!(*model.calls.lock().unwrap(), 3);
        let results: Vec<String> = transcript
            .entries
            .iter()
            .filter_map(|e| match &e.body {
                EntryBody::ToolResult { output, .. } => Some(output.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(results.len(), 6, "every call gets a result");
        assert!(results[..4]
            .iter()
            .all(|r| r.contains("no sandbox in this test")));
        assert!(
            results[4..]
                .iter()
                .all(|r| r.contains("budget of 4 tool calls is spent")),
            "{results:?}"
        );
    }

    #[tokio::test]
    async fn an_oversized_context_is_compacted_into_a_summary_turn_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let session = SessionKey::dm("main", Channel::Telegram, "1");
        let mut transcript = Transcript::default();
        for seq in 0..40u64 {
            let body = if seq % 2 == 0 {
                EntryBody::User {
                    text: format!("message {seq} {}", "x".repeat(500)),
                    sender: None,
                }
            } else {
                EntryBody::Assistant {
                    text: Some(format!("reply {seq}")),
                    tool_calls: vec![],
                    model: None,
                    usage: None,
                    reasoning: vec![],
                }
            };
            let entry = TranscriptEntry {
                seq,
                at: Utc::now(),
                job_id: None,
                body,
            };
            transcript.push(
                store
                    .append_transcript(&session, "main", &entry)
                    .await
                    .unwrap(),
            );
        }
        let question = TranscriptEntry {
            seq: 40,
            at: Utc::now(),
            job_id: Some("j".into()),
            body: EntryBody::User {
                text: "what colour?".into(),
                sender: None,
            },
        };
        transcript.push(
            store
                .append_transcript(&session, "main", &question)
                .await
                .unwrap(),
        );
        let model = ScriptedModel {
            seen: Mutex::new(vec![]),
        };
        let limits = AgentLimits {
            compact_at_tokens: 1_250,
            keep_recent: 4,
            ..AgentLimits::default()
        };

        let outcome = run_without_tools(&model, &store, &session, limits, &mut transcript).await;

        assert_eq!(outcome, AgentOutcome::Reply("ok".into()));
        let seen = model.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "one summary call, one answer");
        assert!(seen[0].0.starts_with("Summarise"));
        assert!(seen[0].1.len() > 30, "the summary saw the older turns");
        let answer_context = &seen[1].1;
        assert!(
            matches!(&answer_context[0].body, EntryBody::Summary { text, .. } if text == "the user likes blue")
        );
        assert!(answer_context.len() <= 6, "{}", answer_context.len());
        assert!(
            matches!(&answer_context.last().unwrap().body, EntryBody::User { text, .. } if text == "what colour?")
        );
        let stored = store.load_transcript_from(&session, 0).await.unwrap();
        assert_eq!(
            stored.len(),
            43,
            "41 turns + summary + answer: nothing was deleted"
        );
        let next_job = store.load_context(&session).await.unwrap();
        assert!(
            next_job.entries.len() < 12,
            "the next job reads from the summary on, not all {} entries",
            next_job.entries.len()
        );
        assert_eq!(next_job.next_seq, 43);
    }

    #[tokio::test]
    async fn a_job_resumed_after_its_reply_was_delivered_does_not_ask_the_model_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let session = SessionKey::dm("main", Channel::Webchat, "w");
        let mut transcript = Transcript::whole(vec![
            user(0, "hello"),
            entry(
                1,
                EntryBody::Assistant {
                    text: Some("hi there".into()),
                    tool_calls: vec![],
                    model: None,
                    usage: None,
                    reasoning: vec![],
                },
            ),
            entry(
                2,
                EntryBody::Delivered {
                    text: "hi there".into(),
                },
            ),
        ]);
        let model = ScriptedModel {
            seen: Mutex::new(vec![]),
        };

        let outcome = run_without_tools(
            &model,
            &store,
            &session,
            AgentLimits::default(),
            &mut transcript,
        )
        .await;

        assert_eq!(outcome, AgentOutcome::Reply("hi there".into()));
        assert!(model.seen.lock().unwrap().is_empty(), "no model call");
    }

    pub(crate) fn entry(seq: u64, body: EntryBody) -> TranscriptEntry {
        TranscriptEntry {
            seq,
            at: Utc::now(),
            job_id: None,
            body,
        }
    }

    pub(crate) fn user(seq: u64, text: &str) -> TranscriptEntry {
        entry(
            seq,
            EntryBody::User {
                text: text.into(),
                sender: None,
            },
        )
    }

    #[test]
    fn context_starts_at_the_latest_summary_and_keeps_what_it_does_not_cover() {
        let t = vec![
            user(0, "a"),
            user(1, "b"),
            user(2, "c"),
            entry(
                3,
                EntryBody::Summary {
                    text: "a and b".into(),
                    through_seq: 1,
                },
            ),
            user(4, "d"),
        ];
        let seqs: Vec<u64> = context(&t).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [3, 2, 4]);
    }

    #[test]
    fn a_reset_summary_leaves_an_empty_context() {
        let t = vec![
            user(0, "a"),
            entry(
                1,
                EntryBody::Summary {
                    text: String::new(),
                    through_seq: 1,
                },
            ),
        ];
        assert!(context(&t).is_empty());
    }

    #[test]
    fn only_calls_of_the_latest_turn_without_results_are_pending() {
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "exec".into(),
            input: serde_json::json!({}),
        };
        let result = |seq, id: &str| {
            entry(
                seq,
                EntryBody::ToolResult {
                    call_id: id.into(),
                    name: "exec".into(),
                    output: String::new(),
                    is_error: false,
                },
            )
        };
        let mut t = vec![
            entry(
                0,
                EntryBody::Assistant {
                    text: None,
                    tool_calls: vec![call("a"), call("b")],
                    model: None,
                    usage: None,
                    reasoning: vec![],
                },
            ),
            result(1, "a"),
        ];
        let ids = |t: &[TranscriptEntry]| {
            pending_calls(t)
                .iter()
                .map(|c| c.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(&t),
            ["b"],
            "a crash between two calls leaves only the second"
        );
        t.push(result(2, "b"));
        assert!(ids(&t).is_empty());
        t.push(entry(
            3,
            EntryBody::Assistant {
                text: Some("done".into()),
                tool_calls: vec![],
                model: None,
                usage: None,
                reasoning: vec![],
            },
        ));
        assert!(ids(&t).is_empty());
    }
}
