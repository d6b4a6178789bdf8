//! `channels.bluebubbles`: iMessage through a BlueBubbles server (the user's own Mac relaying
//! iMessage over HTTP), so a serverless deployment can offer iMessage without a Mac in the
//! fleet. OpenClaw's keys: `serverUrl`, `password` (the server's API password, also the
//! webhook's shared secret), `webhookPath`, `dmPolicy`, `allowFrom` (E.164 numbers or Apple ID
//! emails), `groupPolicy`, `groupAllowFrom`, `groups` (by chat guid, or `"*"`), `mediaMaxMb`.
//!
//! Decisions:
//! - The webhook is `POST /bluebubbles-webhook?password=<password>` (OpenClaw's default path):
//!   BlueBubbles can neither sign a webhook nor set a header, so the password rides in the
//!   query; it is compared in constant time and never logged. Another `webhookPath` is refused
//!   by `config validate` (the route is fixed, also on Lambda).
//! - iMessage has no mentions: a listed group is answered only when its `requireMention` is
//!   `false`.
//! - Replies use the AppleScript send method (no Private API needed), which cannot edit, so
//!   there are no previews.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{DmPolicy, GroupAccess, GroupEntry, GroupPolicy, PeerId, Secret};

/// The webhook's path.
pub const BLUEBUBBLES_WEBHOOK_PATH: &str = "/bluebubbles-webhook";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct BlueBubblesConfig {
    pub enabled: bool,
    /// The server's base URL, e.g. `http://192.168.1.100:1234` (`BLUEBUBBLES_SERVER_URL`).
    pub server_url: Option<String>,
    /// The server's API password (`BLUEBUBBLES_PASSWORD`).
    pub password: Option<Secret>,
    /// Accepted for OpenClaw files; must be [`BLUEBUBBLES_WEBHOOK_PATH`].
    pub webhook_path: Option<String>,
    pub dm_policy: DmPolicy,
    pub allow_from: Vec<PeerId>,
    pub group_policy: GroupPolicy,
    pub group_allow_from: Vec<PeerId>,
    /// By chat guid (`iMessage;+;chat…`), or `"*"`.
    pub groups: BTreeMap<String, GroupEntry>,
    pub media_max_mb: Option<u64>,
}

impl Default for BlueBubblesConfig {
    fn default() -> Self {
        BlueBubblesConfig {
            enabled: true,
            server_url: None,
            password: None,
            webhook_path: None,
            dm_policy: DmPolicy::Pairing,
            allow_from: vec![],
            group_policy: GroupPolicy::Allowlist,
            group_allow_from: vec![],
            groups: BTreeMap::new(),
            media_max_mb: None,
        }
    }
}

impl BlueBubblesConfig {
    pub fn group_access(&self) -> GroupAccess {
        GroupAccess {
            policy: self.group_policy,
            groups: self.groups.clone(),
            group_allow_from: self.group_allow_from.clone(),
        }
    }

    /// `config validate`: the webhook's path is the fixed route.
    pub(super) fn check(&self, bad: &mut impl FnMut(&str, String)) {
        if self
            .webhook_path
            .as_deref()
            .is_some_and(|p| p != BLUEBUBBLES_WEBHOOK_PATH)
        {
            bad(
                "channels.bluebubbles.webhookPath",
                format!("the webhook is served at {BLUEBUBBLES_WEBHOOK_PATH} (a fixed route, also on Lambda); remove the key or set it to that"),
            );
        }
    }

    /// The `BLUEBUBBLES_*` environment variables over `slot`.
    pub(super) fn apply_env(
        slot: &mut Option<BlueBubblesConfig>,
        get: impl Fn(&str) -> Option<String>,
    ) {
        super::env_over(
            slot,
            get,
            &[
                ("BLUEBUBBLES_SERVER_URL", |c, v| c.server_url = Some(v)),
                ("BLUEBUBBLES_PASSWORD", |c, v| c.password = Some(Secret(v))),
            ],
        );
    }
}
