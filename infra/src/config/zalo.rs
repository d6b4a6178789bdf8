//! `channels.zalo`: a Zalo Official Account (OA). Zalo posts the OA's events to the webhook
//! signed with `X-ZEvent-Signature` (SHA-256 of app id + body + timestamp + the OA secret key);
//! replies go through the OA API's customer-service messages. Keys: `appId`
//! (`ZALO_APP_ID`), `oaSecretKey` (`ZALO_OA_SECRET_KEY`), `accessToken`
//! (`ZALO_OA_ACCESS_TOKEN`), `apiBase`, `dmPolicy`, `allowFrom` (Zalo user ids).
//!
//! Decisions: an OA talks to people one-to-one, so there are no group keys; the access token
//! is the owner's to refresh (Zalo's OAuth flow) and put in the secret store.

use serde::{Deserialize, Serialize};

use super::{DmPolicy, PeerId, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ZaloConfig {
    pub enabled: bool,
    /// The OA API's base URL (default `https://openapi.zalo.me`).
    pub api_base: Option<String>,
    pub app_id: Option<String>,
    pub oa_secret_key: Option<Secret>,
    pub access_token: Option<Secret>,
    pub dm_policy: DmPolicy,
    pub allow_from: Vec<PeerId>,
}

impl Default for ZaloConfig {
    fn default() -> Self {
        ZaloConfig {
            enabled: true,
            api_base: None,
            app_id: None,
            oa_secret_key: None,
            access_token: None,
            dm_policy: DmPolicy::Pairing,
            allow_from: vec![],
        }
    }
}

impl ZaloConfig {
    pub const DEFAULT_API_BASE: &'static str = "https://openapi.zalo.me";

    pub fn api_base(&self) -> &str {
        self.api_base
            .as_deref()
            .unwrap_or(Self::DEFAULT_API_BASE)
            .trim_end_matches('/')
    }

    /// The `ZALO_*` environment variables over `slot`.
    pub(super) fn apply_env(slot: &mut Option<ZaloConfig>, get: impl Fn(&str) -> Option<String>) {
        super::env_over(
            slot,
            get,
            &[
                ("ZALO_APP_ID", |c, v| c.app_id = Some(v)),
                ("ZALO_OA_SECRET_KEY", |c, v| {
                    c.oa_secret_key = Some(Secret(v))
                }),
                ("ZALO_OA_ACCESS_TOKEN", |c, v| {
                    c.access_token = Some(Secret(v))
                }),
            ],
        );
    }
}
