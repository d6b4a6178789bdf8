//! `channels.discord`: a Discord application. Two ways in: the Interactions endpoint (slash
//! commands `/ask`, `/new`, `/status`, signed with the application's Ed25519 key, which fits a
//! Lambda) and the Gateway WebSocket (DMs and mentions, in `clawgate up` or the ingress
//! process). OpenClaw's keys: `token` (`DISCORD_BOT_TOKEN`), `dmPolicy`, `allowFrom`,
//! `groupPolicy`, and `guilds.<guildId>` with `requireMention`, `users` and
//! `channels.<channelId>.{allow, requireMention}`; the Interactions endpoint adds
//! `applicationId` and `publicKey`.
//!
//! Decisions:
//! - A guild is answered only when listed (or `"*"`) under `groupPolicy: "allowlist"` (the
//!   default). A listed guild with a `channels` map is answered only in those channels (or
//!   `"*"`); `allow: false` turns one off. `users` (else `groupAllowFrom`) limits who may talk.
//! - The rules resolve to the same [`GroupAccess`] every channel uses, per guild
//!   ([`SpaceRules`], shared with Teams' `teams`), so ingress and the worker decide alike.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{DmPolicy, GroupAccess, GroupPolicy, PeerId, Secret, SpaceRules, Streaming};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct DiscordConfig {
    pub enabled: bool,
    /// REST API base (default `https://discord.com/api/v10`; `DISCORD_API_BASE`).
    pub api_base: Option<String>,
    /// The Gateway URL (default: what `GET /gateway/bot` answers).
    pub gateway_url: Option<String>,
    /// The bot token (`DISCORD_BOT_TOKEN`): the Gateway and replies in channels.
    pub token: Option<Secret>,
    /// The application id (`DISCORD_APPLICATION_ID`): interaction follow-ups.
    pub application_id: Option<String>,
    /// The application's public key, hex (`DISCORD_PUBLIC_KEY`): verifies interactions.
    pub public_key: Option<String>,
    pub dm_policy: DmPolicy,
    /// User ids (snowflakes).
    pub allow_from: Vec<PeerId>,
    pub group_policy: GroupPolicy,
    pub group_allow_from: Vec<PeerId>,
    /// By guild id, or `"*"`.
    pub guilds: BTreeMap<String, SpaceRules>,
    pub streaming: Streaming,
    /// The largest inbound file fetched, in MB (default 20).
    pub media_max_mb: Option<u64>,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        DiscordConfig {
            enabled: true,
            api_base: None,
            gateway_url: None,
            token: None,
            application_id: None,
            public_key: None,
            dm_policy: DmPolicy::Pairing,
            allow_from: vec![],
            group_policy: GroupPolicy::Allowlist,
            group_allow_from: vec![],
            guilds: BTreeMap::new(),
            streaming: Streaming::default(),
            media_max_mb: None,
        }
    }
}

impl DiscordConfig {
    pub const DEFAULT_API_BASE: &'static str = "https://discord.com/api/v10";

    pub fn api_base(&self) -> &str {
        self.api_base
            .as_deref()
            .unwrap_or(Self::DEFAULT_API_BASE)
            .trim_end_matches('/')
    }

    /// The group rules in guild `guild` (by channel id). A guild that is not listed has no
    /// groups, so under `allowlist` nothing there is answered.
    pub fn group_access(&self, guild: Option<&str>) -> GroupAccess {
        SpaceRules::group_access(
            &self.guilds,
            guild,
            self.group_policy,
            &self.group_allow_from,
        )
    }

    /// `config validate`: the public key is 32 bytes of hex.
    pub(super) fn check(&self, bad: &mut impl FnMut(&str, String)) {
        if let Some(key) = &self.public_key {
            if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                bad(
                    "channels.discord.publicKey",
                    "must be the application's public key: 64 hex digits".into(),
                );
            }
        }
    }

    /// The `DISCORD_*` environment variables over `slot`.
    pub(super) fn apply_env(
        slot: &mut Option<DiscordConfig>,
        get: impl Fn(&str) -> Option<String>,
    ) {
        super::env_over(
            slot,
            get,
            &[
                ("DISCORD_BOT_TOKEN", |c, v| c.token = Some(Secret(v))),
                ("DISCORD_APPLICATION_ID", |c, v| c.application_id = Some(v)),
                ("DISCORD_PUBLIC_KEY", |c, v| c.public_key = Some(v)),
                ("DISCORD_API_BASE", |c, v| c.api_base = Some(v)),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GroupVerdict;

    fn config(json: &str) -> DiscordConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn only_listed_guilds_and_their_listed_channels_are_answered() {
        let discord = config(
            r#"{"guilds": {"G1": {"requireMention": false, "channels": {"C1": {}, "C2": {"allow": false}}},
                           "G2": {"users": ["42"]}}}"#,
        );

        let listed = discord.group_access(Some("G1")).verdict("C1", "7");
        let off = discord.group_access(Some("G1")).verdict("C2", "7");
        let other_channel = discord.group_access(Some("G1")).verdict("C3", "7");
        let whole_guild = discord.group_access(Some("G2")).verdict("C9", "42");
        let stranger = discord.group_access(Some("G2")).verdict("C9", "7");
        let unlisted = discord.group_access(Some("G3")).verdict("C1", "42");

        assert_eq!(
            listed,
            GroupVerdict::Admit {
                require_mention: false
            }
        );
        assert!(matches!(off, GroupVerdict::Refuse(_)));
        assert!(matches!(other_channel, GroupVerdict::Refuse(_)));
        assert_eq!(
            whole_guild,
            GroupVerdict::Admit {
                require_mention: true
            }
        );
        assert!(matches!(stranger, GroupVerdict::Refuse(_)));
        assert!(matches!(unlisted, GroupVerdict::Refuse(_)));
    }
}
