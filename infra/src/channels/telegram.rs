//! Telegram Bot API, outbound: `sendMessage` (HTML parse mode, plain-text retry when Telegram
//! rejects the entities, 429 `retry_after` honoured), `sendChatAction`, `setWebhook` for
//! `clawgate telegram set-webhook`, and `getMe` / `getWebhookInfo` for `clawgate doctor`.
//!
//! The bot token is part of every URL, so no URL is ever logged or put in an error.

use serde_json::{json, Value};

use super::{ChannelError, MAX_RATE_LIMIT_WAIT, MAX_RATE_LIMIT_WAITS};
use crate::config::Secret;
use crate::model::TelegramTarget;

/// Telegram's limit on one message's text.
pub const MAX_MESSAGE_CHARS: usize = 4096;
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
            "text": markdown_to_html(text),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(thread) = target.message_thread_id {
            body["message_thread_id"] = json!(thread);
        }
        if let Some(reply_to) = target.reply_to_message_id {
            body["reply_parameters"] =
                json!({"message_id": reply_to, "allow_sending_without_reply": true});
        }
        let answer = match self.call("sendMessage", &body).await? {
            Answer::Ok(result) => result,
            Answer::EntitiesRejected(why) => {
                tracing::info!(%why, "telegram rejected the formatting; sending as plain text");
                body["text"] = json!(text);
                body.as_object_mut().expect("object").remove("parse_mode");
                match self.call("sendMessage", &body).await? {
                    Answer::Ok(result) => result,
                    Answer::EntitiesRejected(why) => {
                        return Err(ChannelError::Permanent {
                            channel: CHANNEL,
                            message: why,
                        })
                    }
                }
            }
        };
        Ok(answer["message_id"].as_i64().unwrap_or_default())
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

    async fn call(&self, method: &str, body: &Value) -> Result<Answer, ChannelError> {
        let url = format!("{}/bot{}/{method}", self.base_url, self.token.expose());
        for _ in 0..=MAX_RATE_LIMIT_WAITS {
            let response = self.http.post(&url).json(body).send().await.map_err(|e| {
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
