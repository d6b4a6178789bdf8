//! Discord REST API, outbound: messages in channels (with the bot token), answers to slash
//! commands (through the interaction's webhook, no token needed), edits, files, typing, and
//! fetching attachments from Discord's CDN; 429 `retry_after` honoured.
//!
//! Decisions:
//! - Model text is sent as Discord markdown as is, with `allowed_mentions: {"parse": []}`, so
//!   nothing the model writes pings anyone (`@everyone`, `<@id>`, roles).
//! - An interaction's first answer replaces its deferred "thinking…" response (edited while
//!   that message still carries the LOADING flag); later chunks are follow-up messages.
//! - A DM known only by its user (a hook's `deliver`) opens the DM channel first
//!   (`POST /users/@me/channels`).
//! - Attachments are fetched only from Discord's CDN hosts (or the configured API's host, for
//!   tests and proxies), without the bot token.

use std::time::Duration;

use serde_json::{json, Value};

use super::{
    fetch_capped, wrong_target, ChannelError, ChannelSender, OutboundFile, MAX_RATE_LIMIT_WAIT,
    MAX_RATE_LIMIT_WAITS,
};
use crate::config::{DiscordConfig, Secret};
use crate::model::{Channel, DiscordTarget, MediaSource, ReplyTarget};

/// Discord's limit on a message's content.
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// The message flag Discord sets on a deferred interaction response still "thinking".
const LOADING: u64 = 1 << 7;
const CDN_HOSTS: &[&str] = &["cdn.discordapp.com", "media.discordapp.net"];
const CHANNEL: &str = "discord";

#[derive(Clone)]
pub struct DiscordClient {
    http: reqwest::Client,
    api_base: String,
    /// The bot token: channel messages, typing, DMs. Interaction answers need none.
    token: Option<Secret>,
}

impl DiscordClient {
    pub fn from_config(config: &DiscordConfig, http: reqwest::Client) -> Self {
        DiscordClient {
            http,
            api_base: config.api_base().to_string(),
            token: config.token.clone(),
        }
    }

    /// Sends one request (again after a 429's `retry_after`, up to a bound) and reads the
    /// answer. `bot`: with the bot token.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Body<'_>,
        bot: bool,
    ) -> Result<Value, ChannelError> {
        let url = format!("{}{path}", self.api_base);
        for _ in 0..=MAX_RATE_LIMIT_WAITS {
            let mut request = self.http.request(method.clone(), &url);
            if bot {
                let token = self.token.as_ref().ok_or(ChannelError::NotConfigured {
                    channel: CHANNEL,
                    message: "set channels.discord.token or DISCORD_BOT_TOKEN".into(),
                })?;
                request = request.header("authorization", format!("Bot {}", token.expose()));
            }
            request = match &body {
                Body::None => request,
                Body::Json(value) => request.json(value),
                Body::File(payload, file) => request.multipart(file_form(payload, file)),
            };
            let response = request.send().await.map_err(|e| ChannelError::Retryable {
                channel: CHANNEL,
                message: format!("{path}: {}", e.without_url()),
            })?;
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or_default();
            if status == 429 {
                let wait =
                    Duration::from_secs_f64(answer["retry_after"].as_f64().unwrap_or(1.0).max(0.0));
                if wait > MAX_RATE_LIMIT_WAIT {
                    break;
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            if (200..300).contains(&status) {
                return Ok(answer);
            }
            let message = format!(
                "HTTP {status}, code {}: {}",
                answer["code"].as_i64().unwrap_or_default(),
                answer["message"].as_str().unwrap_or("no message")
            );
            return Err(if status >= 500 {
                ChannelError::Retryable {
                    channel: CHANNEL,
                    message,
                }
            } else {
                ChannelError::Permanent {
                    channel: CHANNEL,
                    message,
                }
            });
        }
        Err(ChannelError::Retryable {
            channel: CHANNEL,
            message: "still rate limited".into(),
        })
    }

    /// Replaces the application's slash commands with `commands` (in one guild when given:
    /// they appear at once there, while global ones take a while). Returns how many Discord
    /// holds now.
    pub async fn register_commands(
        &self,
        application_id: &str,
        guild: Option<&str>,
        commands: &Value,
    ) -> Result<usize, ChannelError> {
        let path = match guild {
            Some(guild) => format!("/applications/{application_id}/guilds/{guild}/commands"),
            None => format!("/applications/{application_id}/commands"),
        };
        let body = Body::Json(commands.clone());
        let registered = self.call(reqwest::Method::PUT, &path, body, true).await?;
        Ok(registered.as_array().map_or(0, Vec::len))
    }

    /// The channel to post in: the target's, or the DM channel with its user.
    async fn channel_of(&self, target: &DiscordTarget) -> Result<String, ChannelError> {
        if !target.channel_id.is_empty() {
            return Ok(target.channel_id.clone());
        }
        let Some(user) = &target.dm_user else {
            return Err(wrong_target(
                CHANNEL,
                "a target with neither channel nor user",
            ));
        };
        let dm = self
            .call(
                reqwest::Method::POST,
                "/users/@me/channels",
                Body::Json(json!({"recipient_id": user})),
                true,
            )
            .await?;
        dm["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ChannelError::Permanent {
                channel: CHANNEL,
                message: "opening the DM: no channel id".into(),
            })
    }

    /// Posts `payload` where `target` says; returns the message id.
    async fn create(
        &self,
        target: &DiscordTarget,
        mut payload: Value,
        file: Option<&OutboundFile>,
    ) -> Result<String, ChannelError> {
        payload["allowed_mentions"] = json!({"parse": []});
        let body = |p: Value| match file {
            Some(f) => Body::File(p, f),
            None => Body::Json(p),
        };
        let created = match &target.interaction {
            Some(i) => {
                let base = format!("/webhooks/{}/{}", i.application_id, i.token);
                let original = self
                    .call(
                        reqwest::Method::GET,
                        &format!("{base}/messages/@original"),
                        Body::None,
                        false,
                    )
                    .await?;
                let thinking = original["flags"].as_u64().is_some_and(|f| f & LOADING != 0);
                if thinking {
                    let path = format!("{base}/messages/@original");
                    self.call(reqwest::Method::PATCH, &path, body(payload), false)
                        .await?
                } else {
                    let path = format!("{base}?wait=true");
                    self.call(reqwest::Method::POST, &path, body(payload), false)
                        .await?
                }
            }
            None => {
                if let Some(id) = &target.reply_to_message_id {
                    payload["message_reference"] =
                        json!({"message_id": id, "fail_if_not_exists": false});
                }
                let channel = self.channel_of(target).await?;
                let path = format!("/channels/{channel}/messages");
                self.call(reqwest::Method::POST, &path, body(payload), true)
                    .await?
            }
        };
        Ok(created["id"].as_str().unwrap_or_default().to_string())
    }
}

/// A request body.
enum Body<'a> {
    None,
    Json(Value),
    /// `payload_json` and one file (`files[0]`).
    File(Value, &'a OutboundFile),
}

fn file_form(payload: &Value, file: &OutboundFile) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(file.bytes.clone())
        .file_name(file.name.clone())
        .mime_str(&file.mime)
        .unwrap_or_else(|_| {
            reqwest::multipart::Part::bytes(file.bytes.clone()).file_name(file.name.clone())
        });
    reqwest::multipart::Form::new()
        .text("payload_json", payload.to_string())
        .part("files[0]", part)
}

#[async_trait::async_trait]
impl ChannelSender for DiscordClient {
    fn channel(&self) -> Channel {
        Channel::Discord
    }

    fn max_message_chars(&self) -> usize {
        MAX_MESSAGE_CHARS
    }

    async fn post(&self, target: &ReplyTarget, text: &str) -> Result<String, ChannelError> {
        self.create(target_of(target)?, json!({"content": text}), None)
            .await
    }

    fn can_edit(&self) -> bool {
        true
    }

    async fn edit(&self, target: &ReplyTarget, id: &str, text: &str) -> Result<(), ChannelError> {
        let target = target_of(target)?;
        let payload = json!({"content": text, "allowed_mentions": {"parse": []}});
        let (path, bot) = match &target.interaction {
            Some(i) => (
                format!("/webhooks/{}/{}/messages/{id}", i.application_id, i.token),
                false,
            ),
            None => (
                format!("/channels/{}/messages/{id}", self.channel_of(target).await?),
                true,
            ),
        };
        self.call(reqwest::Method::PATCH, &path, Body::Json(payload), bot)
            .await
            .map(|_| ())
    }

    async fn send_file(
        &self,
        target: &ReplyTarget,
        file: &OutboundFile,
    ) -> Result<(), ChannelError> {
        let payload = json!({"content": file.caption.clone().unwrap_or_default()});
        self.create(target_of(target)?, payload, Some(file))
            .await
            .map(|_| ())
    }

    async fn typing(&self, target: &ReplyTarget) -> Result<(), ChannelError> {
        let target = target_of(target)?;
        if target.interaction.is_some() || target.channel_id.is_empty() {
            return Ok(()); // the deferred response already shows "thinking…"
        }
        let path = format!("/channels/{}/typing", target.channel_id);
        self.call(reqwest::Method::POST, &path, Body::None, true)
            .await
            .map(|_| ())
    }

    /// "typing…" lasts 10 s.
    fn typing_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(8))
    }

    async fn download(
        &self,
        source: &MediaSource,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ChannelError> {
        let MediaSource::Discord { url } = source else {
            return Err(wrong_target(CHANNEL, "the file source"));
        };
        let parsed = reqwest::Url::parse(url).map_err(|_| ChannelError::Permanent {
            channel: CHANNEL,
            message: "an attachment URL that does not parse".into(),
        })?;
        let api_host = reqwest::Url::parse(&self.api_base)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string));
        let host = parsed.host_str().unwrap_or("");
        let trusted = (parsed.scheme() == "https" && CDN_HOSTS.contains(&host))
            || api_host.as_deref() == Some(host);
        if !trusted {
            return Err(ChannelError::Permanent {
                channel: CHANNEL,
                message: format!("attachments are fetched from Discord's CDN only, not {host}"),
            });
        }
        fetch_capped(CHANNEL, self.http.get(parsed), max_bytes).await
    }
}

fn target_of(target: &ReplyTarget) -> Result<&DiscordTarget, ChannelError> {
    match target {
        ReplyTarget::Discord(d) => Ok(d),
        _ => Err(wrong_target(CHANNEL, "the reply target")),
    }
}
