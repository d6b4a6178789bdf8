//! `channels.matrix`: the assistant as a Matrix application service. The homeserver pushes
//! transactions to the gateway (`PUT /_matrix/app/v1/transactions/<txnId>`, with `hsToken`);
//! the bot (`userId`, the registration's `sender_localpart`) answers through the client-server
//! API with `asToken`. OpenClaw's keys where they mean the same: `homeserver`, `userId`,
//! `dm.{enabled, policy, allowFrom}`, `groupPolicy`, `groupAllowFrom`, `groups` (alias
//! `rooms`) by room id, `autoJoin`, `autoJoinAllowlist`, `streaming`, `mediaMaxMb`.
//!
//! Decisions:
//! - An application service, not a logged-in user: the homeserver pushes, so a Lambda can
//!   take it, and nothing polls `/sync`. OpenClaw's `accessToken`/`password` login is refused
//!   as an unknown key (`asToken` is what this mode needs). No end-to-end encryption: encrypted
//!   rooms' messages are ignored.
//! - A room is a DM only when the bot's `m.direct` account data (kept on the homeserver) says
//!   it is the DM with that sender: recorded when the bot joins an invite marked `is_direct` into
//!   a room whose only other member is the inviter, forgotten as soon as anyone else joins or is
//!   invited. Every other room is a group, answered
//!   under the group rules. The owner's DM session can never answer into a shared room.
//! - `autoJoin` (default `"off"`, as OpenClaw): which invites the bot accepts. A DM invite from a
//!   sender in `dm.allowFrom` is always accepted, so the owner's DM works without it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{DmPolicy, GroupAccess, GroupEntry, GroupPolicy, PeerId, Secret, Streaming};

/// Where the homeserver pushes transactions (the gateway serves the whole `/_matrix/app/v1`).
pub const MATRIX_TRANSACTIONS_PATH: &str = "/_matrix/app/v1/transactions/{txn_id}";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MatrixConfig {
    pub enabled: bool,
    /// The client-server API base (`MATRIX_HOMESERVER`), e.g. `https://matrix.example.org`.
    pub homeserver: Option<String>,
    /// The bot's user id (`MATRIX_USER_ID`), e.g. `@clawgate:example.org`.
    pub user_id: Option<String>,
    /// The registration's `as_token` (`MATRIX_AS_TOKEN`): the bot's credential.
    pub as_token: Option<Secret>,
    /// The registration's `hs_token` (`MATRIX_HS_TOKEN`): what the homeserver sends.
    pub hs_token: Option<Secret>,
    pub dm: MatrixDm,
    pub group_policy: GroupPolicy,
    pub group_allow_from: Vec<PeerId>,
    /// By room id (`!abc:example.org`), or `"*"`.
    #[serde(alias = "rooms")]
    pub groups: BTreeMap<String, GroupEntry>,
    pub auto_join: AutoJoin,
    /// Room ids the bot joins under `autoJoin: "allowlist"`.
    pub auto_join_allowlist: Vec<String>,
    pub streaming: Streaming,
    /// The largest inbound file fetched, in MB (default 20).
    pub media_max_mb: Option<u64>,
}

/// `channels.matrix.dm`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MatrixDm {
    pub enabled: bool,
    pub policy: DmPolicy,
    /// Matrix user ids (`@ada:example.org`).
    pub allow_from: Vec<PeerId>,
}

impl Default for MatrixDm {
    fn default() -> Self {
        MatrixDm {
            enabled: true,
            policy: DmPolicy::Pairing,
            allow_from: vec![],
        }
    }
}

/// Which invites the bot accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoJoin {
    Always,
    Allowlist,
    #[default]
    Off,
}

impl Default for MatrixConfig {
    fn default() -> Self {
        MatrixConfig {
            enabled: true,
            homeserver: None,
            user_id: None,
            as_token: None,
            hs_token: None,
            dm: MatrixDm::default(),
            group_policy: GroupPolicy::Allowlist,
            group_allow_from: vec![],
            groups: BTreeMap::new(),
            auto_join: AutoJoin::Off,
            auto_join_allowlist: vec![],
            streaming: Streaming::default(),
            media_max_mb: None,
        }
    }
}

impl MatrixConfig {
    /// The DM policy, `disabled` when `dm.enabled` is false.
    pub fn dm_policy(&self) -> DmPolicy {
        if self.dm.enabled {
            self.dm.policy
        } else {
            DmPolicy::Disabled
        }
    }

    pub fn group_access(&self) -> GroupAccess {
        GroupAccess {
            policy: self.group_policy,
            groups: self.groups.clone(),
            group_allow_from: self.group_allow_from.clone(),
        }
    }

    /// Whether the bot accepts an invite to `room` from `inviter` (`direct`: marked as a DM).
    pub fn joins(&self, room: &str, inviter: &str, direct: bool) -> bool {
        let owner_dm = direct
            && self.dm_policy() != DmPolicy::Disabled
            && super::listed(&self.dm.allow_from, inviter);
        owner_dm
            || match self.auto_join {
                AutoJoin::Always => true,
                AutoJoin::Allowlist => self.auto_join_allowlist.iter().any(|r| r == room),
                AutoJoin::Off => false,
            }
    }

    /// `config validate`: the bot's id and the homeserver's URL have their shapes.
    pub(super) fn check(&self, bad: &mut impl FnMut(&str, String)) {
        if let Some(user) = &self.user_id {
            let shaped = user
                .strip_prefix('@')
                .and_then(|u| u.split_once(':'))
                .is_some_and(|(local, server)| !local.is_empty() && !server.is_empty());
            if !shaped {
                bad(
                    "channels.matrix.userId",
                    "must be the bot's full user id, like @clawgate:example.org".into(),
                );
            }
        }
        if let Some(url) = &self.homeserver {
            if reqwest::Url::parse(url).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
                bad(
                    "channels.matrix.homeserver",
                    "must be the homeserver's http(s) URL".into(),
                );
            }
        }
    }

    /// The `MATRIX_*` environment variables over `slot`.
    pub(super) fn apply_env(slot: &mut Option<MatrixConfig>, get: impl Fn(&str) -> Option<String>) {
        super::env_over(
            slot,
            get,
            &[
                ("MATRIX_HOMESERVER", |c, v| c.homeserver = Some(v)),
                ("MATRIX_USER_ID", |c, v| c.user_id = Some(v)),
                ("MATRIX_AS_TOKEN", |c, v| c.as_token = Some(Secret(v))),
                ("MATRIX_HS_TOKEN", |c, v| c.hs_token = Some(Secret(v))),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owners_dm_invite_is_joined_unless_auto_join_says_more() {
        let config: MatrixConfig = serde_json::from_str(
            r#"{"dm": {"allowFrom": ["@ada:example.org"]}, "autoJoin": "allowlist",
                "autoJoinAllowlist": ["!ops:example.org"], "rooms": {"!ops:example.org": {}}}"#,
        )
        .unwrap();

        let owner_dm = config.joins("!a:example.org", "@ada:example.org", true);
        let owner_room = config.joins("!b:example.org", "@ada:example.org", false);
        let stranger_dm = config.joins("!c:example.org", "@eve:example.org", true);
        let listed_room = config.joins("!ops:example.org", "@eve:example.org", false);

        assert_eq!(
            [owner_dm, owner_room, stranger_dm, listed_room],
            [true, false, false, true]
        );
        assert!(
            config.groups.contains_key("!ops:example.org"),
            "rooms is groups"
        );
    }

    #[test]
    fn a_login_token_or_a_bad_user_id_is_refused() {
        let login = serde_json::from_str::<MatrixConfig>(r#"{"accessToken": "syt_x"}"#);
        let config: MatrixConfig =
            serde_json::from_str(r#"{"userId": "clawgate", "homeserver": "ftp://x"}"#).unwrap();
        let mut refused = vec![];

        config.check(&mut |key, _| refused.push(key.to_string()));

        assert!(login.is_err());
        assert_eq!(
            refused,
            ["channels.matrix.userId", "channels.matrix.homeserver"]
        );
    }
}
