//! `channels.googlechat`: a Google Chat app with an HTTP endpoint (OpenClaw's keys:
//! `serviceAccountFile`, `audienceType`, `audience`, `dmPolicy`, `allowFrom`, `groupPolicy`,
//! `groupAllowFrom`, `groups` by space name). Google signs every request with a bearer JWT;
//! replies go through the Chat API as the app's service account.
//!
//! Decisions:
//! - `audienceType: "project-number"` (the default): the token's issuer is
//!   `chat@system.gserviceaccount.com`, its audience the project number, its keys that service
//!   account's published JWKS. `"app-url"`: an OIDC token from `https://accounts.google.com`
//!   for the `chat@system.gserviceaccount.com` email, audience the endpoint URL, Google's OAuth
//!   keys. `jwksUrl` overrides the key set (the real URLs stay the defaults).
//! - The service account's key is a secret: `GOOGLE_CHAT_SERVICE_ACCOUNT` (the JSON) or
//!   `serviceAccountFile` (read when the worker starts).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{DmPolicy, GroupAccess, GroupEntry, GroupPolicy, PeerId, Secret};

/// Who the token says it is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AudienceType {
    #[default]
    ProjectNumber,
    AppUrl,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct GoogleChatConfig {
    pub enabled: bool,
    pub audience_type: AudienceType,
    /// The project number, or the endpoint URL (`GOOGLE_CHAT_AUDIENCE`).
    pub audience: Option<String>,
    /// The signing keys (default: Google's for the audience type).
    pub jwks_url: Option<String>,
    /// The Chat API base (default `https://chat.googleapis.com`).
    pub api_base: Option<String>,
    /// The service account key JSON (`GOOGLE_CHAT_SERVICE_ACCOUNT`).
    pub service_account: Option<Secret>,
    /// A file holding it.
    pub service_account_file: Option<String>,
    pub dm_policy: DmPolicy,
    /// `users/<id>` names.
    pub allow_from: Vec<PeerId>,
    pub group_policy: GroupPolicy,
    pub group_allow_from: Vec<PeerId>,
    /// By space name (`spaces/AAAA…`), or `"*"`.
    pub groups: BTreeMap<String, GroupEntry>,
}

impl Default for GoogleChatConfig {
    fn default() -> Self {
        GoogleChatConfig {
            enabled: true,
            audience_type: AudienceType::default(),
            audience: None,
            jwks_url: None,
            api_base: None,
            service_account: None,
            service_account_file: None,
            dm_policy: DmPolicy::Pairing,
            allow_from: vec![],
            group_policy: GroupPolicy::Allowlist,
            group_allow_from: vec![],
            groups: BTreeMap::new(),
        }
    }
}

impl GoogleChatConfig {
    /// The Chat service account: the issuer of project-number tokens, the email of app-url ones.
    pub const CHAT_ISSUER: &'static str = "chat@system.gserviceaccount.com";

    /// The issuer the token must carry.
    pub fn issuer(&self) -> &'static str {
        match self.audience_type {
            AudienceType::ProjectNumber => Self::CHAT_ISSUER,
            AudienceType::AppUrl => "https://accounts.google.com",
        }
    }

    pub fn jwks_url(&self) -> &str {
        self.jwks_url
            .as_deref()
            .unwrap_or(match self.audience_type {
            AudienceType::ProjectNumber => {
                "https://www.googleapis.com/service_accounts/v1/jwk/chat@system.gserviceaccount.com"
            }
            AudienceType::AppUrl => "https://www.googleapis.com/oauth2/v3/certs",
        })
    }

    pub fn api_base(&self) -> &str {
        self.api_base
            .as_deref()
            .unwrap_or("https://chat.googleapis.com")
            .trim_end_matches('/')
    }

    pub fn group_access(&self) -> GroupAccess {
        GroupAccess {
            policy: self.group_policy,
            groups: self.groups.clone(),
            group_allow_from: self.group_allow_from.clone(),
        }
    }

    /// The `GOOGLE_CHAT_*` environment variables over `slot`.
    pub(super) fn apply_env(
        slot: &mut Option<GoogleChatConfig>,
        get: impl Fn(&str) -> Option<String>,
    ) {
        super::env_over(
            slot,
            get,
            &[
                ("GOOGLE_CHAT_AUDIENCE", |c, v| c.audience = Some(v)),
                ("GOOGLE_CHAT_SERVICE_ACCOUNT", |c, v| {
                    c.service_account = Some(Secret(v))
                }),
            ],
        );
    }
}
