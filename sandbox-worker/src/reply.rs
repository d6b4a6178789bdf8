//! Replies to the channel a job came from: chunked to the channel's limits, escaped for its
//! markup, and the typing indicator refreshed while the job works (Telegram's lasts 5 s).
//!
//! Model text is untrusted: on Slack, `&`, `<` and `>` are escaped as Slack asks, so a reply
//! cannot ping the channel (`<!channel>`, `<!here>`, `<@U…>`) or dress a link up as another
//! (`<https://evil|bank.com>`). Telegram replies are sent as plain text (no parse mode), where
//! no markup is interpreted.

use std::collections::HashMap;
use std::time::Duration;

use infra::channels::slack::SlackClient;
use infra::channels::telegram::TelegramClient;
use infra::channels::{chunk_text, slack, telegram, ChannelError};
use infra::config::{Config, TelegramConfig};
use infra::model::ReplyTarget;

/// Every configured channel's outbound client.
#[derive(Clone, Default)]
pub struct Outbound {
    /// By account name.
    telegram: HashMap<String, TelegramClient>,
    slack: Option<SlackClient>,
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
        Outbound { telegram, slack }
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

    /// Sends one chunk as the channel account (bot) `account`.
    pub async fn send(
        &self,
        account: &str,
        target: &ReplyTarget,
        chunk: &str,
    ) -> Result<(), ChannelError> {
        match target {
            ReplyTarget::Telegram(t) => {
                let client = self.telegram(account)?;
                client.send_message(t, chunk).await.map(|_| ())
            }
            ReplyTarget::Slack(s) => self
                .slack()?
                .post_message(s, &slack::escape(chunk))
                .await
                .map(|_| ()),
            // The worker stores WebChat replies in the transcript; nothing is posted.
            ReplyTarget::Webchat(_) => Err(ChannelError::Permanent {
                channel: "webchat",
                message: "WebChat replies are stored, not sent".into(),
            }),
        }
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

    fn telegram(&self, account: &str) -> Result<&TelegramClient, ChannelError> {
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
