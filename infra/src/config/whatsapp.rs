//! `channels.whatsapp`: the WhatsApp Business Cloud API (Meta's Graph API), the path a
//! serverless deployment can offer. OpenClaw serves WhatsApp through an always-on WhatsApp Web
//! socket; its access keys (`dmPolicy`, `allowFrom` in E.164, `mediaMaxMb`) mean the same here,
//! and the Cloud API adds its own: the app's `accessToken`, `phoneNumberId`, `appSecret` (the
//! `X-Hub-Signature-256` key) and `verifyToken` (the subscription handshake).
//!
//! Decisions:
//! - The Cloud API delivers one-to-one chats only, so there are no group keys: a group message
//!   would never arrive.
//! - `allowFrom` holds E.164 numbers (`+15551234567`); a sender's id is its `wa_id` with the `+`.
//! - Replies cannot be edited (the Cloud API has no edit), so `streaming` is not offered.

use serde::{Deserialize, Serialize};

use super::{DmPolicy, PeerId, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct WhatsappConfig {
    pub enabled: bool,
    /// Graph API base URL (default `https://graph.facebook.com`; `WHATSAPP_API_BASE`).
    pub api_base: Option<String>,
    /// Graph API version path segment (default `v21.0`).
    pub api_version: Option<String>,
    /// A system user's access token (`WHATSAPP_ACCESS_TOKEN`).
    pub access_token: Option<Secret>,
    /// The business phone number's id: replies are sent from it, and webhook events for any
    /// other number are ignored (`WHATSAPP_PHONE_NUMBER_ID`).
    pub phone_number_id: Option<String>,
    /// The Meta app's secret, the key of `X-Hub-Signature-256` (`WHATSAPP_APP_SECRET`).
    pub app_secret: Option<Secret>,
    /// What the subscription handshake must present as `hub.verify_token`
    /// (`WHATSAPP_VERIFY_TOKEN`).
    pub verify_token: Option<Secret>,
    pub dm_policy: DmPolicy,
    /// E.164 numbers (`+15551234567`).
    pub allow_from: Vec<PeerId>,
    /// The largest inbound file fetched, in MB (default 20).
    pub media_max_mb: Option<u64>,
}

impl Default for WhatsappConfig {
    fn default() -> Self {
        WhatsappConfig {
            enabled: true,
            api_base: None,
            api_version: None,
            access_token: None,
            phone_number_id: None,
            app_secret: None,
            verify_token: None,
            dm_policy: DmPolicy::Pairing,
            allow_from: vec![],
            media_max_mb: None,
        }
    }
}

impl WhatsappConfig {
    pub const DEFAULT_API_BASE: &'static str = "https://graph.facebook.com";
    pub const DEFAULT_API_VERSION: &'static str = "v21.0";

    /// `<base>/<version>`, the prefix of every Graph API call.
    pub fn graph_url(&self) -> String {
        format!(
            "{}/{}",
            self.api_base
                .as_deref()
                .unwrap_or(Self::DEFAULT_API_BASE)
                .trim_end_matches('/'),
            self.api_version
                .as_deref()
                .unwrap_or(Self::DEFAULT_API_VERSION)
        )
    }

    /// `config validate`: the phone number id is digits, `allowFrom` holds E.164 numbers.
    pub(super) fn check(&self, bad: &mut impl FnMut(&str, String)) {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if self
            .phone_number_id
            .as_deref()
            .is_some_and(|id| !digits(id))
        {
            bad(
                "channels.whatsapp.phoneNumberId",
                "must be the number's id (digits), not the phone number".into(),
            );
        }
        for (i, peer) in self.allow_from.iter().enumerate() {
            let text = peer.to_string();
            if text != "*" && !text.strip_prefix('+').is_some_and(digits) {
                bad(
                    &format!("channels.whatsapp.allowFrom[{i}]"),
                    format!("{text:?} is not an E.164 number like \"+15551234567\""),
                );
            }
        }
    }

    /// The `WHATSAPP_*` environment variables over `slot`.
    pub(super) fn apply_env(
        slot: &mut Option<WhatsappConfig>,
        get: impl Fn(&str) -> Option<String>,
    ) {
        super::env_over(
            slot,
            get,
            &[
                ("WHATSAPP_ACCESS_TOKEN", |c, v| {
                    c.access_token = Some(Secret(v))
                }),
                ("WHATSAPP_APP_SECRET", |c, v| c.app_secret = Some(Secret(v))),
                ("WHATSAPP_VERIFY_TOKEN", |c, v| {
                    c.verify_token = Some(Secret(v))
                }),
                ("WHATSAPP_PHONE_NUMBER_ID", |c, v| {
                    c.phone_number_id = Some(v)
                }),
                ("WHATSAPP_API_BASE", |c, v| c.api_base = Some(v)),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn issues(text: &str) -> Vec<String> {
        let config = Config::parse(text).unwrap();
        let issues = config.validate().unwrap_err();
        issues.into_iter().map(|i| i.path).collect()
    }

    #[test]
    fn a_phone_number_in_place_of_its_id_and_numbers_without_a_plus_are_refused() {
        let found = issues(
            r#"{ channels: { whatsapp: { phoneNumberId: "+1 555 0100", allowFrom: ["+15551234567", "15550009999"] } } }"#,
        );

        assert_eq!(
            found,
            [
                "channels.whatsapp.phoneNumberId",
                "channels.whatsapp.allowFrom[1]"
            ]
        );
    }

    #[test]
    fn a_bluebubbles_webhook_path_other_than_the_route_is_refused() {
        let moved = issues(r#"{ channels: { bluebubbles: { webhookPath: "/imessage" } } }"#);
        let config = Config::parse(
            r#"{ channels: { bluebubbles: { webhookPath: "/bluebubbles-webhook" } } }"#,
        )
        .unwrap();

        assert_eq!(moved, ["channels.bluebubbles.webhookPath"]);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_discord_public_key_that_is_not_32_bytes_of_hex_is_refused() {
        let found = issues(r#"{ channels: { discord: { publicKey: "not-a-key" } } }"#);

        assert_eq!(found, ["channels.discord.publicKey"]);
    }

    #[test]
    fn channel_variables_create_their_section_and_set_its_keys() {
        let env = [
            ("WHATSAPP_PHONE_NUMBER_ID", "106540352242922"),
            ("DISCORD_BOT_TOKEN", "MTE1.token"),
            ("ZALO_APP_ID", "2553"),
            ("SIGNAL_ACCOUNT", "+15550001111"),
        ];
        let mut config = Config::parse("{}").unwrap();

        config.apply_env(|name| {
            env.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        });

        let channels = &config.channels;
        assert_eq!(
            channels
                .whatsapp
                .as_ref()
                .and_then(|w| w.phone_number_id.as_deref()),
            Some("106540352242922")
        );
        assert_eq!(
            channels
                .discord
                .as_ref()
                .and_then(|d| d.token.as_ref())
                .map(|t| t.expose()),
            Some("MTE1.token")
        );
        assert_eq!(
            channels.zalo.as_ref().and_then(|z| z.app_id.as_deref()),
            Some("2553")
        );
        assert_eq!(
            channels.signal.as_ref().and_then(|c| c.account.as_deref()),
            Some("+15550001111")
        );
        assert!(channels.bluebubbles.is_none(), "no variable, no section");
    }
}
