//! The channel contract (docs/architecture.md, "Channels"): what every chat channel provides,
//! so adding one is a module, its fixtures and its fake, plus a line of registration.
//!
//! - **Inbound**: a channel verifies a request ([`WebhookChannel::verify`]) and reads its body
//!   into [`Incoming`] messages; [`ChannelAccount::admit`] is the one place an incoming message
//!   becomes a job: the group rules, mention gating, agent routing, the session key and the
//!   [`InboundMessage`]. Transports that authenticate themselves (Telegram long polling, Slack
//!   Socket Mode, the Discord Gateway) skip `verify` and call the same parser.
//! - **Outbound**: a [`ChannelSender`] per account posts text in the channel's markup within its
//!   chunk limit, edits a posted message (progress previews), sends a file, shows typing and
//!   fetches the files users send.
//! - **Identity**: DMs pass `dmPolicy`/`allowFrom`/pairing in the worker (it holds the store);
//!   groups pass [`GroupAccess`] at ingress and again in the worker
//!   ([`crate::config::ChannelsConfig::access`]).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::{ChannelError, OutboundFile, WebhookError};
use crate::config::{AgentRoutes, GroupAccess, GroupVerdict, RouteFacts};
use crate::model::{
    Channel, ChatKind, ChatRef, InboundMessage, JobMessage, MediaRef, MediaSource, ReplyTarget,
    Sender, SessionKey, SubThread,
};

/// What the gateway knows about one account of a channel (a bot, an app, a phone number).
#[derive(Debug, Clone)]
pub struct ChannelAccount {
    pub channel: Channel,
    /// The account's name in the config (`default` unless the channel has several).
    pub account: String,
    /// Which agent answers which chat (`bindings`, the accounts' `agent`, the default).
    pub routes: std::sync::Arc<AgentRoutes>,
    /// Who may reach the agent in groups and channels.
    pub groups: GroupAccess,
}

/// One message a channel's parser read, before policy and routing.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    /// The channel's own id for the event, unique per account (Telegram `update_id`, Slack
    /// `event_id`, WhatsApp `wamid`): with the account it is the queue's dedup id, so a
    /// redelivery is recognised.
    pub event_id: &'a str,
    pub kind: ChatKind,
    /// The chat: a DM's is the conversation's id on the channel (often the sender's).
    pub chat_id: &'a str,
    pub sender: Sender,
    pub text: String,
    pub media: Vec<MediaRef>,
    /// A thread or topic that gets a session of its own.
    pub sub: Option<SubThread>,
    /// The workspace (Slack team, Discord guild), for bindings that match on it and group
    /// rules that depend on it (kept as the chat's `space`).
    pub team_id: Option<&'a str>,
    /// The bot was addressed: mentioned, replied to, a button or a slash command. In a group
    /// whose `requireMention` is on, nothing else is answered.
    pub addressed: bool,
    pub reply_to: ReplyTarget,
}

/// What a request (or a polled update, or a socket event) became.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Queue these, then answer with `ack` (a channel-specific body, e.g. Discord's deferred
    /// response) or a plain "queued".
    Queue {
        jobs: Vec<JobMessage>,
        ack: Option<Value>,
    },
    /// Acknowledged and not queued, with the reason (for logs).
    Ignored(&'static str),
    /// The channel's handshake (Slack's `url_verification`, Discord's PING): answered with this
    /// body, nothing queued.
    Answer(Value),
}

impl Parsed {
    /// One job, acknowledged plainly.
    pub fn job(job: JobMessage) -> Parsed {
        Parsed::Queue {
            jobs: vec![job],
            ack: None,
        }
    }

    /// The jobs this queues (none for an ignored event or a handshake).
    pub fn jobs(&self) -> &[JobMessage] {
        match self {
            Parsed::Queue { jobs, .. } => jobs,
            _ => &[],
        }
    }
}

impl ChannelAccount {
    /// The one constructor of a channel's job: the group rules and mention gating (a refusal is
    /// an ignored event: nothing reaches the queue), the agent the bindings pick, the session
    /// key (a DM's peer is the sender; a group's is the chat, narrowed to its thread or topic),
    /// and the [`InboundMessage`] with its dedup id `<channel>:<account>:<event id>`.
    pub fn admit(
        &self,
        incoming: Incoming<'_>,
        now: DateTime<Utc>,
    ) -> Result<Parsed, WebhookError> {
        let Incoming {
            event_id,
            kind,
            chat_id,
            sender,
            text,
            media,
            sub,
            team_id,
            addressed,
            reply_to,
        } = incoming;
        if kind != ChatKind::Dm {
            match self.groups.verdict(chat_id, &sender.id) {
                GroupVerdict::Refuse(why) => return Ok(Parsed::Ignored(why)),
                GroupVerdict::Admit { require_mention } if require_mention && !addressed => {
                    return Ok(Parsed::Ignored("group message without a mention"))
                }
                GroupVerdict::Admit { .. } => {}
            }
        }
        let topic = match &sub {
            Some(SubThread::Topic(t)) => Some(t.as_str()),
            _ => None,
        };
        let route = self.routes.route(&RouteFacts {
            channel: self.channel,
            account: &self.account,
            peer_kind: kind,
            peer_id: if kind == ChatKind::Dm {
                &sender.id
            } else {
                chat_id
            },
            topic,
            team_id,
        });
        let agent = route.agent.as_str();
        let session = match kind {
            ChatKind::Dm => SessionKey::dm(agent, self.channel, &sender.id),
            _ => {
                let mut key = SessionKey::group(agent, self.channel, chat_id);
                if let SessionKey::Peer { kind: k, .. } = &mut key {
                    *k = kind;
                }
                match sub {
                    Some(sub) => key.with_sub(sub),
                    None => key,
                }
            }
        };
        session
            .validate()
            .map_err(|e| WebhookError::NotAnEvent(e.to_string()))?;
        let mut chat = ChatRef::new(kind, chat_id);
        chat.space = team_id.map(str::to_string);
        let mut inbound = InboundMessage::new(
            self.channel,
            &self.account,
            format!("{}:{}:{event_id}", self.channel, self.account),
            chat,
            sender,
            text,
        );
        inbound.received_at = now;
        inbound.media = media;
        Ok(Parsed::job(JobMessage::new(
            session,
            agent,
            inbound,
            Some(reply_to),
        )))
    }
}

/// Why a webhook request was refused before its body was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 401: a bad or missing signature or secret, or a stale timestamp.
    #[error("{0}")]
    Unauthorized(String),
    /// 503: the secret needed to verify is not configured, so nothing can be accepted.
    #[error("{0}")]
    NotConfigured(String),
}

/// What a webhook request brings to its verification.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    pub headers: &'a HeaderMap,
    /// The URL's query string: where a platform that cannot sign or set headers carries the
    /// shared secret (BlueBubbles).
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

impl<'a> WebhookRequest<'a> {
    pub fn new(headers: &'a HeaderMap, body: &'a [u8]) -> Self {
        WebhookRequest {
            headers,
            query: None,
            body,
        }
    }

    /// The query parameter `name`, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let url = reqwest::Url::parse(&format!("http://q/?{}", self.query?)).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// A channel that pushes events over HTTP.
pub trait WebhookChannel: Send + Sync {
    fn account(&self) -> &ChannelAccount;
    /// Checks that the request came from the channel (signature or shared secret over the raw
    /// body, timestamp freshness), before anything reads the body.
    fn verify(&self, request: &WebhookRequest<'_>, now: DateTime<Utc>) -> Result<(), Refusal>;
    /// Reads a verified body.
    fn parse(&self, body: &[u8], now: DateTime<Utc>) -> Result<Parsed, WebhookError>;
}

/// A channel's outbound side for one account. A target of another channel is a permanent
/// error ([`wrong_target`]).
#[async_trait]
pub trait ChannelSender: Send + Sync {
    fn channel(&self) -> Channel;
    /// The longest message, in characters; replies are split to it.
    fn max_message_chars(&self) -> usize;
    /// The least time between two edits of one message (the API's pace).
    fn min_edit_interval(&self) -> Duration {
        Duration::from_secs(1)
    }
    /// Posts a new message (text as the model wrote it; the sender escapes or converts it for
    /// the channel's markup) and returns its id for [`Self::edit`].
    async fn post(&self, target: &ReplyTarget, text: &str) -> Result<String, ChannelError>;
    /// Replaces the text of message `id`. A channel that cannot edit keeps this default (and
    /// says so in [`Self::can_edit`]); the worker then shows no preview there.
    async fn edit(
        &self,
        _target: &ReplyTarget,
        _id: &str,
        _text: &str,
    ) -> Result<(), ChannelError> {
        Err(ChannelError::Permanent {
            channel: self.channel().as_str(),
            message: "a sent message cannot be edited on this channel".into(),
        })
    }
    /// Whether [`Self::edit`] works here (previews need it).
    fn can_edit(&self) -> bool {
        false
    }
    /// Sends a file. A channel whose files are not built yet keeps this default, which says so.
    async fn send_file(
        &self,
        _target: &ReplyTarget,
        _file: &OutboundFile,
    ) -> Result<(), ChannelError> {
        Err(ChannelError::Permanent {
            channel: self.channel().as_str(),
            message: format!("sending files to {} is not built yet", self.channel()),
        })
    }
    /// Shows "typing…" once; the worker repeats it every [`Self::typing_interval`].
    async fn typing(&self, _target: &ReplyTarget) -> Result<(), ChannelError> {
        Ok(())
    }
    /// How often typing is refreshed; `None` when the channel has no typing indicator.
    fn typing_interval(&self) -> Option<Duration> {
        None
    }
    /// Fetches a file a user sent, refusing one over `max_bytes`. A channel whose inbound
    /// files are not fetched yet keeps this default (its parser makes no file references).
    async fn download(
        &self,
        _source: &MediaSource,
        _max_bytes: u64,
    ) -> Result<Vec<u8>, ChannelError> {
        Err(ChannelError::Permanent {
            channel: self.channel().as_str(),
            message: format!("{} files are not fetched yet", self.channel()),
        })
    }
}

/// The error for a target or file source of another channel.
pub fn wrong_target(channel: &'static str, what: &str) -> ChannelError {
    ChannelError::Permanent {
        channel,
        message: format!("{what} is not a {channel} target"),
    }
}
