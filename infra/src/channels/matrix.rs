//! Matrix as an application service: the homeserver's transactions in (`PUT
//! /_matrix/app/v1/transactions/<txnId>`, carrying the registration's `hs_token`), membership
//! handled against the homeserver before the messages are read, replies out through the
//! client-server API ([`super::matrix_client`]).
//!
//! Decisions (the config's are in [`crate::config::MatrixConfig`]):
//! - A transaction is taken in two steps. [`MatrixAppservice::apply_membership`] (I/O) accepts
//!   the invites the config allows, records a DM invite's room in the bot's `m.direct` when the
//!   inviter is the only other member, and forgets a DM room the moment a third user joins or
//!   is invited; a failure there answers
//!   503, so the homeserver sends the transaction again. Then [`Transaction`] (no I/O, the
//!   channel contract) reads the messages: a room is the sender's DM only when `m.direct` says
//!   so, else it is a group under the group rules.
//! - The homeserver repeats a transaction until it gets 200: every message's job carries its
//!   event id as the dedup id, so a repeated (or half-taken) transaction queues nothing twice,
//!   and joining and `m.direct` are idempotent. The answer is always `{}`.
//! - `m.text`, `m.emote` and unencrypted files (`m.image`, `m.file`, `m.audio`, `m.video`,
//!   their `mxc://` URI checked to be plain) are read; `m.notice` (what bots send), edits, the
//!   bot's own events and encrypted events are ignored. A room message is addressed when it mentions the
//!   bot (`m.mentions`, its user id, or `<localpart>:` in front).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::matrix_client::{DirectRooms, MatrixClient};
use super::{
    ChannelAccount, ChannelError, Incoming, Parsed, Refusal, WebhookChannel, WebhookError,
    WebhookRequest,
};
use crate::config::MatrixConfig;
use crate::model::{ChatKind, MatrixTarget, MediaKind, MediaRef, MediaSource, ReplyTarget, Sender};

/// What the gateway knows about the application service.
pub struct MatrixAppservice {
    pub account: ChannelAccount,
    pub config: MatrixConfig,
    /// The bot's client (`None` until `homeserver`, `userId` and `asToken` are set).
    pub client: Option<MatrixClient>,
}

/// A transaction's events.
fn events(body: &[u8]) -> Result<Vec<Value>, WebhookError> {
    let transaction: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::MalformedJson(e.to_string()))?;
    match transaction["events"].as_array() {
        Some(events) => Ok(events.clone()),
        None => Err(WebhookError::NotAnEvent(
            "a transaction needs an events list".into(),
        )),
    }
}

impl MatrixAppservice {
    /// The homeserver's `hs_token`: `Authorization: Bearer`, or the older `access_token` query.
    pub fn verify_homeserver(&self, request: &WebhookRequest<'_>) -> Result<(), Refusal> {
        let Some(expected) = &self.config.hs_token else {
            return Err(Refusal::NotConfigured(
                "matrix hsToken is not configured".into(),
            ));
        };
        let given = super::oauth::bearer(request).or_else(|| request.query_param("access_token"));
        let given = given.unwrap_or_default();
        match bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
            true => Ok(()),
            false => Err(Refusal::Unauthorized("bad or missing hs_token".into())),
        }
    }

    /// Takes the membership events of a (verified) transaction: invites accepted as the config
    /// allows, DM rooms recorded and forgotten in the bot's `m.direct`. Returns the DM rooms to
    /// read the messages by (none fetched when the transaction has no room events).
    pub async fn apply_membership(&self, body: &[u8]) -> Result<DirectRooms, ChannelError> {
        let Ok(events) = events(body) else {
            return Ok(DirectRooms::default()); // refused by `parse`, before anything is queued
        };
        let relevant =
            |e: &&Value| matches!(e["type"].as_str(), Some("m.room.member" | "m.room.message"));
        if !events.iter().any(|e| relevant(&e)) {
            return Ok(DirectRooms::default());
        }
        let Some(client) = &self.client else {
            return Err(ChannelError::NotConfigured {
                channel: "matrix",
                message: "set channels.matrix.homeserver, userId and asToken".into(),
            });
        };
        let bot = client.user_id();
        let mut direct = client.direct_rooms().await?;
        let mut changed = false;
        for event in events.iter().filter(|e| e["type"] == "m.room.member") {
            let (Some(room), Some(member), Some(sender)) = (
                event["room_id"].as_str(),
                event["state_key"].as_str(),
                event["sender"].as_str(),
            ) else {
                continue;
            };
            let membership = event["content"]["membership"].as_str().unwrap_or_default();
            match (member == bot, membership) {
                (true, "invite") => {
                    let is_direct = event["content"]["is_direct"] == true;
                    if !self.config.joins(room, sender, is_direct) {
                        tracing::info!(%room, %sender, "matrix invite not accepted (autoJoin)");
                        continue;
                    }
                    client.join(room).await?;
                    // A DM invite into a room that already holds others is no DM: the bot
                    // never saw them join, so it asks who is there before recording one.
                    if is_direct {
                        let members = client.members(room).await?;
                        if members.iter().all(|m| m == bot || m == sender) {
                            changed |= direct.add(sender, room);
                        } else {
                            tracing::info!(%room, "a DM invite into a room with others: it is a group");
                        }
                    }
                }
                (true, "leave" | "ban") => changed |= direct.forget(room),
                // Someone else in a DM room: it is shared now, and never a DM again.
                (false, "join" | "invite") if direct.peer_of(room).is_some_and(|p| p != member) => {
                    changed |= direct.forget(room);
                }
                _ => {}
            }
        }
        if changed {
            client.set_direct_rooms(&direct).await?;
        }
        Ok(direct)
    }

    /// The transaction's messages, read by `direct`.
    pub fn transaction<'a>(&'a self, direct: &'a DirectRooms) -> Transaction<'a> {
        Transaction { app: self, direct }
    }

    /// One `m.room.message`: a job, or why not.
    fn message(
        &self,
        event: &Value,
        direct: &DirectRooms,
        now: DateTime<Utc>,
    ) -> Result<Parsed, WebhookError> {
        let bot = self.config.user_id.as_deref().unwrap_or_default();
        let content = &event["content"];
        let (Some(id), Some(room), Some(sender)) = (
            event["event_id"].as_str().filter(|s| !s.is_empty()),
            event["room_id"].as_str().filter(|s| s.starts_with('!')),
            event["sender"].as_str().filter(|s| s.starts_with('@')),
        ) else {
            return Err(WebhookError::NotAnEvent(
                "a message needs event_id, room_id and sender".into(),
            ));
        };
        if sender == bot {
            return Ok(Parsed::Ignored("the bot's own message"));
        }
        if content["m.relates_to"]["rel_type"] == "m.replace" {
            return Ok(Parsed::Ignored("an edit"));
        }
        let media = match content["msgtype"].as_str() {
            Some("m.text" | "m.emote") => vec![],
            Some("m.image" | "m.file" | "m.audio" | "m.video") => match file_of(content) {
                Some(file) => vec![file],
                None => return Ok(Parsed::Ignored("a file without a plain mxc:// URL")),
            },
            _ => return Ok(Parsed::Ignored("not a text message or a file")),
        };
        let (mut text, mentioned) = without_mention(content, bot);
        if !media.is_empty() && content["filename"].is_null() {
            text.clear(); // before Matrix 1.10 a file's body is its name, not a caption
        }
        if text.is_empty() && media.is_empty() {
            return Ok(Parsed::Ignored("no text"));
        }
        let dm = direct.peer_of(room) == Some(sender);
        self.account.admit(
            Incoming {
                event_id: id,
                kind: if dm { ChatKind::Dm } else { ChatKind::Group },
                chat_id: room,
                sender: Sender::id(sender),
                text,
                media,
                sub: None,
                team_id: None,
                addressed: dm || mentioned,
                reply_to: ReplyTarget::Matrix(MatrixTarget {
                    room_id: room.to_string(),
                    dm_user: None,
                    reply_to: (!dm).then(|| id.to_string()),
                }),
            },
            now,
        )
    }
}

/// The application service's registration file (YAML) for the homeserver: the gateway's
/// `url`, the two tokens, and the bot (`user_id`) as the one user it owns.
pub fn registration(url: &str, user_id: &str, as_token: &str, hs_token: &str) -> String {
    let localpart = user_id
        .strip_prefix('@')
        .and_then(|u| u.split(':').next())
        .unwrap_or("clawgate");
    let quoted = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let escaped: String = user_id
        .chars()
        .flat_map(
            |c| match c.is_ascii_alphanumeric() || matches!(c, '@' | ':' | '_' | '-') {
                true => vec![c],
                false => vec!['\\', c],
            },
        )
        .collect();
    format!(
        "id: {id}\nurl: {url}\nas_token: {as_token}\nhs_token: {hs_token}\nsender_localpart: {localpart}\nrate_limited: false\nnamespaces:\n  users:\n    - exclusive: true\n      regex: {regex}\n  aliases: []\n  rooms: []\n",
        id = quoted(localpart),
        url = quoted(url),
        as_token = quoted(as_token),
        hs_token = quoted(hs_token),
        localpart = quoted(localpart),
        regex = quoted(&format!("^{escaped}$")),
    )
}

/// The file an `m.image`/`m.file`/`m.audio`/`m.video` carries, when its `url` is a plain
/// `mxc://` URI (an encrypted file has `file` instead and is not read).
fn file_of(content: &Value) -> Option<MediaRef> {
    let mxc = content["url"].as_str().filter(|u| mxc_parts(u).is_some())?;
    let mime = content["info"]["mimetype"].as_str().map(str::to_string);
    Some(MediaRef {
        kind: MediaKind::from_mime(mime.as_deref().unwrap_or("")),
        source: MediaSource::Matrix {
            mxc: mxc.to_string(),
        },
        name: (content["filename"].as_str())
            .or(content["body"].as_str())
            .map(str::to_string),
        mime,
        size: content["info"]["size"].as_u64(),
    })
}

/// The server name and media id of `mxc://<server>/<media id>`, when both are plain (the
/// media id `[A-Za-z0-9_-]`, the server a host name or address with an optional port), so
/// neither can step out of the download path.
pub fn mxc_parts(uri: &str) -> Option<(&str, &str)> {
    let (server, media) = uri.strip_prefix("mxc://")?.split_once('/')?;
    let plain_server = !server.is_empty()
        && server
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    let plain_media = !media.is_empty()
        && media
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    (plain_server && plain_media).then_some((server, media))
}

/// The body without the bot's mention in front (`clawgate: …`, or its user id), and whether
/// the message mentions the bot.
fn without_mention(content: &Value, bot: &str) -> (String, bool) {
    let body = content["body"].as_str().unwrap_or_default().trim();
    let localpart = bot
        .strip_prefix('@')
        .and_then(|b| b.split(':').next())
        .unwrap_or_default();
    let mentioned_ids = content["m.mentions"]["user_ids"].as_array();
    let mut mentioned = !bot.is_empty()
        && (mentioned_ids.is_some_and(|ids| ids.iter().any(|i| i == bot)) || body.contains(bot));
    let mut text = body.replace(bot, "");
    for prefix in [format!("{localpart}:"), format!("{localpart},")] {
        let head = text.get(..prefix.len());
        if !localpart.is_empty() && head.is_some_and(|h| h.eq_ignore_ascii_case(&prefix)) {
            text = text[prefix.len()..].to_string();
            mentioned = true;
        }
    }
    (
        text.trim().trim_start_matches(':').trim().to_string(),
        mentioned,
    )
}

/// One transaction's messages on the channel contract, read by the DM rooms
/// [`MatrixAppservice::apply_membership`] left.
pub struct Transaction<'a> {
    app: &'a MatrixAppservice,
    direct: &'a DirectRooms,
}

impl WebhookChannel for Transaction<'_> {
    fn account(&self) -> &ChannelAccount {
        &self.app.account
    }

    fn verify(&self, request: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<(), Refusal> {
        self.app.verify_homeserver(request)
    }

    fn parse(&self, body: &[u8], now: DateTime<Utc>) -> Result<Parsed, WebhookError> {
        let mut jobs = vec![];
        for event in events(body)?
            .iter()
            .filter(|e| e["type"] == "m.room.message")
        {
            match self.app.message(event, self.direct, now) {
                Ok(Parsed::Queue { jobs: more, .. }) => jobs.extend(more),
                Ok(_) => {}
                // One bad event does not hold up the rest (the homeserver would repeat the
                // whole transaction forever).
                Err(e) => tracing::warn!(error = %e, "matrix event skipped"),
            }
        }
        Ok(Parsed::Queue {
            jobs,
            ack: Some(json!({})),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use reqwest::header::HeaderMap;

    use super::*;
    use crate::config::AgentRoutes;
    use crate::model::Channel;

    const BOT: &str = "@clawgate:example.org";

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/fixtures/matrix/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn app(config: Value) -> MatrixAppservice {
        let mut config: MatrixConfig = serde_json::from_value(config).unwrap();
        config.user_id = Some(BOT.into());
        config.hs_token = Some(crate::config::Secret::new("hs-secret"));
        MatrixAppservice {
            account: ChannelAccount {
                channel: Channel::Matrix,
                account: "default".into(),
                routes: Arc::new(AgentRoutes {
                    default_agent: "main".into(),
                    ..AgentRoutes::default()
                }),
                groups: config.group_access(),
            },
            config,
            client: None,
        }
    }

    fn dm_with_ada() -> DirectRooms {
        DirectRooms(
            [(
                "@ada:example.org".to_string(),
                vec!["!dmroom:example.org".to_string()],
            )]
            .into(),
        )
    }

    #[test]
    fn a_room_is_a_dm_only_with_the_user_m_direct_names() {
        let app = app(json!({"groups": {"!ops:example.org": {}}}));
        let body = fixture("transaction_messages.json");

        let as_dm = app
            .transaction(&dm_with_ada())
            .parse(&body, Utc::now())
            .unwrap();
        let unknown = app
            .transaction(&DirectRooms::default())
            .parse(&body, Utc::now())
            .unwrap();

        let keys: Vec<String> = as_dm
            .jobs()
            .iter()
            .map(|j| j.session_key.to_string())
            .collect();
        assert_eq!(
            keys,
            [
                "agent:main:matrix:dm:@ada%3Aexample.org",
                "agent:main:matrix:group:!ops%3Aexample.org",
            ],
            "the notice, the edit and the bot's own message are not jobs"
        );
        assert_eq!(
            as_dm.jobs()[1].inbound.text,
            "summarize the incident, please"
        );
        assert!(matches!(&as_dm, Parsed::Queue { ack: Some(ack), .. } if *ack == json!({})));
        let unknown_keys: Vec<String> = unknown
            .jobs()
            .iter()
            .map(|j| j.session_key.to_string())
            .collect();
        assert_eq!(
            unknown_keys,
            ["agent:main:matrix:group:!ops%3Aexample.org"],
            "an unlisted room that is not a DM is not answered"
        );
    }

    #[test]
    fn only_the_homeservers_token_passes() {
        let app = app(json!({}));
        let bearing = |token: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
            headers
        };
        let (good, bad, none) = (bearing("hs-secret"), bearing("hs-secreT"), HeaderMap::new());
        let legacy = WebhookRequest {
            query: Some("access_token=hs-secret"),
            ..WebhookRequest::new(&none, b"{}")
        };

        assert_eq!(
            app.verify_homeserver(&WebhookRequest::new(&good, b"{}")),
            Ok(())
        );
        assert_eq!(app.verify_homeserver(&legacy), Ok(()));
        for refused in [&bad, &none] {
            assert!(matches!(
                app.verify_homeserver(&WebhookRequest::new(refused, b"{}")),
                Err(Refusal::Unauthorized(_))
            ));
        }
    }

    #[test]
    fn a_mention_in_front_is_cut_and_odd_text_is_no_panic() {
        let cut = |body: &str| without_mention(&json!({"body": body}), BOT);

        assert_eq!(cut("Clawgate: hi"), ("hi".to_string(), true));
        assert_eq!(
            cut("@clawgate:example.org what now"),
            ("what now".to_string(), true)
        );
        assert!(!cut("\u{212A}lawgate: hi").1, "a Kelvin sign is not a k");
        assert_eq!(cut("hello clawgate"), ("hello clawgate".to_string(), false));
    }

    #[tokio::test]
    async fn an_unreachable_homeserver_fails_the_transaction_so_it_is_sent_again() {
        let mut app = app(json!({"homeserver": "http://127.0.0.1:9", "asToken": "as"}));
        app.client = MatrixClient::from_config(&app.config, reqwest::Client::new());
        let typing_only =
            json!({"events": [{"type": "m.typing", "room_id": "!dmroom:example.org"}]});

        let messages = app
            .apply_membership(&fixture("transaction_messages.json"))
            .await;
        let nothing_to_ask = app
            .apply_membership(typing_only.to_string().as_bytes())
            .await;

        assert!(
            matches!(messages, Err(ChannelError::Retryable { .. })),
            "{messages:?}"
        );
        assert_eq!(nothing_to_ask, Ok(DirectRooms::default()));
    }

    #[test]
    fn only_a_plain_mxc_uri_is_a_file() {
        assert_eq!(
            mxc_parts("mxc://example.org/SEsfnsuifSDFSSEF"),
            Some(("example.org", "SEsfnsuifSDFSSEF"))
        );
        assert_eq!(
            mxc_parts("mxc://[::1]:8448/a_b-c"),
            Some(("[::1]:8448", "a_b-c"))
        );
        for hostile in [
            "mxc://example.org/../../admin",
            "mxc://example.org/a/b",
            "mxc://ev il.org/x",
            "mxc:///x",
            "https://example.org/x",
            "mxc://example.org/%2e%2e",
        ] {
            assert_eq!(mxc_parts(hostile), None, "{hostile}");
        }
    }

    #[test]
    fn the_registration_owns_exactly_the_bot() {
        let yaml = registration("https://gw.example.org", BOT, "as-1", "hs-'2");

        assert!(yaml.contains("url: 'https://gw.example.org'\n"), "{yaml}");
        assert!(
            yaml.contains("hs_token: 'hs-''2'\n"),
            "quotes are doubled: {yaml}"
        );
        assert!(yaml.contains("sender_localpart: 'clawgate'\n"));
        assert!(
            yaml.contains(r"regex: '^@clawgate:example\.org$'"),
            "dots are escaped and the regex anchored: {yaml}"
        );
    }

    #[test]
    fn a_malformed_transaction_is_refused_and_a_bad_event_skipped() {
        let app = app(json!({}));
        let direct = dm_with_ada();
        let skipped =
            json!({"events": [{"type": "m.room.message", "room_id": "!dmroom:example.org"}]});

        let malformed = app
            .transaction(&direct)
            .parse(b"{\"events\": 3}", Utc::now());
        let garbage = app.transaction(&direct).parse(b"not json", Utc::now());
        let partial = app
            .transaction(&direct)
            .parse(skipped.to_string().as_bytes(), Utc::now())
            .unwrap();

        assert!(matches!(malformed, Err(WebhookError::NotAnEvent(_))));
        assert!(matches!(garbage, Err(WebhookError::MalformedJson(_))));
        assert!(partial.jobs().is_empty());
    }
}
