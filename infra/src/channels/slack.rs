//! Slack Web API, outbound: `chat.postMessage` and `chat.update` in the thread, the external
//! file upload flow, and fetching shared files; 429 `Retry-After` honoured.

use serde_json::{json, Value};

use std::time::Duration;

use super::{
    fetch_capped, wrong_target, ChannelError, ChannelSender, OutboundFile, MAX_RATE_LIMIT_WAIT,
    MAX_RATE_LIMIT_WAITS,
};
use crate::config::Secret;
use crate::model::{Channel, MediaSource, ReplyTarget, SlackTarget};

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

    /// Replaces the text of the message `ts` (`chat.update`). A message that cannot be edited
    /// (`message_not_found`, `cant_update_message`, `edit_window_closed`) is a `Permanent`
    /// error the caller falls back from.
    pub async fn update_message(
        &self,
        target: &SlackTarget,
        ts: &str,
        text: &str,
    ) -> Result<(), ChannelError> {
        let body = json!({"channel": target.channel, "ts": ts, "text": text});
        self.call("chat.update", &body).await.map(|_| ())
    }

    /// Uploads a file into the target's chat (and thread) with Slack's external upload flow:
    /// `files.getUploadURLExternal` (form-encoded, as Slack requires), the bytes to the URL it
    /// returns, then `files.completeUploadExternal` to share it. Returns the file id.
    pub async fn upload_file(
        &self,
        target: &SlackTarget,
        file: &OutboundFile,
    ) -> Result<String, ChannelError> {
        let length = file.bytes.len().to_string();
        let form = [
            ("filename", file.name.as_str()),
            ("length", length.as_str()),
        ];
        let ticket = self
            .call_with("files.getUploadURLExternal", |r| r.form(&form))
            .await?;
        let (Some(upload_url), Some(file_id)) =
            (ticket["upload_url"].as_str(), ticket["file_id"].as_str())
        else {
            return Err(ChannelError::Permanent {
                channel: CHANNEL,
                message: "files.getUploadURLExternal: no upload_url or file_id".into(),
            });
        };
        // The upload URL is pre-signed: the bot token is not sent to it.
        let uploaded = self
            .http
            .post(upload_url)
            .header("content-type", file.mime.as_str())
            .body(file.bytes.clone())
            .send()
            .await
            .map_err(|e| ChannelError::Retryable {
                channel: CHANNEL,
                message: format!("file upload: {}", e.without_url()),
            })?;
        if !uploaded.status().is_success() {
            return Err(ChannelError::Retryable {
                channel: CHANNEL,
                message: format!("file upload: HTTP {}", uploaded.status().as_u16()),
            });
        }
        let mut body = json!({
            "files": [{"id": file_id, "title": file.name}],
            "channel_id": target.channel,
        });
        if let Some(ts) = &target.thread_ts {
            body["thread_ts"] = json!(ts);
        }
        if let Some(caption) = file.caption.as_deref().filter(|c| !c.is_empty()) {
            body["initial_comment"] = json!(escape(caption));
        }
        self.call("files.completeUploadExternal", &body).await?;
        Ok(file_id.to_string())
    }

    /// Fetches a file a user shared (its `url_private`) with the bot token, refusing one over
    /// `max_bytes`. The token goes only to Slack's file host (`files.slack.com`) or this
    /// client's own API origin (a test double): never to a URL an event could point elsewhere.
    pub async fn download_file(&self, url: &str, max_bytes: u64) -> Result<Vec<u8>, ChannelError> {
        if !self.may_receive_token(url) {
            return Err(ChannelError::Permanent {
                channel: CHANNEL,
                message: "a file URL outside Slack's file host was not fetched".into(),
            });
        }
        // On a redirect to another host, reqwest drops the `Authorization` header.
        fetch_capped(
            CHANNEL,
            self.http.get(url).bearer_auth(self.token.expose()),
            max_bytes,
        )
        .await
    }

    fn may_receive_token(&self, url: &str) -> bool {
        let own = format!("{}/", self.base_url);
        url.starts_with("https://files.slack.com/") || url.starts_with(&own)
    }

    /// `auth.test`: who the token is (team, bot user), for `clawgate doctor`.
    pub async fn auth_test(&self) -> Result<Value, ChannelError> {
        self.call("auth.test", &json!({})).await
    }

    /// One Web API call with the bot token: the answer when `ok`, waiting out short rate
    /// limits; Slack's `error` code otherwise.
    async fn call(&self, method: &str, body: &Value) -> Result<Value, ChannelError> {
        self.call_with(method, |r| r.json(body)).await
    }

    /// [`Self::call`] with the body set by `with_body` (again on each try).
    async fn call_with(
        &self,
        method: &str,
        with_body: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Value, ChannelError> {
        let url = format!("{}/api/{method}", self.base_url);
        for _ in 0..=MAX_RATE_LIMIT_WAITS {
            let response = with_body(self.http.post(&url).bearer_auth(self.token.expose()))
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

/// The Web API as a [`ChannelSender`]: text escaped ([`escape`]) so the model cannot ping the
/// channel or disguise a link; no typing indicator (the Events API has none for bots).
#[async_trait::async_trait]
impl ChannelSender for SlackClient {
    fn channel(&self) -> Channel {
        Channel::Slack
    }

    fn max_message_chars(&self) -> usize {
        MAX_MESSAGE_CHARS
    }

    /// `chat.update` is Tier 3: about 50 a minute.
    fn min_edit_interval(&self) -> Duration {
        Duration::from_millis(1500)
    }

    async fn post(&self, target: &ReplyTarget, text: &str) -> Result<String, ChannelError> {
        self.post_message(target_of(target)?, &escape(text)).await
    }

    fn can_edit(&self) -> bool {
        true
    }

    async fn edit(&self, target: &ReplyTarget, id: &str, text: &str) -> Result<(), ChannelError> {
        self.update_message(target_of(target)?, id, &escape(text))
            .await
    }

    async fn send_file(
        &self,
        target: &ReplyTarget,
        file: &OutboundFile,
    ) -> Result<(), ChannelError> {
        self.upload_file(target_of(target)?, file).await.map(|_| ())
    }

    async fn download(
        &self,
        source: &MediaSource,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ChannelError> {
        match source {
            MediaSource::Slack { url } => self.download_file(url, max_bytes).await,
            _ => Err(wrong_target(CHANNEL, "the file source")),
        }
    }
}

fn target_of(target: &ReplyTarget) -> Result<&SlackTarget, ChannelError> {
    match target {
        ReplyTarget::Slack(s) => Ok(s),
        _ => Err(wrong_target(CHANNEL, "the reply target")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_bot_token_goes_only_to_slacks_file_host_or_its_own_api() {
        let client = SlackClient::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9",
            Secret::new("xoxb-secret"),
        );

        let elsewhere = client
            .download_file("https://evil.example/files-pri/x", 10)
            .await
            .unwrap_err();
        let lookalike = client
            .download_file("https://files.slack.com.evil.example/x", 10)
            .await
            .unwrap_err();
        let own = client
            .download_file("http://127.0.0.1:9/files-pri/x", 10)
            .await
            .unwrap_err();

        for refused in [&elsewhere, &lookalike] {
            assert!(!refused.is_retryable(), "{refused}");
            assert!(refused.to_string().contains("outside Slack's file host"));
        }
        assert!(own.is_retryable(), "tried, and nothing listens: {own}");
        assert!(!format!("{elsewhere}{own}").contains("xoxb-secret"));
    }

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
