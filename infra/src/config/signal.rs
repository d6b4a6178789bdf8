//! `channels.signal`: Signal through a `signal-cli` daemon in HTTP mode (`signal-cli -a
//! <account> daemon --http 127.0.0.1:8080`), a local ingress for `clawgate up` and
//! `clawgate worker --ingress`: events come over its server-sent event stream, replies go out
//! as JSON-RPC `send`. OpenClaw's keys: `account` (the bot's number), `httpUrl`, `dmPolicy`,
//! `allowFrom` (E.164 numbers or Signal uuids), `groupPolicy`, `groupAllowFrom`, `groups` (by
//! group id, or `"*"`), `mediaMaxMb`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{DmPolicy, GroupAccess, GroupEntry, GroupPolicy, PeerId};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SignalConfig {
    pub enabled: bool,
    /// The daemon's base URL (default `http://127.0.0.1:8080`; `SIGNAL_HTTP_URL`).
    pub http_url: Option<String>,
    /// The bot's own number (`SIGNAL_ACCOUNT`): what a mention names, and whose messages are
    /// the bot's.
    pub account: Option<String>,
    pub dm_policy: DmPolicy,
    pub allow_from: Vec<PeerId>,
    pub group_policy: GroupPolicy,
    pub group_allow_from: Vec<PeerId>,
    /// By group id (base64, as signal-cli prints it), or `"*"`.
    pub groups: BTreeMap<String, GroupEntry>,
    pub media_max_mb: Option<u64>,
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            enabled: true,
            http_url: None,
            account: None,
            dm_policy: DmPolicy::Pairing,
            allow_from: vec![],
            group_policy: GroupPolicy::Allowlist,
            group_allow_from: vec![],
            groups: BTreeMap::new(),
            media_max_mb: None,
        }
    }
}

impl SignalConfig {
    pub const DEFAULT_HTTP_URL: &'static str = "http://127.0.0.1:8080";

    pub fn http_url(&self) -> &str {
        self.http_url
            .as_deref()
            .unwrap_or(Self::DEFAULT_HTTP_URL)
            .trim_end_matches('/')
    }

    pub fn group_access(&self) -> GroupAccess {
        GroupAccess {
            policy: self.group_policy,
            groups: self.groups.clone(),
            group_allow_from: self.group_allow_from.clone(),
        }
    }

    /// The `SIGNAL_*` environment variables over `slot`.
    pub(super) fn apply_env(slot: &mut Option<SignalConfig>, get: impl Fn(&str) -> Option<String>) {
        super::env_over(
            slot,
            get,
            &[
                ("SIGNAL_HTTP_URL", |c, v| c.http_url = Some(v)),
                ("SIGNAL_ACCOUNT", |c, v| c.account = Some(v)),
            ],
        );
    }
}
