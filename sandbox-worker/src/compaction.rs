//! Compaction by tokens, and the memory flush before it.
//!
//! The context's size is what the provider counted: the latest model call's prompt and answer
//! (its reported usage), plus an estimate of four bytes a token for the entries after it; a
//! context with no reported usage is estimated whole. Past `AgentLimits::compact_at_tokens`
//! (the agent's `contextTokens` less `compaction.reserveTokensFloor`), the older part is
//! summarised into a `Summary` entry; `/compact` does the same on demand.
//!
//! Decisions:
//! - The memory flush (OpenClaw's): right before a compaction, in owner sessions with
//!   `compaction.memoryFlush.enabled`, one silent agentic turn asks the model to write what
//!   should last to `memory/<today>.md` with its tools. It runs on a private copy of the
//!   context: its prompt, answers and tool results never enter the transcript, and the user
//!   sees nothing; the files it writes stay. It runs once per compaction (a crash between the
//!   flush and the summary repeats both on the retry, which can write a note twice).
//! - Guest sessions get no flush: a group's words are not promoted into the owner's memory
//!   without the owner.
//! - The flush is bounded (`MAX_FLUSH_TURNS` model calls) and its tool calls count against the
//!   session's hourly tool budget like any other.

use infra::model::{EntryBody, Transcript, TranscriptEntry};
use tracing::Instrument;

use crate::agent::{context, AgentError, AgentRun};
use crate::llm::ModelRequest;
use crate::phase;
use crate::tools::ToolOutcome;

/// The most model calls one memory flush makes.
pub const MAX_FLUSH_TURNS: usize = 4;

const SUMMARY_PROMPT: &str = "Summarise the conversation so far for your own later use: the user's goals, decisions made, facts learned, files touched and open tasks. Be concise and concrete.";

/// The flush instruction when the config gives none; `{date}` is today (UTC).
pub const DEFAULT_FLUSH_PROMPT: &str = "Pre-compaction memory flush: the older part of this conversation is about to be summarised, and its details will leave your context. Write anything that should outlast it (facts about the user, decisions, open tasks) to memory/{date}.md in the workspace now: append if it exists, create memory/ if needed. Do not reply to the user; answer NO_REPLY when done.";

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compacted {
    /// Entries up to and including `through_seq` are now covered by a summary.
    Summarised {
        through_seq: u64,
        before_tokens: u64,
    },
    /// Too little history to summarise (everything is recent).
    NothingToDo,
}

/// The context's size in tokens (see the module's rule).
pub fn context_tokens(context: &[TranscriptEntry]) -> u64 {
    let estimate = |entries: &[TranscriptEntry]| -> u64 {
        entries.iter().map(|e| e.encoded_len() as u64 / 4).sum()
    };
    let counted = context
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, e)| match &e.body {
            EntryBody::Assistant {
                usage: Some(usage), ..
            } => Some((i, usage.prompt() + usage.output)),
            _ => None,
        });
    match counted {
        Some((i, tokens)) => tokens + estimate(&context[i + 1..]),
        None => estimate(context),
    }
}

impl AgentRun<'_> {
    /// Compacts when the context has outgrown its budget.
    pub(crate) async fn compact_if_needed(
        &self,
        transcript: &mut Transcript,
    ) -> Result<Compacted, AgentError> {
        let tokens = context_tokens(&context(&transcript.entries));
        if tokens <= self.limits.compact_at_tokens {
            return Ok(Compacted::NothingToDo);
        }
        self.compact(transcript, None).await
    }

    /// Summarises the older part of the context (all but the last `keep_recent` entries, cut
    /// before a user message so no tool call is parted from its result), after the memory
    /// flush. `instructions` (from `/compact <text>`) steer the summary.
    pub async fn compact(
        &self,
        transcript: &mut Transcript,
        instructions: Option<&str>,
    ) -> Result<Compacted, AgentError> {
        let context = context(&transcript.entries);
        let before_tokens = context_tokens(&context);
        if context.len() <= self.limits.keep_recent + 1 {
            return Ok(Compacted::NothingToDo);
        }
        let mut cut = context.len() - self.limits.keep_recent;
        while cut > 1 && !matches!(context[cut].body, EntryBody::User { .. }) {
            cut -= 1;
        }
        if cut <= 1 {
            return Ok(Compacted::NothingToDo);
        }
        if let Some(prompt) = &self.flush_prompt {
            self.flush_memory(&context, prompt).await?;
        }
        let older = &context[..cut];
        // An earlier summary leads the context with the highest seq of all; the new one stands
        // for what it summarised and the entries after it, up to the cut.
        let through_seq = older
            .iter()
            .filter(|e| !matches!(e.body, EntryBody::Summary { .. }))
            .map(|e| e.seq)
            .max()
            .unwrap_or(0);
        let system = match instructions {
            Some(extra) => format!("{SUMMARY_PROMPT}\nThe user asked: {extra}"),
            None => SUMMARY_PROMPT.to_string(),
        };
        self.lease.check()?;
        let summary = self
            .model
            .complete(&ModelRequest {
                system: &system,
                history: older,
                tools: &[],
                max_tokens: 1024,
                thinking: None,
                images: None,
            })
            .instrument(phase::span("model"))
            .await?;
        self.add_usage(&summary).await;
        let text = summary.text.unwrap_or_default();
        tracing::info!(session = %self.session, through_seq, before_tokens, "compacted older turns into a summary");
        self.append(transcript, EntryBody::Summary { text, through_seq })
            .await?;
        Ok(Compacted::Summarised {
            through_seq,
            before_tokens,
        })
    }

    /// The silent memory-flush turn on a private copy of `context` (see the module's
    /// decisions).
    async fn flush_memory(
        &self,
        context: &[TranscriptEntry],
        prompt: &str,
    ) -> Result<(), AgentError> {
        let mut view = context.to_vec();
        let next = |view: &[TranscriptEntry], body| TranscriptEntry {
            seq: view.last().map_or(0, |e| e.seq + 1),
            at: chrono::Utc::now(),
            job_id: Some(self.job_id.to_string()),
            body,
        };
        let date = chrono::Utc::now().date_naive().to_string();
        view.push(next(
            &view,
            EntryBody::User {
                text: prompt.replace("{date}", &date),
                sender: None,
            },
        ));
        for _ in 0..MAX_FLUSH_TURNS {
            self.lease.check()?;
            let reply = self
                .model
                .complete(&ModelRequest {
                    system: &self.system,
                    history: &view,
                    tools: &self.specs,
                    max_tokens: self.limits.max_tokens,
                    thinking: None,
                    images: None,
                })
                .instrument(phase::span("model"))
                .await?;
            self.add_usage(&reply).await;
            let calls = reply.tool_calls.clone();
            view.push(next(
                &view,
                EntryBody::Assistant {
                    text: reply.text,
                    tool_calls: reply.tool_calls,
                    model: reply.model,
                    usage: reply.usage,
                    reasoning: reply.reasoning,
                },
            ));
            if calls.is_empty() {
                break;
            }
            let mut left = self.budget_left(calls.len()).await?;
            for call in calls {
                self.lease.check()?;
                let outcome = if left == 0 {
                    ToolOutcome::error("not run: this session's hourly tool-call limit is spent")
                } else {
                    left -= 1;
                    self.run_tool(&call)
                        .instrument(phase::span("sandbox"))
                        .await
                };
                view.push(next(
                    &view,
                    EntryBody::ToolResult {
                        call_id: call.id,
                        name: call.name,
                        output: outcome.output,
                        is_error: outcome.is_error,
                    },
                ));
            }
        }
        tracing::info!(session = %self.session, "memory flush before compaction done");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::tests::{entry, user};
    use infra::model::Tokens;

    #[test]
    fn the_providers_count_is_used_and_only_what_follows_it_is_estimated() {
        let answered = entry(
            1,
            EntryBody::Assistant {
                text: Some("hi".into()),
                tool_calls: vec![],
                model: None,
                usage: Some(Tokens {
                    input: 1_000,
                    output: 50,
                    cache_read: 9_000,
                    cache_write: 0,
                }),
                reasoning: vec![],
            },
        );
        let after = user(2, &"x".repeat(4_000));
        let after_tokens = after.encoded_len() as u64 / 4;

        let tokens = context_tokens(&[user(0, &"y".repeat(400_000)), answered, after]);

        assert_eq!(tokens, 10_050 + after_tokens);
    }

    #[test]
    fn without_any_reported_usage_the_whole_context_is_estimated() {
        let entries = [user(0, &"y".repeat(4_000)), user(1, "z")];
        let expected: u64 = entries.iter().map(|e| e.encoded_len() as u64 / 4).sum();
        assert_eq!(context_tokens(&entries), expected);
        assert!(expected > 1_000);
    }
}
