//! Replies to the channel a job came from, through each channel's [`ChannelSender`] (the
//! channel contract, docs/architecture.md): chunked to the channel's limit, escaped or
//! converted for its markup by the sender, the typing indicator refreshed while the job
//! works; previews posted and edited, files sent, and the files users send fetched.
//!
//! Model text is untrusted: each sender makes sure it cannot ping a channel or disguise a link
//! (Slack escapes `&`, `<`, `>`; Telegram converts markdown to HTML it escapes itself).
//!
//! WebChat has no sender: its replies are transcript entries the page reads
//! (`worker/delivery.rs`), so everything here refuses a WebChat target.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use infra::channels::bluebubbles::BlueBubblesClient;
use infra::channels::discord::DiscordClient;
use infra::channels::googlechat::GoogleChatClient;
use infra::channels::matrix_client::MatrixClient;
use infra::channels::msteams::MsTeamsClient;
use infra::channels::signal::SignalClient;
use infra::channels::slack::SlackClient;
use infra::channels::telegram::TelegramClient;
use infra::channels::whatsapp::WhatsappClient;
use infra::channels::zalo::ZaloClient;
use infra::channels::{chunk_text, ChannelError, ChannelSender, OutboundFile};
use infra::config::{media_max_bytes, ChannelStyle, Config, Streaming, TelegramConfig};
use infra::model::{Channel, MediaSource, ReplyTarget};

/// The worker stores WebChat replies in the transcript; nothing is posted.
fn webchat_not_posted() -> ChannelError {
    ChannelError::Permanent {
        channel: "webchat",
        message: "WebChat replies are stored, not sent".into(),
    }
}

/// Every configured channel's outbound side, by channel and account.
#[derive(Clone, Default)]
pub struct Outbound {
    senders: HashMap<(Channel, String), Arc<dyn ChannelSender>>,
    /// `channels.<channel>.streaming` and `mediaMaxMb`, resolved once.
    styles: HashMap<Channel, ChannelStyle>,
}

/// The channel of a reply target.
pub fn target_channel(target: &ReplyTarget) -> Channel {
    match target {
        ReplyTarget::Telegram(_) => Channel::Telegram,
        ReplyTarget::Slack(_) => Channel::Slack,
        ReplyTarget::Webchat(_) => Channel::Webchat,
        ReplyTarget::Whatsapp(_) => Channel::Whatsapp,
        ReplyTarget::Discord(_) => Channel::Discord,
        ReplyTarget::Bluebubbles(_) => Channel::Bluebubbles,
        ReplyTarget::Signal(_) => Channel::Signal,
        ReplyTarget::Zalo(_) => Channel::Zalo,
        ReplyTarget::Googlechat(_) => Channel::Googlechat,
        ReplyTarget::Msteams(_) => Channel::Msteams,
        ReplyTarget::Matrix(_) => Channel::Matrix,
    }
}

/// Every channel's senders from the config: the registration list (one line per channel).
fn senders(
    config: &Config,
    http: &reqwest::Client,
) -> Vec<(Channel, String, Arc<dyn ChannelSender>)> {
    let mut all: Vec<(Channel, String, Arc<dyn ChannelSender>)> = Vec::new();
    if let Some(t) = &config.channels.telegram {
        let base = t.api_base.as_deref().unwrap_or("https://api.telegram.org");
        for a in t.accounts() {
            if let Some(token) = a.bot_token {
                let client = TelegramClient::new(http.clone(), base, token.clone());
                all.push((Channel::Telegram, a.name.to_string(), Arc::new(client)));
            }
        }
    }
    if let Some(s) = &config.channels.slack {
        let base = s.api_base.as_deref().unwrap_or("https://slack.com");
        if let Some(token) = &s.bot_token {
            let client = SlackClient::new(http.clone(), base, token.clone());
            all.push((Channel::Slack, "default".into(), Arc::new(client)));
        }
    }
    if let Some(w) = &config.channels.whatsapp {
        if let Some(client) = WhatsappClient::from_config(w, http.clone()) {
            all.push((Channel::Whatsapp, "default".into(), Arc::new(client)));
        }
    }
    if let Some(d) = &config.channels.discord {
        let client = DiscordClient::from_config(d, http.clone());
        all.push((Channel::Discord, "default".into(), Arc::new(client)));
    }
    if let Some(b) = &config.channels.bluebubbles {
        if let Some(client) = BlueBubblesClient::from_config(b, http.clone()) {
            all.push((Channel::Bluebubbles, "default".into(), Arc::new(client)));
        }
    }
    if let Some(c) = &config.channels.signal {
        let client = SignalClient::from_config(c, http.clone());
        all.push((Channel::Signal, "default".into(), Arc::new(client)));
    }
    if let Some(z) = &config.channels.zalo {
        if let Some(client) = ZaloClient::from_config(z, http.clone()) {
            all.push((Channel::Zalo, "default".into(), Arc::new(client)));
        }
    }
    if let Some(g) = &config.channels.googlechat {
        match GoogleChatClient::from_config(g, http.clone()) {
            Ok(Some(client)) => all.push((Channel::Googlechat, "default".into(), Arc::new(client))),
            Ok(None) => {}
            Err(why) => tracing::warn!(%why, "Google Chat replies are off"),
        }
    }
    if let Some(t) = &config.channels.msteams {
        if let Some(client) = MsTeamsClient::from_config(t, http.clone()) {
            all.push((Channel::Msteams, "default".into(), Arc::new(client)));
        }
    }
    if let Some(m) = &config.channels.matrix {
        if let Some(client) = MatrixClient::from_config(m, http.clone()) {
            all.push((Channel::Matrix, "default".into(), Arc::new(client)));
        }
    }
    all
}

impl Outbound {
    pub fn from_config(config: &Config, http: reqwest::Client) -> Self {
        let senders = senders(config, &http)
            .into_iter()
            .map(|(channel, account, sender)| ((channel, account), sender))
            .collect();
        let styles = [
            Channel::Telegram,
            Channel::Slack,
            Channel::Whatsapp,
            Channel::Discord,
            Channel::Bluebubbles,
            Channel::Signal,
            Channel::Zalo,
            Channel::Googlechat,
            Channel::Msteams,
            Channel::Matrix,
        ]
        .into_iter()
        .map(|c| (c, config.channels.style(c)))
        .collect();
        Outbound { senders, styles }
    }

    /// The sender for `account` of `channel`, or what to configure.
    fn sender(&self, channel: Channel, account: &str) -> Result<&dyn ChannelSender, ChannelError> {
        if channel == Channel::Webchat {
            return Err(webchat_not_posted());
        }
        self.senders
            .get(&(channel, account.to_string()))
            .map(|s| s.as_ref())
            .ok_or_else(|| not_configured(channel, account))
    }

    fn for_target(
        &self,
        account: &str,
        target: &ReplyTarget,
    ) -> Result<&dyn ChannelSender, ChannelError> {
        self.sender(target_channel(target), account)
    }

    /// Whether a run answering `target` shows a preview that is edited as it goes. WebChat
    /// has none: its page follows the transcript over SSE.
    pub fn previews(&self, account: &str, target: &ReplyTarget) -> bool {
        let channel = target_channel(target);
        let streaming = self.styles.get(&channel).map(|s| s.streaming);
        streaming.is_some_and(|s| s != Streaming::Off)
            && self.sender(channel, account).is_ok_and(|s| s.can_edit())
    }

    /// The least time between two edits of one preview on `target`'s channel: a progress edit
    /// due sooner is folded into the next one; the final edit waits its turn.
    pub fn min_edit_interval(&self, account: &str, target: &ReplyTarget) -> Duration {
        self.for_target(account, target)
            .map_or(Duration::from_secs(1), |s| s.min_edit_interval())
    }

    /// Posts a new message and returns its id (Telegram `message_id`, Slack `ts`).
    pub async fn post(
        &self,
        account: &str,
        target: &ReplyTarget,
        text: &str,
    ) -> Result<String, ChannelError> {
        self.for_target(account, target)?.post(target, text).await
    }

    /// Replaces the text of message `id`, which [`Self::post`] returned.
    pub async fn edit(
        &self,
        account: &str,
        target: &ReplyTarget,
        id: &str,
        text: &str,
    ) -> Result<(), ChannelError> {
        self.for_target(account, target)?
            .edit(target, id, text)
            .await
    }

    /// Sends a file to the chat. WebChat files are links the worker writes into the
    /// transcript, not sends.
    pub async fn send_file(
        &self,
        account: &str,
        target: &ReplyTarget,
        file: &OutboundFile,
    ) -> Result<(), ChannelError> {
        self.for_target(account, target)?
            .send_file(target, file)
            .await
    }

    /// The largest inbound file taken from `channel` (its `mediaMaxMb`).
    pub fn media_max(&self, channel: Channel) -> u64 {
        media_max_bytes(self.styles.get(&channel).and_then(|s| s.media_max_mb))
    }

    /// Fetches a file a user sent with the message, refusing one over the channel's
    /// `mediaMaxMb`. A workspace file (a WebChat upload) is not fetched: it is already there.
    pub async fn download(
        &self,
        channel: Channel,
        account: &str,
        source: &MediaSource,
    ) -> Result<Vec<u8>, ChannelError> {
        if let MediaSource::Workspace { .. } = source {
            return Err(ChannelError::Permanent {
                channel: "webchat",
                message: "an uploaded file is already in the workspace".into(),
            });
        }
        self.sender(channel, account)?
            .download(source, self.media_max(channel))
            .await
    }

    /// The reply split to the target channel's message limit.
    pub fn chunks(&self, account: &str, target: &ReplyTarget, text: &str) -> Vec<String> {
        let max = self
            .for_target(account, target)
            .map_or(100_000, |s| s.max_message_chars());
        chunk_text(text, max)
    }

    /// Keeps "typing…" showing until the returned task is aborted, on channels that have it.
    pub fn keep_typing(
        &self,
        account: &str,
        target: &ReplyTarget,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let sender = self
            .senders
            .get(&(target_channel(target), account.to_string()))?
            .clone();
        let every = sender.typing_interval()?;
        let target = target.clone();
        Some(tokio::spawn(async move {
            loop {
                let _ = sender.typing(&target).await;
                tokio::time::sleep(every).await;
            }
        }))
    }
}

/// What to set for a channel account that has no sender.
fn not_configured(channel: Channel, account: &str) -> ChannelError {
    let message = match channel {
        Channel::Telegram if account == TelegramConfig::DEFAULT_ACCOUNT => {
            "set channels.telegram.botToken or TELEGRAM_BOT_TOKEN".into()
        }
        Channel::Telegram => format!("set channels.telegram.accounts.{account}.botToken"),
        Channel::Slack => "set channels.slack.botToken or SLACK_BOT_TOKEN".into(),
        Channel::Googlechat => {
            "set channels.googlechat.serviceAccountFile or GOOGLE_CHAT_SERVICE_ACCOUNT".into()
        }
        Channel::Matrix => {
            "set channels.matrix.homeserver, userId and asToken (or MATRIX_HOMESERVER, MATRIX_USER_ID, MATRIX_AS_TOKEN)".into()
        }
        Channel::Msteams => {
            "set channels.msteams.appId and appPassword (or MSTEAMS_APP_ID, MSTEAMS_APP_PASSWORD)".into()
        }
        Channel::Zalo => {
            "set channels.zalo.accessToken (or ZALO_OA_ACCESS_TOKEN)".into()
        }
        Channel::Bluebubbles => {
            "set channels.bluebubbles.serverUrl and password (or BLUEBUBBLES_SERVER_URL, BLUEBUBBLES_PASSWORD)".into()
        }
        Channel::Whatsapp => {
            "set channels.whatsapp.accessToken and phoneNumberId (or WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID)".into()
        }
        other => format!("channel {other} has no outbound client for account {account:?}"),
    };
    ChannelError::NotConfigured {
        channel: channel.as_str(),
        message,
    }
}
