//! WhatsApp Cloud API, outbound: `POST /<phone number id>/messages` (text, and media after
//! `POST /<phone number id>/media`), and fetching the files users send (`GET /<media id>` for
//! the URL, then the file), all with the access token as a bearer header.
//!
//! Decisions:
//! - The 24-hour customer-service window: outside it the Cloud API refuses free-form messages
//!   (error 131047). That is a permanent error whose text says why and what would work (the
//!   user writing first; templates are not sent by clawgate), never a retry.
//! - Rate limits (HTTP 429, codes 4, 80007, 130429, 131056) and 5xx are retryable; other API
//!   errors are permanent with Meta's message.
//! - Markdown becomes WhatsApp's own markup (`*bold*`, `_italic_`, `~strike~`, ``` blocks);
//!   WhatsApp renders no links or mentions from text, so nothing else needs escaping.
//! - Messages cannot be edited, so the worker shows no preview here ([`ChannelSender::can_edit`]).

use serde_json::{json, Value};

use super::{
    fetch_capped, too_large, truncate_chars, wrong_target, ChannelError, ChannelSender,
    OutboundFile,
};
use crate::config::{Secret, WhatsappConfig};
use crate::model::{Channel, MediaSource, ReplyTarget, WhatsappTarget};

/// The Cloud API's limit on a text message body.
pub const MAX_MESSAGE_CHARS: usize = 4096;
/// The limit on a media caption.
pub const MAX_CAPTION_CHARS: usize = 1024;
/// Meta's error code for a free-form message outside the 24-hour customer-service window.
pub const OUTSIDE_WINDOW: i64 = 131047;
const RATE_LIMIT_CODES: &[i64] = &[4, 80007, 130429, 131056];
const CHANNEL: &str = "whatsapp";

#[derive(Clone)]
pub struct WhatsappClient {
    http: reqwest::Client,
    /// `<base>/<version>`.
    graph_url: String,
    phone_number_id: String,
    token: Secret,
}

impl WhatsappClient {
    /// The client `config` describes, when it has an access token and a phone number id.
    pub fn from_config(config: &WhatsappConfig, http: reqwest::Client) -> Option<Self> {
        Some(WhatsappClient {
            http,
            graph_url: config.graph_url(),
            phone_number_id: config.phone_number_id.clone()?,
            token: config.access_token.clone()?,
        })
    }

    /// Sends one text message; returns its `wamid`.
    pub async fn send_text(
        &self,
        target: &WhatsappTarget,
        text: &str,
    ) -> Result<String, ChannelError> {
        let body = json!({"type": "text", "text": {"preview_url": false, "body": text}});
        self.send(target, body).await
    }

    /// `POST /<phone number id>/messages` with the envelope every message shares.
    async fn send(&self, target: &WhatsappTarget, mut body: Value) -> Result<String, ChannelError> {
        body["messaging_product"] = json!("whatsapp");
        body["recipient_type"] = json!("individual");
        body["to"] = json!(target.to);
        if let Some(id) = &target.reply_to_message_id {
            body["context"] = json!({"message_id": id});
        }
        let url = format!("{}/{}/messages", self.graph_url, self.phone_number_id);
        let answer = self
            .call("messages", self.http.post(url).json(&body))
            .await?;
        answer["messages"][0]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ChannelError::Permanent {
                channel: CHANNEL,
                message: "messages: the answer has no message id".into(),
            })
    }

    /// Uploads a file (`POST /<phone number id>/media`) and sends it as an image, a video, an
    /// audio file or a document.
    pub async fn send_file(
        &self,
        target: &WhatsappTarget,
        file: &OutboundFile,
    ) -> Result<String, ChannelError> {
        let part = reqwest::multipart::Part::bytes(file.bytes.clone())
            .file_name(file.name.clone())
            .mime_str(&file.mime)
            .map_err(|_| ChannelError::Permanent {
                channel: CHANNEL,
                message: format!("{:?} is not a MIME type", file.mime),
            })?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", file.mime.clone())
            .part("file", part);
        let url = format!("{}/{}/media", self.graph_url, self.phone_number_id);
        let uploaded = self
            .call("media", self.http.post(url).multipart(form))
            .await?;
        let id = uploaded["id"]
            .as_str()
            .ok_or_else(|| ChannelError::Permanent {
                channel: CHANNEL,
                message: "media upload: no media id".into(),
            })?;
        let kind = match file.mime.split('/').next() {
            Some("image") if file.mime != "image/gif" => "image",
            Some("video") => "video",
            Some("audio") => "audio",
            _ => "document",
        };
        let mut media = json!({"id": id});
        if kind != "audio" {
            if let Some(caption) = file.caption.as_deref().filter(|c| !c.is_empty()) {
                media["caption"] = json!(truncate_chars(caption, MAX_CAPTION_CHARS));
            }
        }
        if kind == "document" {
            media["filename"] = json!(file.name);
        }
        self.send(target, json!({"type": kind, kind: media})).await
    }

    /// Fetches a file a user sent: its URL from `GET /<media id>`, then the file (with the
    /// token, as Meta requires), refusing one over `max_bytes`.
    pub async fn download(&self, media_id: &str, max_bytes: u64) -> Result<Vec<u8>, ChannelError> {
        if media_id.is_empty() || !media_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ChannelError::Permanent {
                channel: CHANNEL,
                message: "a media id is digits and letters".into(),
            });
        }
        let url = format!("{}/{media_id}", self.graph_url);
        let info = self.call("media url", self.http.get(url)).await?;
        if info["file_size"].as_u64().is_some_and(|n| n > max_bytes) {
            return Err(too_large(CHANNEL, max_bytes));
        }
        let url = info["url"]
            .as_str()
            .ok_or_else(|| ChannelError::Permanent {
                channel: CHANNEL,
                message: "media url: no url in the answer".into(),
            })?;
        fetch_capped(
            CHANNEL,
            self.http.get(url).bearer_auth(self.token.expose()),
            max_bytes,
        )
        .await
    }

    /// Sends a request with the token and reads Meta's answer or error.
    async fn call(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, ChannelError> {
        let response = request
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| ChannelError::Retryable {
                channel: CHANNEL,
                message: format!("{what}: {}", e.without_url()),
            })?;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(answer);
        }
        let error = &answer["error"];
        let code = error["code"].as_i64().unwrap_or_default();
        let said = error["message"].as_str().unwrap_or("no message");
        let message = format!("{what}: HTTP {status}, code {code}: {said}");
        Err(if code == OUTSIDE_WINDOW {
            ChannelError::Permanent {
                channel: CHANNEL,
                message: format!("{message}. WhatsApp takes free-form messages only within 24 hours of the user's last message (the customer-service window); the user must write first"),
            }
        } else if status == 429 || status >= 500 || RATE_LIMIT_CODES.contains(&code) {
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

/// The Markdown models write, as WhatsApp markup: `**bold**` and `__bold__` become `*bold*`,
/// `~~strike~~` becomes `~strike~`, headings become bold lines; code (fenced or inline) is
/// kept as WhatsApp's monospace.
pub fn markdown_to_whatsapp(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split("```").enumerate() {
        if i > 0 {
            out.push_str("```");
        }
        if i % 2 == 1 {
            out.push_str(part);
            continue;
        }
        let lines: Vec<String> = part
            .split('\n')
            .map(|line| {
                let trimmed = line.trim_start();
                let heading = trimmed.trim_start_matches('#');
                if trimmed.starts_with('#') && heading.starts_with(' ') {
                    format!("*{}*", heading.trim().replace("**", ""))
                } else {
                    line.replace("**", "*")
                        .replace("__", "*")
                        .replace("~~", "~")
                }
            })
            .collect();
        out.push_str(&lines.join("\n"));
    }
    out
}

#[async_trait::async_trait]
impl ChannelSender for WhatsappClient {
    fn channel(&self) -> Channel {
        Channel::Whatsapp
    }

    fn max_message_chars(&self) -> usize {
        MAX_MESSAGE_CHARS
    }

    async fn post(&self, target: &ReplyTarget, text: &str) -> Result<String, ChannelError> {
        self.send_text(target_of(target)?, &markdown_to_whatsapp(text))
            .await
    }

    async fn send_file(
        &self,
        target: &ReplyTarget,
        file: &OutboundFile,
    ) -> Result<(), ChannelError> {
        WhatsappClient::send_file(self, target_of(target)?, file)
            .await
            .map(|_| ())
    }

    async fn download(
        &self,
        source: &MediaSource,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ChannelError> {
        match source {
            MediaSource::Whatsapp { media_id } => {
                WhatsappClient::download(self, media_id, max_bytes).await
            }
            _ => Err(wrong_target(CHANNEL, "the file source")),
        }
    }
}

fn target_of(target: &ReplyTarget) -> Result<&WhatsappTarget, ChannelError> {
    match target {
        ReplyTarget::Whatsapp(w) => Ok(w),
        _ => Err(wrong_target(CHANNEL, "the reply target")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_whatsapp_markup_and_code_is_left_alone() {
        let text = "# Plan\nThis is **important** and ~~old~~.\n```\nlet **x** = 1;\n```\nDone";

        let converted = markdown_to_whatsapp(text);

        assert_eq!(
            converted,
            "*Plan*\nThis is *important* and ~old~.\n```\nlet **x** = 1;\n```\nDone"
        );
    }
}
