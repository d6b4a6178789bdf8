//! WhatsApp Cloud API ingress: the subscription handshake, the `X-Hub-Signature-256` check,
//! and the parsing of a `whatsapp_business_account` notification into jobs.
//!
//! Decisions:
//! - The handshake (`GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`) answers the
//!   challenge only when the token matches `verifyToken` (constant time); anything else is a 403.
//! - The signature is `sha256=` + hex HMAC-SHA256 of the raw body under the app secret,
//!   compared in constant time before the body is read.
//! - One notification can carry several messages (and several entries): each becomes its own
//!   job, deduplicated by its `wamid` (`whatsapp:<account>:<wamid>`), so Meta's redeliveries
//!   (it retries for days) are dropped by the queue and the worker's job record.
//! - Status callbacks (`sent`, `delivered`, `read`, `failed`) carry no message: acknowledged
//!   and ignored. So are reactions, stickers, and events for a phone number id other than the
//!   configured one.
//! - Text, media (image, audio, voice notes, video, documents: file references the worker
//!   fetches), interactive replies (a button's or list row's title) and quick-reply buttons
//!   are handled. A message older than 24 hours is ignored: the customer-service window would
//!   refuse the answer, and a redelivery that old is not news.

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{
    ChannelAccount, Incoming, Parsed, Refusal, WebhookChannel, WebhookError, WebhookRequest,
};
use crate::config::Secret;
use crate::model::{
    ChatKind, JobMessage, MediaKind, MediaRef, MediaSource, ReplyTarget, Sender, WhatsappTarget,
    MAX_MEDIA_PER_MESSAGE,
};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// Older messages are not answered (the customer-service window).
pub const MAX_MESSAGE_AGE_HOURS: i64 = 24;

/// What the gateway knows about the WhatsApp business number.
#[derive(Debug, Clone)]
pub struct WhatsappApp {
    pub account: ChannelAccount,
    /// Events for other numbers are ignored; `None` takes any (a misconfiguration `config
    /// validate` reports).
    pub phone_number_id: Option<String>,
    pub app_secret: Option<Secret>,
    pub verify_token: Option<Secret>,
}

/// The `sha256=` signature Meta sends for `body` (for tests and tools).
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl WhatsappApp {
    /// The subscription handshake: the challenge to echo, or why not.
    pub fn handshake(
        &self,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<&str>,
    ) -> Result<String, Refusal> {
        let Some(expected) = &self.verify_token else {
            return Err(Refusal::NotConfigured(
                "whatsapp verifyToken is not configured".into(),
            ));
        };
        let matches: bool = token
            .unwrap_or("")
            .as_bytes()
            .ct_eq(expected.expose().as_bytes())
            .into();
        match (mode, challenge) {
            (Some("subscribe"), Some(challenge)) if matches => Ok(challenge.to_string()),
            _ => Err(Refusal::Unauthorized(
                "bad hub.mode, hub.verify_token or hub.challenge".into(),
            )),
        }
    }
}

impl WebhookChannel for WhatsappApp {
    fn account(&self) -> &ChannelAccount {
        &self.account
    }

    fn verify(&self, request: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<(), Refusal> {
        let WebhookRequest { headers, body, .. } = *request;
        let Some(secret) = &self.app_secret else {
            return Err(Refusal::NotConfigured(
                "whatsapp appSecret is not configured".into(),
            ));
        };
        let refused = || Refusal::Unauthorized("bad or missing X-Hub-Signature-256".into());
        let given = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("sha256="))
            .and_then(|hex| hex::decode(hex).ok())
            .ok_or_else(refused)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC takes any key length");
        mac.update(body);
        mac.verify_slice(&given).map_err(|_| refused())
    }

    fn parse(&self, body: &[u8], now: DateTime<Utc>) -> Result<Parsed, WebhookError> {
        parse_notification(body, self, now)
    }
}

/// Parses one (verified) notification for `app`.
pub fn parse_notification(
    body: &[u8],
    app: &WhatsappApp,
    now: DateTime<Utc>,
) -> Result<Parsed, WebhookError> {
    let payload: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::MalformedJson(e.to_string()))?;
    if payload["object"] != "whatsapp_business_account" {
        return Err(WebhookError::NotAnEvent(
            "a WhatsApp notification's object is whatsapp_business_account".into(),
        ));
    }
    let entries = payload["entry"]
        .as_array()
        .ok_or_else(|| WebhookError::NotAnEvent("a notification needs an entry list".into()))?;
    let mut jobs = Vec::new();
    let mut ignored = "no message in the notification (a status callback)";
    for change in entries
        .iter()
        .filter_map(|e| e["changes"].as_array())
        .flatten()
    {
        let value = &change["value"];
        if change["field"] != "messages" {
            ignored = "a change other than messages";
            continue;
        }
        let number = value["metadata"]["phone_number_id"].as_str();
        if app
            .phone_number_id
            .as_deref()
            .is_some_and(|ours| number != Some(ours))
        {
            ignored = "a message to another phone number";
            continue;
        }
        for message in value["messages"].as_array().into_iter().flatten() {
            match message_job(message, value, app, now)? {
                Ok(job) => jobs.push(job),
                Err(why) => ignored = why,
            }
        }
    }
    Ok(if jobs.is_empty() {
        Parsed::Ignored(ignored)
    } else {
        Parsed::Queue { jobs, ack: None }
    })
}

/// One message's job, or why it is ignored.
fn message_job(
    message: &Value,
    value: &Value,
    app: &WhatsappApp,
    now: DateTime<Utc>,
) -> Result<Result<JobMessage, &'static str>, WebhookError> {
    let (Some(from), Some(id)) = (message["from"].as_str(), message["id"].as_str()) else {
        return Err(WebhookError::NotAnEvent(
            "a message needs from and id".into(),
        ));
    };
    if from.is_empty() || !from.chars().all(|c| c.is_ascii_digit()) {
        return Err(WebhookError::NotAnEvent(
            "a message's from is a phone number's digits".into(),
        ));
    }
    let sent = message["timestamp"]
        .as_str()
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|t| DateTime::from_timestamp(t, 0));
    if sent.is_some_and(|sent| now - sent > Duration::hours(MAX_MESSAGE_AGE_HOURS)) {
        return Ok(Err(
            "a message older than the 24-hour customer-service window",
        ));
    }
    let Some((text, media)) = content(message) else {
        return Ok(Err(
            "a message type not handled (reaction, sticker, system, …)",
        ));
    };
    let name = value["contacts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["wa_id"] == from)
        .and_then(|c| c["profile"]["name"].as_str())
        .map(str::to_string);
    let peer = format!("+{from}");
    let parsed = app.account.admit(
        Incoming {
            event_id: id,
            kind: ChatKind::Dm,
            chat_id: &peer,
            sender: Sender {
                id: peer.clone(),
                name,
            },
            text,
            media,
            sub: None,
            team_id: None,
            addressed: true,
            reply_to: ReplyTarget::Whatsapp(WhatsappTarget {
                to: from.to_string(),
                reply_to_message_id: None,
            }),
        },
        now,
    )?;
    Ok(match parsed {
        Parsed::Queue { mut jobs, .. } if jobs.len() == 1 => Ok(jobs.remove(0)),
        Parsed::Ignored(why) => Err(why),
        _ => Err("not a message"),
    })
}

/// A message's text and files, or `None` for a type the assistant does not take.
fn content(message: &Value) -> Option<(String, Vec<MediaRef>)> {
    let kind = message["type"].as_str()?;
    let text = |s: &Value| s.as_str().unwrap_or("").to_string();
    match kind {
        "text" => Some((text(&message["text"]["body"]), vec![])),
        "interactive" => {
            let reply = &message["interactive"];
            let picked = reply["button_reply"]
                .get("title")
                .or(reply["list_reply"].get("title"))?;
            Some((text(picked), vec![]))
        }
        "button" => Some((text(&message["button"]["text"]), vec![])),
        "image" | "video" | "audio" | "document" => {
            let file = &message[kind];
            let media_id = file["id"].as_str().filter(|id| !id.is_empty())?;
            let mime = file["mime_type"].as_str().map(str::to_string);
            let media_kind = match kind {
                "image" => MediaKind::Image,
                "video" => MediaKind::Video,
                "audio" if file["voice"] == true => MediaKind::Voice,
                "audio" => MediaKind::Audio,
                _ => MediaKind::from_mime(mime.as_deref().unwrap_or("")),
            };
            let media = MediaRef {
                kind: media_kind,
                source: MediaSource::Whatsapp {
                    media_id: media_id.to_string(),
                },
                name: file["filename"].as_str().map(str::to_string),
                mime,
                size: None,
            };
            let mut files = vec![media];
            files.truncate(MAX_MEDIA_PER_MESSAGE);
            Some((text(&file["caption"]), files))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use reqwest::header::HeaderMap;

    use super::*;
    use crate::config::AgentRoutes;
    use crate::model::Channel;

    const SECRET: &str = "6f1c2a0e9b7d4c3e8a5f0b1d2c3e4f5a";

    /// A fixture with its `TIMESTAMP`s set to `sent`.
    fn fixture(name: &str, sent: DateTime<Utc>) -> Vec<u8> {
        let text = std::fs::read_to_string(format!(
            "{}/fixtures/whatsapp/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        text.replace("TIMESTAMP", &sent.timestamp().to_string())
            .into_bytes()
    }

    fn app() -> WhatsappApp {
        WhatsappApp {
            account: ChannelAccount {
                channel: Channel::Whatsapp,
                account: "default".into(),
                routes: Arc::new(AgentRoutes {
                    default_agent: "main".into(),
                    ..AgentRoutes::default()
                }),
                groups: Default::default(),
            },
            phone_number_id: Some("106540352242922".into()),
            app_secret: Some(Secret::new(SECRET)),
            verify_token: Some(Secret::new("let-me-in")),
        }
    }

    fn jobs(name: &str) -> Vec<JobMessage> {
        let now = Utc::now();
        match parse_notification(&fixture(name, now), &app(), now).unwrap() {
            Parsed::Queue { jobs, .. } => jobs,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn a_text_message_becomes_a_dm_job_keyed_by_the_e164_number() {
        let jobs = jobs("text_message.json");

        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        assert_eq!(
            job.session_key.to_string(),
            "agent:main:whatsapp:dm:+16505551234"
        );
        assert_eq!(
            job.inbound.event_id,
            "whatsapp:default:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
        );
        assert_eq!(job.inbound.text, "Does it come in another color?");
        assert_eq!(job.inbound.sender.id, "+16505551234");
        assert_eq!(job.inbound.sender.name.as_deref(), Some("Sheena Nelson"));
        assert_eq!(
            job.reply_to,
            Some(ReplyTarget::Whatsapp(WhatsappTarget {
                to: "16505551234".into(),
                reply_to_message_id: None
            }))
        );
    }

    #[test]
    fn each_message_of_a_notification_is_its_own_job_with_its_files() {
        let jobs = jobs("image_with_caption.json");

        assert_eq!(jobs.len(), 2);
        let (image, voice) = (&jobs[0].inbound, &jobs[1].inbound);
        assert_eq!(image.text, "What is on this receipt?");
        assert_eq!(image.media[0].kind, MediaKind::Image);
        assert_eq!(
            image.media[0].source,
            MediaSource::Whatsapp {
                media_id: "1003383421387256".into()
            }
        );
        assert_eq!(voice.media[0].kind, MediaKind::Voice);
        assert_ne!(image.event_id, voice.event_id);
    }

    #[test]
    fn a_button_reply_is_its_title() {
        let jobs = jobs("interactive_button_reply.json");

        assert_eq!(jobs[0].inbound.text, "Yes, book it");
    }

    #[test]
    fn status_callbacks_other_numbers_and_stale_messages_are_ignored() {
        let now = Utc::now();
        let mut other_number = app();
        other_number.phone_number_id = Some("999".into());
        let old = now - Duration::hours(MAX_MESSAGE_AGE_HOURS + 1);

        let status = parse_notification(&fixture("status_delivered.json", now), &app(), now);
        let elsewhere = parse_notification(&fixture("text_message.json", now), &other_number, now);
        let stale = parse_notification(&fixture("text_message.json", old), &app(), now);

        assert!(matches!(status, Ok(Parsed::Ignored(why)) if why.contains("status")));
        assert!(matches!(elsewhere, Ok(Parsed::Ignored(why)) if why.contains("another phone")));
        assert!(matches!(stale, Ok(Parsed::Ignored(why)) if why.contains("24-hour")));
    }

    #[test]
    fn malformed_and_foreign_bodies_are_refused_with_the_reason() {
        let now = Utc::now();
        let not_json = parse_notification(b"{\"object\":", &app(), now);
        let page = parse_notification(br#"{"object":"page","entry":[]}"#, &app(), now);
        let bad_from = fixture("text_message.json", now);
        let bad_from = String::from_utf8(bad_from)
            .unwrap()
            .replace("\"from\": \"16505551234\"", "\"from\": \"../../etc\"");
        let bad_from = parse_notification(bad_from.as_bytes(), &app(), now);

        assert!(matches!(not_json, Err(WebhookError::MalformedJson(_))));
        assert!(matches!(page, Err(WebhookError::NotAnEvent(_))));
        assert!(matches!(bad_from, Err(WebhookError::NotAnEvent(why)) if why.contains("digits")));
    }

    #[test]
    fn only_a_body_signed_with_the_app_secret_passes() {
        let now = Utc::now();
        let body = fixture("text_message.json", now);
        let signed = |signature: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(SIGNATURE_HEADER, signature.parse().unwrap());
            headers
        };
        let mut tampered = body.clone();
        tampered[40] ^= 1;
        let mut no_secret = app();
        no_secret.app_secret = None;

        let good = app().verify(
            &WebhookRequest::new(&signed(&sign(SECRET, &body)), &body),
            now,
        );
        let altered = app().verify(
            &WebhookRequest::new(&signed(&sign(SECRET, &body)), &tampered),
            now,
        );
        let other_key = app().verify(
            &WebhookRequest::new(&signed(&sign("another", &body)), &body),
            now,
        );
        let unsigned = app().verify(&WebhookRequest::new(&HeaderMap::new(), &body), now);
        let unverifiable = no_secret.verify(
            &WebhookRequest::new(&signed(&sign(SECRET, &body)), &body),
            now,
        );

        assert_eq!(good, Ok(()));
        assert!(matches!(altered, Err(Refusal::Unauthorized(_))));
        assert!(matches!(other_key, Err(Refusal::Unauthorized(_))));
        assert!(matches!(unsigned, Err(Refusal::Unauthorized(_))));
        assert!(matches!(unverifiable, Err(Refusal::NotConfigured(_))));
    }

    #[test]
    fn the_handshake_echoes_the_challenge_only_for_the_verify_token() {
        let app = app();
        let mut unconfigured = app.clone();
        unconfigured.verify_token = None;

        let good = app.handshake(Some("subscribe"), Some("let-me-in"), Some("1158201444"));
        let wrong = app.handshake(Some("subscribe"), Some("guess"), Some("1158201444"));
        let no_mode = app.handshake(None, Some("let-me-in"), Some("1158201444"));
        let off = unconfigured.handshake(Some("subscribe"), Some("let-me-in"), Some("1"));

        assert_eq!(good, Ok("1158201444".to_string()));
        assert!(matches!(wrong, Err(Refusal::Unauthorized(_))));
        assert!(matches!(no_mode, Err(Refusal::Unauthorized(_))));
        assert!(matches!(off, Err(Refusal::NotConfigured(_))));
    }
}
