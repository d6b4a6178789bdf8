//! Signal through a `signal-cli` daemon in HTTP mode: its `receive` events parsed into jobs
//! (the event stream itself is read by `functions::signal_events`), and JSON-RPC out (`send`,
//! `sendTyping`, `getAttachment`) at `POST /api/v1/rpc`.
//!
//! Decisions:
//! - Only data messages with text or attachments are jobs; receipts, typing, sync messages of
//!   the bot's own devices, reactions and the bot's own messages are ignored.
//! - A DM's peer is the sender's number (its uuid when the number is hidden); a group's is its
//!   base64 id. In a group, the bot is addressed when a mention names its account.
//! - The event id is `<sender>:<timestamp>`: Signal's message id is the sender's timestamp,
//!   unique per sender.
//! - The daemon is the owner's (usually on loopback): the JSON-RPC endpoint takes no token.

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{
    wrong_target, ChannelAccount, ChannelError, ChannelSender, Incoming, OutboundFile, Parsed,
    WebhookError,
};
use crate::config::SignalConfig;
use crate::model::{
    Channel, ChatKind, MediaKind, MediaRef, MediaSource, ReplyTarget, Sender, SignalTarget,
    MAX_MEDIA_PER_MESSAGE,
};

/// Signal's practical limit on one message's text.
pub const MAX_MESSAGE_CHARS: usize = 2000;
const CHANNEL: &str = "signal";

/// What the gateway knows about the Signal account.
#[derive(Debug, Clone)]
pub struct SignalApp {
    pub account: ChannelAccount,
    /// The bot's own number.
    pub number: Option<String>,
}

impl SignalApp {
    /// One event from the daemon's stream: `{"envelope": …}` (or the JSON-RPC notification
    /// that wraps it).
    pub fn parse_event(&self, body: &[u8], now: DateTime<Utc>) -> Result<Parsed, WebhookError> {
        let event: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::MalformedJson(e.to_string()))?;
        let envelope = event
            .get("envelope")
            .or_else(|| event["params"].get("envelope"))
            .ok_or_else(|| WebhookError::NotAnEvent("a receive event needs an envelope".into()))?;
        let Some(data) = envelope.get("dataMessage") else {
            return Ok(Parsed::Ignored(
                "not a data message (receipt, typing, sync)",
            ));
        };
        let sender = envelope["sourceNumber"]
            .as_str()
            .or(envelope["source"].as_str())
            .or(envelope["sourceUuid"].as_str())
            .filter(|s| !s.is_empty());
        let (Some(sender), Some(sent)) = (sender, envelope["timestamp"].as_i64()) else {
            return Err(WebhookError::NotAnEvent(
                "an envelope needs its source and timestamp".into(),
            ));
        };
        if self.number.as_deref() == Some(sender) {
            return Ok(Parsed::Ignored("the bot's own message"));
        }
        if data.get("reaction").is_some() {
            return Ok(Parsed::Ignored("a reaction"));
        }
        let group = data["groupInfo"]["groupId"]
            .as_str()
            .filter(|g| !g.is_empty());
        let media = attachments(data, sender, group);
        let text = data["message"].as_str().unwrap_or("").to_string();
        if text.trim().is_empty() && media.is_empty() {
            return Ok(Parsed::Ignored("no text or attachment"));
        }
        let addressed = data["mentions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| self.number.as_deref().is_some_and(|n| m["number"] == n));
        self.account.admit(
            Incoming {
                event_id: &format!("{sender}:{sent}"),
                kind: if group.is_some() {
                    ChatKind::Group
                } else {
                    ChatKind::Dm
                },
                chat_id: group.unwrap_or(sender),
                sender: Sender {
                    id: sender.to_string(),
                    name: envelope["sourceName"].as_str().map(str::to_string),
                },
                text,
                media,
                sub: None,
                team_id: None,
                addressed,
                reply_to: ReplyTarget::Signal(match group {
                    Some(g) => SignalTarget::Group {
                        group_id: g.to_string(),
                    },
                    None => SignalTarget::Person {
                        recipient: sender.to_string(),
                    },
                }),
            },
            now,
        )
    }
}

fn attachments(data: &Value, sender: &str, group: Option<&str>) -> Vec<MediaRef> {
    data["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let id = a["id"].as_str().filter(|id| !id.is_empty())?;
            let mime = a["contentType"].as_str().map(str::to_string);
            Some(MediaRef {
                kind: MediaKind::from_mime(mime.as_deref().unwrap_or("")),
                source: MediaSource::Signal {
                    id: id.to_string(),
                    recipient: group.is_none().then(|| sender.to_string()),
                    group_id: group.map(str::to_string),
                },
                name: a["filename"].as_str().map(str::to_string),
                mime,
                size: a["size"].as_u64(),
            })
        })
        .take(MAX_MEDIA_PER_MESSAGE)
        .collect()
}

/// signal-cli's JSON-RPC as a [`ChannelSender`].
#[derive(Clone)]
pub struct SignalClient {
    http: reqwest::Client,
    rpc_url: String,
    account: Option<String>,
}

impl SignalClient {
    pub fn from_config(config: &SignalConfig, http: reqwest::Client) -> Self {
        SignalClient {
            http,
            rpc_url: format!("{}/api/v1/rpc", config.http_url()),
            account: config.account.clone(),
        }
    }

    /// One JSON-RPC call; its `result`.
    async fn call(&self, method: &str, mut params: Value) -> Result<Value, ChannelError> {
        if let Some(account) = &self.account {
            params["account"] = json!(account);
        }
        let request = json!({"jsonrpc": "2.0", "method": method, "params": params,
            "id": ulid::Ulid::new().to_string()});
        let response = self
            .http
            .post(&self.rpc_url)
            .json(&request)
            .send()
            .await
            .map_err(|e| ChannelError::Retryable {
                channel: CHANNEL,
                message: format!("{method}: {}", e.without_url()),
            })?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or_default();
        if let Some(error) = answer.get("error") {
            return Err(ChannelError::Permanent {
                channel: CHANNEL,
                message: format!(
                    "{method}: {} ({})",
                    error["message"].as_str().unwrap_or("error"),
                    error["code"]
                ),
            });
        }
        if !status.is_success() {
            return Err(ChannelError::Retryable {
                channel: CHANNEL,
                message: format!("{method}: HTTP {}", status.as_u16()),
            });
        }
        Ok(answer["result"].clone())
    }

    /// The chat part of a `send`'s params.
    fn to(target: &ReplyTarget) -> Result<Value, ChannelError> {
        match target {
            ReplyTarget::Signal(SignalTarget::Person { recipient }) => {
                Ok(json!({"recipient": [recipient]}))
            }
            ReplyTarget::Signal(SignalTarget::Group { group_id }) => {
                Ok(json!({"groupId": group_id}))
            }
            _ => Err(wrong_target(CHANNEL, "the reply target")),
        }
    }
}

#[async_trait::async_trait]
impl ChannelSender for SignalClient {
    fn channel(&self) -> Channel {
        Channel::Signal
    }

    fn max_message_chars(&self) -> usize {
        MAX_MESSAGE_CHARS
    }

    async fn post(&self, target: &ReplyTarget, text: &str) -> Result<String, ChannelError> {
        let mut params = Self::to(target)?;
        params["message"] = json!(text);
        let sent = self.call("send", params).await?;
        Ok(sent["timestamp"].as_i64().unwrap_or_default().to_string())
    }

    async fn send_file(
        &self,
        target: &ReplyTarget,
        file: &OutboundFile,
    ) -> Result<(), ChannelError> {
        let mut params = Self::to(target)?;
        let data = base64::engine::general_purpose::STANDARD.encode(&file.bytes);
        params["attachments"] = json!([format!(
            "data:{};filename={};base64,{data}",
            file.mime, file.name
        )]);
        params["message"] = json!(file.caption.clone().unwrap_or_default());
        self.call("send", params).await.map(|_| ())
    }

    async fn typing(&self, target: &ReplyTarget) -> Result<(), ChannelError> {
        self.call("sendTyping", Self::to(target)?).await.map(|_| ())
    }

    /// Signal's typing indicator lasts about 15 s.
    fn typing_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(10))
    }

    async fn download(
        &self,
        source: &MediaSource,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ChannelError> {
        let MediaSource::Signal {
            id,
            recipient,
            group_id,
        } = source
        else {
            return Err(wrong_target(CHANNEL, "the file source"));
        };
        let mut params = json!({"id": id});
        if let Some(r) = recipient {
            params["recipient"] = json!(r);
        }
        if let Some(g) = group_id {
            params["groupId"] = json!(g);
        }
        let result = self.call("getAttachment", params).await?;
        let encoded = result["data"].as_str().or(result.as_str()).unwrap_or("");
        // Base64 is 4/3 of the bytes: refuse before decoding what could not fit.
        if encoded.len() as u64 / 4 * 3 > max_bytes + 3 {
            return Err(super::too_large(CHANNEL, max_bytes));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| ChannelError::Permanent {
                channel: CHANNEL,
                message: "getAttachment: the data is not base64".into(),
            })?;
        if bytes.len() as u64 > max_bytes {
            return Err(super::too_large(CHANNEL, max_bytes));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{AgentRoutes, GroupAccess, GroupEntry};

    const GROUP: &str = "S2V5Q2hhaW5Hcm91cElkRm9yVGVzdGluZz0=";

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/fixtures/signal/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn app(groups: GroupAccess) -> SignalApp {
        SignalApp {
            account: ChannelAccount {
                channel: Channel::Signal,
                account: "default".into(),
                routes: Arc::new(AgentRoutes {
                    default_agent: "main".into(),
                    ..AgentRoutes::default()
                }),
                groups,
            },
            number: Some("+15550001111".into()),
        }
    }

    fn listed() -> GroupAccess {
        GroupAccess {
            groups: [(GROUP.to_string(), GroupEntry::default())].into(),
            ..GroupAccess::default()
        }
    }

    #[test]
    fn a_dm_is_a_job_in_the_senders_session_with_its_attachment() {
        let parsed = app(GroupAccess::default())
            .parse_event(&fixture("receive_dm.json"), Utc::now())
            .unwrap();

        let job = &parsed.jobs()[0];
        assert_eq!(
            job.session_key.to_string(),
            "agent:main:signal:dm:+15551234567"
        );
        assert_eq!(
            job.inbound.event_id,
            "signal:default:+15551234567:1764842400123"
        );
        assert_eq!(job.inbound.sender.name.as_deref(), Some("Ada"));
        assert!(
            matches!(&job.inbound.media[0].source, MediaSource::Signal { recipient: Some(r), .. } if r == "+15551234567")
        );
        assert_eq!(
            job.reply_to,
            Some(ReplyTarget::Signal(SignalTarget::Person {
                recipient: "+15551234567".into()
            }))
        );
    }

    #[test]
    fn a_group_message_needs_the_group_listed_and_a_mention_of_the_bot() {
        let body = fixture("receive_group_mention.json");
        let mut unmentioned: Value = serde_json::from_slice(&body).unwrap();
        unmentioned["envelope"]["dataMessage"]["mentions"] = json!([]);

        let answered = app(listed()).parse_event(&body, Utc::now()).unwrap();
        let unlisted = app(GroupAccess::default())
            .parse_event(&body, Utc::now())
            .unwrap();
        let quiet = app(listed())
            .parse_event(unmentioned.to_string().as_bytes(), Utc::now())
            .unwrap();

        assert_eq!(
            answered.jobs()[0].reply_to,
            Some(ReplyTarget::Signal(SignalTarget::Group {
                group_id: GROUP.into()
            }))
        );
        assert!(matches!(unlisted, Parsed::Ignored(why) if why.contains("not listed")));
        assert_eq!(quiet, Parsed::Ignored("group message without a mention"));
    }

    #[test]
    fn receipts_own_messages_and_malformed_events_are_not_jobs() {
        let mut own: Value = serde_json::from_slice(&fixture("receive_dm.json")).unwrap();
        own["envelope"]["sourceNumber"] = json!("+15550001111");
        let app = app(GroupAccess::default());

        let receipt = app
            .parse_event(&fixture("receipt.json"), Utc::now())
            .unwrap();
        let own = app
            .parse_event(own.to_string().as_bytes(), Utc::now())
            .unwrap();
        let broken = app.parse_event(b"{\"envelope\":", Utc::now());
        let empty = app.parse_event(b"{}", Utc::now());

        assert!(matches!(receipt, Parsed::Ignored(why) if why.contains("receipt")));
        assert_eq!(own, Parsed::Ignored("the bot's own message"));
        assert!(matches!(broken, Err(WebhookError::MalformedJson(_))));
        assert!(matches!(empty, Err(WebhookError::NotAnEvent(_))));
    }
}
