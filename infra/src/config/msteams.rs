//! `channels.msteams`: a Microsoft Teams bot on the Bot Framework (OpenClaw's keys: `appId`,
//! `appPassword`, `tenantId`, `webhook.{port, path}`, `dmPolicy`, `allowFrom`, `groupPolicy`,
//! `groupAllowFrom`, `teams.<teamId>` with `requireMention`, `users` and
//! `channels.<conversationId>.{allow, requireMention}`). Teams posts activities to
//! `/api/messages`; replies go to the activity's service URL with a client-credentials token.
//!
//! Decisions:
//! - Everything is served on the gateway's one port, at `/api/messages` (the Bot Framework's
//!   usual path and OpenClaw's default): `webhook.port` is accepted and ignored, and
//!   `webhook.path` may only name that path (`config validate` says so).
//! - A channel message's workspace is its team (`channelData.team.id`); a group chat, which
//!   belongs to no team, is its own workspace: list it under `teams` by its conversation id
//!   (`19:…@thread.v2`). Unlisted workspaces are not answered under `allowlist`.
//! - `allowFrom` holds Entra (AAD) object ids, the stable id Teams gives each user.
//! - `tenantId` set: the token endpoint is the tenant's (single-tenant bots, the only kind
//!   Azure creates now) and activities from other tenants are ignored. Unset: the multi-tenant
//!   `botframework.com` endpoint, any tenant.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{DmPolicy, GroupAccess, GroupPolicy, PeerId, Secret, SpaceRules, Streaming};

/// Where Teams posts activities.
pub const MSTEAMS_WEBHOOK_PATH: &str = "/api/messages";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MsTeamsConfig {
    pub enabled: bool,
    /// The bot's Microsoft App ID (`MSTEAMS_APP_ID`): the audience of every inbound token.
    pub app_id: Option<String>,
    /// Its client secret (`MSTEAMS_APP_PASSWORD`).
    pub app_password: Option<Secret>,
    /// The Entra tenant (`MSTEAMS_TENANT_ID`).
    pub tenant_id: Option<String>,
    pub webhook: MsTeamsWebhook,
    /// The Bot Framework's OpenID metadata (its signing keys are behind `jwks_uri`).
    pub open_id_metadata_url: Option<String>,
    /// The token endpoint (default: the tenant's, or `botframework.com`'s).
    pub token_url: Option<String>,
    /// Where a message without an activity to answer is sent (a hook's `deliver`).
    pub service_url: Option<String>,
    pub dm_policy: DmPolicy,
    /// Entra object ids.
    pub allow_from: Vec<PeerId>,
    pub group_policy: GroupPolicy,
    pub group_allow_from: Vec<PeerId>,
    /// By team id (or a group chat's conversation id), or `"*"`.
    pub teams: BTreeMap<String, SpaceRules>,
    pub streaming: Streaming,
}

/// `channels.msteams.webhook` (OpenClaw runs a listener of its own; clawgate has one port).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MsTeamsWebhook {
    pub port: Option<u16>,
    pub path: Option<String>,
}

impl Default for MsTeamsConfig {
    fn default() -> Self {
        MsTeamsConfig {
            enabled: true,
            app_id: None,
            app_password: None,
            tenant_id: None,
            webhook: MsTeamsWebhook::default(),
            open_id_metadata_url: None,
            token_url: None,
            service_url: None,
            dm_policy: DmPolicy::Pairing,
            allow_from: vec![],
            group_policy: GroupPolicy::Allowlist,
            group_allow_from: vec![],
            teams: BTreeMap::new(),
            streaming: Streaming::default(),
        }
    }
}

impl MsTeamsConfig {
    /// The issuer of the Bot Framework's channel tokens.
    pub const ISSUER: &'static str = "https://api.botframework.com";

    pub fn open_id_metadata_url(&self) -> &str {
        self.open_id_metadata_url
            .as_deref()
            .unwrap_or("https://login.botframework.com/v1/.well-known/openidconfiguration")
    }

    pub fn token_url(&self) -> String {
        match (&self.token_url, &self.tenant_id) {
            (Some(url), _) => url.clone(),
            (None, tenant) => format!(
                "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
                tenant.as_deref().unwrap_or("botframework.com")
            ),
        }
    }

    pub fn service_url(&self) -> &str {
        self.service_url
            .as_deref()
            .unwrap_or("https://smba.trafficmanager.net/teams/")
    }

    /// The group rules in workspace `team` (a team id, or a group chat's conversation id).
    pub fn group_access(&self, team: Option<&str>) -> GroupAccess {
        SpaceRules::group_access(&self.teams, team, self.group_policy, &self.group_allow_from)
    }

    /// `config validate`: the webhook path is the one clawgate serves.
    pub(super) fn check(&self, bad: &mut impl FnMut(&str, String)) {
        if let Some(path) = &self.webhook.path {
            if path != MSTEAMS_WEBHOOK_PATH {
                bad(
                    "channels.msteams.webhook.path",
                    format!("clawgate serves Teams at {MSTEAMS_WEBHOOK_PATH} only; set the bot's messaging endpoint to it"),
                );
            }
        }
    }

    /// The `MSTEAMS_*` environment variables over `slot`.
    pub(super) fn apply_env(
        slot: &mut Option<MsTeamsConfig>,
        get: impl Fn(&str) -> Option<String>,
    ) {
        super::env_over(
            slot,
            get,
            &[
                ("MSTEAMS_APP_ID", |c, v| c.app_id = Some(v)),
                ("MSTEAMS_APP_PASSWORD", |c, v| {
                    c.app_password = Some(Secret(v))
                }),
                ("MSTEAMS_TENANT_ID", |c, v| c.tenant_id = Some(v)),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_openclaw_msteams_block_reads_and_a_foreign_path_is_refused() {
        let config: MsTeamsConfig = serde_json::from_str(
            r#"{"appId": "app", "appPassword": "pw", "tenantId": "t1",
                "webhook": {"port": 3978, "path": "/bot"}, "teams": {"T1": {"requireMention": false}}}"#,
        )
        .unwrap();
        let mut refused = vec![];

        config.check(&mut |key, _| refused.push(key.to_string()));

        assert_eq!(refused, ["channels.msteams.webhook.path"]);
        assert_eq!(
            config.token_url(),
            "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
        );
        assert_eq!(
            format!("{:?}", config.group_access(Some("T1")).verdict("19:x", "u")),
            "Admit { require_mention: false }"
        );
    }
}
