//! Files users send with a message: fetched by the worker (never by ingress), capped, checked
//! by their bytes, saved in the session's workspace under `inbound/`, and handed to the model:
//! images as image blocks, voice notes and audio as a transcript (when `tools.media.audio`
//! names a model), anything else announced by path for the tools to read.
//!
//! Decisions:
//! - A file's type is what its bytes say (`infer`), not what the sender declared: a "photo"
//!   that is not PNG, JPEG, GIF or WebP is saved as a file and never sent as an image block.
//! - The saved name is `inbound/<job>-<n>-<name>`: the sender's name reduced to safe
//!   characters (no separators, no leading dot), so it cannot climb out of `inbound/` or hide,
//!   and a resumed attempt finds the file it saved instead of fetching it again.
//! - Writes go through the workspace's own resolver, beneath the workspace: a symlink the
//!   sandbox planted at `inbound` cannot send a download elsewhere.
//! - A file that cannot be fetched (too big, refused, the channel down) is announced as such;
//!   the message is still answered.

use base64::Engine;
use infra::config::{AudioConfig, ProvidersConfig};
use infra::model::{JobMessage, MediaKind, MediaRef, MediaSource};

use infra::model::Transcript;
use tracing::Instrument;

use crate::llm::InlineImage;
use crate::phase;
use crate::profile::SessionSetup;
use crate::reply::Outbound;
use crate::tools::fs::Workspace;
use crate::worker::Worker;

/// The largest image sent to the model as a block (Anthropic's limit is 5 MB).
const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// Image types the model providers take as blocks.
const IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];
/// The most characters of a sender's file name kept.
const NAME_CHARS: usize = 60;

/// What the files of one message became.
#[derive(Debug, Default)]
pub struct Received {
    /// One line per file, appended to the user's text.
    pub notes: Vec<String>,
    /// The images, for the model.
    pub images: Vec<InlineImage>,
}

/// What receiving files needs.
pub struct MediaIn<'a> {
    pub outbound: &'a Outbound,
    pub http: &'a reqwest::Client,
    pub audio: &'a AudioConfig,
    pub providers: &'a ProvidersConfig,
    /// The session's workspace, and the largest file kept (the channel's `mediaMaxMb`).
    pub workspace: &'a Workspace,
    pub max_bytes: u64,
}

impl MediaIn<'_> {
    /// Fetches and saves each file of `job`. `transcribe: false` (a resumed attempt whose
    /// message is already in the transcript) skips the transcription.
    pub async fn receive(&self, job: &JobMessage, transcribe: bool) -> Received {
        let mut received = Received::default();
        for (n, media) in job.inbound.media.iter().enumerate() {
            // An upload is already in the workspace, where it stays; the rest are saved.
            let path = match &media.source {
                MediaSource::Workspace { path } => path.clone(),
                _ => saved_path(&job.job_id, n, media),
            };
            let bytes = match self.bytes(job, media, &path).await {
                Ok(bytes) => bytes,
                Err(why) => {
                    tracing::warn!(job = %job.job_id, %why, "an inbound file was not received");
                    received.notes.push(format!(
                        "[a {} was sent but could not be received: {why}]",
                        media.kind.as_str()
                    ));
                    continue;
                }
            };
            let sniffed = infer::get(&bytes).map(|t| t.mime_type());
            let mime = sniffed.unwrap_or("application/octet-stream");
            let size = human_size(bytes.len());
            let note = match media.kind {
                MediaKind::Image
                    if IMAGE_TYPES.contains(&mime) && bytes.len() <= MAX_IMAGE_BYTES =>
                {
                    received.images.push(InlineImage {
                        media_type: mime.to_string(),
                        data: base64::engine::general_purpose::STANDARD.encode(&bytes),
                    });
                    format!("[image attached (shown to you), saved at {path} ({mime}, {size})]")
                }
                MediaKind::Voice | MediaKind::Audio if transcribe => {
                    match self.transcribe(&bytes, &path, mime).await {
                        Some(Ok(text)) => format!(
                            "[{} saved at {path}; transcript, made by a speech-to-text model]: {text}",
                            media.kind.as_str()
                        ),
                        Some(Err(why)) => format!(
                            "[{} saved at {path} ({size}); transcription failed: {why}]",
                            media.kind.as_str()
                        ),
                        None => format!(
                            "[{} saved at {path} ({mime}, {size}); no transcription is configured (tools.media.audio)]",
                            media.kind.as_str()
                        ),
                    }
                }
                // Named by what the bytes are, not what the sender called them.
                _ => format!(
                    "[{} received, saved at {path} ({mime}, {size}); read it with your tools]",
                    sniffed
                        .map_or(MediaKind::Document, MediaKind::from_mime)
                        .as_str()
                ),
            };
            received.notes.push(note);
        }
        received
    }

    /// The file's bytes: already saved by an earlier attempt, in the workspace (an upload),
    /// or fetched from the channel and saved now.
    async fn bytes(
        &self,
        job: &JobMessage,
        media: &MediaRef,
        path: &str,
    ) -> Result<Vec<u8>, String> {
        let ws = self.workspace;
        if let MediaSource::Workspace { .. } = &media.source {
            // Only files an upload put in `inbound/` are taken from the workspace.
            if !path.starts_with("inbound/") || path.contains("..") {
                return Err("an upload outside inbound/ is not taken".into());
            }
            return ws
                .read_bytes(path, self.max_bytes)
                .map_err(|e| e.to_string());
        }
        if ws.exists(path).unwrap_or(false) {
            return ws
                .read_bytes(path, self.max_bytes)
                .map_err(|e| e.to_string());
        }
        if media.size.is_some_and(|n| n > self.max_bytes) {
            return Err(format!(
                "it is larger than the {} limit",
                human_size(self.max_bytes as usize)
            ));
        }
        let bytes = self
            .outbound
            .download(job.inbound.channel, &job.inbound.account, &media.source)
            .await
            .map_err(|e| e.to_string())?;
        ws.write_bytes(path, &bytes, self.max_bytes)
            .map_err(|e| e.to_string())?;
        Ok(bytes)
    }

    /// `None` when no transcription model is configured; else the text or why not.
    async fn transcribe(
        &self,
        bytes: &[u8],
        path: &str,
        mime: &str,
    ) -> Option<Result<String, String>> {
        let model = self.audio.model()?;
        if bytes.len() as u64 > self.audio.max_bytes() {
            return Some(Err("the file is over tools.media.audio.maxBytes".into()));
        }
        let provider = &self.providers.openai;
        let base = self
            .audio
            .base_url
            .clone()
            .or_else(|| provider.base_url.clone())
            .unwrap_or_else(|| "https://api.openai.com/v1".into());
        let name = path.rsplit('/').next().unwrap_or("audio").to_string();
        let part = reqwest::multipart::Part::bytes(bytes.to_vec())
            .file_name(name)
            .mime_str(mime)
            .unwrap_or_else(|_| reqwest::multipart::Part::bytes(bytes.to_vec()));
        let mut form = reqwest::multipart::Form::new()
            .text("model", model.model.clone())
            .text("response_format", "json")
            .part("file", part);
        if let Some(language) = &self.audio.language {
            form = form.text("language", language.clone());
        }
        let mut request = self
            .http
            .post(format!(
                "{}/audio/transcriptions",
                base.trim_end_matches('/')
            ))
            .multipart(form);
        if let Some(key) = provider.keys().first() {
            request = request.bearer_auth(key.expose());
        }
        let answer = async {
            let response = request
                .send()
                .await
                .map_err(|e| e.without_url().to_string())?;
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if !status.is_success() {
                let message = body["error"]["message"].as_str().unwrap_or("no detail");
                return Err(format!("HTTP {}: {message}", status.as_u16()));
            }
            body["text"]
                .as_str()
                .map(|t| t.trim().to_string())
                .ok_or_else(|| "the answer had no text".to_string())
        };
        Some(answer.await)
    }
}

impl Worker {
    /// The files that came with the message, fetched into the session's workspace. The
    /// transcription runs only while the message is not yet in the transcript.
    pub(crate) async fn receive_media(
        &self,
        job: &JobMessage,
        setup: &SessionSetup,
        transcript: &Transcript,
    ) -> Received {
        if job.inbound.media.is_empty() {
            return Received::default();
        }
        let opened = match &setup.plan.refusal {
            Some(refusal) => Err(std::io::Error::other(refusal.clone())),
            None => setup.plan.open_workspace(),
        };
        let workspace = match opened {
            Ok(ws) => ws,
            Err(e) => {
                tracing::warn!(job = %job.job_id, error = %e, "no workspace for inbound files");
                return Received {
                    notes: vec![format!(
                        "[{} file(s) came with this message, but this session has no workspace to keep them]",
                        job.inbound.media.len()
                    )],
                    images: vec![],
                };
            }
        };
        let receiver = MediaIn {
            outbound: &self.outbound,
            http: &self.http,
            audio: &self.config.tools.media.audio,
            providers: &self.config.models.providers,
            workspace: &workspace,
            max_bytes: self.outbound.media_max(job.inbound.channel),
        };
        receiver
            .receive(job, !transcript.has_message_of(&job.job_id))
            .instrument(phase::span("media"))
            .await
    }
}

/// A sender's file name reduced to a safe one: its last path component, characters outside
/// `A-Z a-z 0-9 . _ -` replaced, no leading dot, at most 60 characters; `None` when nothing
/// is left.
pub fn safe_file_name(given: &str) -> Option<String> {
    let last = given.rsplit(['/', '\\']).next().unwrap_or("");
    let safe: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe: String = safe
        .trim_start_matches(['.', '_', '-'])
        .chars()
        .take(NAME_CHARS)
        .collect();
    (!safe.is_empty()).then_some(safe)
}

/// Where file `n` of job `job_id` is saved: `inbound/<job>-<n>-<safe name>`.
pub fn saved_path(job_id: &str, n: usize, media: &MediaRef) -> String {
    let safe = media.name.as_deref().and_then(safe_file_name);
    let safe = safe.unwrap_or_else(|| {
        let ext = media
            .mime
            .as_deref()
            .and_then(|m| m.split('/').nth(1))
            .map(|e| e.split(['+', ';']).next().unwrap_or(e))
            .filter(|e| e.chars().all(|c| c.is_ascii_alphanumeric()) && e.len() <= 8)
            .map(|e| if e == "jpeg" { "jpg" } else { e })
            .unwrap_or("bin");
        format!("{}.{ext}", media.kind.as_str().replace(' ', "-"))
    });
    format!("inbound/{job_id}-{n}-{safe}")
}

fn human_size(bytes: usize) -> String {
    match bytes {
        0..=1023 => format!("{bytes} B"),
        1024..=1_048_575 => format!("{} KB", bytes / 1024),
        _ => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(kind: MediaKind, name: Option<&str>, mime: Option<&str>) -> MediaRef {
        MediaRef {
            kind,
            source: MediaSource::Telegram {
                file_id: "f".into(),
            },
            name: name.map(str::to_string),
            mime: mime.map(str::to_string),
            size: None,
        }
    }

    #[test]
    fn saved_names_stay_inside_inbound_and_visible() {
        let path = |m: &MediaRef| saved_path("01J", 0, m);

        assert_eq!(
            path(&media(MediaKind::Document, Some("../../etc/passwd"), None)),
            "inbound/01J-0-passwd"
        );
        assert_eq!(
            path(&media(MediaKind::Document, Some(".bashrc"), None)),
            "inbound/01J-0-bashrc"
        );
        assert_eq!(
            path(&media(MediaKind::Document, Some("a b/c\\d é.pdf"), None)),
            "inbound/01J-0-d__.pdf"
        );
        assert_eq!(
            path(&media(MediaKind::Image, None, Some("image/jpeg"))),
            "inbound/01J-0-image.jpg"
        );
        assert_eq!(
            path(&media(
                MediaKind::Voice,
                None,
                Some("audio/ogg; codecs=opus")
            )),
            "inbound/01J-0-voice-note.ogg"
        );
        assert_eq!(
            path(&media(MediaKind::Document, Some(".."), Some("x/../../y"))),
            "inbound/01J-0-file.bin"
        );
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(52_000), "50 KB");
        assert_eq!(human_size(3 * 1_048_576), "3.0 MB");
    }
}
