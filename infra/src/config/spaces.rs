//! Group rules for channels whose groups live inside a workspace: a Discord guild, a Teams team
//! (`guilds.<id>` / `teams.<id>` with `requireMention`, `users` and
//! `channels.<id>.{allow, requireMention}`), resolved per workspace to the [`GroupAccess`]
//! every channel uses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{GroupAccess, GroupEntry, GroupPolicy, PeerId, ANY_GROUP};

/// One workspace's rules (`guilds.<guildId>`, `teams.<teamId>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SpaceRules {
    pub require_mention: Option<bool>,
    /// Who may talk to the agent in this workspace; empty: `groupAllowFrom`, else anyone.
    pub users: Vec<PeerId>,
    /// By channel id, or `"*"`; without any, every channel of the workspace.
    pub channels: BTreeMap<String, SpaceChannel>,
}

/// `…channels.<channelId>` within a workspace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SpaceChannel {
    pub allow: Option<bool>,
    pub require_mention: Option<bool>,
}

impl SpaceRules {
    /// The group rules in workspace `space` (by channel id), from the workspaces listed in
    /// `spaces` (or `"*"`). A workspace that is not listed has no groups, so under `allowlist`
    /// nothing there is answered.
    pub fn group_access(
        spaces: &BTreeMap<String, SpaceRules>,
        space: Option<&str>,
        policy: GroupPolicy,
        group_allow_from: &[PeerId],
    ) -> GroupAccess {
        let entry = space.and_then(|s| spaces.get(s).or_else(|| spaces.get(ANY_GROUP)));
        let groups = match entry {
            None => BTreeMap::new(),
            Some(rules) if rules.channels.is_empty() => [(
                ANY_GROUP.to_string(),
                GroupEntry {
                    require_mention: rules.require_mention,
                    allow_from: (!rules.users.is_empty()).then(|| rules.users.clone()),
                    enabled: None,
                },
            )]
            .into(),
            Some(rules) => rules
                .channels
                .iter()
                .map(|(id, channel)| {
                    let entry = GroupEntry {
                        require_mention: channel.require_mention.or(rules.require_mention),
                        allow_from: (!rules.users.is_empty()).then(|| rules.users.clone()),
                        enabled: channel.allow,
                    };
                    (id.clone(), entry)
                })
                .collect(),
        };
        GroupAccess {
            policy,
            groups,
            group_allow_from: group_allow_from.to_vec(),
        }
    }
}
