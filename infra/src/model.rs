//! Domain types shared by the webhook functions and the workers: session keys, inbound messages,
//! reply targets, the versioned job message, transcript entries and job records.
//!
//! Nothing here names an AWS, bollard or axum type; the adapters translate at the edges.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The job message version this build writes and the newest it can read.
pub const JOB_MESSAGE_VERSION: u32 = 1;

/// The largest encoded job message accepted at ingress. SQS's classic limit is 256 KiB; we keep
/// to it so the same message fits every queue (SQS, LocalStack, moto, the embedded queue).
pub const MAX_JOB_MESSAGE_BYTES: usize = 256 * 1024;

/// The longest session key we accept. Keys are built from channel ids, which are short; the
/// bound keeps a hostile id from producing a key that cannot be stored or used as a group id.
pub const MAX_SESSION_KEY_LEN: usize = 512;

/// A chat channel clawgate speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Telegram,
    Slack,
    Webchat,
    Hook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Telegram => "telegram",
            Channel::Slack => "slack",
            Channel::Webchat => "webchat",
            Channel::Hook => "hook",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "telegram" => Ok(Channel::Telegram),
            "slack" => Ok(Channel::Slack),
            "webchat" => Ok(Channel::Webchat),
            "hook" => Ok(Channel::Hook),
            other => Err(ModelError::UnknownChannel(other.to_string())),
        }
    }
}

/// What kind of conversation a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    Dm,
    Group,
    Channel,
}

impl ChatKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Dm => "dm",
            ChatKind::Group => "group",
            ChatKind::Channel => "channel",
        }
    }
}

/// Errors from building or parsing domain values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("invalid session key {key:?}: {reason}")]
    InvalidSessionKey { key: String, reason: String },
    #[error("unknown channel {0:?} (expected telegram, slack, webchat or hook)")]
    UnknownChannel(String),
}

/// A sub-conversation inside a chat: a Slack thread or a Telegram forum topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubThread {
    /// `:thread:<ts>` (Slack `thread_ts`).
    Thread(String),
    /// `:topic:<n>` (Telegram `message_thread_id` in a forum).
    Topic(String),
}

/// A session key in OpenClaw's formats (DESIGN §4). `Display` and `FromStr` round-trip, and
/// serde uses the string form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SessionKey {
    /// `agent:<agentId>:main`, the owner's direct chat.
    Main { agent: String },
    /// `agent:<agentId>:<channel>:<dm|group|channel>:<peer>[:thread:<ts>|:topic:<n>]`.
    Peer {
        agent: String,
        channel: String,
        kind: ChatKind,
        peer: String,
        sub: Option<SubThread>,
    },
    /// `hook:<uuid>`.
    Hook { id: String },
    /// `cron:<jobId>`.
    Cron { job: String },
}

impl SessionKey {
    pub fn main(agent: &str) -> Self {
        SessionKey::Main {
            agent: agent.to_string(),
        }
    }

    pub fn dm(agent: &str, channel: Channel, peer: &str) -> Self {
        SessionKey::Peer {
            agent: agent.to_string(),
            channel: channel.as_str().to_string(),
            kind: ChatKind::Dm,
            peer: peer.to_string(),
            sub: None,
        }
    }

    pub fn group(agent: &str, channel: Channel, id: &str) -> Self {
        SessionKey::Peer {
            agent: agent.to_string(),
            channel: channel.as_str().to_string(),
            kind: ChatKind::Group,
            peer: id.to_string(),
            sub: None,
        }
    }

    /// The same key narrowed to a thread or topic.
    pub fn with_sub(self, sub: SubThread) -> Self {
        match self {
            SessionKey::Peer {
                agent,
                channel,
                kind,
                peer,
                ..
            } => SessionKey::Peer {
                agent,
                channel,
                kind,
                peer,
                sub: Some(sub),
            },
            other => other,
        }
    }

    /// The agent that owns this session; hook and cron sessions belong to `default_agent`.
    pub fn agent<'a>(&'a self, default_agent: &'a str) -> &'a str {
        match self {
            SessionKey::Main { agent } | SessionKey::Peer { agent, .. } => agent,
            SessionKey::Hook { .. } | SessionKey::Cron { .. } => default_agent,
        }
    }

    /// True for the agent's main session (`non-main` sandbox mode exempts exactly this one).
    pub fn is_main(&self) -> bool {
        matches!(self, SessionKey::Main { .. })
    }

    /// The parts a session is shown by: channel and peer, when it has them.
    pub fn channel_and_peer(&self) -> Option<(&str, &str)> {
        match self {
            SessionKey::Peer { channel, peer, .. } => Some((channel, peer)),
            _ => None,
        }
    }
}

fn check_part(key: &str, part: &str, what: &str) -> Result<(), ModelError> {
    let bad = |reason: String| ModelError::InvalidSessionKey {
        key: key.to_string(),
        reason,
    };
    if part.is_empty() {
        return Err(bad(format!("{what} is empty")));
    }
    if let Some(c) = part
        .chars()
        .find(|c| *c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(bad(format!("{what} contains {c:?}")));
    }
    Ok(())
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionKey::Main { agent } => write!(f, "agent:{agent}:main"),
            SessionKey::Peer {
                agent,
                channel,
                kind,
                peer,
                sub,
            } => {
                write!(f, "agent:{agent}:{channel}:{}:{peer}", kind.as_str())?;
                match sub {
                    Some(SubThread::Thread(ts)) => write!(f, ":thread:{ts}"),
                    Some(SubThread::Topic(n)) => write!(f, ":topic:{n}"),
                    None => Ok(()),
                }
            }
            SessionKey::Hook { id } => write!(f, "hook:{id}"),
            SessionKey::Cron { job } => write!(f, "cron:{job}"),
        }
    }
}

impl FromStr for SessionKey {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| ModelError::InvalidSessionKey {
            key: s.chars().take(80).collect(),
            reason: reason.to_string(),
        };
        if s.len() > MAX_SESSION_KEY_LEN {
            return Err(bad("longer than 512 bytes"));
        }
        let parts: Vec<&str> = s.split(':').collect();
        let key = match parts.as_slice() {
            ["hook", id] => SessionKey::Hook { id: id.to_string() },
            ["cron", job] => SessionKey::Cron {
                job: job.to_string(),
            },
            ["agent", agent, "main"] => SessionKey::Main {
                agent: agent.to_string(),
            },
            ["agent", agent, channel, kind, peer, rest @ ..] => {
                let kind = match *kind {
                    "dm" => ChatKind::Dm,
                    "group" => ChatKind::Group,
                    "channel" => ChatKind::Channel,
                    _ => return Err(bad("chat kind must be dm, group or channel")),
                };
                let sub = match rest {
                    [] => None,
                    ["thread", ts] => Some(SubThread::Thread(ts.to_string())),
                    ["topic", n] => Some(SubThread::Topic(n.to_string())),
                    _ => return Err(bad("suffix must be :thread:<ts> or :topic:<n>")),
                };
                SessionKey::Peer {
                    agent: agent.to_string(),
                    channel: channel.to_string(),
                    kind,
                    peer: peer.to_string(),
                    sub,
                }
            }
            _ => {
                return Err(bad(
                    "expected agent:<id>:main, agent:<id>:<channel>:<kind>:<peer>, hook:<id> or cron:<id>",
                ))
            }
        };
        key.validate()?;
        Ok(key)
    }
}

impl SessionKey {
    /// Checks every component: non-empty, no `:`, whitespace or control characters. The
    /// constructors accept raw channel ids, so ingress calls this before using a key.
    pub fn validate(&self) -> Result<(), ModelError> {
        let text = self.to_string();
        if text.len() > MAX_SESSION_KEY_LEN {
            return Err(ModelError::InvalidSessionKey {
                key: text.chars().take(80).collect(),
                reason: "longer than 512 bytes".into(),
            });
        }
        match self {
            SessionKey::Main { agent } => check_part(&text, agent, "agent id"),
            SessionKey::Peer {
                agent,
                channel,
                peer,
                sub,
                ..
            } => {
                check_part(&text, agent, "agent id")?;
                check_part(&text, channel, "channel")?;
                check_part(&text, peer, "peer id")?;
                match sub {
                    Some(SubThread::Thread(t)) | Some(SubThread::Topic(t)) => {
                        check_part(&text, t, "thread")
                    }
                    None => Ok(()),
                }
            }
            SessionKey::Hook { id } => check_part(&text, id, "hook id"),
            SessionKey::Cron { job } => check_part(&text, job, "cron job id"),
        }
    }
}

impl Serialize for SessionKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a message was said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRef {
    pub kind: ChatKind,
    pub id: String,
}

/// Who said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One message from a channel, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub channel: Channel,
    pub account: String,
    /// Unique per channel and account, e.g. `telegram:default:987654`; the queue's dedup id.
    pub event_id: String,
    pub chat: ChatRef,
    pub sender: Sender,
    pub text: String,
    pub received_at: DateTime<Utc>,
}

/// Where the reply goes, in each channel's own terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyTarget {
    Telegram(TelegramTarget),
    Slack(SlackTarget),
    Webchat(WebchatTarget),
}

impl ReplyTarget {
    /// The chat a session key names, for a reply that has no inbound message to answer (a hook
    /// with `deliver`). `None` when the key names no chat (`agent:<id>:main`, `hook:…`, `cron:…`)
    /// or one the channel cannot address (a Telegram chat id or topic that is not a number).
    /// A Slack DM's peer is the user id, which `chat.postMessage` accepts as the channel of the
    /// app's DM with that user.
    pub fn for_session(session: &SessionKey) -> Option<ReplyTarget> {
        let SessionKey::Peer {
            channel, peer, sub, ..
        } = session
        else {
            return None;
        };
        let target = match channel.parse::<Channel>().ok()? {
            Channel::Telegram => ReplyTarget::Telegram(TelegramTarget {
                chat_id: peer.parse().ok()?,
                message_thread_id: match sub {
                    Some(SubThread::Topic(n)) => Some(n.parse().ok()?),
                    _ => None,
                },
                reply_to_message_id: None,
            }),
            Channel::Slack => ReplyTarget::Slack(SlackTarget {
                channel: peer.clone(),
                thread_ts: match sub {
                    Some(SubThread::Thread(ts)) => Some(ts.clone()),
                    _ => None,
                },
            }),
            Channel::Webchat => ReplyTarget::Webchat(WebchatTarget {
                conversation: peer.clone(),
            }),
            Channel::Hook => return None,
        };
        Some(target)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramTarget {
    pub chat_id: i64,
    #[serde(default)]
    pub message_thread_id: Option<i64>,
    #[serde(default)]
    pub reply_to_message_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackTarget {
    pub channel: String,
    #[serde(default)]
    pub thread_ts: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebchatTarget {
    pub conversation: String,
}

/// The queued unit of work (DESIGN §4). Decode with [`JobMessage::decode`], which refuses
/// versions newer than this build understands instead of misreading them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub v: u32,
    pub job_id: String,
    pub session_key: SessionKey,
    pub agent_id: String,
    pub inbound: InboundMessage,
    #[serde(default)]
    pub reply_to: Option<ReplyTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Why a queued body is not a job this build can run. Never retryable: the same bytes fail the
/// same way, so the consumer dead-letters them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobDecodeError {
    #[error("job message is not valid JSON or lacks a numeric \"v\": {0}")]
    NotVersioned(String),
    #[error("job message version {found} is newer than this build supports ({supported}); upgrade the worker")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("job message v{version} is malformed: {reason}")]
    Malformed { version: u32, reason: String },
    #[error("job message is {size} bytes, over the {limit}-byte queue limit")]
    TooLarge { size: usize, limit: usize },
}

impl JobMessage {
    /// A new v1 job for `inbound` with a fresh ULID job id.
    pub fn new(
        session_key: SessionKey,
        agent_id: &str,
        inbound: InboundMessage,
        reply_to: Option<ReplyTarget>,
    ) -> Self {
        JobMessage {
            v: JOB_MESSAGE_VERSION,
            job_id: ulid::Ulid::new().to_string(),
            session_key,
            agent_id: agent_id.to_string(),
            inbound,
            reply_to,
            trace_id: None,
        }
    }

    /// Serialises the message, refusing one over [`MAX_JOB_MESSAGE_BYTES`].
    pub fn encode(&self) -> Result<String, JobDecodeError> {
        let body = serde_json::to_string(self).expect("a JobMessage always serialises");
        if body.len() > MAX_JOB_MESSAGE_BYTES {
            return Err(JobDecodeError::TooLarge {
                size: body.len(),
                limit: MAX_JOB_MESSAGE_BYTES,
            });
        }
        Ok(body)
    }

    /// Parses a queued body: first the version alone, then the whole message for that version.
    pub fn decode(body: &str) -> Result<Self, JobDecodeError> {
        #[derive(Deserialize)]
        struct Probe {
            v: u32,
        }
        if body.len() > MAX_JOB_MESSAGE_BYTES {
            return Err(JobDecodeError::TooLarge {
                size: body.len(),
                limit: MAX_JOB_MESSAGE_BYTES,
            });
        }
        let probe: Probe =
            serde_json::from_str(body).map_err(|e| JobDecodeError::NotVersioned(e.to_string()))?;
        if probe.v > JOB_MESSAGE_VERSION || probe.v == 0 {
            return Err(JobDecodeError::UnsupportedVersion {
                found: probe.v,
                supported: JOB_MESSAGE_VERSION,
            });
        }
        serde_json::from_str(body).map_err(|e| JobDecodeError::Malformed {
            version: probe.v,
            reason: e.to_string(),
        })
    }

    /// The queue's per-event deduplication id: the channel event id (DESIGN §2.2).
    pub fn dedup_id(&self) -> &str {
        &self.inbound.event_id
    }
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub input: serde_json::Value,
}

/// One step of a session's history. `seq` is dense from 0 and guarded by the store, so two
/// writers can never both append step `n`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(flatten)]
    pub body: EntryBody,
}

/// What a transcript step says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum EntryBody {
    User {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender: Option<Sender>,
    },
    Assistant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    ToolResult {
        call_id: String,
        name: String,
        output: String,
        #[serde(default)]
        is_error: bool,
    },
    /// A compaction: this summary stands for every entry up to and including `through_seq`.
    Summary { text: String, through_seq: u64 },
    /// A reply as it was delivered to a WebChat page: the answer, a command's answer, a
    /// failure notice. WebChat has no channel to post to, so its page reads these. Models
    /// never see them (the assistant's own words are its `Assistant` entries).
    Delivered { text: String },
}

const TRUNCATION_MARK: &str = "\n…[truncated by clawgate: ";

/// Cuts `text` so that it shrinks by at least `excess` bytes, on a char boundary, and says so.
fn truncate_by(text: &mut String, excess: usize) {
    let note_budget = TRUNCATION_MARK.len() + 32;
    let keep = text.len().saturating_sub(excess + note_budget);
    let mut cut = keep;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = text.len() - cut;
    text.truncate(cut);
    text.push_str(TRUNCATION_MARK);
    text.push_str(&format!("{dropped} bytes]"));
}

impl TranscriptEntry {
    /// The entry's stored size: its JSON encoding.
    pub fn encoded_len(&self) -> usize {
        serde_json::to_vec(self)
            .map(|v| v.len())
            .unwrap_or(usize::MAX)
    }

    /// Shrinks the entry until its JSON fits in `max_bytes`: the long text fields are cut with a
    /// marker that says how much went; tool-call inputs too large to keep are replaced by a
    /// note. The model and the user see the marker, so nothing vanishes silently.
    pub fn cap_to(&mut self, max_bytes: usize) {
        let len = self.encoded_len();
        if len <= max_bytes {
            return;
        }
        match &mut self.body {
            EntryBody::User { text, .. }
            | EntryBody::Summary { text, .. }
            | EntryBody::Delivered { text } => truncate_by(text, len - max_bytes),
            EntryBody::ToolResult { output, .. } => truncate_by(output, len - max_bytes),
            EntryBody::Assistant { tool_calls, .. } => {
                for call in tool_calls.iter_mut() {
                    let size = call.input.to_string().len();
                    if size > 1024 {
                        call.input = serde_json::json!({
                            "_clawgate_truncated": format!("tool input of {size} bytes not stored")
                        });
                    }
                }
                let len = self.encoded_len();
                if let EntryBody::Assistant {
                    text: Some(text), ..
                } = &mut self.body
                {
                    if len > max_bytes {
                        truncate_by(text, len - max_bytes);
                    }
                }
            }
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, JobStatus::Running)
    }
}

impl FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "running" => Ok(JobStatus::Running),
            "done" => Ok(JobStatus::Done),
            "failed" => Ok(JobStatus::Failed),
            other => Err(format!("unknown job status {other:?}")),
        }
    }
}

/// The durable record of one job: who holds it, until when, and which reply chunks went out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub status: JobStatus,
    /// The worker holding the lease; kept after finishing, for the record.
    pub lease_owner: Option<String>,
    /// Unix milliseconds; a lease in the past can be taken over.
    pub lease_until_ms: i64,
    /// How many times the job was claimed.
    pub attempt: u32,
    /// Indices of reply chunks already posted, ascending.
    pub chunks_sent: Vec<u32>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Why a job failed, or a short note on how it finished.
    pub detail: Option<String>,
}

/// A session's metadata, kept beside its transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMeta {
    pub key: SessionKey,
    pub agent: String,
    pub channel: Option<String>,
    pub peer: Option<String>,
    pub created_ms: i64,
    pub last_active_ms: i64,
    /// The seq the next transcript entry must carry (= number of entries).
    pub next_seq: u64,
}

/// A pending request from an unknown sender to talk to the bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingRequest {
    pub channel: String,
    pub account: String,
    pub code: String,
    pub peer: String,
    pub peer_name: Option<String>,
    pub created_ms: i64,
    pub expires_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn session_keys_round_trip_in_every_openclaw_form() {
        for text in [
            "agent:main:main",
            "agent:main:telegram:dm:12345",
            "agent:work:telegram:group:-1001234567890:topic:42",
            "agent:main:slack:channel:C024BE91L:thread:1700000000.000100",
            "agent:main:slack:dm:U0G9QF9C6",
            "hook:5f0c6f3e-8d7a-4a8e-9b1a-2f4f5b6c7d8e",
            "cron:daily-digest",
        ] {
            let key: SessionKey = text.parse().unwrap();
            assert_eq!(key.to_string(), text);
        }
    }

    #[test]
    fn session_key_builders_produce_the_documented_strings() {
        let dm = SessionKey::dm("main", Channel::Telegram, "12345");
        assert_eq!(dm.to_string(), "agent:main:telegram:dm:12345");
        let thread = SessionKey::group("main", Channel::Slack, "C1")
            .with_sub(SubThread::Thread("1.2".into()));
        assert_eq!(thread.to_string(), "agent:main:slack:group:C1:thread:1.2");
        assert!(SessionKey::main("main").is_main());
        assert!(!dm.is_main());
    }

    #[test]
    fn malformed_session_keys_are_refused_with_a_reason() {
        for text in [
            "",
            "agent:main",
            "agent::main",
            "agent:main:telegram:pm:1",
            "agent:main:telegram:dm:",
            "agent:main:telegram:dm:1:thread",
            "agent:main:telegram:dm:1:reply:2",
            "hook:",
            "session:1",
        ] {
            let err = text.parse::<SessionKey>().unwrap_err();
            assert!(
                matches!(err, ModelError::InvalidSessionKey { .. }),
                "{text:?} gave {err:?}"
            );
        }
        let long = format!("hook:{}", "a".repeat(600));
        assert!(long.parse::<SessionKey>().is_err());
        let spaced = SessionKey::dm("main", Channel::Slack, "U 1");
        assert!(spaced.validate().is_err());
    }

    #[test]
    fn the_design_doc_job_message_round_trips() {
        let body = fixture("job_v1.json");
        let job = JobMessage::decode(&body).unwrap();
        assert_eq!(
            job.session_key,
            SessionKey::dm("main", Channel::Telegram, "12345")
        );
        assert_eq!(job.inbound.text, "list the files");
        assert_eq!(
            job.reply_to,
            Some(ReplyTarget::Telegram(TelegramTarget {
                chat_id: 12345,
                message_thread_id: None,
                reply_to_message_id: Some(77)
            }))
        );
        let again = JobMessage::decode(&job.encode().unwrap()).unwrap();
        assert_eq!(again, job);
        let as_value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let re_value: serde_json::Value = serde_json::to_value(&job).unwrap();
        assert_eq!(as_value, re_value);
    }

    #[test]
    fn a_slack_job_message_round_trips() {
        let job = JobMessage::decode(&fixture("job_v1_slack.json")).unwrap();
        assert_eq!(
            job.reply_to,
            Some(ReplyTarget::Slack(SlackTarget {
                channel: "C024BE91L".into(),
                thread_ts: Some("1700000000.000100".into())
            }))
        );
        assert_eq!(JobMessage::decode(&job.encode().unwrap()).unwrap(), job);
    }

    #[test]
    fn a_job_message_from_a_newer_version_is_refused_not_misread() {
        let err = JobMessage::decode(&fixture("job_v2.json")).unwrap_err();
        assert_eq!(
            err,
            JobDecodeError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        );
        assert!(err.to_string().contains("upgrade the worker"));
    }

    #[test]
    fn undecodable_job_messages_say_why() {
        assert!(matches!(
            JobMessage::decode("not json"),
            Err(JobDecodeError::NotVersioned(_))
        ));
        assert!(matches!(
            JobMessage::decode(r#"{"job_id":"x"}"#),
            Err(JobDecodeError::NotVersioned(_))
        ));
        assert!(matches!(
            JobMessage::decode(r#"{"v":1,"job_id":"x"}"#),
            Err(JobDecodeError::Malformed { version: 1, .. })
        ));
        let huge = format!(r#"{{"v":1,"pad":"{}"}}"#, "x".repeat(MAX_JOB_MESSAGE_BYTES));
        assert!(matches!(
            JobMessage::decode(&huge),
            Err(JobDecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn an_oversized_job_is_refused_at_encode() {
        let mut job = JobMessage::decode(&fixture("job_v1.json")).unwrap();
        job.inbound.text = "x".repeat(MAX_JOB_MESSAGE_BYTES);
        assert!(matches!(job.encode(), Err(JobDecodeError::TooLarge { .. })));
    }

    #[test]
    fn transcript_entries_round_trip_from_fixtures() {
        let text = fixture("transcript.jsonl");
        let entries: Vec<TranscriptEntry> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(entries.len(), 4);
        assert!(matches!(
            &entries[1].body,
            EntryBody::Assistant { tool_calls, .. } if tool_calls[0].name == "exec"
        ));
        for (line, entry) in text.lines().zip(&entries) {
            let back: serde_json::Value = serde_json::to_value(entry).unwrap();
            let orig: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(back, orig);
        }
    }

    #[test]
    fn capping_a_huge_tool_result_keeps_it_under_the_limit_and_says_so() {
        let mut entry = TranscriptEntry {
            seq: 3,
            at: Utc::now(),
            job_id: None,
            body: EntryBody::ToolResult {
                call_id: "c1".into(),
                name: "exec".into(),
                output: "é".repeat(300_000),
                is_error: false,
            },
        };
        entry.cap_to(100_000);
        assert!(entry.encoded_len() <= 100_000, "{}", entry.encoded_len());
        let EntryBody::ToolResult { output, .. } = &entry.body else {
            unreachable!()
        };
        assert!(output.contains("truncated by clawgate"));
        assert!(output.starts_with("éé"));
    }

    #[test]
    fn capping_an_assistant_turn_replaces_a_huge_tool_input() {
        let mut entry = TranscriptEntry {
            seq: 1,
            at: Utc::now(),
            job_id: None,
            body: EntryBody::Assistant {
                text: Some("writing".into()),
                tool_calls: vec![ToolCall {
                    id: "t".into(),
                    name: "write".into(),
                    input: serde_json::json!({"path":"a","content":"x".repeat(500_000)}),
                }],
            },
        };
        entry.cap_to(350_000);
        assert!(entry.encoded_len() <= 350_000);
        let EntryBody::Assistant { tool_calls, .. } = &entry.body else {
            unreachable!()
        };
        assert!(tool_calls[0].input["_clawgate_truncated"].is_string());
    }

    #[test]
    fn job_records_round_trip() {
        let record = JobRecord {
            job_id: "01J".into(),
            status: JobStatus::Running,
            lease_owner: Some("w1".into()),
            lease_until_ms: 5,
            attempt: 2,
            chunks_sent: vec![0, 1],
            created_ms: 1,
            updated_ms: 2,
            detail: None,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<JobRecord>(&json).unwrap(), record);
        assert!(json.contains(r#""status":"running""#));
    }

    #[test]
    fn a_session_key_names_the_chat_a_delivered_reply_goes_to() {
        let target = |key: &str| ReplyTarget::for_session(&key.parse().unwrap());

        assert_eq!(
            target("agent:main:telegram:group:-1001234567890:topic:42"),
            Some(ReplyTarget::Telegram(TelegramTarget {
                chat_id: -1001234567890,
                message_thread_id: Some(42),
                reply_to_message_id: None,
            }))
        );
        assert_eq!(
            target("agent:main:slack:channel:C024BE91L:thread:1700000000.000100"),
            Some(ReplyTarget::Slack(SlackTarget {
                channel: "C024BE91L".into(),
                thread_ts: Some("1700000000.000100".into()),
            }))
        );
        assert_eq!(
            target("agent:main:webchat:dm:tab-1"),
            Some(ReplyTarget::Webchat(WebchatTarget {
                conversation: "tab-1".into()
            }))
        );
        assert_eq!(target("agent:main:main"), None);
        assert_eq!(target("hook:0f8e"), None);
        assert_eq!(target("agent:main:telegram:dm:ada"), None, "not a chat id");
    }
}
