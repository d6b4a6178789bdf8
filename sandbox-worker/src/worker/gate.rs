//! Who may reach the agent, checked before anything of a job runs: the DM policy (allowlist,
//! pairing), the group policy, the hop limit of messages between sessions, and the rate limits
//! per sender and per session. Nothing here calls a model.
//!
//! Decisions (docs/security.md):
//! - Group and channel messages were checked at ingress too, but a job can reach the queue by
//!   other roads (an old gateway, a replayed message), so the worker checks again, fail closed.
//! - WebChat and hook jobs passed the gateway token at ingress; their sessions are still rate
//!   limited. A job another session sent (`sessions_send`) is bounded by its hop count.
//! - Rate limits are counted in the store (so they hold across a fleet), once per job (a
//!   redelivered job is not counted again). Over a limit, the first refused message of a
//!   window gets a short notice and later ones in that window get nothing, so a flood cannot
//!   make the bot flood the chat back.

use std::time::Duration;

use infra::config::{listed, DmPolicy, GroupVerdict};
use infra::model::{Channel, ChatKind, JobMessage, JobRecord};
use infra::store::StoreError;
use tracing::Instrument;

use super::job::JobError;
use super::Worker;
use crate::phase;

/// What the gate decided about a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Go on: commands, the model.
    Proceed,
    /// Stop and say nothing; the reason is logged.
    Drop(&'static str),
    /// Stop and answer with this text (a pairing code, a rate-limit notice).
    Answer(String),
}

const MINUTE: Duration = Duration::from_secs(60);

impl Worker {
    pub(super) async fn gate(
        &self,
        job: &JobMessage,
        record: &JobRecord,
    ) -> Result<Gate, JobError> {
        let gate = self.who_may(job).await?;
        if gate != Gate::Proceed {
            return Ok(gate);
        }
        if record.attempt > 1 || job.collected {
            // Counted on its first attempt; a collected turn's messages were counted each.
            return Ok(Gate::Proceed);
        }
        self.rate_limits(job).await
    }

    async fn who_may(&self, job: &JobMessage) -> Result<Gate, JobError> {
        let inbound = &job.inbound;
        if let Some(origin) = &job.origin {
            return Ok(
                if origin.depth > self.config.limits.sessions_send_max_depth {
                    Gate::Drop("too many sessions_send hops")
                } else {
                    Gate::Proceed
                },
            );
        }
        let access = match inbound.channel {
            // Both passed the gateway token at ingress.
            Channel::Webchat | Channel::Hook => return Ok(Gate::Proceed),
            channel => match self
                .config
                .channels
                .access(channel, inbound.chat.space.as_deref())
            {
                Some(access) => access,
                None => return Ok(Gate::Drop("the channel is not configured")),
            },
        };
        let (dm_policy, allow_from, groups) = (access.dm_policy, access.allow_from, access.groups);
        if inbound.chat.kind != ChatKind::Dm {
            return Ok(match groups.verdict(&inbound.chat.id, &inbound.sender.id) {
                GroupVerdict::Admit { .. } => Gate::Proceed,
                GroupVerdict::Refuse(why) => Gate::Drop(why),
            });
        }
        let channel = inbound.channel.as_str();
        let peer = &inbound.sender.id;
        let store = &self.backends.store;
        let allowed = || async {
            Ok::<_, StoreError>(
                listed(allow_from, peer)
                    || store
                        .is_allowed(channel, &inbound.account, peer)
                        .instrument(phase::span("store"))
                        .await?,
            )
        };
        match dm_policy {
            DmPolicy::Open => Ok(Gate::Proceed),
            DmPolicy::Disabled => Ok(Gate::Drop("dmPolicy is \"disabled\"")),
            DmPolicy::Allowlist => Ok(if allowed().await? {
                Gate::Proceed
            } else {
                Gate::Drop("the sender is not on the allowlist")
            }),
            DmPolicy::Pairing => {
                if allowed().await? {
                    return Ok(Gate::Proceed);
                }
                let ttl = self.settings.pairing_ttl;
                let text = match store
                    .request_pairing(channel, &inbound.account, peer, inbound.sender.name.as_deref(), ttl)
                    .instrument(phase::span("store"))
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
                Ok(Gate::Answer(text))
            }
        }
    }

    async fn rate_limits(&self, job: &JobMessage) -> Result<Gate, JobError> {
        let limits = &self.config.limits;
        let inbound = &job.inbound;
        let sender = format!(
            "sender:{}:{}:{}",
            inbound.channel, inbound.account, inbound.sender.id
        );
        let session = format!("session:{}", job.session_key);
        let checks = [
            (sender, limits.sender_messages_per_minute, "you"),
            (session, limits.session_messages_per_minute, "this chat"),
        ];
        for (key, limit, who) in checks {
            // Messages between sessions are bounded by sessionsSendPerMinute instead.
            if limit == 0 || (job.origin.is_some() && who == "you") {
                continue;
            }
            let count = self
                .backends
                .store
                .add(&key, MINUTE, 1)
                .instrument(phase::span("store"))
                .await?;
            if count > u64::from(limit) {
                return Ok(if count == u64::from(limit) + 1 && job.reply_to.is_some() {
                    Gate::Answer(format!(
                        "⏳ That's more than {limit} messages a minute from {who}; I'll skip messages for the rest of this minute. Please slow down."
                    ))
                } else {
                    Gate::Drop("over a rate limit")
                });
            }
        }
        Ok(Gate::Proceed)
    }
}
