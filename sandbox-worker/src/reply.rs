//! Replies to the channel a job came from: chunked to the channel's limits, escaped for its
//! markup, and the typing indicator refreshed while the job works (Telegram's lasts 5 s);
//! previews posted and edited, files sent, and the files users send fetched.
//!
//! Model text is untrusted: on Slack, `&`, `<` and `>` are escaped as Slack asks, so a reply
//! cannot ping the channel (`<!channel>`, `<!here>`, `<@U…>`) or dress a link up as another
//! (`<https://evil|bank.com>`). Telegram replies are sent as plain text (no parse mode), where
//! no markup is interpreted.

use std::collections::HashMap;
use std::time::Duration;

use infra::channels::slack::SlackClient;
use infra::channels::telegram::TelegramClient;
use infra::channels::{chunk_text, slack, telegram, ChannelError, OutboundFile};
use infra::config::{media_max_bytes, Config, Streaming, TelegramConfig};
use infra::model::{Channel, MediaSource, ReplyTarget};

/// The worker stores WebChat replies in the transcript; nothing is posted.
fn webchat_not_posted() -> ChannelError {
    ChannelError::Permanent {
        channel: "webchat",
        message: "WebChat replies are stored, not sent".into(),
    }
}

/// Every configured channel's outbound client.
#[derive(Clone, Default)]
pub struct Outbound {
    /// By account name.
    telegram: HashMap<String, TelegramClient>,
    slack: Option<SlackClient>,
    /// `channels.telegram.streaming`, `channels.slack.streaming`.
    streaming: (Streaming, Streaming),
    /// `mediaMaxMb` in bytes: Telegram, Slack.
    media_max: (u64, u64),
}

/// The least time between two edits of one preview: Telegram allows about one edit per second
/// per chat, Slack's `chat.update` (Tier 3) about 50 a minute. A progress edit due sooner is
/// folded into the next one; the final edit waits its turn.
pub fn min_edit_interval(target: &ReplyTarget) -> Duration {
    match target {
        ReplyTarget::Slack(_) => Duration::from_millis(1500),
        _ => Duration::from_secs(1),
    }
}

impl Outbound {
    pub fn from_config(config: &Config, http: reqwest::Client) -> Self {
        let telegram = config
            .channels
            .telegram
            .iter()
            .flat_map(|t| {
                let base = t.api_base.as_deref().unwrap_or("https://api.telegram.org");
                let http = &http;
                t.accounts().filter_map(move |a| {
                    let token = a.bot_token?.clone();
                    let client = TelegramClient::new(http.clone(), base, token);
                    Some((a.name.to_string(), client))
                })
            })
            .collect();
        let slack = config.channels.slack.as_ref().and_then(|s| {
            let base = s.api_base.as_deref().unwrap_or("https://slack.com");
            s.bot_token
                .clone()
                .map(|token| SlackClient::new(http.clone(), base, token))
        });
        let channels = &config.channels;
        let streaming = (
            channels
                .telegram
                .as_ref()
                .map(|t| t.streaming)
                .unwrap_or_default(),
            channels
                .slack
                .as_ref()
                .map(|s| s.streaming)
                .unwrap_or_default(),
        );
        let media_max = (
            media_max_bytes(channels.telegram.as_ref().and_then(|t| t.media_max_mb)),
            media_max_bytes(channels.slack.as_ref().and_then(|s| s.media_max_mb)),
        );
        Outbound {
            telegram,
            slack,
            streaming,
            media_max,
        }
    }

    /// Whether a run answering `target` shows a preview that is edited as it goes. WebChat
    /// has none: its page follows the transcript over SSE.
    pub fn previews(&self, target: &ReplyTarget) -> bool {
        let mode = match target {
            ReplyTarget::Telegram(_) => self.streaming.0,
            ReplyTarget::Slack(_) => self.streaming.1,
            ReplyTarget::Webchat(_) => Streaming::Off,
        };
        mode != Streaming::Off
    }

    /// Posts a new message and returns its id (Telegram `message_id`, Slack `ts`).
    pub async fn post(
        &self,
        account: &str,
        target: &ReplyTarget,
        text: &str,
    ) -> Result<String, ChannelError> {
        match target {
            ReplyTarget::Telegram(t) => {
                let id = self.telegram(account)?.send_message(t, text).await?;
                Ok(id.to_string())
            }
            ReplyTarget::Slack(s) => self.slack()?.post_message(s, &slack::escape(text)).await,
            ReplyTarget::Webchat(_) => Err(webchat_not_posted()),
        }
    }

    /// Replaces the text of message `id`, which [`Self::post`] returned.
    pub async fn edit(
        &self,
        account: &str,
        target: &ReplyTarget,
        id: &str,
        text: &str,
    ) -> Result<(), ChannelError> {
        match target {
            ReplyTarget::Telegram(t) => {
                let id = id.parse().map_err(|_| ChannelError::Permanent {
                    channel: "telegram",
                    message: format!("{id:?} is not a message id"),
                })?;
                self.telegram(account)?.edit_message_text(t, id, text).await
            }
            ReplyTarget::Slack(s) => {
                self.slack()?
                    .update_message(s, id, &slack::escape(text))
                    .await
            }
            ReplyTarget::Webchat(_) => Err(webchat_not_posted()),
        }
    }

    /// Sends a file to the chat: a photo (Telegram `sendPhoto`) or a document, or a Slack
    /// upload. WebChat files are links the worker writes into the transcript, not sends.
    pub async fn send_file(
        &self,
        account: &str,
        target: &ReplyTarget,
        file: &OutboundFile,
    ) -> Result<(), ChannelError> {
        match target {
            ReplyTarget::Telegram(t) => {
                let photo = matches!(
                    file.mime.as_str(),
                    "image/png" | "image/jpeg" | "image/gif" | "image/webp"
                );
                self.telegram(account)?
                    .send_file(t, photo, file)
                    .await
                    .map(|_| ())
            }
            ReplyTarget::Slack(s) => self.slack()?.upload_file(s, file).await.map(|_| ()),
            ReplyTarget::Webchat(_) => Err(webchat_not_posted()),
        }
    }

    /// The largest inbound file taken from `channel` (its `mediaMaxMb`).
    pub fn media_max(&self, channel: Channel) -> u64 {
        match channel {
            Channel::Telegram => self.media_max.0,
            Channel::Slack => self.media_max.1,
            Channel::Webchat | Channel::Hook => media_max_bytes(None),
        }
    }

    /// Fetches a file a user sent with the message, refusing one over the channel's
    /// `mediaMaxMb`. A workspace file (a WebChat upload) is not fetched: it is already there.
    pub async fn download(
        &self,
        account: &str,
        source: &MediaSource,
    ) -> Result<Vec<u8>, ChannelError> {
        match source {
            MediaSource::Telegram { file_id } => {
                self.telegram(account)?
                    .download_file(file_id, self.media_max.0)
                    .await
            }
            MediaSource::Slack { url } => self.slack()?.download_file(url, self.media_max.1).await,
            MediaSource::Workspace { .. } => Err(ChannelError::Permanent {
                channel: "webchat",
                message: "an uploaded file is already in the workspace".into(),
            }),
        }
    }

    /// The reply split to the target channel's message limit.
    pub fn chunks(&self, target: &ReplyTarget, text: &str) -> Vec<String> {
        let max = match target {
            ReplyTarget::Telegram(_) => telegram::MAX_MESSAGE_CHARS,
            ReplyTarget::Slack(_) => slack::MAX_MESSAGE_CHARS,
            ReplyTarget::Webchat(_) => 100_000,
        };
        chunk_text(text, max)
    }

    /// Keeps "typing…" showing until the returned task is aborted (Telegram only: Slack bots
    /// have no typing indicator in the Events API).
    pub fn keep_typing(
        &self,
        account: &str,
        target: &ReplyTarget,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let (ReplyTarget::Telegram(t), Some(client)) =
            (target, self.telegram.get(account).cloned())
        else {
            return None;
        };
        let target = t.clone();
        Some(tokio::spawn(async move {
            loop {
                let _ = client.send_typing(&target).await;
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
        }))
    }

    pub(crate) fn telegram(&self, account: &str) -> Result<&TelegramClient, ChannelError> {
        self.telegram
            .get(account)
            .ok_or_else(|| ChannelError::NotConfigured {
                channel: "telegram",
                message: if account == TelegramConfig::DEFAULT_ACCOUNT {
                    "set channels.telegram.botToken or TELEGRAM_BOT_TOKEN".into()
                } else {
                    format!("set channels.telegram.accounts.{account}.botToken")
                },
            })
    }

    fn slack(&self) -> Result<&SlackClient, ChannelError> {
        self.slack.as_ref().ok_or(ChannelError::NotConfigured {
            channel: "slack",
            message: "set channels.slack.botToken or SLACK_BOT_TOKEN".into(),
        })
    }
}
