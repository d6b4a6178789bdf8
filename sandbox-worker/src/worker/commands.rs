//! Chat commands answered without the model: `/new` (and `/reset`), `/status`, `/model`,
//! `/think`, `/usage`, `/whoami`, `/help`, `/stop`; `/compact` runs a compaction. Anything
//! else that starts with `/` goes to the model.
//!
//! `/stop` arrives in its own queue lane beside its session's (`JobMessage::is_stop`), so it
//! runs while the session's job does: it records the stop time, which the running job reads
//! (`worker::live`), and touches nothing else of the session.
//!
//! Decisions:
//! - `/model <name>` and `/think <level>` change only the session they are sent in, and only
//!   in the owner's sessions: which model runs (and what it costs) is the owner's call, never a
//!   group member's. Anyone may ask what they are set to.
//! - The choice is an `Options` entry in the transcript (the store keeps it on the session),
//!   so it holds across jobs, workers and compactions, and the history says when it changed.
//! - `/model` takes a model the config can reach: a configured provider's `provider/model`.

use infra::config::Trust;
use infra::model::{
    command_word, EntryBody, JobMessage, ReplyTarget, SessionOptions, ThinkLevel, Transcript,
};

use super::job::JobError;
use super::Worker;
use crate::agent::orphaned_results;
use crate::llm::{model_for, RetryPolicy};
use crate::profile::SessionSetup;

/// What a command asks of the job.
pub(super) enum Command {
    /// Deliver this text; nothing else happens.
    Answer(String),
    /// Nothing to say (`/stop` on WebChat).
    Done,
    /// `/compact [instructions]`: summarise the older part of the session now.
    Compact(Option<String>),
}

const OWNER_ONLY_STOP: &str = "Only the owner can stop a run, in the owner's own sessions.";

const OWNER_ONLY: &str = "Only the owner can change this, in the owner's own sessions (a direct message or the main session).";

impl Worker {
    /// What the message asks for when it is a command; `None` when it is not one.
    pub(super) async fn command(
        &self,
        job: &JobMessage,
        setup: &SessionSetup,
        transcript: &mut Transcript,
    ) -> Result<Option<Command>, JobError> {
        let Some((command, argument)) = command_word(&job.inbound.text) else {
            return Ok(None);
        };
        let answer = match command.as_str() {
            "/stop" => {
                if setup.trust != Trust::Owner {
                    return Ok(Some(Command::Answer(OWNER_ONLY_STOP.into())));
                }
                let at = job.inbound.received_at.timestamp_millis();
                self.backends.store.request_stop(&job.session_key, at).await?;
                // This job runs beside the session's own lane: on WebChat a reply would be a
                // transcript entry racing the stopped run's, so the stopped run says it there.
                if matches!(job.reply_to, Some(ReplyTarget::Webchat(_))) {
                    return Ok(Some(Command::Done));
                }
                "⏹ Stopped.".to_string()
            }
            "/new" | "/reset" => {
                self.start_over(job, transcript).await?;
                "Started a new conversation.".to_string()
            }
            "/compact" => {
                return Ok(Some(Command::Compact(
                    (!argument.is_empty()).then(|| argument.to_string()),
                )))
            }
            "/model" => self.model_command(job, setup, transcript, argument).await?,
            "/think" => self.think_command(job, setup, transcript, argument).await?,
            "/status" => {
                let model = model_for(
                    &setup.profile_for(&transcript.options),
                    &self.config.models.providers,
                    &self.model_keys,
                    self.http.clone(),
                    RetryPolicy::default(),
                )
                .map_or_else(|e| format!("not configured ({e})"), |m| m.name());
                format!(
                    "Session: {}\nModel: {model}\nThinking: {}\nSandbox: mode {}, {}\nTranscript: {} entries",
                    job.session_key,
                    transcript.options.thinking.unwrap_or_default().as_str(),
                    setup.plan.mode.as_str(),
                    setup.sandbox_line(),
                    transcript.next_seq
                )
            }
            "/usage" => {
                let models = self.config.model_names();
                let counters = self.backends.store.as_ref();
                let pricing = &self.config.models.pricing;
                let today = chrono::Utc::now().date_naive();
                let session = infra::usage::session_totals(counters, &job.session_key, &models).await?;
                let day = infra::usage::day_totals(counters, today, &models).await?;
                format!(
                    "Tokens in this session:\n{}\n\nToday ({today}, all sessions):\n{}",
                    infra::usage::describe(&session, pricing),
                    infra::usage::describe(&day, pricing)
                )
            }
            "/whoami" => format!(
                "You: {} on {} ({})\nSession: {}\nThis session is {}'s: {}",
                job.inbound.sender.id,
                job.inbound.channel.as_str(),
                job.inbound.sender.name.as_deref().unwrap_or("no name given"),
                job.session_key,
                setup.trust.as_str(),
                setup.plan.trust_reason
            ),
            "/help" => "Commands:\n/new or /reset: start a new conversation\n/status: model, sandbox and transcript size\n/model [provider/model | default]: show or change this session's model\n/think [off|minimal|low|medium|high]: show or change how hard the model thinks first\n/compact [instructions]: summarise the older part of this conversation now\n/usage: tokens and estimated cost, this session and today\n/whoami: who you are to the assistant, and whose session this is\n/stop: stop what the assistant is doing now\n/help: this list\nAnything else goes to the assistant.".to_string(),
            _ => return Ok(None),
        };
        Ok(Some(Command::Answer(answer)))
    }

    /// `/model`: shows the session's model chain, or (the owner) sets its primary.
    async fn model_command(
        &self,
        job: &JobMessage,
        setup: &SessionSetup,
        transcript: &mut Transcript,
        argument: &str,
    ) -> Result<String, JobError> {
        let current = setup.profile_for(&transcript.options);
        if argument.is_empty() {
            let whose = if transcript.options.model.is_some() {
                "chosen for this session"
            } else {
                "the agent's"
            };
            return Ok(format!(
                "Model: {} ({whose})\nFallbacks: {}\nConfigured: {}\nChange it with /model <provider/model>; /model default goes back to the agent's.",
                current.model,
                if current.fallbacks.is_empty() { "none".to_string() } else { current.fallbacks.join(", ") },
                self.config.model_names().join(", ")
            ));
        }
        if setup.trust != Trust::Owner {
            return Ok(OWNER_ONLY.into());
        }
        let model = match argument {
            "default" | "reset" => None,
            name => {
                let mut probe = (*setup.profile).clone();
                (probe.model, probe.fallbacks) = (name.to_string(), vec![]);
                let providers = &self.config.models.providers;
                let configured = match name.split_once('/').map(|(p, _)| p) {
                    Some("anthropic") => providers.anthropic.is_configured(),
                    Some("openai") => providers.openai.is_configured(),
                    _ => false,
                };
                let usable = name.len() <= 200
                    && configured
                    && model_for(
                        &probe,
                        &self.config.models.providers,
                        &self.model_keys,
                        self.http.clone(),
                        RetryPolicy::default(),
                    )
                    .is_ok();
                if !usable {
                    return Ok(format!(
                        "No model {:?} can be reached: use provider/model with a configured provider (anthropic, openai). Configured: {}",
                        name.chars().take(200).collect::<String>(),
                        self.config.model_names().join(", ")
                    ));
                }
                Some(name.to_string())
            }
        };
        let options = SessionOptions {
            model,
            ..transcript.options.clone()
        };
        self.append(job, transcript, EntryBody::Options(options))
            .await?;
        Ok(format!(
            "Model for this session: {}. The next message uses it.",
            setup.profile_for(&transcript.options).model
        ))
    }

    /// `/think`: shows the session's thinking level, or (the owner) sets it.
    async fn think_command(
        &self,
        job: &JobMessage,
        setup: &SessionSetup,
        transcript: &mut Transcript,
        argument: &str,
    ) -> Result<String, JobError> {
        let levels = ThinkLevel::ALL.map(ThinkLevel::as_str).join(", ");
        if argument.is_empty() {
            return Ok(format!(
                "Thinking: {}\nChange it with /think <{levels}>.",
                transcript.options.thinking.unwrap_or_default().as_str()
            ));
        }
        let Some(level) = ThinkLevel::parse(argument) else {
            return Ok(format!(
                "Unknown thinking level {:?}: use one of {levels}.",
                argument.chars().take(40).collect::<String>()
            ));
        };
        if setup.trust != Trust::Owner {
            return Ok(OWNER_ONLY.into());
        }
        let options = SessionOptions {
            thinking: Some(level),
            ..transcript.options.clone()
        };
        self.append(job, transcript, EntryBody::Options(options))
            .await?;
        Ok(format!(
            "Thinking: {}. The next message uses it.",
            level.as_str()
        ))
    }

    /// `/new`: answers any tool call left open, then a summary that covers everything with no
    /// text, so later contexts (and later jobs' reads) start empty; the old turns stay stored.
    async fn start_over(
        &self,
        job: &JobMessage,
        transcript: &mut Transcript,
    ) -> Result<(), JobError> {
        let already = transcript.entries.iter().any(|e| {
            e.job_id.as_deref() == Some(&job.job_id) && matches!(e.body, EntryBody::Summary { .. })
        });
        if already || transcript.next_seq == 0 {
            return Ok(());
        }
        for body in orphaned_results(transcript, &job.job_id) {
            self.append(job, transcript, body).await?;
        }
        let through_seq = transcript.next_seq;
        self.append(
            job,
            transcript,
            EntryBody::Summary {
                text: String::new(),
                through_seq,
            },
        )
        .await
    }
}
