//! Telegram webhook ingress: the secret-token check and the parsing of an `Update` into a job.
//!
//! Handled: private and group messages (text, and photos, voice and video notes, audio,
//! video and documents with or without a caption, as file references the worker fetches),
//! edited messages, channel posts, forum topics, and callback queries (the button's data as
//! text). Everything else is acknowledged and ignored, so Telegram does not retry it.
//!
//! Decisions:
//! - Group and channel messages pass the channel's group rules first (`groupPolicy`, `groups`,
//!   `groupAllowFrom`: [`GroupAccess`]), then are answered only when the bot is mentioned
//!   (`@botname`) or replied to, unless the group's `requireMention` is off. A refusal is an
//!   ignored update: nothing reaches the queue.
//! - Messages from bots are ignored (no bot-to-bot loops).
//! - The event id is `telegram:<account>:<update_id>`: Telegram retries an update with the same
//!   id, so the queue's dedup and the worker's job record both recognise the retry.

use chrono::{DateTime, Utc};
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::{
    ChannelAccount, Incoming, Parsed, Refusal, WebhookChannel, WebhookError, WebhookRequest,
};
use crate::config::Secret;
use crate::model::{
    ChatKind, MediaKind, MediaRef, MediaSource, ReplyTarget, Sender, SubThread, TelegramTarget,
    MAX_MEDIA_PER_MESSAGE,
};

/// What the gateway knows about one bot.
#[derive(Debug, Clone)]
pub struct TelegramBot {
    /// Its account name, routes and group rules.
    pub account: ChannelAccount,
    /// Without the `@`; needed for mention gating in groups.
    pub username: Option<String>,
    /// `webhookSecret`: without one the webhook accepts nothing (long polling needs none).
    pub secret: Option<Secret>,
}

/// Compares the `X-Telegram-Bot-Api-Secret-Token` header with the secret in constant time.
pub fn secret_matches(expected: &str, header: Option<&str>) -> bool {
    let Some(given) = header else { return false };
    // `ct_eq` on slices of different lengths is false without early exit on content.
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

fn sender_name(from: &Value) -> Option<String> {
    let first = from["first_name"].as_str().unwrap_or("");
    let last = from["last_name"].as_str().unwrap_or("");
    let name = format!("{first} {last}").trim().to_string();
    if !name.is_empty() {
        Some(name)
    } else {
        from["username"]
            .as_str()
            .map(str::to_string)
            .or_else(|| from["title"].as_str().map(str::to_string))
    }
}

fn mentions(text: &str, message: &Value, username: Option<&str>) -> bool {
    let Some(username) = username else {
        return false;
    };
    let tag = format!("@{}", username.to_ascii_lowercase());
    if text.to_ascii_lowercase().contains(&tag) {
        return true;
    }
    message["reply_to_message"]["from"]["username"]
        .as_str()
        .is_some_and(|u| u.eq_ignore_ascii_case(username))
}

/// The update types [`parse_update`] handles: what `setWebhook` asks Telegram to send, so
/// nothing else costs a request.
pub const ALLOWED_UPDATES: &[&str] = &[
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "callback_query",
];

/// A fresh webhook secret for `setWebhook`: 32 random bytes as 64 hex digits (Telegram allows
/// 1-256 characters of A-Z a-z 0-9 _ -).
pub fn generate_secret_token() -> Secret {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(hex::encode(bytes))
}

/// The files a message carries, as references the worker fetches with `getFile`: the largest
/// size of a photo, a voice or video note, an audio file, a video, a document. Stickers and
/// the like are not files for the agent.
fn message_media(message: &Value) -> Vec<MediaRef> {
    let file = |v: &Value, kind: MediaKind, mime: Option<&str>| {
        let file_id = v["file_id"].as_str().filter(|id| !id.is_empty())?;
        Some(MediaRef {
            kind,
            source: MediaSource::Telegram {
                file_id: file_id.to_string(),
            },
            name: v["file_name"].as_str().map(str::to_string),
            mime: v["mime_type"].as_str().or(mime).map(str::to_string),
            size: v["file_size"].as_u64(),
        })
    };
    let photo = message["photo"]
        .as_array()
        .and_then(|sizes| sizes.last())
        .and_then(|p| file(p, MediaKind::Image, Some("image/jpeg")));
    let document = message.get("document").and_then(|d| {
        let mime = d["mime_type"].as_str().unwrap_or("");
        file(d, MediaKind::from_mime(mime), None)
    });
    [
        photo,
        file(&message["voice"], MediaKind::Voice, Some("audio/ogg")),
        file(&message["video_note"], MediaKind::Voice, Some("video/mp4")),
        file(&message["audio"], MediaKind::Audio, None),
        file(&message["video"], MediaKind::Video, None),
        document,
    ]
    .into_iter()
    .flatten()
    .take(MAX_MEDIA_PER_MESSAGE)
    .collect()
}

impl WebhookChannel for TelegramBot {
    fn account(&self) -> &ChannelAccount {
        &self.account
    }

    fn verify(&self, request: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<(), Refusal> {
        let headers = request.headers;
        let Some(secret) = &self.secret else {
            // Refuse rather than accept updates nobody can verify.
            return Err(Refusal::NotConfigured(
                "telegram webhookSecret is not configured".into(),
            ));
        };
        let given = headers
            .get("x-telegram-bot-api-secret-token")
            .and_then(|v| v.to_str().ok());
        if secret_matches(secret.expose(), given) {
            Ok(())
        } else {
            Err(Refusal::Unauthorized(
                "bad or missing X-Telegram-Bot-Api-Secret-Token".into(),
            ))
        }
    }

    fn parse(&self, body: &[u8], now: DateTime<Utc>) -> Result<Parsed, WebhookError> {
        parse_update(body, self, now)
    }
}

/// Parses one webhook body into a job for `bot`, or says why it is ignored.
pub fn parse_update(
    body: &[u8],
    bot: &TelegramBot,
    now: DateTime<Utc>,
) -> Result<Parsed, WebhookError> {
    let update: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::MalformedJson(e.to_string()))?;
    let update_id = update["update_id"].as_i64().ok_or_else(|| {
        WebhookError::NotAnEvent("a Telegram update needs a numeric update_id".into())
    })?;
    let (message, text_prefix, from, callback_text) = if let Some(cq) = update.get("callback_query")
    {
        (&cq["message"], "", &cq["from"], cq["data"].as_str())
    } else if let Some(m) = update.get("message") {
        (m, "", &m["from"], None)
    } else if let Some(m) = update.get("edited_message") {
        (m, "[edited] ", &m["from"], None)
    } else if let Some(m) = update.get("channel_post") {
        (m, "", &m["sender_chat"], None)
    } else if let Some(m) = update.get("edited_channel_post") {
        (m, "[edited] ", &m["sender_chat"], None)
    } else {
        return Ok(Parsed::Ignored("update type not handled"));
    };
    if from["is_bot"] == true {
        return Ok(Parsed::Ignored("message from a bot"));
    }
    let media = if callback_text.is_some() {
        vec![]
    } else {
        message_media(message)
    };
    let Some(body_text) = callback_text
        .or(message["text"].as_str())
        .or(message["caption"].as_str())
        .or((!media.is_empty()).then_some(""))
    else {
        return Ok(Parsed::Ignored("no text, caption or file"));
    };
    let chat = &message["chat"];
    let chat_id = chat["id"]
        .as_i64()
        .ok_or_else(|| WebhookError::NotAnEvent("message without chat.id".into()))?;
    let kind = match chat["type"].as_str() {
        Some("private") => ChatKind::Dm,
        Some("group" | "supergroup") => ChatKind::Group,
        Some("channel") => ChatKind::Channel,
        _ => return Ok(Parsed::Ignored("unknown chat type")),
    };
    let sender_id = from["id"]
        .as_i64()
        .map(|id| id.to_string())
        .unwrap_or_else(|| chat_id.to_string());
    let topic = (message["is_topic_message"] == true)
        .then(|| message["message_thread_id"].as_i64())
        .flatten();
    let reply_to = ReplyTarget::Telegram(TelegramTarget {
        chat_id,
        message_thread_id: topic,
        reply_to_message_id: if kind == ChatKind::Dm {
            None
        } else {
            message["message_id"].as_i64()
        },
    });
    bot.account.admit(
        Incoming {
            event_id: &update_id.to_string(),
            kind,
            chat_id: &chat_id.to_string(),
            sender: Sender {
                id: sender_id,
                name: sender_name(from),
            },
            text: format!("{text_prefix}{body_text}"),
            media,
            sub: topic.map(|t| SubThread::Topic(t.to_string())),
            team_id: None,
            addressed: callback_text.is_some()
                || mentions(body_text, message, bot.username.as_deref()),
            reply_to,
        },
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::config::{AgentRoutes, GroupAccess, GroupEntry, PeerId, ANY_GROUP};
    use crate::model::{Channel, JobMessage};

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/fixtures/telegram/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// A bot whose owner listed every group (`groups: { "*": {} }`).
    fn bot() -> TelegramBot {
        TelegramBot {
            account: ChannelAccount {
                channel: Channel::Telegram,
                account: "default".into(),
                routes: Arc::new(AgentRoutes {
                    default_agent: "main".into(),
                    ..AgentRoutes::default()
                }),
                groups: GroupAccess {
                    groups: [(ANY_GROUP.to_string(), GroupEntry::default())].into(),
                    ..GroupAccess::default()
                },
            },
            username: Some("clawgate_bot".into()),
            secret: None,
        }
    }

    fn job(name: &str) -> JobMessage {
        match parse_update(&fixture(name), &bot(), Utc::now()).unwrap() {
            Parsed::Queue { mut jobs, .. } if jobs.len() == 1 => jobs.remove(0),
            other => panic!("{name} was not one job: {other:?}"),
        }
    }

    #[test]
    fn a_private_message_becomes_a_dm_job() {
        let job = job("private_message.json");
        assert_eq!(job.session_key.to_string(), "agent:main:telegram:dm:12345");
        assert_eq!(job.inbound.event_id, "telegram:default:987654");
        assert_eq!(job.inbound.text, "list the files");
        assert_eq!(job.inbound.sender.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(
            job.reply_to,
            Some(ReplyTarget::Telegram(TelegramTarget {
                chat_id: 12345,
                message_thread_id: None,
                reply_to_message_id: None
            }))
        );
    }

    #[test]
    fn a_group_message_that_mentions_the_bot_becomes_a_group_job_replying_to_it() {
        let job = job("group_mention.json");
        assert_eq!(
            job.session_key.to_string(),
            "agent:main:telegram:group:-1001234567890"
        );
        assert_eq!(
            job.reply_to,
            Some(ReplyTarget::Telegram(TelegramTarget {
                chat_id: -1001234567890,
                message_thread_id: None,
                reply_to_message_id: Some(301)
            }))
        );
    }

    #[test]
    fn group_messages_without_a_mention_are_ignored_unless_configured_otherwise() {
        let body = fixture("group_no_mention.json");
        assert_eq!(
            parse_update(&body, &bot(), Utc::now()).unwrap(),
            Parsed::Ignored("group message without a mention")
        );
        let mut open = bot();
        open.account.groups.groups.insert(
            "-1001234567890".into(),
            GroupEntry {
                require_mention: Some(false),
                ..GroupEntry::default()
            },
        );
        assert!(matches!(
            parse_update(&body, &open, Utc::now()).unwrap(),
            Parsed::Queue { .. }
        ));
    }

    #[test]
    fn a_stranger_mentioning_the_bot_in_an_unlisted_group_is_ignored() {
        let mut owner_only = bot();
        owner_only.account.groups = GroupAccess::default();
        let mut only_the_owner_may_speak = bot();
        only_the_owner_may_speak.account.groups.group_allow_from = vec![PeerId::Number(4242)];
        let body = fixture("group_mention.json");

        let unlisted = parse_update(&body, &owner_only, Utc::now()).unwrap();
        let stranger = parse_update(&body, &only_the_owner_may_speak, Utc::now()).unwrap();

        assert!(matches!(unlisted, Parsed::Ignored(why) if why.contains("not listed")));
        assert!(matches!(stranger, Parsed::Ignored(why) if why.contains("sender is not allowed")));
    }

    #[test]
    fn a_reply_to_the_bot_counts_as_a_mention() {
        assert!(job("group_reply_to_bot.json")
            .inbound
            .text
            .starts_with("and the other one?"));
    }

    #[test]
    fn a_forum_topic_gets_its_own_session_and_replies_in_the_topic() {
        let job = job("forum_topic.json");
        assert_eq!(
            job.session_key.to_string(),
            "agent:main:telegram:group:-1009876543210:topic:42"
        );
        let Some(ReplyTarget::Telegram(t)) = job.reply_to else {
            panic!()
        };
        assert_eq!(t.message_thread_id, Some(42));
    }

    #[test]
    fn captions_edits_channel_posts_and_callbacks_are_handled() {
        assert_eq!(
            job("photo_caption.json").inbound.text,
            "what is in this picture?"
        );
        assert_eq!(
            job("edited_message.json").inbound.text,
            "[edited] list the files please"
        );
        let post = job("channel_post.json");
        assert_eq!(
            post.session_key.to_string(),
            "agent:main:telegram:channel:-1001111111111"
        );
        let callback = job("callback_query.json");
        assert_eq!(callback.inbound.text, "approve:42");
        assert_eq!(
            callback.session_key.to_string(),
            "agent:main:telegram:dm:12345"
        );
    }

    #[test]
    fn photos_voice_notes_and_documents_become_file_references() {
        let photo = job("photo_caption.json");
        let voice = job("voice.json");
        let document = job("document.json");

        assert_eq!(
            photo.inbound.media,
            vec![MediaRef {
                kind: MediaKind::Image,
                source: MediaSource::Telegram {
                    file_id: "AgACAgIAAxkBAAIB".into()
                },
                name: None,
                mime: Some("image/jpeg".into()),
                size: Some(1234),
            }]
        );
        assert_eq!(voice.inbound.text, "", "a voice note without a caption");
        assert_eq!(voice.inbound.media[0].kind, MediaKind::Voice);
        assert_eq!(voice.inbound.media[0].mime.as_deref(), Some("audio/ogg"));
        assert_eq!(document.inbound.text, "summarise this");
        assert_eq!(document.inbound.media[0].kind, MediaKind::Document);
        assert_eq!(
            document.inbound.media[0].name.as_deref(),
            Some("../../etc/report.pdf"),
            "kept as the sender's name; the worker never uses it as a path"
        );
    }

    #[test]
    fn updates_without_text_or_from_bots_are_ignored() {
        assert_eq!(
            parse_update(&fixture("sticker.json"), &bot(), Utc::now()).unwrap(),
            Parsed::Ignored("no text, caption or file")
        );
        assert_eq!(
            parse_update(&fixture("from_bot.json"), &bot(), Utc::now()).unwrap(),
            Parsed::Ignored("message from a bot")
        );
        let poll = br#"{"update_id": 5, "poll": {"id": "1"}}"#;
        assert_eq!(
            parse_update(poll, &bot(), Utc::now()).unwrap(),
            Parsed::Ignored("update type not handled")
        );
    }

    #[test]
    fn bad_bodies_are_errors_that_say_which() {
        assert!(matches!(
            parse_update(b"{not json", &bot(), Utc::now()),
            Err(WebhookError::MalformedJson(_))
        ));
        assert!(matches!(
            parse_update(b"", &bot(), Utc::now()),
            Err(WebhookError::MalformedJson(_))
        ));
        assert!(matches!(
            parse_update(br#"{"hello": "world"}"#, &bot(), Utc::now()),
            Err(WebhookError::NotAnEvent(_))
        ));
    }

    #[test]
    fn the_secret_is_compared_exactly() {
        assert!(secret_matches("s3cr3t_token-1", Some("s3cr3t_token-1")));
        assert!(!secret_matches("s3cr3t_token-1", Some("s3cr3t_token-2")));
        assert!(!secret_matches("s3cr3t_token-1", Some("s3cr3t")));
        assert!(!secret_matches("s3cr3t_token-1", None));
    }
}
