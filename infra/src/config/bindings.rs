//! `bindings`: which agent answers a channel message (OpenClaw's routing rules).
//!
//! Each binding names an `agentId` and a `match` on the message's channel facts. Every field a
//! binding gives must match; among the bindings that match, the most specific wins, in
//! OpenClaw's order:
//! 1. the exact peer (`peer.kind` + `peer.id`; a Telegram forum topic is `<chat>:topic:<id>`),
//! 2. the parent peer (a binding on the group also covers its topics and threads),
//! 3. the Slack team (`teamId`) or the Discord guild (`guildId`),
//! 4. the account (`accountId`), then the account's own `agent` setting
//!    (`channels.telegram.accounts.<name>.agent`),
//! 5. the whole channel (`accountId: "*"`),
//! 6. otherwise the default agent.
//!
//! Decisions:
//! - As in OpenClaw, a binding without `accountId` matches the channel's `default` account
//!   only; `"*"` matches every account. A tie between bindings of one rank goes to the one
//!   listed first.
//! - Bindings only pick the agent: they are consulted after the channel has admitted the
//!   message (pairing, allowlists), and grant nothing.
//! - `roles` (Discord) parses, so an OpenClaw file gets a clear message rather than "unknown
//!   field", but no message here carries its sender's roles: `config validate` refuses such a
//!   binding (and one for a channel clawgate does not have, or a `guildId` off Discord) instead
//!   of keeping a rule that can never match.

use serde::{Deserialize, Serialize};

use super::Config;
use crate::model::{Channel, ChatKind};

/// One `bindings[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Binding {
    pub agent_id: String,
    #[serde(rename = "match")]
    pub matches: BindingMatch,
}

/// What a binding matches on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct BindingMatch {
    pub channel: String,
    /// The channel account; absent is `default`, `"*"` is any.
    pub account_id: Option<String>,
    pub peer: Option<PeerMatch>,
    /// Slack workspace id (`T…`).
    pub team_id: Option<String>,
    /// Discord guild id (the message's workspace, as `teamId` is Slack's).
    pub guild_id: Option<String>,
    /// Discord roles; never matches here (see the module's decisions).
    pub roles: Option<Vec<String>>,
}

/// A conversation: `kind` is `direct` (or `dm`), `group` or `channel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerMatch {
    pub kind: String,
    pub id: String,
}

impl PeerMatch {
    /// The chat kind `kind` names, if it names one.
    pub fn chat_kind(&self) -> Option<ChatKind> {
        match self.kind.as_str() {
            "direct" | "dm" => Some(ChatKind::Dm),
            "group" => Some(ChatKind::Group),
            "channel" => Some(ChatKind::Channel),
            _ => None,
        }
    }
}

/// What a channel knows about a message when it picks the agent.
#[derive(Debug, Clone, Copy)]
pub struct RouteFacts<'a> {
    pub channel: Channel,
    pub account: &'a str,
    pub peer_kind: ChatKind,
    /// The chat (Telegram chat id, Slack channel or user id).
    pub peer_id: &'a str,
    /// A Telegram forum topic within the chat.
    pub topic: Option<&'a str>,
    pub team_id: Option<&'a str>,
}

/// Why an agent was picked, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteRank {
    Peer,
    ParentPeer,
    Team,
    Account,
    Channel,
}

impl RouteRank {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteRank::Peer => "peer",
            RouteRank::ParentPeer => "parent peer",
            RouteRank::Team => "team",
            RouteRank::Account => "account",
            RouteRank::Channel => "channel",
        }
    }
}

/// Which rule picked the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutedBy {
    /// `bindings[index]`.
    Binding {
        index: usize,
        rank: RouteRank,
    },
    /// The channel account's own `agent` setting.
    AccountSetting,
    Default,
}

/// The agent a message goes to, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub agent: String,
    pub by: RoutedBy,
}

impl Route {
    /// One line for logs, `agents list` and `sandbox explain`.
    pub fn describe(&self, bindings: &[Binding]) -> String {
        match &self.by {
            RoutedBy::Binding { index, rank } => format!(
                "bindings[{index}] ({} match: {})",
                rank.as_str(),
                bindings
                    .get(*index)
                    .map_or_else(String::new, |b| b.matches.describe())
            ),
            RoutedBy::AccountSetting => "the channel account's agent setting".into(),
            RoutedBy::Default => "the default agent (no binding matched)".into(),
        }
    }
}

impl BindingMatch {
    /// `channel=slack account=* peer=channel:C1`, for people.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("channel={}", self.channel)];
        if let Some(a) = &self.account_id {
            parts.push(format!("account={a}"));
        }
        if let Some(p) = &self.peer {
            parts.push(format!("peer={}:{}", p.kind, p.id));
        }
        if let Some(t) = &self.team_id {
            parts.push(format!("team={t}"));
        }
        if let Some(g) = &self.guild_id {
            parts.push(format!("guild={g}"));
        }
        parts.join(" ")
    }

    /// How specifically this binding matches `facts`, or `None` when a field it gives differs.
    /// With `loose_account`, the account and team a binding names match whatever they are
    /// (`sandbox explain` knows a session's chat, not the account or team it came through).
    fn rank(&self, facts: &RouteFacts, loose_account: bool) -> Option<RouteRank> {
        if self.channel != facts.channel.as_str() || self.roles.is_some() {
            return None;
        }
        let account_ok = match self.account_id.as_deref() {
            Some("*") => true,
            _ if loose_account => true,
            Some(a) => a == facts.account,
            None => facts.account == crate::config::TelegramConfig::DEFAULT_ACCOUNT,
        };
        if !account_ok {
            return None;
        }
        let space = self.team_id.as_ref().or(self.guild_id.as_ref());
        if let Some(space) = space {
            if !loose_account && facts.team_id != Some(space.as_str()) {
                return None;
            }
        }
        if let Some(peer) = &self.peer {
            if peer.chat_kind() != Some(facts.peer_kind) {
                return None;
            }
            let full = facts.topic.map(|t| format!("{}:topic:{t}", facts.peer_id));
            return if full.as_deref() == Some(peer.id.as_str())
                || (facts.topic.is_none() && peer.id == facts.peer_id)
            {
                Some(RouteRank::Peer)
            } else if peer.id == facts.peer_id {
                Some(RouteRank::ParentPeer)
            } else {
                None
            };
        }
        if space.is_some() {
            return Some(RouteRank::Team);
        }
        match self.account_id.as_deref() {
            Some("*") => Some(RouteRank::Channel),
            _ => Some(RouteRank::Account),
        }
    }
}

/// The routing table a gateway holds: the bindings, the accounts' own agents and the default.
#[derive(Debug, Clone, Default)]
pub struct AgentRoutes {
    pub bindings: Vec<Binding>,
    /// `(channel, account, agent)` for accounts with an `agent` setting.
    pub account_agents: Vec<(Channel, String, String)>,
    pub default_agent: String,
}

impl AgentRoutes {
    /// The agent for a message with these facts.
    pub fn route(&self, facts: &RouteFacts) -> Route {
        let best = self.best_binding(facts);
        let account = self
            .account_agents
            .iter()
            .find(|(c, a, _)| *c == facts.channel && a == facts.account);
        match (best, account) {
            (Some((index, rank)), _) if rank <= RouteRank::Account => self.bound(index, rank),
            (_, Some((_, _, agent))) => Route {
                agent: agent.clone(),
                by: RoutedBy::AccountSetting,
            },
            (Some((index, rank)), None) => self.bound(index, rank),
            (None, None) => Route {
                agent: self.default_agent.clone(),
                by: RoutedBy::Default,
            },
        }
    }

    /// The binding that would route a session of `agent` with these facts, whatever the
    /// account (`sandbox explain`, which starts from a session key).
    pub fn explain(&self, agent: &str, facts: &RouteFacts) -> Route {
        let best = self
            .bindings
            .iter()
            .enumerate()
            .filter(|(_, b)| b.agent_id == agent)
            .filter_map(|(i, b)| Some((i, b.matches.rank(facts, true)?)))
            .min_by_key(|&(i, rank)| (rank, i));
        match best {
            Some((index, rank)) => self.bound(index, rank),
            None if self
                .account_agents
                .iter()
                .any(|(c, _, a)| *c == facts.channel && a == agent) =>
            {
                Route {
                    agent: agent.to_string(),
                    by: RoutedBy::AccountSetting,
                }
            }
            None => Route {
                agent: agent.to_string(),
                by: RoutedBy::Default,
            },
        }
    }

    fn best_binding(&self, facts: &RouteFacts) -> Option<(usize, RouteRank)> {
        self.bindings
            .iter()
            .enumerate()
            .filter_map(|(i, b)| Some((i, b.matches.rank(facts, false)?)))
            .min_by_key(|&(i, rank)| (rank, i))
    }

    fn bound(&self, index: usize, rank: RouteRank) -> Route {
        Route {
            agent: self.bindings[index].agent_id.clone(),
            by: RoutedBy::Binding { index, rank },
        }
    }
}

impl Config {
    /// Each binding names a listed agent (when `agents.list` is used), a channel that has
    /// conversations, and a peer kind that exists.
    pub(super) fn check_bindings(&self, bad: &mut impl FnMut(&str, String)) {
        for (i, binding) in self.bindings.iter().enumerate() {
            let at = format!("bindings[{i}]");
            let agent = &binding.agent_id;
            if !self.agents.list.is_empty() && !self.agents.list.iter().any(|a| &a.id == agent) {
                bad(
                    &format!("{at}.agentId"),
                    format!("no agent {agent:?} in agents.list"),
                );
            }
            let m = &binding.matches;
            match m.channel.parse::<Channel>() {
                Ok(Channel::Hook) | Err(_) => bad(
                    &format!("{at}.match.channel"),
                    format!(
                        "{:?} is not a channel that routes here: use telegram, slack, whatsapp, discord or webchat",
                        m.channel
                    ),
                ),
                Ok(_) => {}
            }
            if let Some(peer) = &m.peer {
                if peer.chat_kind().is_none() {
                    bad(
                        &format!("{at}.match.peer.kind"),
                        format!(
                            "{:?} is not a peer kind: use direct, group or channel",
                            peer.kind
                        ),
                    );
                }
                if peer.id.is_empty() {
                    bad(&format!("{at}.match.peer.id"), "must not be empty".into());
                }
            }
            if m.roles.is_some() {
                bad(
                    &format!("{at}.match.roles"),
                    "Discord roles are not carried on messages here, so this binding would never match; remove its roles".into(),
                );
            }
            if m.guild_id.is_some() && m.channel != "discord" {
                bad(
                    &format!("{at}.match.guildId"),
                    "guildId is a Discord guild: it matches only with channel \"discord\"".into(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(agent: &str, matches: serde_json::Value) -> Binding {
        serde_json::from_value(serde_json::json!({"agentId": agent, "match": matches}))
            .expect("a valid binding")
    }

    fn routes() -> AgentRoutes {
        AgentRoutes {
            bindings: vec![
                binding(
                    "everyone",
                    serde_json::json!({"channel": "slack", "accountId": "*"}),
                ),
                binding(
                    "team",
                    serde_json::json!({"channel": "slack", "teamId": "T1"}),
                ),
                binding(
                    "ops",
                    serde_json::json!({"channel": "slack", "peer": {"kind": "channel", "id": "C9"}}),
                ),
                binding(
                    "group",
                    serde_json::json!({"channel": "telegram", "peer": {"kind": "group", "id": "-100"}}),
                ),
                binding(
                    "topic",
                    serde_json::json!({"channel": "telegram", "peer": {"kind": "group", "id": "-100:topic:7"}}),
                ),
                binding(
                    "work-bot",
                    serde_json::json!({"channel": "telegram", "accountId": "work"}),
                ),
            ],
            account_agents: vec![(Channel::Telegram, "alerts".into(), "alerts-agent".into())],
            default_agent: "main".into(),
        }
    }

    fn slack<'a>(peer: &'a str, team: Option<&'a str>) -> RouteFacts<'a> {
        RouteFacts {
            channel: Channel::Slack,
            account: "default",
            peer_kind: ChatKind::Channel,
            peer_id: peer,
            topic: None,
            team_id: team,
        }
    }

    fn telegram<'a>(account: &'a str, chat: &'a str, topic: Option<&'a str>) -> RouteFacts<'a> {
        RouteFacts {
            channel: Channel::Telegram,
            account,
            peer_kind: ChatKind::Group,
            peer_id: chat,
            topic,
            team_id: None,
        }
    }

    #[test]
    fn the_most_specific_binding_wins_whatever_the_order() {
        let r = routes();
        assert_eq!(r.route(&slack("C9", Some("T1"))).agent, "ops");
        assert_eq!(r.route(&slack("C2", Some("T1"))).agent, "team");
        assert_eq!(r.route(&slack("C2", Some("T2"))).agent, "everyone");
        assert_eq!(
            r.route(&telegram("default", "-100", Some("7"))).agent,
            "topic"
        );
        assert_eq!(
            r.route(&telegram("default", "-100", Some("8"))).agent,
            "group"
        );
        assert_eq!(
            r.route(&telegram("default", "-100", Some("8"))).by,
            RoutedBy::Binding {
                index: 3,
                rank: RouteRank::ParentPeer
            }
        );
        assert_eq!(r.route(&telegram("default", "-100", None)).agent, "group");
    }

    #[test]
    fn an_omitted_account_means_the_default_account_only() {
        let r = routes();
        // The group binding names no account: a second bot in the same group is not bound.
        assert_eq!(r.route(&telegram("work", "-100", None)).agent, "work-bot");
        assert_eq!(r.route(&telegram("other", "-100", None)).agent, "main");
    }

    #[test]
    fn an_account_setting_sits_between_account_and_channel_bindings() {
        let mut r = routes();
        assert_eq!(
            r.route(&telegram("alerts", "-5", None)).by,
            RoutedBy::AccountSetting
        );
        r.bindings.push(binding(
            "all-tg",
            serde_json::json!({"channel": "telegram", "accountId": "*"}),
        ));
        assert_eq!(
            r.route(&telegram("alerts", "-5", None)).agent,
            "alerts-agent"
        );
        assert_eq!(r.route(&telegram("default", "-5", None)).agent, "all-tg");
        r.bindings.push(binding(
            "alerts-bound",
            serde_json::json!({"channel": "telegram", "accountId": "alerts"}),
        ));
        assert_eq!(
            r.route(&telegram("alerts", "-5", None)).agent,
            "alerts-bound"
        );
    }

    #[test]
    fn a_binding_needing_a_fact_the_message_lacks_does_not_match() {
        let r = AgentRoutes {
            bindings: vec![
                binding(
                    "discord",
                    serde_json::json!({"channel": "slack", "guildId": "G1"}),
                ),
                binding(
                    "kind",
                    serde_json::json!({"channel": "slack", "peer": {"kind": "direct", "id": "C9"}}),
                ),
            ],
            ..Default::default()
        };
        let route = r.route(&slack("C9", None));
        assert_eq!(route.by, RoutedBy::Default);
        assert_eq!(route.agent, "");
    }

    #[test]
    fn explain_finds_the_binding_of_the_sessions_agent_whatever_the_account() {
        let r = routes();
        let route = r.explain("work-bot", &telegram("?", "-5", None));
        assert_eq!(
            route.by,
            RoutedBy::Binding {
                index: 5,
                rank: RouteRank::Account
            }
        );
        assert!(
            route.describe(&r.bindings).contains("account=work"),
            "{}",
            route.describe(&r.bindings)
        );
        assert_eq!(
            r.explain("main", &telegram("?", "-5", None)).by,
            RoutedBy::Default
        );
    }

    #[test]
    fn config_validate_names_each_bad_binding() {
        let config = Config::parse(
            r#"{ agents: { list: [{ id: "main" }, { id: "ops" }] },
                 bindings: [
                   { agentId: "ops", match: { channel: "slack", teamId: "T1" } },
                   { agentId: "nobody", match: { channel: "slack" } },
                   { agentId: "ops", match: { channel: "discord", guildId: "G1", roles: ["R1"] } },
                   { agentId: "ops", match: { channel: "telegram", peer: { kind: "room", id: "" } } },
                 ] }"#,
        )
        .unwrap();

        let issues = config.validate().unwrap_err();

        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "bindings[1].agentId",
                "bindings[2].match.roles",
                "bindings[3].match.peer.kind",
                "bindings[3].match.peer.id",
            ],
            "{issues:?}"
        );
        assert!(Config::parse(
            r#"{ bindings: [{ agentId: "x", match: { channel: "slack", team: "T1" } }] }"#
        )
        .is_err());
    }
}
