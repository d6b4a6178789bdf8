//! The `message` tool (OpenClaw's name): sends text or a workspace file to the chat the job
//! came from (Telegram `sendPhoto` / `sendDocument`, a Slack upload; on WebChat the page shows
//! a download link from the tool call), exactly once across crashes like the reply itself.
//!
//! Decisions:
//! - Only the current chat: the tool names no target, so a prompt-injected model cannot send
//!   the workspace anywhere else.
//! - Only a workspace file, read through the workspace's resolver (no `..`, no symlink out),
//!   up to the channel's `mediaMaxMb`; its type is what its bytes say, and an image is sent as
//!   a photo only when it is PNG, JPEG, GIF or WebP.
//! - Exactly once: the n-th `message` send of a job is marked on the job record (beside the
//!   reply chunks, from [`SEND_MARK_BASE`] on) after it is sent. A resumed attempt re-runs
//!   only a call whose result was not checkpointed, finds its mark, and does not send again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use infra::channels::OutboundFile;
use infra::model::{EntryBody, JobMessage, ReplyTarget, Transcript};
use infra::store::StateStore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::fs::Workspace;
use super::{parse, ExtraTools, ToolOutcome};
use crate::agent::Lease;
use crate::llm::ToolSpec;
use crate::reply::Outbound;

/// Where `message` sends are marked among a job's sent chunks (reply chunks count from 0).
pub const SEND_MARK_BASE: u32 = 1 << 30;

/// The `message` tool of one job.
pub struct MessageTools {
    pub outbound: Outbound,
    pub store: Arc<dyn StateStore>,
    pub job: JobMessage,
    /// The job record's key and this worker (the lease holder).
    pub work_id: String,
    pub owner: String,
    pub lease: Lease,
    /// Marks on the record when this attempt began.
    pub marked: Vec<u32>,
    /// The session's workspace, when it has one.
    pub workspace: Option<Workspace>,
    /// `message` calls of this job so far (earlier attempts' from the transcript).
    pub sends: AtomicU32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    media: Option<String>,
}

/// How many `message` calls of `job_id` have a result in `transcript`.
pub fn sends_so_far(transcript: &Transcript, job_id: &str) -> u32 {
    transcript
        .entries
        .iter()
        .filter(|e| {
            e.job_id.as_deref() == Some(job_id)
                && matches!(&e.body, EntryBody::ToolResult { name, .. } if name == "message")
        })
        .count() as u32
}

impl MessageTools {
    async fn send(&self, mark: u32, input: Input) -> Result<Value, String> {
        if input.action.as_deref().is_some_and(|a| a != "send") {
            return Err("the only action is \"send\"".into());
        }
        let text = input.message.filter(|t| !t.trim().is_empty());
        if text.is_none() && input.media.is_none() {
            return Err("give message (text), media (a workspace file), or both".into());
        }
        let Some(target) = &self.job.reply_to else {
            return Err(
                "this job has no chat to send to (a hook or scheduled job without delivery)".into(),
            );
        };
        let file = match &input.media {
            Some(path) => Some(self.file(path, text.clone())?),
            None => None,
        };
        if self.marked.contains(&mark) {
            return Ok(
                json!({"sent": true, "note": "already sent by an earlier attempt of this job"}),
            );
        }
        self.lease.check().map_err(|e| e.to_string())?;
        let account = &self.job.inbound.account;
        let sent = match (&file, target) {
            // The page shows the file from this call's input as a download link.
            (Some(file), ReplyTarget::Webchat(_)) => {
                json!({"sent": true, "file": file.name, "bytes": file.bytes.len(), "shown": "as a download link"})
            }
            (Some(file), _) => {
                self.outbound
                    .send_file(account, target, file)
                    .await
                    .map_err(|e| e.to_string())?;
                json!({"sent": true, "file": file.name, "type": file.mime, "bytes": file.bytes.len()})
            }
            (None, ReplyTarget::Webchat(_)) => json!({"sent": true, "shown": "on the page"}),
            (None, _) => {
                let text = text.as_deref().unwrap_or_default();
                self.outbound
                    .post(account, target, text)
                    .await
                    .map_err(|e| e.to_string())?;
                json!({"sent": true, "chars": text.chars().count()})
            }
        };
        self.store
            .mark_chunk_sent(&self.work_id, &self.owner, mark)
            .await
            .map_err(|e| format!("sent, but not recorded: {e}"))?;
        Ok(sent)
    }

    /// The workspace file `path`, checked: inside the workspace, a regular file, under the cap.
    fn file(&self, path: &str, caption: Option<String>) -> Result<OutboundFile, String> {
        let ws = self
            .workspace
            .as_ref()
            .ok_or("this session has no workspace to send files from")?;
        let max = self.outbound.media_max(self.job.inbound.channel);
        let bytes = ws.read_bytes(path, max).map_err(|e| e.to_string())?;
        if bytes.is_empty() {
            return Err(format!("{path:?} is empty"));
        }
        let mime = infer::get(&bytes).map(|t| t.mime_type()).unwrap_or(
            if std::str::from_utf8(&bytes).is_ok() {
                "text/plain"
            } else {
                "application/octet-stream"
            },
        );
        let name = path
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("file")
            .to_string();
        Ok(OutboundFile {
            name,
            mime: mime.to_string(),
            bytes,
            caption,
        })
    }
}

#[async_trait::async_trait]
impl ExtraTools for MessageTools {
    fn specs(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "message".into(),
            description: "Send something to the chat you are answering, now: text (message), a file from the workspace (media: its path; images go as photos), or both (the text is the file's caption). Use it to send files; your final answer is sent anyway.".into(),
            input_schema: json!({"type": "object", "properties": {
                "action": {"type": "string", "enum": ["send"]},
                "message": {"type": "string"},
                "media": {"type": "string", "description": "a workspace path"}
            }, "additionalProperties": false}),
        }]
    }

    async fn run(&self, name: &str, input: &Value) -> Option<ToolOutcome> {
        if name != "message" {
            return None;
        }
        // Every call takes its number, whatever its outcome: a resumed attempt counts the
        // checkpointed results the same way.
        let mark = SEND_MARK_BASE + self.sends.fetch_add(1, Ordering::SeqCst);
        let input = match parse::<Input>("message", input) {
            Ok(input) => input,
            Err(e) => return Some(ToolOutcome::error(e)),
        };
        Some(match self.send(mark, input).await {
            Ok(sent) => ToolOutcome::ok(sent.to_string()),
            Err(e) => ToolOutcome::error(e),
        })
    }
}
