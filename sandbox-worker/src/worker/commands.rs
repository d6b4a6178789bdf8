//! Chat commands answered without the model: `/new` (and `/reset`), `/status`, `/usage`,
//! `/whoami`, `/help`. Anything else that starts with `/` goes to the model.

use infra::model::{EntryBody, JobMessage, Transcript};

use super::job::JobError;
use super::Worker;
use crate::agent::orphaned_results;
use crate::llm::{model_for, RetryPolicy};
use crate::profile::SessionSetup;

impl Worker {
    /// The command's answer, or `None` when the message is not a command.
    pub(super) async fn command(
        &self,
        job: &JobMessage,
        setup: &SessionSetup,
        transcript: &mut Transcript,
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
        Ok(Some(match command.as_str() {
            "/new" | "/reset" => {
                self.start_over(job, transcript).await?;
                "Started a new conversation.".to_string()
            }
            "/status" => {
                let model = model_for(
                    &setup.profile,
                    &self.config.models.providers,
                    self.http.clone(),
                    RetryPolicy::default(),
                )
                .map_or_else(|e| format!("not configured ({e})"), |m| m.name());
                format!(
                    "Session: {}\nModel: {model}\nSandbox: mode {}, {}\nTranscript: {} entries",
                    job.session_key,
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
            "/help" => "Commands:\n/new or /reset: start a new conversation\n/status: model, sandbox and transcript size\n/usage: tokens and estimated cost, this session and today\n/whoami: who you are to the assistant, and whose session this is\n/help: this list\nAnything else goes to the assistant.".to_string(),
            _ => return Ok(None),
        }))
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
