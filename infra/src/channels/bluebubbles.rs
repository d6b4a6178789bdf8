//! iMessage through BlueBubbles: its `new-message` webhook in, its REST API out
//! (`POST /api/v1/message/text`, `/api/v1/message/attachment`, `GET
//! /api/v1/attachment/<guid>/download`), every call with the server password as the
//! `password` query parameter, as BlueBubbles requires (so no URL is ever logged or put in an
//! error).
//!
//! Decisions (the config's are in [`crate::config::BlueBubblesConfig`]):
//! - Only `new-message` is handled; the bot's own messages (`isFromMe`), tapbacks and other
//!   associated messages, and group events (`itemType` ≠ 0) are acknowledged and ignored.
//! - A chat is a group when its `style` is 43 (or its guid has `;+;`); a DM's session is the
//!   sender's handle (E.164 number or Apple ID email). The event id is the message guid, so a
//!   redelivered webhook is dropped by the queue's dedup.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::{
    read_capped, wrong_target, ChannelAccount, ChannelError, ChannelSender, Incoming, OutboundFile,
    Parsed, Refusal, WebhookChannel, WebhookError, WebhookRequest,
};
use crate::config::{BlueBubblesConfig, Secret};
use crate::model::{
    BlueBubblesTarget, Channel, ChatKind, MediaKind, MediaRef, MediaSource, ReplyTarget, Sender,
    MAX_MEDIA_PER_MESSAGE,
};

/// Replies are split here: iMessage has no hard limit, long bubbles read badly.
pub const MAX_MESSAGE_CHARS: usize = 4000;
const CHANNEL: &str = "bluebubbles";

/// What the gateway knows about the BlueBubbles server.
#[derive(Debug, Clone)]
pub struct BlueBubblesApp {
    pub account: ChannelAccount,
    /// The server password, the webhook's shared secret.
    pub password: Option<Secret>,
}

impl WebhookChannel for BlueBubblesApp {
    fn account(&self) -> &ChannelAccount {
        &self.account
    }

    fn verify(&self, request: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<(), Refusal> {
        let Some(expected) = &self.password else {
            return Err(Refusal::NotConfigured(
                "bluebubbles password is not configured".into(),
            ));
        };
        let given = request.query_param("password").unwrap_or_default();
        if bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
            Ok(())
        } else {
            Err(Refusal::Unauthorized(
                "bad or missing password query parameter".into(),
            ))
        }
    }

    fn parse(&self, body: &[u8], now: DateTime<Utc>) -> Result<Parsed, WebhookError> {
        let event: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::MalformedJson(e.to_string()))?;
        match event["type"].as_str() {
            Some("new-message") => {}
            Some(_) => return Ok(Parsed::Ignored("event type not handled")),
            None => {
                return Err(WebhookError::NotAnEvent(
                    "a webhook event needs a type".into(),
                ))
            }
        }
        let m = &event["data"];
        if m["isFromMe"] == true {
            return Ok(Parsed::Ignored("the bot's own message"));
        }
        if !m["associatedMessageType"].is_null() || m["itemType"].as_i64().unwrap_or(0) != 0 {
            return Ok(Parsed::Ignored("a tapback or group event"));
        }
        let (Some(guid), Some(sender), Some(chat)) = (
            m["guid"].as_str().filter(|g| !g.is_empty()),
            m["handle"]["address"].as_str().filter(|a| !a.is_empty()),
            m["chats"].get(0),
        ) else {
            return Err(WebhookError::NotAnEvent(
                "a message needs guid, handle.address and chats[0]".into(),
            ));
        };
        let Some(chat_guid) = chat["guid"].as_str().filter(|g| g.contains(';')) else {
            return Err(WebhookError::NotAnEvent(
                "chats[0].guid is not a chat guid".into(),
            ));
        };
        let group = chat["style"] == 43 || chat_guid.contains(";+;");
        let media = attachments(m);
        let text = m["text"].as_str().unwrap_or("").to_string();
        if text.trim().is_empty() && media.is_empty() {
            return Ok(Parsed::Ignored("no text or attachment"));
        }
        self.account.admit(
            Incoming {
                event_id: guid,
                kind: if group { ChatKind::Group } else { ChatKind::Dm },
                chat_id: chat_guid,
                sender: Sender {
                    id: sender.to_string(),
                    name: None,
                },
                text,
                media,
                sub: None,
                team_id: None,
                addressed: false,
                reply_to: ReplyTarget::Bluebubbles(BlueBubblesTarget {
                    chat_guid: chat_guid.to_string(),
                }),
            },
            now,
        )
    }
}

fn attachments(m: &Value) -> Vec<MediaRef> {
    m["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let guid = a["guid"].as_str().filter(|g| is_guid(g))?;
            let mime = a["mimeType"].as_str().map(str::to_string);
            Some(MediaRef {
                kind: MediaKind::from_mime(mime.as_deref().unwrap_or("")),
                source: MediaSource::Bluebubbles {
                    guid: guid.to_string(),
                },
                name: a["transferName"].as_str().map(str::to_string),
                mime,
                size: a["totalBytes"].as_u64(),
            })
        })
        .take(MAX_MEDIA_PER_MESSAGE)
        .collect()
}

/// An attachment guid is a path segment: letters, digits, `-` and `_` only.
fn is_guid(guid: &str) -> bool {
    !guid.is_empty()
        && guid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The BlueBubbles REST API as a [`ChannelSender`].
#[derive(Clone)]
pub struct BlueBubblesClient {
    http: reqwest::Client,
    server_url: String,
    password: Secret,
}

impl BlueBubblesClient {
    pub fn from_config(config: &BlueBubblesConfig, http: reqwest::Client) -> Option<Self> {
        Some(BlueBubblesClient {
            http,
            server_url: config
                .server_url
                .as_deref()?
                .trim_end_matches('/')
                .to_string(),
            password: config.password.clone()?,
        })
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, ChannelError> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.server_url)).map_err(|_| {
            ChannelError::NotConfigured {
                channel: CHANNEL,
                message: "channels.bluebubbles.serverUrl is not a URL".into(),
            }
        })?;
        url.query_pairs_mut()
            .append_pair("password", self.password.expose());
        Ok(url)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ChannelError> {
        let response = request.send().await.map_err(|e| ChannelError::Retryable {
            channel: CHANNEL,
            message: e.without_url().to_string(),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let answer: Value = response.json().await.unwrap_or_default();
        let message = format!(
            "HTTP {}: {}",
            status.as_u16(),
            answer["error"]["message"]
                .as_str()
                .or(answer["message"].as_str())
                .unwrap_or("no message")
        );
        Err(if status.is_server_error() {
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

    /// A fresh `tempGuid`: BlueBubbles matches the sent message to the request by it.
    fn temp_guid() -> String {
        format!("temp-{}", ulid::Ulid::new())
    }
}

#[async_trait::async_trait]
impl ChannelSender for BlueBubblesClient {
    fn channel(&self) -> Channel {
        Channel::Bluebubbles
    }

    fn max_message_chars(&self) -> usize {
        MAX_MESSAGE_CHARS
    }

    async fn post(&self, target: &ReplyTarget, text: &str) -> Result<String, ChannelError> {
        let body = json!({"chatGuid": target_of(target)?.chat_guid, "tempGuid": Self::temp_guid(),
            "message": text, "method": "apple-script"});
        let url = self.url("/api/v1/message/text")?;
        let answer: Value = self
            .send(self.http.post(url).json(&body))
            .await?
            .json()
            .await
            .unwrap_or_default();
        Ok(answer["data"]["guid"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    async fn send_file(
        &self,
        target: &ReplyTarget,
        file: &OutboundFile,
    ) -> Result<(), ChannelError> {
        let part = reqwest::multipart::Part::bytes(file.bytes.clone())
            .file_name(file.name.clone())
            .mime_str(&file.mime)
            .unwrap_or_else(|_| reqwest::multipart::Part::bytes(file.bytes.clone()));
        let form = reqwest::multipart::Form::new()
            .text("chatGuid", target_of(target)?.chat_guid.clone())
            .text("tempGuid", Self::temp_guid())
            .text("name", file.name.clone())
            .text("method", "apple-script")
            .part("attachment", part);
        let url = self.url("/api/v1/message/attachment")?;
        self.send(self.http.post(url).multipart(form))
            .await
            .map(|_| ())
    }

    async fn download(
        &self,
        source: &MediaSource,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ChannelError> {
        let MediaSource::Bluebubbles { guid } = source else {
            return Err(wrong_target(CHANNEL, "the file source"));
        };
        if !is_guid(guid) {
            return Err(wrong_target(
                CHANNEL,
                "an attachment guid with other characters",
            ));
        }
        let url = self.url(&format!("/api/v1/attachment/{guid}/download"))?;
        let response = self.send(self.http.get(url)).await?;
        read_capped(CHANNEL, response, max_bytes).await
    }
}

fn target_of(target: &ReplyTarget) -> Result<&BlueBubblesTarget, ChannelError> {
    match target {
        ReplyTarget::Bluebubbles(b) => Ok(b),
        _ => Err(wrong_target(CHANNEL, "the reply target")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{AgentRoutes, GroupAccess, GroupEntry};

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/fixtures/bluebubbles/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn app(groups: GroupAccess) -> BlueBubblesApp {
        BlueBubblesApp {
            account: ChannelAccount {
                channel: Channel::Bluebubbles,
                account: "default".into(),
                routes: Arc::new(AgentRoutes {
                    default_agent: "main".into(),
                    ..AgentRoutes::default()
                }),
                groups,
            },
            password: Some(Secret::new("hunter2 & more")),
        }
    }

    #[test]
    fn a_dm_becomes_a_job_in_the_senders_session_with_its_attachment() {
        let parsed = app(GroupAccess::default())
            .parse(&fixture("new_message_dm.json"), Utc::now())
            .unwrap();

        let job = &parsed.jobs()[0];
        assert_eq!(
            job.session_key.to_string(),
            "agent:main:bluebubbles:dm:+15551234567"
        );
        assert_eq!(
            job.inbound.event_id,
            "bluebubbles:default:5C2B4F2A-9D3E-4F61-8B7A-1E2D3C4B5A69"
        );
        assert_eq!(job.inbound.media[0].kind, MediaKind::Image);
        assert_eq!(
            job.reply_to,
            Some(ReplyTarget::Bluebubbles(BlueBubblesTarget {
                chat_guid: "iMessage;-;+15551234567".into()
            }))
        );
    }

    #[test]
    fn a_group_is_answered_only_when_listed_without_require_mention() {
        let body = fixture("new_message_group.json");
        let listed = GroupAccess {
            groups: [(
                "iMessage;+;chat928374650192837465".to_string(),
                GroupEntry {
                    require_mention: Some(false),
                    ..GroupEntry::default()
                },
            )]
            .into(),
            ..GroupAccess::default()
        };

        let unlisted = app(GroupAccess::default())
            .parse(&body, Utc::now())
            .unwrap();
        let answered = app(listed).parse(&body, Utc::now()).unwrap();

        assert!(matches!(unlisted, Parsed::Ignored(why) if why.contains("not listed")));
        assert_eq!(
            answered.jobs()[0].session_key.to_string(),
            "agent:main:bluebubbles:group:iMessage;+;chat928374650192837465"
        );
    }

    #[test]
    fn own_messages_tapbacks_and_malformed_events_are_not_jobs() {
        let mut own: Value = serde_json::from_slice(&fixture("new_message_dm.json")).unwrap();
        own["data"]["isFromMe"] = json!(true);
        let mut tapback: Value = serde_json::from_slice(&fixture("new_message_dm.json")).unwrap();
        tapback["data"]["associatedMessageType"] = json!(2000);
        let app = app(GroupAccess::default());

        let own = app.parse(own.to_string().as_bytes(), Utc::now()).unwrap();
        let tapback = app
            .parse(tapback.to_string().as_bytes(), Utc::now())
            .unwrap();
        let broken = app.parse(b"{\"type\":", Utc::now());
        let no_chat = app.parse(
            br#"{"type":"new-message","data":{"guid":"g","handle":{"address":"+1"}}}"#,
            Utc::now(),
        );

        assert_eq!(own, Parsed::Ignored("the bot's own message"));
        assert_eq!(tapback, Parsed::Ignored("a tapback or group event"));
        assert!(matches!(broken, Err(WebhookError::MalformedJson(_))));
        assert!(matches!(no_chat, Err(WebhookError::NotAnEvent(_))));
    }

    #[test]
    fn only_the_server_password_in_the_query_passes() {
        let headers = reqwest::header::HeaderMap::new();
        let request = |query| WebhookRequest {
            headers: &headers,
            query,
            body: b"{}",
        };
        let mut unset = app(GroupAccess::default());
        unset.password = None;

        let good = app(GroupAccess::default())
            .verify(&request(Some("password=hunter2%20%26%20more")), Utc::now());
        let wrong =
            app(GroupAccess::default()).verify(&request(Some("password=hunter2")), Utc::now());
        let missing = app(GroupAccess::default()).verify(&request(None), Utc::now());
        let off = unset.verify(&request(Some("password=x")), Utc::now());

        assert_eq!(good, Ok(()));
        assert!(matches!(wrong, Err(Refusal::Unauthorized(_))));
        assert!(matches!(missing, Err(Refusal::Unauthorized(_))));
        assert!(matches!(off, Err(Refusal::NotConfigured(_))));
    }
}
