//! How replies stream and how media is handled: `channels.<channel>.streaming`,
//! `channels.<channel>.mediaMaxMb`, and `tools.media.audio` (voice-note transcription),
//! with OpenClaw's key names.

use serde::{Deserialize, Serialize};

/// `channels.<channel>.streaming`: what the user sees while a job runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Streaming {
    /// Only the typing indicator, then the answer.
    Off,
    /// One preview message, edited as tools run, then into the answer.
    #[default]
    Progress,
    /// As `progress`. Model tokens are not streamed yet (the providers are called without
    /// `stream`); the key is accepted so an OpenClaw config loads, and `clawgate config
    /// validate` says so.
    Partial,
}

/// The default cap on one inbound file (`mediaMaxMb`): Telegram's Bot API serves files up to
/// 20 MB, so a bigger cap would buy nothing there.
pub const DEFAULT_MEDIA_MAX_MB: u64 = 20;

/// `mediaMaxMb` in bytes, the default when unset.
pub fn media_max_bytes(max_mb: Option<u64>) -> u64 {
    max_mb
        .unwrap_or(DEFAULT_MEDIA_MAX_MB)
        .saturating_mul(1024 * 1024)
}

/// `tools.media`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MediaToolsConfig {
    pub audio: AudioConfig,
}

/// `tools.media.audio`: voice notes and audio files are transcribed by the first model entry
/// (an OpenAI-compatible `/audio/transcriptions` endpoint) and reach the agent as text marked
/// as a transcript. Without a model entry nothing is transcribed and the file is announced
/// by path (OpenClaw also auto-detects local CLIs; clawgate does not).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AudioConfig {
    pub enabled: bool,
    pub models: Vec<AudioModel>,
    /// Overrides the provider's `baseUrl` (e.g. `https://api.groq.com/openai/v1`).
    pub base_url: Option<String>,
    /// Files over this are not sent for transcription (default 20 MiB).
    pub max_bytes: Option<u64>,
    /// A language hint (ISO-639-1), passed as `language`.
    pub language: Option<String>,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            enabled: true,
            models: vec![],
            base_url: None,
            max_bytes: None,
            language: None,
        }
    }
}

/// One transcription model: `{provider: "openai", model: "whisper-1"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AudioModel {
    pub provider: String,
    pub model: String,
}

impl AudioConfig {
    /// The model to transcribe with, when transcription is on and one is configured.
    pub fn model(&self) -> Option<&AudioModel> {
        self.enabled.then(|| self.models.first()).flatten()
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes.unwrap_or(media_max_bytes(None))
    }
}
