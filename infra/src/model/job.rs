//! What a channel sends and where the answer goes: inbound messages, reply targets, and the
//! versioned job message the queue carries from ingress to a worker.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Channel, ChatKind, SessionKey, SubThread, JOB_MESSAGE_VERSION, MAX_JOB_MESSAGE_BYTES};

/// Where a message was said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRef {
    pub kind: ChatKind,
    pub id: String,
    /// The workspace the chat belongs to, where its group rules depend on it (a Discord guild).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
}

impl ChatRef {
    pub fn new(kind: ChatKind, id: impl Into<String>) -> Self {
        ChatRef {
            kind,
            id: id.into(),
            space: None,
        }
    }
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
    /// Files that came with the message, for the worker to fetch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<super::MediaRef>,
}

impl InboundMessage {
    /// A message received now, with no files (set `media` for those). Every inbound message
    /// is made here: channels through [`crate::channels::ChannelAccount::admit`], hooks, cron,
    /// WebChat and the session tools directly.
    pub fn new(
        channel: Channel,
        account: &str,
        event_id: String,
        chat: ChatRef,
        sender: Sender,
        text: String,
    ) -> Self {
        InboundMessage {
            channel,
            account: account.to_string(),
            event_id,
            chat,
            sender,
            text,
            received_at: Utc::now(),
            media: vec![],
        }
    }
}

impl Sender {
    /// A sender known by id alone.
    pub fn id(id: impl Into<String>) -> Self {
        Sender {
            id: id.into(),
            name: None,
        }
    }
}

/// Where the reply goes, in each channel's own terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyTarget {
    Telegram(TelegramTarget),
    Slack(SlackTarget),
    Webchat(WebchatTarget),
    Whatsapp(WhatsappTarget),
    Discord(DiscordTarget),
    Bluebubbles(BlueBubblesTarget),
    Signal(SignalTarget),
    Zalo(ZaloTarget),
    Googlechat(GoogleChatTarget),
    Msteams(MsTeamsTarget),
    Matrix(MatrixTarget),
}

impl ReplyTarget {
    /// The chat a session key names, for a reply that has no inbound message to answer (a hook
    /// with `deliver`). `None` when the key names no chat (`agent:<id>:main`, `hook:…`, `cron:…`)
    /// or one the channel cannot address (a Telegram chat id or topic that is not a number).
    /// A Slack DM's peer is the user id, which `chat.postMessage` accepts as the channel of the
    /// app's DM with that user.
    pub fn for_session(session: &SessionKey) -> Option<ReplyTarget> {
        let SessionKey::Peer {
            channel,
            peer,
            sub,
            kind,
            ..
        } = session
        else {
            return None;
        };
        let peer = &super::id_of_peer(peer);
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
            // A DM's peer is the user: its DM channel is opened when the reply is sent.
            Channel::Discord => ReplyTarget::Discord(DiscordTarget {
                channel_id: if *kind == ChatKind::Dm {
                    String::new()
                } else {
                    peer.clone()
                },
                dm_user: (*kind == ChatKind::Dm).then(|| peer.clone()),
                reply_to_message_id: None,
                interaction: None,
            }),
            // A DM's peer is the handle; its chat guid is the iMessage one-to-one chat.
            Channel::Bluebubbles => ReplyTarget::Bluebubbles(BlueBubblesTarget {
                chat_guid: if *kind == ChatKind::Dm {
                    format!("iMessage;-;{peer}")
                } else {
                    peer.clone()
                },
            }),
            Channel::Signal => ReplyTarget::Signal(if *kind == ChatKind::Dm {
                SignalTarget::Person {
                    recipient: peer.clone(),
                }
            } else {
                SignalTarget::Group {
                    group_id: peer.clone(),
                }
            }),
            // A DM's peer is the user; its space is found when the reply is sent.
            Channel::Googlechat => ReplyTarget::Googlechat(GoogleChatTarget {
                space: if *kind == ChatKind::Dm {
                    String::new()
                } else {
                    peer.clone()
                },
                thread: match sub {
                    Some(SubThread::Thread(t)) => Some(t.clone()),
                    _ => None,
                },
                dm_user: (*kind == ChatKind::Dm).then(|| peer.clone()),
            }),
            // A Teams DM needs a conversation the bot creates first (not built): only channel
            // and group chat sessions can be written to without a message to answer.
            Channel::Msteams if *kind == ChatKind::Dm => return None,
            Channel::Msteams => ReplyTarget::Msteams(MsTeamsTarget {
                service_url: String::new(),
                conversation_id: match sub {
                    Some(SubThread::Thread(id)) => format!("{peer};messageid={id}"),
                    _ => peer.clone(),
                },
                reply_to_id: None,
            }),
            // A DM's peer is the user: the bot's `m.direct` names the room when the reply is sent.
            Channel::Matrix => ReplyTarget::Matrix(MatrixTarget {
                room_id: if *kind == ChatKind::Dm {
                    String::new()
                } else {
                    peer.clone()
                },
                dm_user: (*kind == ChatKind::Dm).then(|| peer.clone()),
                reply_to: None,
            }),
            Channel::Zalo => ReplyTarget::Zalo(ZaloTarget {
                user_id: peer.clone(),
            }),
            Channel::Whatsapp => ReplyTarget::Whatsapp(WhatsappTarget {
                to: peer.trim_start_matches('+').to_string(),
                reply_to_message_id: None,
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

/// A WhatsApp chat: the user's `wa_id` (digits, no `+`), and the message answered, shown as a
/// quote (`context.message_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatsappTarget {
    pub to: String,
    #[serde(default)]
    pub reply_to_message_id: Option<String>,
}

/// A Discord channel (a guild channel or a DM channel), or an interaction's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscordTarget {
    /// The channel; for a DM known only by its user (a hook's `deliver`), empty until the DM
    /// channel is opened with `dm_user`.
    pub channel_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dm_user: Option<String>,
    /// The message answered (`message_reference`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_message_id: Option<String>,
    /// A slash command's interaction: the answer replaces its deferred response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction: Option<DiscordInteraction>,
}

/// What answering an interaction needs (its token is valid for 15 minutes and is not a
/// credential beyond that interaction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscordInteraction {
    pub application_id: String,
    pub token: String,
}

/// An iMessage chat through BlueBubbles, by its chat guid (`iMessage;-;+1555…` one-to-one,
/// `iMessage;+;chat…` a group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlueBubblesTarget {
    pub chat_guid: String,
}

/// A Signal chat: a person (number or uuid) or a group (its base64 id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalTarget {
    Person { recipient: String },
    Group { group_id: String },
}

/// A Google Chat space (and thread), or a DM known only by its user (`users/<id>`), whose
/// space the Chat API finds (`spaces:findDirectMessage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoogleChatTarget {
    pub space: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dm_user: Option<String>,
}

/// A Teams conversation (a channel thread is `<channel id>;messageid=<root id>`), reached at
/// the Bot Framework service URL its activity named (empty: the configured `serviceUrl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsTeamsTarget {
    #[serde(default)]
    pub service_url: String,
    pub conversation_id: String,
    /// The activity answered, so the reply threads under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<String>,
}

/// A Matrix room, or a DM known only by its user, whose room the bot's `m.direct` names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixTarget {
    pub room_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dm_user: Option<String>,
    /// The event answered (`m.in_reply_to`), in a room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// A Zalo user of the Official Account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZaloTarget {
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebchatTarget {
    pub conversation: String,
}

/// The queued unit of work (docs/architecture.md §4). Decode with [`JobMessage::decode`], which refuses
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
    /// Set when another session sent this job (`sessions_send`): who, and how many hops deep.
    /// Absent from every job a channel or hook queues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<JobOrigin>,
    /// Set on a heartbeat run (and a `/hooks/wake` event): an answer that only acknowledges
    /// is not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<super::HeartbeatRule>,
    /// The turn that answers the messages collected while a run was going
    /// (`messages.queue.mode: collect`): it brings no message of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub collected: bool,
    /// Set on a sub-agent's job (`sessions_spawn`): where its answer is announced when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawn: Option<SpawnRequest>,
}

/// Where a sub-agent's answer goes: into the session that spawned it, as a new job there, whose
/// reply reaches the chat the spawning turn was answering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnRequest {
    pub requester: SessionKey,
    pub requester_agent: String,
    /// The spawning job's channel account and reply target (none for a session without a
    /// chat, e.g. a cron run: the announcement then lands in its transcript only).
    pub account: String,
    #[serde(default)]
    pub reply_to: Option<ReplyTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// Where a job sent by a session came from: the provenance the target session sees, and the
/// hop count that bounds chains of sessions messaging sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOrigin {
    pub session: SessionKey,
    pub agent: String,
    /// 1 for a message sent by a session a channel message reached, 2 for one sent by the
    /// session that message reached, and so on.
    pub depth: u32,
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
            origin: None,
            heartbeat: None,
            collected: false,
            spawn: None,
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

    /// The queue's per-event deduplication id: the channel event id (docs/architecture.md §2).
    pub fn dedup_id(&self) -> &str {
        &self.inbound.event_id
    }

    /// A `/stop`: it takes its own queue lane beside the session's (a stop queued behind the
    /// run it stops would wait for it to end), and tells that run to stop.
    pub fn is_stop(&self) -> bool {
        super::command_word(&self.inbound.text).is_some_and(|(command, _)| command == "/stop")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
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
