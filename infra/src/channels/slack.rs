//! Slack Web API, outbound: `chat.postMessage` in the thread, 429 `Retry-After` honoured.

use serde_json::{json, Value};

use super::{ChannelError, MAX_RATE_LIMIT_WAIT, MAX_RATE_LIMIT_WAITS};
use crate::config::Secret;
use crate::model::SlackTarget;

/// Slack truncates beyond 40,000 characters; messages past ~4,000 read badly, so replies are
/// split there.
pub const MAX_MESSAGE_CHARS: usize = 4000;
const CHANNEL: &str = "slack";
const RETRYABLE_ERRORS: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "ratelimited",
];

/// Escapes text for Slack's message format: `&`, `<` and `>` become entities, so nothing in
/// the text is read as a mention (`<!channel>`, `<@U…>`) or a link (`<url|label>`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Clone)]
pub struct SlackClient {
    http: reqwest::Client,
    base_url: String,
    token: Secret,
}

impl SlackClient {
    /// `base_url` is `https://slack.com` in production (`SLACK_API_BASE` overrides).
    pub fn new(http: reqwest::Client, base_url: &str, token: Secret) -> Self {
        SlackClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            token,
        }
    }

    /// Posts one chunk, in the thread when the target has one. Returns the message `ts`.
    pub async fn post_message(
        &self,
        target: &SlackTarget,
        text: &str,
    ) -> Result<String, ChannelError> {
        let mut body = json!({"channel": target.channel, "text": text, "unfurl_links": false});
        if let Some(ts) = &target.thread_ts {
            body["thread_ts"] = json!(ts);
        }
        let answer = self.call("chat.postMessage", &body).await?;
        Ok(answer["ts"].as_str().unwrap_or("").to_string())
    }

    /// `auth.test`: who the token is (team, bot user), for `clawgate doctor`.
    pub async fn auth_test(&self) -> Result<Value, ChannelError> {
        self.call("auth.test", &json!({})).await
    }

    /// One Web API call with the bot token: the answer when `ok`, waiting out short rate
    /// limits; Slack's `error` code otherwise.
    async fn call(&self, method: &str, body: &Value) -> Result<Value, ChannelError> {
        let url = format!("{}/api/{method}", self.base_url);
        for _ in 0..=MAX_RATE_LIMIT_WAITS {
            let response = self
                .http
                .post(&url)
                .bearer_auth(self.token.expose())
                .json(body)
                .send()
                .await
                .map_err(|e| ChannelError::Retryable {
                    channel: CHANNEL,
                    message: e.without_url().to_string(),
                })?;
            let status = response.status().as_u16();
            if status == 429 {
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map_or(
                        std::time::Duration::from_secs(1),
                        std::time::Duration::from_secs,
                    );
                if wait > MAX_RATE_LIMIT_WAIT {
                    break;
                }
                tracing::info!(
                    method,
                    wait_s = wait.as_secs(),
                    "slack rate limit; waiting as asked"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            if status >= 500 {
                return Err(ChannelError::Retryable {
                    channel: CHANNEL,
                    message: format!("{method}: HTTP {status}"),
                });
            }
            let answer: Value = response.json().await.unwrap_or_default();
            if answer["ok"] == true {
                return Ok(answer);
            }
            let error = answer["error"]
                .as_str()
                .unwrap_or("unknown_error")
                .to_string();
            return Err(if RETRYABLE_ERRORS.contains(&error.as_str()) {
                ChannelError::Retryable {
                    channel: CHANNEL,
                    message: format!("{method}: {error}"),
                }
            } else {
                ChannelError::Permanent {
                    channel: CHANNEL,
                    message: format!("{method}: {error}"),
                }
            });
        }
        Err(ChannelError::Retryable {
            channel: CHANNEL,
            message: format!("{method}: still rate limited"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_and_disguised_links_are_neutralised() {
        let escaped = escape("<!channel> hi <@U123> see <https://evil.example|bank.com> & more");
        assert_eq!(
            escaped,
            "&lt;!channel&gt; hi &lt;@U123&gt; see &lt;https://evil.example|bank.com&gt; &amp; more"
        );
        assert!(!escaped.contains('<') && !escaped.contains('>'));
        assert_eq!(escape("plain *bold* text"), "plain *bold* text");
    }
}
