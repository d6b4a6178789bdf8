//! The `channels` section: Telegram bots and the Slack app, who may reach the agent through
//! them (`dmPolicy`/`allowFrom` for direct messages, `groupPolicy`/`groups`/`groupAllowFrom`
//! for groups and channels), and the one rule that decides a group message ([`GroupAccess`]).
//!
//! Decisions (OpenClaw's keys and defaults, docs/security.md):
//! - `groupPolicy` defaults to `"allowlist"`: a group or channel is answered only when its id
//!   (or `"*"`) is a key of `channels.telegram.groups` / `channels.slack.channels`. `"open"`
//!   answers any group; `"disabled"` none.
//! - Within an admitted group, the sender must be in the group entry's own `allowFrom` when it
//!   has one, else in `groupAllowFrom` when that is set; with neither, every member of a group
//!   the owner listed may talk to the agent (listing the group is the opt-in).
//! - `requireMention` (default true) is per group entry; the `"*"` entry sets it for groups
//!   without one of their own.
//! - The rules need no I/O, so ingress applies them before anything is queued and the worker
//!   applies them again before any model call (a job can reach the queue by other roads).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::Secret;
use crate::model::Channel;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ChannelsConfig {
    pub telegram: Option<TelegramConfig>,
    pub slack: Option<SlackConfig>,
    pub whatsapp: Option<super::WhatsappConfig>,
    pub discord: Option<super::DiscordConfig>,
    pub bluebubbles: Option<super::BlueBubblesConfig>,
    pub signal: Option<super::SignalConfig>,
    pub zalo: Option<super::ZaloConfig>,
    pub googlechat: Option<super::GoogleChatConfig>,
    pub msteams: Option<super::MsTeamsConfig>,
    pub matrix: Option<super::MatrixConfig>,
}

/// Who may reach the agent through one channel: what the worker's gate, the trust levels and
/// `clawgate config validate` read, each channel's keys resolved here once.
#[derive(Debug, Clone)]
pub struct ChannelAccess<'a> {
    pub dm_policy: DmPolicy,
    pub allow_from: &'a [PeerId],
    pub groups: GroupAccess,
}

/// How replies look on one channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChannelStyle {
    /// What the user sees while a job runs (`streaming`).
    pub streaming: super::Streaming,
    /// `mediaMaxMb`: the largest inbound file fetched.
    pub media_max_mb: Option<u64>,
}

impl ChannelsConfig {
    /// The access rules of `channel` (in workspace `space`, for a channel whose group rules
    /// depend on it: a Discord guild, a Teams team), `None` when it is not configured (or has no DMs and
    /// groups of its own: WebChat and hooks pass the gateway token instead).
    pub fn access(&self, channel: Channel, space: Option<&str>) -> Option<ChannelAccess<'_>> {
        match channel {
            Channel::Telegram => self.telegram.as_ref().map(|t| ChannelAccess {
                dm_policy: t.dm_policy,
                allow_from: &t.allow_from,
                groups: t.group_access(),
            }),
            Channel::Slack => self.slack.as_ref().map(|s| ChannelAccess {
                dm_policy: s.dm_policy,
                allow_from: &s.allow_from,
                groups: s.group_access(),
            }),
            Channel::Whatsapp => self.whatsapp.as_ref().map(|w| ChannelAccess {
                dm_policy: w.dm_policy,
                allow_from: &w.allow_from,
                // The Cloud API delivers no group messages.
                groups: GroupAccess {
                    policy: GroupPolicy::Disabled,
                    ..GroupAccess::default()
                },
            }),
            Channel::Discord => self.discord.as_ref().map(|d| ChannelAccess {
                dm_policy: d.dm_policy,
                allow_from: &d.allow_from,
                groups: d.group_access(space),
            }),
            Channel::Bluebubbles => self.bluebubbles.as_ref().map(|b| ChannelAccess {
                dm_policy: b.dm_policy,
                allow_from: &b.allow_from,
                groups: b.group_access(),
            }),
            Channel::Signal => self.signal.as_ref().map(|c| ChannelAccess {
                dm_policy: c.dm_policy,
                allow_from: &c.allow_from,
                groups: c.group_access(),
            }),
            Channel::Zalo => self.zalo.as_ref().map(|z| ChannelAccess {
                dm_policy: z.dm_policy,
                allow_from: &z.allow_from,
                // An OA talks to people one-to-one.
                groups: GroupAccess {
                    policy: GroupPolicy::Disabled,
                    ..GroupAccess::default()
                },
            }),
            Channel::Googlechat => self.googlechat.as_ref().map(|g| ChannelAccess {
                dm_policy: g.dm_policy,
                allow_from: &g.allow_from,
                groups: g.group_access(),
            }),
            Channel::Msteams => self.msteams.as_ref().map(|t| ChannelAccess {
                dm_policy: t.dm_policy,
                allow_from: &t.allow_from,
                groups: t.group_access(space),
            }),
            Channel::Matrix => self.matrix.as_ref().map(|m| ChannelAccess {
                dm_policy: m.dm_policy(),
                allow_from: &m.dm.allow_from,
                groups: m.group_access(),
            }),
            Channel::Webchat | Channel::Hook => None,
        }
    }

    /// How replies look on `channel` (the defaults where it is not configured).
    pub fn style(&self, channel: Channel) -> ChannelStyle {
        match channel {
            Channel::Telegram => self.telegram.as_ref().map(|t| ChannelStyle {
                streaming: t.streaming,
                media_max_mb: t.media_max_mb,
            }),
            Channel::Slack => self.slack.as_ref().map(|s| ChannelStyle {
                streaming: s.streaming,
                media_max_mb: s.media_max_mb,
            }),
            Channel::Whatsapp => self.whatsapp.as_ref().map(|w| ChannelStyle {
                streaming: super::Streaming::Off,
                media_max_mb: w.media_max_mb,
            }),
            Channel::Discord => self.discord.as_ref().map(|d| ChannelStyle {
                streaming: d.streaming,
                media_max_mb: d.media_max_mb,
            }),
            Channel::Bluebubbles => self.bluebubbles.as_ref().map(|b| ChannelStyle {
                streaming: super::Streaming::Off,
                media_max_mb: b.media_max_mb,
            }),
            Channel::Signal => self.signal.as_ref().map(|c| ChannelStyle {
                streaming: super::Streaming::Off,
                media_max_mb: c.media_max_mb,
            }),
            Channel::Zalo => Some(ChannelStyle {
                streaming: super::Streaming::Off,
                media_max_mb: None,
            }),
            Channel::Googlechat => Some(ChannelStyle {
                streaming: super::Streaming::Off,
                media_max_mb: None,
            }),
            Channel::Msteams => self.msteams.as_ref().map(|t| ChannelStyle {
                streaming: t.streaming,
                media_max_mb: None,
            }),
            Channel::Matrix => self.matrix.as_ref().map(|m| ChannelStyle {
                streaming: m.streaming,
                media_max_mb: m.media_max_mb,
            }),
            Channel::Webchat | Channel::Hook => None,
        }
        .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    Pairing,
    Allowlist,
    Open,
    Disabled,
}

/// Who may reach the agent in groups and channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupPolicy {
    /// Only the groups listed (or `"*"`), and in them only the allowed senders.
    #[default]
    Allowlist,
    /// Any group; the sender lists still apply when set.
    Open,
    /// No group message is ever answered.
    Disabled,
}

/// A peer id given as a number or a string; kept as a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PeerId {
    Number(i64),
    Text(String),
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerId::Number(n) => write!(f, "{n}"),
            PeerId::Text(s) => f.write_str(s),
        }
    }
}

/// True when `peer` is on `list`.
pub fn listed(list: &[PeerId], peer: &str) -> bool {
    list.iter().any(|p| p.to_string() == peer)
}

/// One group or channel (`channels.telegram.groups.<chatId>`, `channels.slack.channels.<id>`),
/// or the `"*"` entry that applies to every group without one of its own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupEntry {
    /// Answer only messages that mention the bot or reply to it (default true).
    pub require_mention: Option<bool>,
    /// Senders who may talk to the agent in this group; replaces `groupAllowFrom` here.
    pub allow_from: Option<Vec<PeerId>>,
    /// `false` turns this one group off (under any policy).
    pub enabled: Option<bool>,
}

/// The key of the entry that applies to every group.
pub const ANY_GROUP: &str = "*";

/// A channel's group settings, as every part of the system reads them.
#[derive(Debug, Clone, Default)]
pub struct GroupAccess {
    pub policy: GroupPolicy,
    pub groups: BTreeMap<String, GroupEntry>,
    pub group_allow_from: Vec<PeerId>,
}

/// Why a group message is or is not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupVerdict {
    /// Answer it; `require_mention` says whether it needed a mention to get here.
    Admit { require_mention: bool },
    /// Do not answer, and say nothing (the reason is for logs and `config validate`).
    Refuse(&'static str),
}

impl GroupAccess {
    /// The decision for a message from `sender` in group `group` (mention gating is the
    /// caller's: it needs the message text).
    pub fn verdict(&self, group: &str, sender: &str) -> GroupVerdict {
        if self.policy == GroupPolicy::Disabled {
            return GroupVerdict::Refuse("groupPolicy is \"disabled\"");
        }
        let own = self.groups.get(group);
        let any = self.groups.get(ANY_GROUP);
        if self.policy == GroupPolicy::Allowlist && own.is_none() && any.is_none() {
            return GroupVerdict::Refuse("the group is not listed (groupPolicy \"allowlist\")");
        }
        let entry = own.or(any);
        if entry.and_then(|e| e.enabled) == Some(false) {
            return GroupVerdict::Refuse("the group is disabled");
        }
        let senders = own
            .and_then(|e| e.allow_from.as_deref())
            .or_else(|| any.and_then(|e| e.allow_from.as_deref()))
            .or((!self.group_allow_from.is_empty()).then_some(self.group_allow_from.as_slice()));
        if let Some(senders) = senders {
            if !listed(senders, sender) {
                return GroupVerdict::Refuse("the sender is not allowed in this group");
            }
        }
        let require_mention = own
            .and_then(|e| e.require_mention)
            .or_else(|| any.and_then(|e| e.require_mention))
            .unwrap_or(true);
        GroupVerdict::Admit { require_mention }
    }

    /// A one-paragraph account of the rules (`clawgate config validate`).
    pub fn explain(&self) -> String {
        match self.policy {
            GroupPolicy::Disabled => "groups: never answered (groupPolicy \"disabled\")".into(),
            policy => {
                let which = if policy == GroupPolicy::Open || self.groups.contains_key(ANY_GROUP) {
                    "any group".to_string()
                } else if self.groups.is_empty() {
                    return "groups: none answered (groupPolicy \"allowlist\" and no group listed)"
                        .into();
                } else {
                    let ids: Vec<&str> = self.groups.keys().map(String::as_str).collect();
                    format!("groups {}", ids.join(", "))
                };
                let who = if self.group_allow_from.is_empty() {
                    "every member".to_string()
                } else {
                    format!("senders {}", join_peers(&self.group_allow_from))
                };
                format!("groups: {which}; in them {who} (a group's own allowFrom wins), when they mention the bot unless requireMention is false")
            }
        }
    }
}

fn join_peers(peers: &[PeerId]) -> String {
    peers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A one-line account of a DM policy (`clawgate config validate`).
pub fn explain_dm(policy: DmPolicy, allow_from: &[PeerId]) -> String {
    match policy {
        DmPolicy::Open => "DMs: anyone".into(),
        DmPolicy::Disabled => "DMs: nobody".into(),
        DmPolicy::Allowlist => format!(
            "DMs: only {} and senders approved with `clawgate pairing approve`",
            if allow_from.is_empty() {
                "(allowFrom is empty)".to_string()
            } else {
                join_peers(allow_from)
            }
        ),
        DmPolicy::Pairing => {
            "DMs: approved senders; strangers get a pairing code the owner approves".into()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TelegramConfig {
    pub enabled: bool,
    /// Bot API base URL (default `https://api.telegram.org`; `TELEGRAM_API_BASE` overrides).
    pub api_base: Option<String>,
    pub bot_token: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    /// The public URL Telegram should post to (OpenClaw's key): `clawgate telegram
    /// set-webhook` uses it when `--url` is not given, and `clawgate doctor` checks that the
    /// bot's registered webhook is this one.
    pub webhook_url: Option<String>,
    /// The bot's @username (without `@`), for mention gating in groups.
    pub bot_username: Option<String>,
    pub dm_policy: DmPolicy,
    pub allow_from: Vec<PeerId>,
    pub group_policy: GroupPolicy,
    pub group_allow_from: Vec<PeerId>,
    /// By chat id (`-100…`), or `"*"` for every group.
    pub groups: BTreeMap<String, GroupEntry>,
    /// More bots, by account name (served at `/telegram/{account}`). The fields above are the
    /// `default` account; each extra bot shares the DM policy, allowlists and group settings.
    pub accounts: BTreeMap<String, TelegramAccountConfig>,
    /// What the user sees while a job runs (`off`, `progress`, `partial`).
    pub streaming: super::Streaming,
    /// The largest inbound file fetched, in MB (default 20).
    pub media_max_mb: Option<u64>,
}

/// One extra Telegram bot (`channels.telegram.accounts.<name>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TelegramAccountConfig {
    pub bot_token: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    pub webhook_url: Option<String>,
    pub bot_username: Option<String>,
    /// The agent this bot talks to (default: the default agent).
    pub agent: Option<String>,
}

/// One Telegram bot as every part of the system sees it: the `default` account (the top-level
/// fields) or an entry of `accounts`.
#[derive(Debug, Clone)]
pub struct TelegramAccount<'a> {
    pub name: &'a str,
    pub bot_token: Option<&'a Secret>,
    pub webhook_secret: Option<&'a Secret>,
    pub webhook_url: Option<&'a str>,
    pub bot_username: Option<&'a str>,
    pub agent: Option<&'a str>,
}

impl TelegramConfig {
    /// The name of the account the top-level fields describe.
    pub const DEFAULT_ACCOUNT: &'static str = "default";

    /// Every bot: `default` first, then the named accounts in name order.
    pub fn accounts(&self) -> impl Iterator<Item = TelegramAccount<'_>> {
        let default = TelegramAccount {
            name: Self::DEFAULT_ACCOUNT,
            bot_token: self.bot_token.as_ref(),
            webhook_secret: self.webhook_secret.as_ref(),
            webhook_url: self.webhook_url.as_deref(),
            bot_username: self.bot_username.as_deref(),
            agent: None,
        };
        std::iter::once(default).chain(self.accounts.iter().map(|(name, a)| TelegramAccount {
            name,
            bot_token: a.bot_token.as_ref(),
            webhook_secret: a.webhook_secret.as_ref(),
            webhook_url: a.webhook_url.as_deref(),
            bot_username: a.bot_username.as_deref(),
            agent: a.agent.as_deref(),
        }))
    }

    /// The bot called `name`, if configured.
    pub fn account(&self, name: &str) -> Option<TelegramAccount<'_>> {
        self.accounts().find(|a| a.name == name)
    }

    pub fn group_access(&self) -> GroupAccess {
        GroupAccess {
            policy: self.group_policy,
            groups: self.groups.clone(),
            group_allow_from: self.group_allow_from.clone(),
        }
    }
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            enabled: true,
            api_base: None,
            bot_token: None,
            webhook_secret: None,
            webhook_url: None,
            bot_username: None,
            dm_policy: DmPolicy::Pairing,
            allow_from: vec![],
            group_policy: GroupPolicy::Allowlist,
            group_allow_from: vec![],
            groups: BTreeMap::new(),
            accounts: BTreeMap::new(),
            streaming: super::Streaming::default(),
            media_max_mb: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SlackConfig {
    pub enabled: bool,
    /// Web API base URL (default `https://slack.com`; `SLACK_API_BASE` overrides).
    pub api_base: Option<String>,
    pub bot_token: Option<Secret>,
    pub signing_secret: Option<Secret>,
    /// An app-level token (`xapp-…`, OpenClaw's key; or `SLACK_APP_TOKEN`): with it and no
    /// `signingSecret`, `clawgate up` takes events over Socket Mode, no public URL needed.
    pub app_token: Option<Secret>,
    pub dm_policy: DmPolicy,
    pub allow_from: Vec<PeerId>,
    pub group_policy: GroupPolicy,
    pub group_allow_from: Vec<PeerId>,
    /// By channel id (`C0…`), or `"*"` for every channel the app is in.
    pub channels: BTreeMap<String, GroupEntry>,
    /// What the user sees while a job runs (`off`, `progress`, `partial`).
    pub streaming: super::Streaming,
    /// The largest inbound file fetched, in MB (default 20).
    pub media_max_mb: Option<u64>,
}

impl SlackConfig {
    pub fn group_access(&self) -> GroupAccess {
        GroupAccess {
            policy: self.group_policy,
            groups: self.channels.clone(),
            group_allow_from: self.group_allow_from.clone(),
        }
    }
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            enabled: true,
            api_base: None,
            bot_token: None,
            signing_secret: None,
            app_token: None,
            dm_policy: DmPolicy::Pairing,
            allow_from: vec![],
            group_policy: GroupPolicy::Allowlist,
            group_allow_from: vec![],
            channels: BTreeMap::new(),
            streaming: super::Streaming::default(),
            media_max_mb: None,
        }
    }
}

/// Telegram's rule for `setWebhook`'s `secret_token`.
pub fn is_telegram_secret_token(s: &str) -> bool {
    (1..=256).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(
        policy: GroupPolicy,
        groups: &BTreeMap<String, GroupEntry>,
        allow: &[PeerId],
    ) -> GroupAccess {
        GroupAccess {
            policy,
            groups: groups.clone(),
            group_allow_from: allow.to_vec(),
        }
    }

    fn entry(require_mention: Option<bool>, allow_from: Option<Vec<i64>>) -> GroupEntry {
        GroupEntry {
            require_mention,
            allow_from: allow_from.map(|v| v.into_iter().map(PeerId::Number).collect()),
            enabled: None,
        }
    }

    #[test]
    fn the_default_policy_answers_no_group_until_one_is_listed() {
        let none = BTreeMap::new();
        let listed = BTreeMap::from([("-100".to_string(), entry(None, None))]);

        let stranger_group = rules(GroupPolicy::Allowlist, &none, &[]).verdict("-999", "999");
        let owner_group = rules(GroupPolicy::Allowlist, &listed, &[]).verdict("-100", "999");
        let other_group = rules(GroupPolicy::Allowlist, &listed, &[]).verdict("-999", "999");

        assert!(matches!(stranger_group, GroupVerdict::Refuse(_)));
        assert_eq!(
            owner_group,
            GroupVerdict::Admit {
                require_mention: true
            }
        );
        assert!(matches!(other_group, GroupVerdict::Refuse(_)));
    }

    #[test]
    fn sender_lists_narrow_a_listed_group_and_the_groups_own_list_wins() {
        let groups = BTreeMap::from([
            (ANY_GROUP.to_string(), entry(Some(false), None)),
            ("-100".to_string(), entry(None, Some(vec![7]))),
        ]);
        let owner_only = [PeerId::Number(4242)];
        let r = rules(GroupPolicy::Allowlist, &groups, &owner_only);

        assert!(matches!(r.verdict("-5", "999"), GroupVerdict::Refuse(_)));
        assert_eq!(
            r.verdict("-5", "4242"),
            GroupVerdict::Admit {
                require_mention: false
            }
        );
        assert_eq!(
            r.verdict("-100", "7"),
            GroupVerdict::Admit {
                require_mention: false
            }
        );
        assert!(matches!(r.verdict("-100", "4242"), GroupVerdict::Refuse(_)));
    }

    #[test]
    fn open_admits_any_group_and_disabled_none() {
        let none = BTreeMap::new();
        let off = BTreeMap::from([(
            "-1".to_string(),
            GroupEntry {
                enabled: Some(false),
                ..Default::default()
            },
        )]);
        assert_eq!(
            rules(GroupPolicy::Open, &none, &[]).verdict("-5", "1"),
            GroupVerdict::Admit {
                require_mention: true
            }
        );
        assert!(matches!(
            rules(GroupPolicy::Open, &off, &[]).verdict("-1", "1"),
            GroupVerdict::Refuse(_)
        ));
        assert!(matches!(
            rules(GroupPolicy::Disabled, &off, &[]).verdict("-5", "1"),
            GroupVerdict::Refuse(_)
        ));
    }
}
