//! The session tools (OpenClaw's names): `sessions_list`, `sessions_history`,
//! `session_status` and `sessions_send`. They read the state store and enqueue jobs; they run
//! in the worker, not the sandbox, and the tool policy applies to them as to any tool.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use infra::model::{
    Channel, ChatKind, ChatRef, EntryBody, InboundMessage, JobMessage, Sender, SessionKey,
};
use infra::queue::{JobQueue, JobQueueExt};
use infra::store::StateStore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ToolOutcome, ToolSpec};
use crate::agent::ExtraTools;

pub struct SessionTools {
    pub store: Arc<dyn StateStore>,
    pub queue: Arc<dyn JobQueue>,
    pub agent: String,
    pub session: SessionKey,
    /// What `session_status` reports besides the store's numbers.
    pub status_note: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListInput {
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HistoryInput {
    session_key: String,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SendInput {
    session_key: String,
    message: String,
}

fn line(body: &EntryBody) -> String {
    let cut = |t: &str| t.chars().take(500).collect::<String>();
    match body {
        EntryBody::User { text, .. } => format!("user: {}", cut(text)),
        EntryBody::Assistant { text, tool_calls } => {
            let calls: Vec<&str> = tool_calls.iter().map(|c| c.name.as_str()).collect();
            format!(
                "assistant: {}{}",
                cut(text.as_deref().unwrap_or("")),
                if calls.is_empty() {
                    String::new()
                } else {
                    format!(" [tools: {}]", calls.join(", "))
                }
            )
        }
        EntryBody::ToolResult {
            name,
            output,
            is_error,
            ..
        } => {
            format!(
                "tool {name}{}: {}",
                if *is_error { " (error)" } else { "" },
                cut(output)
            )
        }
        EntryBody::Summary { text, .. } => format!("summary: {}", cut(text)),
        EntryBody::Delivered { text } => format!("delivered: {}", cut(text)),
    }
}

impl SessionTools {
    async fn call(&self, name: &str, input: &Value) -> Result<String, String> {
        let parse_err = |e: serde_json::Error| format!("invalid input for {name}: {e}");
        match name {
            "sessions_list" => {
                let i: ListInput = serde_json::from_value(input.clone()).map_err(parse_err)?;
                let sessions = self
                    .store
                    .list_sessions(&self.agent, i.limit.unwrap_or(20).min(100))
                    .await
                    .map_err(|e| e.to_string())?;
                let rows: Vec<Value> = sessions
                    .iter()
                    .map(|s| json!({"sessionKey": s.key.to_string(), "channel": s.channel, "peer": s.peer, "entries": s.next_seq, "lastActiveMs": s.last_active_ms}))
                    .collect();
                Ok(json!({"sessions": rows}).to_string())
            }
            "sessions_history" => {
                let i: HistoryInput = serde_json::from_value(input.clone()).map_err(parse_err)?;
                let key: SessionKey = i.session_key.parse().map_err(|e| format!("{e}"))?;
                let meta = self
                    .store
                    .get_session(&key)
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(meta) = meta.filter(|m| m.agent == self.agent) else {
                    return Err(format!("no session {key} for this agent"));
                };
                let limit = i.limit.unwrap_or(20).clamp(1, 200) as u64;
                let from = meta.next_seq.saturating_sub(limit);
                let page = self
                    .store
                    .load_transcript(&key, from, limit as usize)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(page
                    .entries
                    .iter()
                    .map(|e| line(&e.body))
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
            "session_status" => {
                let meta = self
                    .store
                    .get_session(&self.session)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(json!({
                    "sessionKey": self.session.to_string(),
                    "agent": self.agent,
                    "entries": meta.as_ref().map_or(0, |m| m.next_seq),
                    "status": self.status_note,
                })
                .to_string())
            }
            "sessions_send" => {
                let i: SendInput = serde_json::from_value(input.clone()).map_err(parse_err)?;
                let key: SessionKey = i.session_key.parse().map_err(|e| format!("{e}"))?;
                let id = ulid::Ulid::new().to_string();
                let inbound = InboundMessage {
                    channel: Channel::Hook,
                    account: "sessions".into(),
                    event_id: format!("hook:sessions_send:{id}"),
                    chat: ChatRef {
                        kind: ChatKind::Dm,
                        id: key.to_string(),
                    },
                    sender: Sender {
                        id: self.session.to_string(),
                        name: Some(format!("session {}", self.session)),
                    },
                    text: i.message,
                    received_at: Utc::now(),
                };
                let agent = key.agent(&self.agent).to_string();
                let job = JobMessage::new(key.clone(), &agent, inbound, None);
                self.queue.send(&job).await.map_err(|e| e.to_string())?;
                Ok(format!("queued job {} for {key}", job.job_id))
            }
            _ => Err(format!("unknown session tool {name}")),
        }
    }
}

#[async_trait]
impl ExtraTools for SessionTools {
    fn specs(&self) -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "sessions_list",
                description: "List this agent's sessions, most recently active first.",
                input_schema: json!({"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1}}, "additionalProperties": false}),
            },
            ToolSpec {
                name: "sessions_history",
                description: "Read the latest messages of one of this agent's sessions.",
                input_schema: json!({"type": "object", "properties": {"sessionKey": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}}, "required": ["sessionKey"], "additionalProperties": false}),
            },
            ToolSpec {
                name: "session_status",
                description: "Status of the current session: key, size, model and sandbox.",
                input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            },
            ToolSpec {
                name: "sessions_send",
                description: "Send a message to another session; it is queued and answered there.",
                input_schema: json!({"type": "object", "properties": {"sessionKey": {"type": "string"}, "message": {"type": "string"}}, "required": ["sessionKey", "message"], "additionalProperties": false}),
            },
        ]
    }

    async fn run(&self, name: &str, input: &Value) -> Option<ToolOutcome> {
        if !self.specs().iter().any(|s| s.name == name) {
            return None;
        }
        Some(match self.call(name, input).await {
            Ok(text) => ToolOutcome::ok(text),
            Err(text) => ToolOutcome::error(text),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infra::model::TranscriptEntry;
    use infra::queue::sqlite::SqliteQueue;
    use infra::store::sqlite::SqliteStore;
    use std::time::Duration;

    async fn setup() -> (tempfile::TempDir, SessionTools, Arc<SqliteQueue>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let queue = Arc::new(
            SqliteQueue::open(
                &dir.path().join("q.db"),
                "jobs",
                Duration::from_secs(30),
                None,
            )
            .unwrap(),
        );
        for (key, agent) in [
            ("agent:main:telegram:dm:1", "main"),
            ("agent:main:slack:dm:U2", "main"),
            ("agent:ops:telegram:dm:3", "ops"),
        ] {
            let key: SessionKey = key.parse().unwrap();
            let entry = TranscriptEntry {
                seq: 0,
                at: Utc::now(),
                job_id: None,
                body: EntryBody::User {
                    text: format!("hello from {key}"),
                    sender: None,
                },
            };
            store.append_transcript(&key, agent, &entry).await.unwrap();
        }
        let tools = SessionTools {
            store,
            queue: queue.clone(),
            agent: "main".into(),
            session: "agent:main:telegram:dm:1".parse().unwrap(),
            status_note: "model m".into(),
        };
        (dir, tools, queue)
    }

    #[tokio::test]
    async fn sessions_list_and_history_see_only_this_agents_sessions() {
        let (_dir, tools, _) = setup().await;

        let list = tools.run("sessions_list", &json!({})).await.unwrap();
        let history = tools
            .run(
                "sessions_history",
                &json!({"sessionKey": "agent:main:slack:dm:U2"}),
            )
            .await
            .unwrap();
        let foreign = tools
            .run(
                "sessions_history",
                &json!({"sessionKey": "agent:ops:telegram:dm:3"}),
            )
            .await
            .unwrap();

        let listed: Value = serde_json::from_str(&list.output).unwrap();
        assert_eq!(listed["sessions"].as_array().unwrap().len(), 2);
        assert_eq!(history.output, "user: hello from agent:main:slack:dm:U2");
        assert!(foreign.is_error, "another agent's session is not readable");
    }

    #[tokio::test]
    async fn sessions_send_queues_a_job_for_the_other_session() {
        let (_dir, tools, queue) = setup().await;

        let sent = tools
            .run(
                "sessions_send",
                &json!({"sessionKey": "agent:main:slack:dm:U2", "message": "ping"}),
            )
            .await
            .unwrap();
        let jobs = queue
            .receive_jobs(10, Duration::from_secs(1))
            .await
            .unwrap();

        assert!(!sent.is_error, "{}", sent.output);
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            jobs[0].job.session_key.to_string(),
            "agent:main:slack:dm:U2"
        );
        assert_eq!(jobs[0].job.inbound.text, "ping");
        assert_eq!(jobs[0].job.inbound.sender.id, "agent:main:telegram:dm:1");
        assert!(
            tools.run("exec", &json!({})).await.is_none(),
            "not a session tool"
        );
    }
}
