//! Session keys in OpenClaw's formats: `agent:<id>:main`, `agent:<id>:<channel>:<kind>:<peer>`
//! with `:thread:`/`:topic:` suffixes, `hook:<id>`, `cron:<id>`. `Display` and `FromStr`
//! round-trip, serde uses the string form, and every component is checked.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Channel, ChatKind, ModelError, MAX_SESSION_KEY_LEN};

/// A sub-conversation inside a chat: a Slack thread or a Telegram forum topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubThread {
    /// `:thread:<ts>` (Slack `thread_ts`).
    Thread(String),
    /// `:topic:<n>` (Telegram `message_thread_id` in a forum).
    Topic(String),
}

/// A session key in OpenClaw's formats (docs/architecture.md). `Display` and `FromStr` round-trip, and
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
    /// `agent:<agentId>:subagent:<id>`, a task `sessions_spawn` started (OpenClaw's key). The id
    /// ends in a digest of the session that spawned it ([`SessionKey::spawned_by`]).
    Subagent { agent: String, id: String },
}

impl SessionKey {
    pub fn main(agent: &str) -> Self {
        SessionKey::Main {
            agent: agent.to_string(),
        }
    }

    /// The DM with platform user `peer` (encoded by [`peer_of`]).
    pub fn dm(agent: &str, channel: Channel, peer: &str) -> Self {
        SessionKey::Peer {
            agent: agent.to_string(),
            channel: channel.as_str().to_string(),
            kind: ChatKind::Dm,
            peer: peer_of(peer),
            sub: None,
        }
    }

    /// The group with platform id `id` (encoded by [`peer_of`]).
    pub fn group(agent: &str, channel: Channel, id: &str) -> Self {
        SessionKey::Peer {
            agent: agent.to_string(),
            channel: channel.as_str().to_string(),
            kind: ChatKind::Group,
            peer: peer_of(id),
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

    /// A new sub-agent session of `agent` spawned by `requester`: a fresh ULID, then the
    /// first 12 hex digits of SHA-256 of the requester's key, so whether a session spawned
    /// another is read off the two keys, with no record to keep or lose.
    pub fn subagent(agent: &str, requester: &SessionKey) -> Self {
        SessionKey::Subagent {
            agent: agent.to_string(),
            id: format!(
                "{}-{}",
                ulid::Ulid::new().to_string().to_lowercase(),
                spawn_digest(requester)
            ),
        }
    }

    /// Whether this is a sub-agent session `requester` spawned.
    pub fn spawned_by(&self, requester: &SessionKey) -> bool {
        match self {
            SessionKey::Subagent { id, .. } => id
                .rsplit_once('-')
                .is_some_and(|(_, digest)| digest == spawn_digest(requester)),
            _ => false,
        }
    }

    /// The agent that owns this session; hook and cron sessions belong to `default_agent`.
    pub fn agent<'a>(&'a self, default_agent: &'a str) -> &'a str {
        match self {
            SessionKey::Main { agent }
            | SessionKey::Peer { agent, .. }
            | SessionKey::Subagent { agent, .. } => agent,
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

fn spawn_digest(requester: &SessionKey) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(requester.to_string().as_bytes())[..6])
}

/// A platform id as a key's peer. Some platforms' ids hold `:` (Teams conversations
/// `19:…@thread.tacv2`, Matrix users `@ada:example.org` and rooms `!abc:example.org`), which
/// separates a key's parts: `%` and `:` are percent-encoded, reversibly; every other id is
/// its own peer.
pub fn peer_of(id: &str) -> String {
    id.replace('%', "%25").replace(':', "%3A")
}

/// The platform id a key's peer names ([`peer_of`] undone).
pub fn id_of_peer(peer: &str) -> String {
    peer.replace("%3A", ":").replace("%25", "%")
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
            SessionKey::Subagent { agent, id } => write!(f, "agent:{agent}:subagent:{id}"),
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
            ["agent", agent, "subagent", id] => SessionKey::Subagent {
                agent: agent.to_string(),
                id: id.to_string(),
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
                    "expected agent:<id>:main, agent:<id>:<channel>:<kind>:<peer>, agent:<id>:subagent:<id>, hook:<id> or cron:<id>",
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
            SessionKey::Subagent { agent, id } => {
                check_part(&text, agent, "agent id")?;
                check_part(&text, id, "sub-agent id")
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

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
    fn a_sub_agent_key_round_trips_and_names_only_the_session_that_spawned_it() {
        let requester: SessionKey = "agent:main:telegram:dm:42".parse().unwrap();
        let other: SessionKey = "agent:main:main".parse().unwrap();

        let child = SessionKey::subagent("main", &requester);
        let text = child.to_string();

        assert!(text.starts_with("agent:main:subagent:"), "{text}");
        assert_eq!(text.parse::<SessionKey>().unwrap(), child);
        assert_eq!(child.agent("other"), "main");
        assert!(!child.is_main());
        assert!(child.spawned_by(&requester));
        assert!(!child.spawned_by(&other));
        assert!(!requester.spawned_by(&requester));
        assert!("agent:main:subagent:".parse::<SessionKey>().is_err());
    }
}
