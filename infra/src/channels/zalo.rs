//! Zalo Official Account: its webhook in (`X-ZEvent-Signature`), customer-service messages out
//! (`POST /v3.0/oa/message/cs` with the OA access token in the `access_token` header).
//!
//! Decisions:
//! - The signature is `mac=` + hex SHA-256 of `app_id + raw body + timestamp + OA secret key`
//!   (the timestamp is the body's), compared in constant time; a body for another app id is
//!   refused. Zalo retries a webhook it got no 200 for during 12 hours, with the same
//!   `msg_id`: the dedup id, so a retry is dropped; an event older than that is ignored.
//! - `user_send_text` is a message; the other user events (images, stickers, follows, …) are
//!   acknowledged and ignored (files are not fetched from Zalo yet).
//! - Zalo refuses customer-service messages to a user who has not written in seven days
//!   (error -230): a permanent error that says so.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    wrong_target, ChannelAccount, ChannelError, ChannelSender, Incoming, Parsed, Refusal,
    WebhookChannel, WebhookError, WebhookRequest,
};
use crate::config::{Secret, ZaloConfig};
use crate::model::{Channel, ChatKind, ReplyTarget, Sender, ZaloTarget};

/// Zalo's limit on a text message.
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// Zalo's error for a user outside the seven-day interaction window.
pub const OUTSIDE_WINDOW: i64 = -230;
/// How long Zalo retries a webhook; older events are not news.
pub const MAX_EVENT_AGE_HOURS: i64 = 12;
const CHANNEL: &str = "zalo";

/// What the gateway knows about the Official Account.
#[derive(Debug, Clone)]
pub struct ZaloApp {
    pub account: ChannelAccount,
    pub app_id: Option<String>,
    pub oa_secret_key: Option<Secret>,
}

/// The signature Zalo sends for `body` (for tests and tools).
pub fn sign(app_id: &str, body: &[u8], timestamp: &str, oa_secret_key: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(app_id.as_bytes());
    hash.update(body);
    hash.update(timestamp.as_bytes());
    hash.update(oa_secret_key.as_bytes());
    format!("mac={}", hex::encode(hash.finalize()))
}

impl WebhookChannel for ZaloApp {
    fn account(&self) -> &ChannelAccount {
        &self.account
    }

    fn verify(&self, request: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<(), Refusal> {
        let (Some(app_id), Some(secret)) = (&self.app_id, &self.oa_secret_key) else {
            return Err(Refusal::NotConfigured(
                "zalo appId and oaSecretKey are not configured".into(),
            ));
        };
        let refused = |why: &str| Refusal::Unauthorized(why.to_string());
        let given = request
            .headers
            .get("x-zevent-signature")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| refused("missing X-ZEvent-Signature"))?;
        // The timestamp is the body's: read just that much before the body is trusted.
        let timestamp = serde_json::from_slice::<Value>(request.body)
            .ok()
            .and_then(|v| match &v["timestamp"] {
                Value::String(t) => Some(t.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .ok_or_else(|| refused("the body has no timestamp to check the signature with"))?;
        let expected = sign(app_id, request.body, &timestamp, secret.expose());
        let given = if given.starts_with("mac=") {
            given.to_string()
        } else {
            format!("mac={given}")
        };
        if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(())
        } else {
            Err(refused("X-ZEvent-Signature does not match the body"))
        }
    }

    fn parse(&self, body: &[u8], now: DateTime<Utc>) -> Result<Parsed, WebhookError> {
        let event: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::MalformedJson(e.to_string()))?;
        let Some(name) = event["event_name"].as_str() else {
            return Err(WebhookError::NotAnEvent(
                "an OA event needs an event_name".into(),
            ));
        };
        if self
            .app_id
            .as_deref()
            .is_some_and(|id| event["app_id"] != id)
        {
            return Err(WebhookError::NotAnEvent("an event for another app".into()));
        }
        if name != "user_send_text" {
            return Ok(Parsed::Ignored("an event other than user_send_text"));
        }
        let sent = event["timestamp"]
            .as_str()
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis);
        if sent.is_some_and(|sent| now - sent > Duration::hours(MAX_EVENT_AGE_HOURS)) {
            return Ok(Parsed::Ignored("an event older than Zalo's retry window"));
        }
        let (Some(user), Some(msg_id)) = (
            event["sender"]["id"].as_str().filter(|u| is_id(u)),
            event["message"]["msg_id"]
                .as_str()
                .filter(|m| !m.is_empty()),
        ) else {
            return Err(WebhookError::NotAnEvent(
                "user_send_text needs sender.id (digits) and message.msg_id".into(),
            ));
        };
        let text = event["message"]["text"].as_str().unwrap_or("");
        if text.trim().is_empty() {
            return Ok(Parsed::Ignored("an empty message"));
        }
        self.account.admit(
            Incoming {
                event_id: msg_id,
                kind: ChatKind::Dm,
                chat_id: user,
                sender: Sender::id(user),
                text: text.to_string(),
                media: vec![],
                sub: None,
                team_id: None,
                addressed: true,
                reply_to: ReplyTarget::Zalo(ZaloTarget {
                    user_id: user.to_string(),
                }),
            },
            now,
        )
    }
}

fn is_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

/// The OA API as a [`ChannelSender`].
#[derive(Clone)]
pub struct ZaloClient {
    http: reqwest::Client,
    api_base: String,
    token: Secret,
}

impl ZaloClient {
    pub fn from_config(config: &ZaloConfig, http: reqwest::Client) -> Option<Self> {
        Some(ZaloClient {
            http,
            api_base: config.api_base().to_string(),
            token: config.access_token.clone()?,
        })
    }
}

#[async_trait::async_trait]
impl ChannelSender for ZaloClient {
    fn channel(&self) -> Channel {
        Channel::Zalo
    }

    fn max_message_chars(&self) -> usize {
        MAX_MESSAGE_CHARS
    }

    async fn post(&self, target: &ReplyTarget, text: &str) -> Result<String, ChannelError> {
        let ReplyTarget::Zalo(target) = target else {
            return Err(wrong_target(CHANNEL, "the reply target"));
        };
        let body = json!({"recipient": {"user_id": target.user_id}, "message": {"text": text}});
        let response = self
            .http
            .post(format!("{}/v3.0/oa/message/cs", self.api_base))
            .header("access_token", self.token.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| ChannelError::Retryable {
                channel: CHANNEL,
                message: e.without_url().to_string(),
            })?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or_default();
        let code = answer["error"]
            .as_i64()
            .unwrap_or(if status.is_success() { 0 } else { -1 });
        if code == 0 && status.is_success() {
            return Ok(answer["data"]["message_id"]
                .as_str()
                .unwrap_or_default()
                .to_string());
        }
        let said = answer["message"].as_str().unwrap_or("no message");
        let message = format!("message/cs: error {code}: {said}");
        Err(if code == OUTSIDE_WINDOW {
            ChannelError::Permanent {
                channel: CHANNEL,
                message: format!("{message}. Zalo takes customer-service messages only within seven days of the user's last interaction"),
            }
        } else if status.is_server_error() {
            ChannelError::Retryable {
                channel: CHANNEL,
                message,
            }
        } else {
            ChannelError::Permanent {
                channel: CHANNEL,
                message,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use reqwest::header::HeaderMap;

    use super::*;
    use crate::config::AgentRoutes;

    const APP: &str = "2553928453557884079";
    const SECRET: &str = "oa-secret-key-e2e";

    fn fixture(sent: DateTime<Utc>) -> Vec<u8> {
        std::fs::read_to_string(format!(
            "{}/fixtures/zalo/user_send_text.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .replace("TIMESTAMP", &sent.timestamp_millis().to_string())
        .into_bytes()
    }

    fn app() -> ZaloApp {
        ZaloApp {
            account: ChannelAccount {
                channel: Channel::Zalo,
                account: "default".into(),
                routes: Arc::new(AgentRoutes {
                    default_agent: "main".into(),
                    ..AgentRoutes::default()
                }),
                groups: Default::default(),
            },
            app_id: Some(APP.into()),
            oa_secret_key: Some(Secret::new(SECRET)),
        }
    }

    fn signed(signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-zevent-signature", signature.parse().unwrap());
        headers
    }

    #[test]
    fn a_text_from_a_follower_is_a_dm_job_keyed_by_its_msg_id() {
        let now = Utc::now();

        let parsed = app().parse(&fixture(now), now).unwrap();

        let job = &parsed.jobs()[0];
        assert_eq!(
            job.session_key.to_string(),
            "agent:main:zalo:dm:6142494823123456789"
        );
        assert_eq!(job.inbound.event_id, "zalo:default:cb31dff1c39642cc1b83");
        assert_eq!(job.inbound.text, "Chào bạn, giờ mở cửa?");
    }

    #[test]
    fn only_a_body_signed_with_the_oa_secret_passes() {
        let now = Utc::now();
        let body = fixture(now);
        let timestamp = now.timestamp_millis().to_string();
        let mut tampered = body.clone();
        tampered[30] ^= 1;

        let good = app().verify(
            &WebhookRequest::new(&signed(&sign(APP, &body, &timestamp, SECRET)), &body),
            now,
        );
        let altered = app().verify(
            &WebhookRequest::new(&signed(&sign(APP, &body, &timestamp, SECRET)), &tampered),
            now,
        );
        let wrong_key = app().verify(
            &WebhookRequest::new(&signed(&sign(APP, &body, &timestamp, "guess")), &body),
            now,
        );
        let unsigned = app().verify(&WebhookRequest::new(&HeaderMap::new(), &body), now);

        assert_eq!(good, Ok(()));
        assert!(matches!(altered, Err(Refusal::Unauthorized(_))));
        assert!(matches!(wrong_key, Err(Refusal::Unauthorized(_))));
        assert!(matches!(unsigned, Err(Refusal::Unauthorized(_))));
    }

    #[test]
    fn old_foreign_other_and_malformed_events_are_not_jobs() {
        let now = Utc::now();
        let old = app()
            .parse(&fixture(now - Duration::hours(13)), now)
            .unwrap();
        let mut foreign: Value = serde_json::from_slice(&fixture(now)).unwrap();
        foreign["app_id"] = json!("1");
        let foreign = app().parse(foreign.to_string().as_bytes(), now);
        let follow = app()
            .parse(
                br#"{"event_name":"follow","app_id":"2553928453557884079","timestamp":"1"}"#,
                now,
            )
            .unwrap();
        let broken = app().parse(b"{\"event_name\":", now);

        assert!(matches!(old, Parsed::Ignored(why) if why.contains("retry window")));
        assert!(matches!(foreign, Err(WebhookError::NotAnEvent(_))));
        assert!(matches!(follow, Parsed::Ignored(_)));
        assert!(matches!(broken, Err(WebhookError::MalformedJson(_))));
    }
}
