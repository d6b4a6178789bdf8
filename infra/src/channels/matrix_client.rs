//! The Matrix client-server API as the application service's bot (`Authorization: Bearer
//! <as_token>`): joining invites, the bot's `m.direct` account data (which rooms are whose
//! DMs), and the worker's sender (messages, edits by `m.replace`, typing).
//!
//! Decisions:
//! - Each message is `m.text` with the model's markdown as `body` and its safe HTML rendering
//!   ([`crate::markdown::to_safe_html`]) as `formatted_body`; in a room the answer is a reply
//!   (`m.in_reply_to`) to the message it answers.
//! - A send's transaction id is a fresh ULID: the homeserver makes a repeated `PUT` with the
//!   same id one event, and the worker's chunk ledger decides what is sent again.
//! - Files: fetched from the authenticated media API (`/_matrix/client/v1/media/download`,
//!   capped as they stream), sent by uploading (`/_matrix/media/v3/upload`) and posting an
//!   `m.image`/`m.audio`/`m.video`/`m.file` with the name as `filename` and the caption as body.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::oauth::{call_json, failure, send_json};
use super::{fetch_capped, wrong_target, ChannelError, ChannelSender, OutboundFile};
use crate::config::{MatrixConfig, Secret};
use crate::model::{Channel, MatrixTarget, MediaKind, MediaSource, ReplyTarget};

/// Events are capped at 64 KiB; the body and its HTML both count.
pub const MAX_MESSAGE_CHARS: usize = 8_000;
const CHANNEL: &str = "matrix";

/// The bot's `m.direct`: for each user, the rooms that are the bot's DMs with them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectRooms(pub BTreeMap<String, Vec<String>>);

impl DirectRooms {
    /// The user whose DM `room` is, if it is one.
    pub fn peer_of(&self, room: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(_, rooms)| rooms.iter().any(|r| r == room))
            .map(|(user, _)| user.as_str())
    }

    /// Records `room` as the DM with `user`; whether that changed anything.
    pub fn add(&mut self, user: &str, room: &str) -> bool {
        if self.peer_of(room).is_some() {
            return false;
        }
        self.0
            .entry(user.to_string())
            .or_default()
            .push(room.to_string());
        true
    }

    /// Forgets `room` as anyone's DM; whether it was one.
    pub fn forget(&mut self, room: &str) -> bool {
        let mut found = false;
        for rooms in self.0.values_mut() {
            let before = rooms.len();
            rooms.retain(|r| r != room);
            found |= rooms.len() != before;
        }
        self.0.retain(|_, rooms| !rooms.is_empty());
        found
    }
}

/// The client-server API as the bot.
pub struct MatrixClient {
    http: reqwest::Client,
    homeserver: String,
    user_id: String,
    as_token: Secret,
}

impl MatrixClient {
    /// The client, when the config names the homeserver, the bot and its token.
    pub fn from_config(config: &MatrixConfig, http: reqwest::Client) -> Option<Self> {
        Some(MatrixClient {
            http,
            homeserver: config.homeserver.clone()?,
            user_id: config.user_id.clone()?,
            as_token: config.as_token.clone()?,
        })
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// `<homeserver>/_matrix/client/v3/<segments…>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<reqwest::Url, ChannelError> {
        self.endpoint(&["client", "v3"], segments)
    }

    /// `<homeserver>/_matrix/<api…>/<segments…>`, each segment percent-encoded.
    fn endpoint(&self, api: &[&str], segments: &[&str]) -> Result<reqwest::Url, ChannelError> {
        let not_configured = || ChannelError::NotConfigured {
            channel: CHANNEL,
            message: "channels.matrix.homeserver is not a URL".into(),
        };
        let mut url = reqwest::Url::parse(&self.homeserver).map_err(|_| not_configured())?;
        url.path_segments_mut()
            .map_err(|_| not_configured())?
            .pop_if_empty()
            .push("_matrix")
            .extend(api)
            .extend(segments);
        Ok(url)
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, ChannelError> {
        call_json(CHANNEL, request, &self.as_token).await
    }

    /// Joins `room` (an invite the bot accepts).
    pub async fn join(&self, room: &str) -> Result<(), ChannelError> {
        let url = self.url(&["join", room])?;
        self.call(self.http.post(url).json(&json!({})))
            .await
            .map(|_| ())
    }

    /// The users joined to or invited into `room` (the bot must be in it).
    pub async fn members(&self, room: &str) -> Result<Vec<String>, ChannelError> {
        let url = self.url(&["rooms", room, "members"])?;
        let answer = self.call(self.http.get(url)).await?;
        let events = answer["chunk"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(events
            .iter()
            .filter(|e| matches!(e["content"]["membership"].as_str(), Some("join" | "invite")))
            .filter_map(|e| e["state_key"].as_str().map(str::to_string))
            .collect())
    }

    /// The bot's `m.direct` (none yet is an empty map).
    pub async fn direct_rooms(&self) -> Result<DirectRooms, ChannelError> {
        let url = self.url(&["user", &self.user_id, "account_data", "m.direct"])?;
        let (status, answer) = send_json(CHANNEL, self.http.get(url), &self.as_token).await?;
        if status == reqwest::StatusCode::NOT_FOUND && answer["errcode"] == "M_NOT_FOUND" {
            return Ok(DirectRooms::default());
        }
        if !status.is_success() {
            return Err(failure(CHANNEL, status, &answer));
        }
        let rooms = serde_json::from_value(answer).map_err(|_| ChannelError::Permanent {
            channel: CHANNEL,
            message: "the bot's m.direct is not a map of users to rooms".into(),
        })?;
        Ok(DirectRooms(rooms))
    }

    /// Replaces the bot's `m.direct`.
    pub async fn set_direct_rooms(&self, direct: &DirectRooms) -> Result<(), ChannelError> {
        let url = self.url(&["user", &self.user_id, "account_data", "m.direct"])?;
        self.call(self.http.put(url).json(&direct.0))
            .await
            .map(|_| ())
    }

    /// The room a target names: its own, or the DM the bot's `m.direct` has with its user.
    async fn room_of(&self, target: &MatrixTarget) -> Result<String, ChannelError> {
        if !target.room_id.is_empty() {
            return Ok(target.room_id.clone());
        }
        let user = target.dm_user.as_deref().unwrap_or_default();
        let direct = self.direct_rooms().await?;
        direct
            .0
            .get(user)
            .and_then(|rooms| rooms.last().cloned())
            .ok_or_else(|| ChannelError::Permanent {
                channel: CHANNEL,
                message: format!("the bot has no DM room with {user}"),
            })
    }

    /// Sends one `m.room.message` event; its id.
    async fn send(&self, room: &str, content: Value) -> Result<String, ChannelError> {
        let txn = ulid::Ulid::new().to_string();
        let url = self.url(&["rooms", room, "send", "m.room.message", &txn])?;
        let sent = self.call(self.http.put(url).json(&content)).await?;
        Ok(sent["event_id"].as_str().unwrap_or_default().to_string())
    }
}

/// A text message's content: markdown as the body, its safe HTML as the formatted body.
fn text_content(text: &str) -> Value {
    json!({"msgtype": "m.text", "body": text, "format": "org.matrix.custom.html",
        "formatted_body": crate::markdown::to_safe_html(text)})
}

fn target_of(target: &ReplyTarget) -> Result<&MatrixTarget, ChannelError> {
    match target {
        ReplyTarget::Matrix(target) => Ok(target),
        _ => Err(wrong_target(CHANNEL, "the reply target")),
    }
}

#[async_trait::async_trait]
impl ChannelSender for MatrixClient {
    fn channel(&self) -> Channel {
        Channel::Matrix
    }

    fn max_message_chars(&self) -> usize {
        MAX_MESSAGE_CHARS
    }

    async fn post(&self, target: &ReplyTarget, text: &str) -> Result<String, ChannelError> {
        let target = target_of(target)?;
        let room = self.room_of(target).await?;
        let mut content = text_content(text);
        if let Some(event) = &target.reply_to {
            content["m.relates_to"] = json!({"m.in_reply_to": {"event_id": event}});
        }
        self.send(&room, content).await
    }

    fn can_edit(&self) -> bool {
        true
    }

    async fn send_file(
        &self,
        target: &ReplyTarget,
        file: &OutboundFile,
    ) -> Result<(), ChannelError> {
        let target = target_of(target)?;
        let room = self.room_of(target).await?;
        let mut url = self.endpoint(&["media", "v3", "upload"], &[])?;
        url.query_pairs_mut().append_pair("filename", &file.name);
        let upload = self
            .http
            .post(url)
            .header("content-type", &file.mime)
            .body(file.bytes.clone());
        let uploaded = self.call(upload).await?;
        let Some(mxc) = uploaded["content_uri"].as_str() else {
            return Err(ChannelError::Permanent {
                channel: CHANNEL,
                message: "the upload answered no content_uri".into(),
            });
        };
        let msgtype = match MediaKind::from_mime(&file.mime) {
            MediaKind::Image => "m.image",
            MediaKind::Audio | MediaKind::Voice => "m.audio",
            MediaKind::Video => "m.video",
            MediaKind::Document => "m.file",
        };
        let content = json!({"msgtype": msgtype, "body": file.caption.as_deref().unwrap_or(&file.name),
            "filename": file.name, "url": mxc,
            "info": {"mimetype": file.mime, "size": file.bytes.len()}});
        self.send(&room, content).await.map(|_| ())
    }

    async fn download(
        &self,
        source: &MediaSource,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ChannelError> {
        let MediaSource::Matrix { mxc } = source else {
            return Err(wrong_target(CHANNEL, "the file source"));
        };
        let Some((server, media)) = super::matrix::mxc_parts(mxc) else {
            return Err(wrong_target(
                CHANNEL,
                "a content URI that is not a plain mxc://",
            ));
        };
        let url = self.endpoint(&["client", "v1", "media", "download"], &[server, media])?;
        fetch_capped(
            CHANNEL,
            self.http.get(url).bearer_auth(self.as_token.expose()),
            max_bytes,
        )
        .await
    }

    async fn edit(&self, target: &ReplyTarget, id: &str, text: &str) -> Result<(), ChannelError> {
        let target = target_of(target)?;
        let room = self.room_of(target).await?;
        let mut content = text_content(&format!("* {text}"));
        content["m.new_content"] = text_content(text);
        content["m.relates_to"] = json!({"rel_type": "m.replace", "event_id": id});
        self.send(&room, content).await.map(|_| ())
    }

    async fn typing(&self, target: &ReplyTarget) -> Result<(), ChannelError> {
        let target = target_of(target)?;
        let room = self.room_of(target).await?;
        let url = self.url(&["rooms", &room, "typing", &self.user_id])?;
        let body = json!({"typing": true, "timeout": 30_000});
        self.call(self.http.put(url).json(&body)).await.map(|_| ())
    }

    /// The typing notice is asked for 30 seconds; renewed well before.
    fn typing_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(20))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_is_one_users_dm_and_is_forgotten_once() {
        let mut direct = DirectRooms::default();

        let added = direct.add("@ada:example.org", "!dm:example.org");
        let again = direct.add("@eve:example.org", "!dm:example.org");
        let peer = direct.peer_of("!dm:example.org").map(str::to_string);
        let forgotten = direct.forget("!dm:example.org");
        let twice = direct.forget("!dm:example.org");

        assert_eq!((added, again), (true, false), "a room is one user's DM");
        assert_eq!(peer.as_deref(), Some("@ada:example.org"));
        assert_eq!((forgotten, twice), (true, false));
        assert!(direct.0.is_empty(), "no user is left with no rooms");
    }
}
