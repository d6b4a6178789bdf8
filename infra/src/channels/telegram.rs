//! Telegram Bot API, outbound: `sendMessage` and `editMessageText` (HTML parse mode,
//! plain-text retry when Telegram rejects the entities, 429 `retry_after` honoured),
//! `sendPhoto` / `sendDocument`, `getFile` and the file download, `sendChatAction`,
//! `setWebhook` for `clawgate telegram set-webhook`, and `getMe` / `getWebhookInfo` for
//! `clawgate doctor`.
//!
//! The bot token is part of every URL, so no URL is ever logged or put in an error.

use serde_json::{json, Value};

use super::{
    fetch_capped, too_large, truncate_chars, wrong_target, ChannelError, ChannelSender,
    OutboundFile, MAX_RATE_LIMIT_WAIT, MAX_RATE_LIMIT_WAITS,
};
use crate::config::Secret;
use crate::model::{Channel, MediaSource, ReplyTarget, TelegramTarget};

/// Telegram's limit on one message's text.
pub const MAX_MESSAGE_CHARS: usize = 4096;
/// Telegram's limit on a file's caption.
pub const MAX_CAPTION_CHARS: usize = 1024;
const CHANNEL: &str = "telegram";

#[derive(Clone)]
pub struct TelegramClient {
    http: reqwest::Client,
    base_url: String,
    token: Secret,
}

/// What Telegram answered.
enum Answer {
    Ok(Value),
    EntitiesRejected(String),
}

impl TelegramClient {
    /// `base_url` is `https://api.telegram.org` in production (`TELEGRAM_API_BASE` overrides).
    pub fn new(http: reqwest::Client, base_url: &str, token: Secret) -> Self {
        TelegramClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            token,
        }
    }

    /// Sends one chunk (≤ 4096 characters) as formatted HTML, or as plain text when Telegram
    /// cannot parse the entities. Returns the message id.
    pub async fn send_message(
        &self,
        target: &TelegramTarget,
        text: &str,
    ) -> Result<i64, ChannelError> {
        let mut body = json!({
            "chat_id": target.chat_id,
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(thread) = target.message_thread_id {
            body["message_thread_id"] = json!(thread);
        }
        if let Some(reply_to) = target.reply_to_message_id {
            body["reply_parameters"] =
                json!({"message_id": reply_to, "allow_sending_without_reply": true});
        }
        let answer = self.call_formatted("sendMessage", body, text).await?;
        Ok(answer["message_id"].as_i64().unwrap_or_default())
    }

    /// Replaces the text of message `message_id` (`editMessageText`). An edit to the same text
    /// (Telegram: "message is not modified") is a success; a message that cannot be edited
    /// (deleted, too old, not the bot's) is a `Permanent` error the caller falls back from.
    pub async fn edit_message_text(
        &self,
        target: &TelegramTarget,
        message_id: i64,
        text: &str,
    ) -> Result<(), ChannelError> {
        let body = json!({
            "chat_id": target.chat_id,
            "message_id": message_id,
            "link_preview_options": {"is_disabled": true},
        });
        match self.call_formatted("editMessageText", body, text).await {
            Err(ChannelError::Permanent { message, .. })
                if message.contains("message is not modified") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// Sends a file (`sendPhoto` for an image, `sendDocument` otherwise) as multipart form
    /// data, with an optional caption. Returns the message id.
    pub async fn send_file(
        &self,
        target: &TelegramTarget,
        as_photo: bool,
        file: &OutboundFile,
    ) -> Result<i64, ChannelError> {
        let (method, field) = if as_photo {
            ("sendPhoto", "photo")
        } else {
            ("sendDocument", "document")
        };
        let form = || {
            let part = reqwest::multipart::Part::bytes(file.bytes.clone())
                .file_name(file.name.clone())
                .mime_str(&file.mime)
                .unwrap_or_else(|_| reqwest::multipart::Part::bytes(file.bytes.clone()));
            let mut form = reqwest::multipart::Form::new()
                .text("chat_id", target.chat_id.to_string())
                .part(field, part);
            if let Some(thread) = target.message_thread_id {
                form = form.text("message_thread_id", thread.to_string());
            }
            if let Some(caption) = file.caption.as_deref().filter(|c| !c.is_empty()) {
                form = form.text("caption", truncate_chars(caption, MAX_CAPTION_CHARS));
            }
            form
        };
        match self.call_with(method, |r| r.multipart(form())).await? {
            Answer::Ok(result) => Ok(result["message_id"].as_i64().unwrap_or_default()),
            Answer::EntitiesRejected(why) => Err(ChannelError::Permanent {
                channel: CHANNEL,
                message: why,
            }),
        }
    }

    /// Fetches a file a user sent: `getFile` for its path, then the bot file URL, refusing
    /// one over `max_bytes` (by its declared size first, then while reading).
    pub async fn download_file(
        &self,
        file_id: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ChannelError> {
        let file = match self.call("getFile", &json!({"file_id": file_id})).await? {
            Answer::Ok(result) => result,
            Answer::EntitiesRejected(why) => {
                return Err(ChannelError::Permanent {
                    channel: CHANNEL,
                    message: why,
                })
            }
        };
        if file["file_size"].as_u64().is_some_and(|n| n > max_bytes) {
            return Err(too_large(CHANNEL, max_bytes));
        }
        let path = file["file_path"]
            .as_str()
            .filter(|p| !p.is_empty() && !p.contains(".."))
            .ok_or_else(|| ChannelError::Permanent {
                channel: CHANNEL,
                message: "getFile: no usable file_path".into(),
            })?;
        let url = format!("{}/file/bot{}/{path}", self.base_url, self.token.expose());
        fetch_capped(CHANNEL, self.http.get(&url), max_bytes).await
    }

    /// Shows "typing…" for up to 5 seconds.
    pub async fn send_typing(&self, target: &TelegramTarget) -> Result<(), ChannelError> {
        let mut body = json!({"chat_id": target.chat_id, "action": "typing"});
        if let Some(thread) = target.message_thread_id {
            body["message_thread_id"] = json!(thread);
        }
        self.call("sendChatAction", &body).await.map(|_| ())
    }

    /// Registers `url` as the bot's webhook (`setWebhook`): Telegram then sends
    /// `secret_token` in `X-Telegram-Bot-Api-Secret-Token` with every update, and only the
    /// update types in `allowed_updates`. Returns Telegram's description ("Webhook was set").
    pub async fn set_webhook(
        &self,
        url: &str,
        secret_token: &Secret,
        allowed_updates: &[&str],
    ) -> Result<String, ChannelError> {
        let body = json!({
            "url": url,
            "secret_token": secret_token.expose(),
            "allowed_updates": allowed_updates,
        });
        match self.call("setWebhook", &body).await? {
            Answer::Ok(_) => Ok("webhook set".to_string()),
            Answer::EntitiesRejected(why) => Err(ChannelError::Permanent {
                channel: CHANNEL,
                message: why,
            }),
        }
    }

    /// `getUpdates`, long polling: the updates from `offset` on, waiting up to `timeout_s`
    /// seconds for one. Asking from `offset` confirms every update before it, so a caller
    /// passes the next offset only once the earlier updates are safely queued.
    pub async fn get_updates(
        &self,
        offset: i64,
        timeout_s: u64,
        allowed_updates: &[&str],
    ) -> Result<Vec<Value>, ChannelError> {
        let body =
            json!({"offset": offset, "timeout": timeout_s, "allowed_updates": allowed_updates});
        match self.call("getUpdates", &body).await? {
            Answer::Ok(Value::Array(updates)) => Ok(updates),
            Answer::Ok(other) => Err(ChannelError::Permanent {
                channel: CHANNEL,
                message: format!("getUpdates answered {other}, not a list"),
            }),
            Answer::EntitiesRejected(why) => Err(ChannelError::Permanent {
                channel: CHANNEL,
                message: why,
            }),
        }
    }

    /// `deleteWebhook`: the bot stops posting to its webhook (long polling needs that).
    pub async fn delete_webhook(&self) -> Result<(), ChannelError> {
        self.query("deleteWebhook").await.map(|_| ())
    }

    /// `getMe`: the bot behind the token (`clawgate doctor`).
    pub async fn get_me(&self) -> Result<Value, ChannelError> {
        self.query("getMe").await
    }

    /// `getWebhookInfo`: the registered `url`, `pending_update_count`, `last_error_message`.
    pub async fn get_webhook_info(&self) -> Result<Value, ChannelError> {
        self.query("getWebhookInfo").await
    }

    async fn query(&self, method: &str) -> Result<Value, ChannelError> {
        match self.call(method, &json!({})).await? {
            Answer::Ok(result) => Ok(result),
            Answer::EntitiesRejected(why) => Err(ChannelError::Permanent {
                channel: CHANNEL,
                message: why,
            }),
        }
    }

    /// Sends `text` as HTML in `body`, again as plain text when Telegram rejects the entities.
    async fn call_formatted(
        &self,
        method: &str,
        mut body: Value,
        text: &str,
    ) -> Result<Value, ChannelError> {
        body["text"] = json!(markdown_to_html(text));
        body["parse_mode"] = json!("HTML");
        if let Answer::Ok(result) = self.call(method, &body).await? {
            return Ok(result);
        }
        tracing::info!(
            method,
            "telegram rejected the formatting; sending as plain text"
        );
        body["text"] = json!(text);
        body.as_object_mut().expect("object").remove("parse_mode");
        match self.call(method, &body).await? {
            Answer::Ok(result) => Ok(result),
            Answer::EntitiesRejected(why) => Err(ChannelError::Permanent {
                channel: CHANNEL,
                message: why,
            }),
        }
    }

    async fn call(&self, method: &str, body: &Value) -> Result<Answer, ChannelError> {
        self.call_with(method, |r| r.json(body)).await
    }

    /// One Bot API call, its body set by `with_body` (again on each try), waiting out short
    /// rate limits.
    async fn call_with(
        &self,
        method: &str,
        with_body: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Answer, ChannelError> {
        let url = format!("{}/bot{}/{method}", self.base_url, self.token.expose());
        for _ in 0..=MAX_RATE_LIMIT_WAITS {
            let response = with_body(self.http.post(&url)).send().await.map_err(|e| {
                ChannelError::Retryable {
                    channel: CHANNEL,
                    message: format!("{method}: {}", e.without_url()),
                }
            })?;
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or_default();
            if answer["ok"] == true {
                return Ok(Answer::Ok(answer["result"].clone()));
            }
            let description = answer["description"].as_str().unwrap_or("").to_string();
            match status {
                429 => {
                    let wait = std::time::Duration::from_secs(
                        answer["parameters"]["retry_after"].as_u64().unwrap_or(1),
                    );
                    if wait > MAX_RATE_LIMIT_WAIT {
                        break;
                    }
                    tracing::info!(
                        method,
                        wait_s = wait.as_secs(),
                        "telegram rate limit; waiting as asked"
                    );
                    tokio::time::sleep(wait).await;
                }
                400 if description.contains("can't parse entities") => {
                    return Ok(Answer::EntitiesRejected(description))
                }
                500.. => {
                    return Err(ChannelError::Retryable {
                        channel: CHANNEL,
                        message: format!("{method}: {status} {description}"),
                    })
                }
                _ => {
                    return Err(ChannelError::Permanent {
                        channel: CHANNEL,
                        message: format!("{method}: {status} {description}"),
                    })
                }
            }
        }
        Err(ChannelError::Retryable {
            channel: CHANNEL,
            message: format!("{method}: still rate limited"),
        })
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The little Markdown models write most, as Telegram HTML: fenced code blocks, inline code
/// and `**bold**`; everything else is escaped text. Anything odd falls back to plain text at
/// send time, so this never has to be perfect.
pub fn markdown_to_html(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split("```").enumerate() {
        if i % 2 == 1 {
            // Inside a fence: drop the language tag line.
            let code = part.split_once('\n').map_or(part, |(first, rest)| {
                if first.trim().contains(' ') {
                    part
                } else {
                    rest
                }
            });
            out.push_str(&format!(
                "<pre>{}</pre>",
                escape_html(code.trim_end_matches('\n'))
            ));
            continue;
        }
        for (j, piece) in part.split('`').enumerate() {
            if j % 2 == 1 {
                out.push_str(&format!("<code>{}</code>", escape_html(piece)));
                continue;
            }
            for (k, run) in piece.split("**").enumerate() {
                if k % 2 == 1 {
                    out.push_str(&format!("<b>{}</b>", escape_html(run)));
                } else {
                    out.push_str(&escape_html(run));
                }
            }
        }
    }
    out
}

/// The Bot API as a [`ChannelSender`]: HTML from the model's markdown, photos as photos.
#[async_trait::async_trait]
impl ChannelSender for TelegramClient {
    fn channel(&self) -> Channel {
        Channel::Telegram
    }

    fn max_message_chars(&self) -> usize {
        MAX_MESSAGE_CHARS
    }

    async fn post(&self, target: &ReplyTarget, text: &str) -> Result<String, ChannelError> {
        let id = self.send_message(target_of(target)?, text).await?;
        Ok(id.to_string())
    }

    fn can_edit(&self) -> bool {
        true
    }

    async fn edit(&self, target: &ReplyTarget, id: &str, text: &str) -> Result<(), ChannelError> {
        let id = id.parse().map_err(|_| ChannelError::Permanent {
            channel: CHANNEL,
            message: format!("{id:?} is not a message id"),
        })?;
        self.edit_message_text(target_of(target)?, id, text).await
    }

    async fn send_file(
        &self,
        target: &ReplyTarget,
        file: &OutboundFile,
    ) -> Result<(), ChannelError> {
        let photo = matches!(
            file.mime.as_str(),
            "image/png" | "image/jpeg" | "image/gif" | "image/webp"
        );
        TelegramClient::send_file(self, target_of(target)?, photo, file)
            .await
            .map(|_| ())
    }

    async fn typing(&self, target: &ReplyTarget) -> Result<(), ChannelError> {
        self.send_typing(target_of(target)?).await
    }

    /// "typing…" lasts 5 s.
    fn typing_interval(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_secs(4))
    }

    async fn download(
        &self,
        source: &MediaSource,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ChannelError> {
        match source {
            MediaSource::Telegram { file_id } => self.download_file(file_id, max_bytes).await,
            _ => Err(wrong_target(CHANNEL, "the file source")),
        }
    }
}

fn target_of(target: &ReplyTarget) -> Result<&TelegramTarget, ChannelError> {
    match target {
        ReplyTarget::Telegram(t) => Ok(t),
        _ => Err(wrong_target(CHANNEL, "the reply target")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_escaped_html() {
        assert_eq!(markdown_to_html("a < b & **c**"), "a &lt; b &amp; <b>c</b>");
        assert_eq!(markdown_to_html("run `ls -la`"), "run <code>ls -la</code>");
        assert_eq!(
            markdown_to_html("```sh\necho <hi>\n```"),
            "<pre>echo &lt;hi&gt;</pre>"
        );
    }
}
