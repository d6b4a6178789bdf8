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
    /// As `progress`: model tokens are not streamed yet (the providers are called without
    /// `stream`); the value is accepted so an OpenClaw config loads as it was.
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

/// The largest `mediaMaxMb` accepted.
const MAX_MEDIA_MB: u64 = 2_000;

/// Checks the media settings: caps in range, transcription through a provider that has it.
pub(super) fn check_media(config: &super::Config, bad: &mut impl FnMut(&str, String)) {
    let channels = &config.channels;
    let caps = [
        (
            "channels.telegram.mediaMaxMb",
            channels.telegram.as_ref().and_then(|t| t.media_max_mb),
        ),
        (
            "channels.slack.mediaMaxMb",
            channels.slack.as_ref().and_then(|s| s.media_max_mb),
        ),
    ];
    for (path, cap) in caps {
        if cap.is_some_and(|mb| !(1..=MAX_MEDIA_MB).contains(&mb)) {
            bad(path, format!("must be 1 to {MAX_MEDIA_MB} (MB)"));
        }
    }
    for (i, model) in config.tools.media.audio.models.iter().enumerate() {
        if model.provider != "openai" {
            bad(
                &format!("tools.media.audio.models[{i}].provider"),
                format!("{:?}: only \"openai\" (any OpenAI-compatible /audio/transcriptions, with baseUrl) is built", model.provider),
            );
        }
        if model.model.trim().is_empty() {
            bad(
                &format!("tools.media.audio.models[{i}].model"),
                "is empty".into(),
            );
        }
    }
    for (i, agent) in config.agents.list.iter().enumerate() {
        let media = agent.tools.as_ref().map(|t| &t.media.audio);
        if media.is_some_and(|a| !a.models.is_empty() || a.base_url.is_some()) {
            bad(
                &format!("agents.list[{i}].tools.media"),
                "transcription is set once, at the top level (tools.media)".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn media_settings_are_checked() {
        let config = Config::parse(
            r#"{ channels: { telegram: { mediaMaxMb: 0, streaming: "partial" } },
                 tools: { media: { audio: { models: [{ provider: "deepgram", model: "" }] } } },
                 agents: { list: [{ id: "x", tools: { media: { audio: { baseUrl: "http://a" } } } }] } }"#,
        )
        .unwrap();

        let issues = config.validate().unwrap_err();
        let paths: Vec<_> = issues.iter().map(|i| i.path.as_str()).collect();

        assert_eq!(
            paths,
            [
                "channels.telegram.mediaMaxMb",
                "tools.media.audio.models[0].provider",
                "tools.media.audio.models[0].model",
                "agents.list[0].tools.media"
            ]
        );
        assert_eq!(
            config.channels.telegram.unwrap().streaming,
            super::Streaming::Partial
        );
    }
}
