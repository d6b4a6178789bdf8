//! Files that come with a message (photos, voice notes, documents, uploads), as ingress sees
//! them: a reference the worker fetches later, never the bytes (ingress must ack in
//! milliseconds, and a job message is capped at 256 KiB). Also the command word a message
//! starts with, which decides the queue lane a `/stop` takes.

use serde::{Deserialize, Serialize};

/// The most files one message may carry; the rest are not referenced.
pub const MAX_MEDIA_PER_MESSAGE: usize = 8;

/// What kind of file it is, as the channel labels it (the worker checks the bytes again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    /// A voice note (Telegram `voice`, `video_note`; a Slack audio clip).
    Voice,
    Audio,
    Video,
    Document,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Voice => "voice note",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Document => "file",
        }
    }

    /// The kind a MIME type names (`image/png` → image, `audio/ogg` → audio, …).
    pub fn from_mime(mime: &str) -> MediaKind {
        match mime.split('/').next().unwrap_or("") {
            "image" => MediaKind::Image,
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            _ => MediaKind::Document,
        }
    }
}

/// Where the worker fetches a file from, in the channel's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "lowercase")]
pub enum MediaSource {
    /// A Telegram `file_id`: `getFile`, then the bot file URL.
    Telegram { file_id: String },
    /// A Slack file's `url_private`, fetched with the bot token.
    Slack { url: String },
    /// A WhatsApp media id: its URL from the Graph API, then the file, both with the token.
    Whatsapp { media_id: String },
    /// A Discord attachment's CDN URL.
    Discord { url: String },
    /// A BlueBubbles attachment guid (`GET /api/v1/attachment/<guid>/download`).
    Bluebubbles { guid: String },
    /// A signal-cli attachment id, fetched with JSON-RPC `getAttachment` (with the chat it
    /// came from, as signal-cli asks).
    Signal {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recipient: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_id: Option<String>,
    },
    /// A Matrix content URI (`mxc://<server>/<media id>`), fetched from the homeserver's
    /// authenticated media API with the bot's token.
    Matrix { mxc: String },
    /// Already in the session's workspace (a WebChat upload), relative to it.
    Workspace { path: String },
}

/// One file a message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    pub kind: MediaKind,
    pub source: MediaSource,
    /// The sender's file name, when the channel gives one (never used as a path as is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The MIME type the channel declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// The size the channel declared, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The command a message starts with, lower-cased and without a `@botname` suffix, and the
/// rest of the text. A Slack channel message starts with the app's mention
/// (`<@U0LAN0Z89> /status`), which is skipped. `None` when the text is not a command.
pub fn command_word(text: &str) -> Option<(String, &str)> {
    let text = text.trim();
    let text = match text
        .strip_prefix("<@")
        .and_then(|rest| rest.split_once('>'))
    {
        Some((_, rest)) => rest.trim_start(),
        None => text,
    };
    let word = text
        .split_whitespace()
        .next()
        .filter(|w| w.starts_with('/') && w.len() > 1)?;
    let command = word.split('@').next().unwrap_or(word).to_ascii_lowercase();
    Some((command, text[word.len()..].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_words_are_found_after_a_mention_and_without_the_bot_name() {
        assert_eq!(command_word("/stop"), Some(("/stop".into(), "")));
        assert_eq!(
            command_word("  /Model@clawbot  anthropic/x "),
            Some(("/model".into(), "anthropic/x"))
        );
        assert_eq!(
            command_word("<@U0LAN0Z89> /stop now"),
            Some(("/stop".into(), "now"))
        );
        assert_eq!(command_word("please /stop"), None);
        assert_eq!(command_word("/"), None);
        assert_eq!(command_word(""), None);
    }

    #[test]
    fn media_references_keep_their_wire_shape() {
        let media = MediaRef {
            kind: MediaKind::Image,
            source: MediaSource::Telegram {
                file_id: "AgAC".into(),
            },
            name: None,
            mime: Some("image/jpeg".into()),
            size: Some(1234),
        };
        let json = serde_json::to_value(&media).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "image", "source": {"from": "telegram", "file_id": "AgAC"}, "mime": "image/jpeg", "size": 1234})
        );
        assert_eq!(MediaKind::from_mime("audio/ogg"), MediaKind::Audio);
        assert_eq!(MediaKind::from_mime("application/pdf"), MediaKind::Document);
    }
}
