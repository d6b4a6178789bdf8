//! Whose a session is: the owner's, or a guest's. The one rule every boundary reads (the
//! sandbox plan, the session tools, `clawgate sandbox explain`), written down in
//! docs/security.md.
//!
//! - Owner sessions: the agent's main session, cron sessions, WebChat (the gateway token is
//!   the owner's), and direct messages on a channel whose `dmPolicy` admits only senders the
//!   owner approved (`pairing`, `allowlist`).
//! - Guest sessions: groups and channels, hooks (their text comes from outside: mail, web
//!   forms), and direct messages on a channel whose `dmPolicy` is `open` (anyone at all).
//!
//! An unknown channel name is a guest: fail closed.

use super::{Config, DmPolicy};
use crate::model::{Channel, ChatKind, SessionKey};

/// Whose a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    Owner,
    Guest,
}

impl Trust {
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Owner => "owner",
            Trust::Guest => "guest",
        }
    }
}

impl Config {
    /// Whose session `key` is, and why.
    pub fn session_trust(&self, key: &SessionKey) -> (Trust, &'static str) {
        match key {
            SessionKey::Main { .. } => (Trust::Owner, "the agent's main session"),
            SessionKey::Cron { .. } => (Trust::Owner, "a cron session the owner scheduled"),
            // Only an owner session can spawn one (`sessions_spawn`), and no guest session can
            // reach it afterwards.
            SessionKey::Subagent { .. } => (
                Trust::Owner,
                "a sub-agent an owner session spawned (sessions_spawn)",
            ),
            SessionKey::Hook { .. } => (
                Trust::Guest,
                "a hook session: its text comes from outside (mail, forms, other services)",
            ),
            SessionKey::Peer {
                kind: ChatKind::Group | ChatKind::Channel,
                ..
            } => (
                Trust::Guest,
                "a group or channel: everyone in it can write to the agent",
            ),
            SessionKey::Peer {
                channel,
                kind: ChatKind::Dm,
                ..
            } => {
                let policy = match channel.parse::<Channel>() {
                    Ok(Channel::Webchat) => {
                        return (Trust::Owner, "WebChat, behind the owner's gateway token")
                    }
                    Ok(Channel::Hook) | Err(_) => {
                        return (Trust::Guest, "a direct message on an unknown channel")
                    }
                    Ok(channel) => self.channels.access(channel, None).map(|a| a.dm_policy),
                };
                match policy.unwrap_or(DmPolicy::Pairing) {
                    DmPolicy::Open => (
                        Trust::Guest,
                        "a direct message under dmPolicy \"open\": anyone can send one",
                    ),
                    _ => (
                        Trust::Owner,
                        "a direct message from a sender the owner approved (dmPolicy)",
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_hooks_and_open_dms_are_guests_and_approved_dms_the_owners() {
        let config = Config::parse(
            r#"{ channels: { telegram: { dmPolicy: "open" }, slack: { dmPolicy: "allowlist" } } }"#,
        )
        .unwrap();
        let trust = |key: &str| config.session_trust(&key.parse().unwrap()).0;

        assert_eq!(trust("agent:main:main"), Trust::Owner);
        assert_eq!(trust("cron:daily"), Trust::Owner);
        assert_eq!(trust("agent:main:webchat:dm:c1"), Trust::Owner);
        assert_eq!(trust("agent:main:slack:dm:U1"), Trust::Owner);
        assert_eq!(
            trust("agent:main:telegram:dm:1"),
            Trust::Guest,
            "dmPolicy open"
        );
        assert_eq!(trust("agent:main:telegram:group:-100"), Trust::Guest);
        assert_eq!(
            trust("agent:main:slack:channel:C1:thread:1.2"),
            Trust::Guest
        );
        assert_eq!(trust("hook:abc"), Trust::Guest);
        assert_eq!(
            trust("agent:main:irc:dm:x"),
            Trust::Guest,
            "unknown channel"
        );
    }
}
