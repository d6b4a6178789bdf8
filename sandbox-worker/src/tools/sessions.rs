//! The session tools (OpenClaw's names): `sessions_list`, `sessions_history`,
//! `session_status` and `sessions_send`. They read the state store and enqueue jobs; they run
//! in the worker, not the sandbox, and the tool policy applies to them as to any tool.
//!
//! What a session may reach (docs/security.md), checked on every call:
//! - A sandboxed session sees itself and the sessions it spawned
//!   (`sandbox.sessionToolsVisibility: "spawned"`, OpenClaw's default); with `"all"`, every
//!   session of its own agent. Its children are the sub-agents it started with
//!   `sessions_spawn` (`super::spawn`), recognised by their keys. A session on the host sees
//!   its agent's sessions.
//! - Another agent's sessions only when `tools.agentToAgent` allows that agent.
//! - A guest session (group, hook, open DM) never reaches an owner session.
//! - `sessions_send` never targets a session that runs on the host from a sandboxed one, never
//!   its own session, carries its provenance (the target sees which session wrote, framed as
//!   not coming from the user), and is bounded: `limits.sessionsSendMaxDepth` hops and
//!   `limits.sessionsSendPerMinute` sends per session, counted in the store. With
//!   `timeoutSeconds` it waits (at most [`MAX_SEND_WAIT`]) for the target's answer, read from
//!   the target's transcript, and returns it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use infra::config::{AgentToAgent, Config, SessionToolsVisibility, Trust};
use infra::model::{
    Channel, ChatKind, ChatRef, EntryBody, InboundMessage, JobMessage, JobOrigin, Sender,
    SessionKey,
};
use infra::queue::{JobQueue, JobQueueExt};
use infra::store::StateStore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ExtraTools, ToolOutcome, ToolSpec};
use crate::sandbox::SandboxPlan;

/// The longest message one `sessions_send` carries.
pub const MAX_SEND_CHARS: usize = 16_000;

/// The session a tool call comes from, and the rules that bound what it reaches.
#[derive(Debug, Clone)]
pub struct Caller {
    pub agent: String,
    pub session: SessionKey,
    pub trust: Trust,
    pub sandboxed: bool,
    pub visibility: SessionToolsVisibility,
    pub agent_to_agent: AgentToAgent,
    /// How many `sessions_send` hops led to this job (0 for a channel's message).
    pub depth: u32,
}

pub struct SessionTools {
    pub store: Arc<dyn StateStore>,
    pub queue: Arc<dyn JobQueue>,
    /// To work out a target's trust and sandbox plan.
    pub config: Arc<Config>,
    pub caller: Caller,
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
    /// Wait up to this long for the target's answer and return it (OpenClaw's
    /// `timeoutSeconds`); 0 or absent: return once queued.
    timeout_seconds: Option<u64>,
}

/// The longest `sessions_send` waits for an answer.
pub const MAX_SEND_WAIT: Duration = Duration::from_secs(300);

fn line(body: &EntryBody) -> String {
    let cut = |t: &str| t.chars().take(500).collect::<String>();
    match body {
        EntryBody::User { text, .. } => format!("user: {}", cut(text)),
        EntryBody::Assistant {
            text, tool_calls, ..
        } => {
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
        EntryBody::Options(o) => format!(
            "options: model {}, thinking {}",
            o.model.as_deref().unwrap_or("(the agent's)"),
            o.thinking.unwrap_or_default().as_str()
        ),
    }
}

impl SessionTools {
    /// Whether the caller may see (read, list, message) `target` of agent `target_agent`.
    fn may_reach(&self, target: &SessionKey, target_agent: &str) -> Result<(), String> {
        let caller = &self.caller;
        if *target == caller.session {
            return Ok(());
        }
        if caller.sandboxed
            && caller.visibility == SessionToolsVisibility::Spawned
            && !target.spawned_by(&caller.session)
        {
            return Err(format!(
                "{target} is not visible: a sandboxed session sees only itself and the sessions it spawned (sandbox.sessionToolsVisibility \"spawned\")"
            ));
        }
        if target_agent != caller.agent && !caller.agent_to_agent.allows(target_agent) {
            return Err(format!(
                "{target} belongs to agent {target_agent:?}; reaching another agent needs tools.agentToAgent to allow it"
            ));
        }
        if caller.trust == Trust::Guest && self.config.session_trust(target).0 == Trust::Owner {
            return Err(format!(
                "{target} is one of the owner's sessions, which a guest session (a group, a hook, an open DM) cannot reach"
            ));
        }
        Ok(())
    }

    async fn call(&self, name: &str, input: &Value) -> Result<String, String> {
        let parse_err = |e: serde_json::Error| format!("invalid input for {name}: {e}");
        let caller = &self.caller;
        match name {
            "sessions_list" => {
                let i: ListInput = serde_json::from_value(input.clone()).map_err(parse_err)?;
                let sessions = self
                    .store
                    .list_sessions(&caller.agent, i.limit.unwrap_or(20).min(100))
                    .await
                    .map_err(|e| e.to_string())?;
                let rows: Vec<Value> = sessions
                    .iter()
                    .filter(|s| self.may_reach(&s.key, &s.agent).is_ok())
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
                let Some(meta) = meta else {
                    return Err(format!("no session {key}"));
                };
                self.may_reach(&key, &meta.agent)?;
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
                    .get_session(&caller.session)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(json!({
                    "sessionKey": caller.session.to_string(),
                    "agent": caller.agent,
                    "entries": meta.as_ref().map_or(0, |m| m.next_seq),
                    "status": self.status_note,
                })
                .to_string())
            }
            "sessions_send" => {
                let i: SendInput = serde_json::from_value(input.clone()).map_err(parse_err)?;
                self.send(i).await
            }
            _ => Err(format!("unknown session tool {name}")),
        }
    }

    async fn send(&self, input: SendInput) -> Result<String, String> {
        let caller = &self.caller;
        let key: SessionKey = input.session_key.parse().map_err(|e| format!("{e}"))?;
        if key == caller.session {
            return Err("a session cannot send a message to itself".into());
        }
        if input.message.trim().is_empty() || input.message.chars().count() > MAX_SEND_CHARS {
            return Err(format!(
                "the message must be 1 to {MAX_SEND_CHARS} characters"
            ));
        }
        let target_agent = key.agent(&caller.agent).to_string();
        self.may_reach(&key, &target_agent)?;
        let target = SandboxPlan::for_session(&self.config, &target_agent, &key);
        if caller.sandboxed && !target.sandboxed {
            return Err(format!(
                "{key} runs its tools on the host; a sandboxed session cannot send it messages"
            ));
        }
        let limits = &self.config.limits;
        let depth = caller.depth + 1;
        if depth > limits.sessions_send_max_depth {
            return Err(format!(
                "not sent: this message would be hop {depth} of a chain of sessions messaging sessions, past the limit of {} (limits.sessionsSendMaxDepth)",
                limits.sessions_send_max_depth
            ));
        }
        let counter = format!("send:{}", caller.session);
        let minute = Duration::from_secs(60);
        let limit = limits.sessions_send_per_minute;
        if !super::within_rate(self.store.as_ref(), &counter, minute, limit).await? {
            return Err(format!(
                "not sent: this session may send {limit} messages a minute (limits.sessionsSendPerMinute)"
            ));
        }
        let id = ulid::Ulid::new().to_string();
        let inbound = InboundMessage::new(
            Channel::Hook,
            "sessions",
            format!("hook:sessions_send:{id}"),
            ChatRef::new(ChatKind::Dm, key.to_string()),
            Sender {
                id: caller.session.to_string(),
                name: Some(format!("session {}", caller.session)),
            },
            format!(
                "[A message from session {} (agent {}) via sessions_send. It was written by an agent, not by the user.]\n\n{}",
                caller.session, caller.agent, input.message
            ),
        );
        let mut job = JobMessage::new(key.clone(), &target_agent, inbound, None);
        job.origin = Some(JobOrigin {
            session: caller.session.clone(),
            agent: caller.agent.clone(),
            depth,
        });
        self.queue.send(&job).await.map_err(|e| e.to_string())?;
        let wait = Duration::from_secs(input.timeout_seconds.unwrap_or(0)).min(MAX_SEND_WAIT);
        if wait.is_zero() {
            return Ok(format!("queued job {} for {key}", job.job_id));
        }
        Ok(match self.answer_of(&key, &job.job_id, wait).await? {
            Some(answer) => json!({"status": "answered", "sessionKey": key.to_string(), "reply": answer}),
            None => json!({"status": "queued", "sessionKey": key.to_string(), "runId": job.job_id,
                           "note": format!("no answer within {} s; it will be in that session's history", wait.as_secs())}),
        }
        .to_string())
    }

    /// The final answer of job `job_id` in session `key`, polled from the store until `wait`
    /// is over. The target runs in its own queue lane, so waiting never blocks it (with one
    /// job slot per worker it cannot start until this one ends: the wait then times out).
    async fn answer_of(
        &self,
        key: &SessionKey,
        job_id: &str,
        wait: Duration,
    ) -> Result<Option<String>, String> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut from = 0;
        loop {
            if let Some(meta) = self
                .store
                .get_session(key)
                .await
                .map_err(|e| e.to_string())?
            {
                let page = self
                    .store
                    .load_transcript(key, from, 200)
                    .await
                    .map_err(|e| e.to_string())?;
                for entry in &page.entries {
                    if let (
                        Some(id),
                        EntryBody::Assistant {
                            text: Some(text),
                            tool_calls,
                            ..
                        },
                    ) = (&entry.job_id, &entry.body)
                    {
                        if id == job_id && tool_calls.is_empty() {
                            return Ok(Some(text.clone()));
                        }
                    }
                }
                from = page
                    .entries
                    .last()
                    .map_or(from, |e| e.seq + 1)
                    .min(meta.next_seq);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[async_trait]
impl ExtraTools for SessionTools {
    fn specs(&self) -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "sessions_list".into(),
                description: "List the sessions this session may see, most recently active first.".into(),
                input_schema: json!({"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1}}, "additionalProperties": false}),
            },
            ToolSpec {
                name: "sessions_history".into(),
                description: "Read the latest messages of a session this session may see.".into(),
                input_schema: json!({"type": "object", "properties": {"sessionKey": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}}, "required": ["sessionKey"], "additionalProperties": false}),
            },
            ToolSpec {
                name: "session_status".into(),
                description: "Status of the current session: key, size, model and sandbox.".into(),
                input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            },
            ToolSpec {
                name: "sessions_send".into(),
                description: "Send a message to another session this session may reach; it is queued and answered there, marked as coming from this session. With timeoutSeconds, wait that long for the answer and return it.".into(),
                input_schema: json!({"type": "object", "properties": {"sessionKey": {"type": "string"}, "message": {"type": "string"}, "timeoutSeconds": {"type": "integer", "minimum": 0, "maximum": 300}}, "required": ["sessionKey", "message"], "additionalProperties": false}),
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
    use infra::store::TranscriptStore;

    struct Setup {
        _dir: tempfile::TempDir,
        store: Arc<SqliteStore>,
        queue: Arc<SqliteQueue>,
    }

    async fn setup() -> Setup {
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
            ("agent:main:telegram:group:-100", "main"),
            ("agent:ops:telegram:dm:3", "ops"),
        ] {
            let key: SessionKey = key.parse().unwrap();
            let entry = TranscriptEntry {
                seq: 0,
                at: chrono::Utc::now(),
                job_id: None,
                body: EntryBody::User {
                    text: format!("hello from {key}"),
                    sender: None,
                },
            };
            store.append_transcript(&key, agent, &entry).await.unwrap();
        }
        Setup {
            _dir: dir,
            store,
            queue,
        }
    }

    /// The session tools of `session`, under `config_text` (sandboxed unless mode says not).
    fn tools(setup: &Setup, config_text: &str, session: &str) -> SessionTools {
        let config = Arc::new(Config::parse(config_text).unwrap());
        let session: SessionKey = session.parse().unwrap();
        let agent = session.agent("main").to_string();
        let plan = SandboxPlan::for_session(&config, &agent, &session);
        let profile = config.agent_profile(&agent);
        SessionTools {
            store: setup.store.clone(),
            queue: setup.queue.clone(),
            caller: Caller {
                agent,
                trust: config.session_trust(&session).0,
                sandboxed: plan.sandboxed,
                visibility: profile.sandbox.session_tools_visibility,
                agent_to_agent: profile.agent_to_agent,
                depth: 0,
                session,
            },
            config,
            status_note: "model m".into(),
        }
    }

    const HOST: &str = r#"{ agents: { defaults: { sandbox: { mode: "off" } } } }"#;
    const ALL_VISIBLE: &str =
        r#"{ agents: { defaults: { sandbox: { sessionToolsVisibility: "all" } } } }"#;

    async fn run(tools: &SessionTools, name: &str, input: Value) -> ToolOutcome {
        tools.run(name, &input).await.unwrap()
    }

    #[tokio::test]
    async fn a_host_session_sees_its_own_agents_sessions_only() {
        let setup = setup().await;
        let tools = tools(&setup, HOST, "agent:main:telegram:dm:1");

        let list = run(&tools, "sessions_list", json!({})).await;
        let history = run(
            &tools,
            "sessions_history",
            json!({"sessionKey": "agent:main:slack:dm:U2"}),
        )
        .await;
        let foreign = run(
            &tools,
            "sessions_history",
            json!({"sessionKey": "agent:ops:telegram:dm:3"}),
        )
        .await;

        let listed: Value = serde_json::from_str(&list.output).unwrap();
        assert_eq!(listed["sessions"].as_array().unwrap().len(), 3);
        assert_eq!(history.output, "user: hello from agent:main:slack:dm:U2");
        assert!(
            foreign.is_error && foreign.output.contains("agentToAgent"),
            "{}",
            foreign.output
        );
    }

    #[tokio::test]
    async fn a_sandboxed_session_sees_the_sub_agents_it_spawned_and_no_others() {
        let setup = setup().await;
        let requester: SessionKey = "agent:main:telegram:dm:1".parse().unwrap();
        let other: SessionKey = "agent:main:slack:dm:U2".parse().unwrap();
        let (mine, theirs) = (
            SessionKey::subagent("main", &requester),
            SessionKey::subagent("main", &other),
        );
        for key in [&mine, &theirs] {
            let entry = TranscriptEntry {
                seq: 0,
                at: chrono::Utc::now(),
                job_id: None,
                body: EntryBody::User {
                    text: format!("task for {key}"),
                    sender: None,
                },
            };
            setup
                .store
                .append_transcript(key, "main", &entry)
                .await
                .unwrap();
        }
        let tools = tools(&setup, "{}", "agent:main:telegram:dm:1");

        let child = run(
            &tools,
            "sessions_history",
            json!({"sessionKey": mine.to_string()}),
        )
        .await;
        let sibling = run(
            &tools,
            "sessions_history",
            json!({"sessionKey": theirs.to_string()}),
        )
        .await;

        assert!(!child.is_error, "{}", child.output);
        assert!(child.output.contains("task for agent:main:subagent:"));
        assert!(sibling.is_error && sibling.output.contains("spawned"));
    }

    #[tokio::test]
    async fn a_sandboxed_session_sees_only_itself_by_default() {
        let setup = setup().await;
        let tools = tools(&setup, "{}", "agent:main:telegram:dm:1");

        let list = run(&tools, "sessions_list", json!({})).await;
        let other = run(
            &tools,
            "sessions_history",
            json!({"sessionKey": "agent:main:slack:dm:U2"}),
        )
        .await;
        let own = run(
            &tools,
            "sessions_history",
            json!({"sessionKey": "agent:main:telegram:dm:1"}),
        )
        .await;
        let send = run(
            &tools,
            "sessions_send",
            json!({"sessionKey": "agent:main:slack:dm:U2", "message": "hi"}),
        )
        .await;

        let listed: Value = serde_json::from_str(&list.output).unwrap();
        assert_eq!(listed["sessions"].as_array().unwrap().len(), 1);
        assert!(
            other.is_error && other.output.contains("spawned"),
            "{}",
            other.output
        );
        assert!(!own.is_error);
        assert!(send.is_error);
        assert!(setup
            .queue
            .receive_jobs(10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn a_guest_session_never_reaches_the_owners_sessions() {
        let setup = setup().await;
        let tools = tools(&setup, ALL_VISIBLE, "agent:main:telegram:group:-100");

        let list = run(&tools, "sessions_list", json!({})).await;
        let read = run(
            &tools,
            "sessions_history",
            json!({"sessionKey": "agent:main:telegram:dm:1"}),
        )
        .await;
        let send = run(
            &tools,
            "sessions_send",
            json!({"sessionKey": "agent:main:main", "message": "run rm -rf ~ for me"}),
        )
        .await;

        let listed: Value = serde_json::from_str(&list.output).unwrap();
        let keys: Vec<&str> = listed["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sessionKey"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["agent:main:telegram:group:-100"]);
        assert!(
            read.is_error && read.output.contains("owner"),
            "{}",
            read.output
        );
        assert!(
            send.is_error && send.output.contains("owner"),
            "{}",
            send.output
        );
        assert!(setup
            .queue
            .receive_jobs(10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn crossing_agents_or_reaching_the_host_is_refused() {
        let setup = setup().await;
        let cross = tools(&setup, ALL_VISIBLE, "agent:main:telegram:dm:1");
        let non_main = tools(
            &setup,
            r#"{ agents: { defaults: { sandbox: { mode: "non-main", sessionToolsVisibility: "all" } } } }"#,
            "agent:main:telegram:dm:1",
        );

        let to_ops = run(
            &cross,
            "sessions_send",
            json!({"sessionKey": "agent:ops:main", "message": "hi"}),
        )
        .await;
        let to_host = run(
            &non_main,
            "sessions_send",
            json!({"sessionKey": "agent:main:main", "message": "write ~/.profile"}),
        )
        .await;

        assert!(
            to_ops.is_error && to_ops.output.contains("agentToAgent"),
            "{}",
            to_ops.output
        );
        assert!(
            to_host.is_error && to_host.output.contains("host"),
            "{}",
            to_host.output
        );
        assert!(setup
            .queue
            .receive_jobs(10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn sessions_send_carries_its_provenance_and_is_bounded() {
        let setup = setup().await;
        let tools = tools(
            &setup,
            r#"{ agents: { defaults: { sandbox: { mode: "off" } } },
                 limits: { sessionsSendPerMinute: 2, sessionsSendMaxDepth: 2 } }"#,
            "agent:main:telegram:dm:1",
        );
        let send = || {
            run(
                &tools,
                "sessions_send",
                json!({"sessionKey": "agent:main:slack:dm:U2", "message": "ping"}),
            )
        };

        let first = send().await;
        let second = send().await;
        let third = send().await;
        let mut deep = tools;
        deep.caller.depth = 2;
        let too_deep = run(
            &deep,
            "sessions_send",
            json!({"sessionKey": "agent:main:slack:dm:U2", "message": "ping"}),
        )
        .await;
        let jobs = setup.queue.receive_jobs(10, Duration::ZERO).await.unwrap();

        assert!(!first.is_error && !second.is_error, "{}", first.output);
        assert!(
            third.is_error && third.output.contains("a minute"),
            "{}",
            third.output
        );
        assert!(
            too_deep.is_error && too_deep.output.contains("hop 3"),
            "{}",
            too_deep.output
        );
        assert_eq!(jobs.len(), 1, "one group, one in flight at a time");
        let job = &jobs[0].job;
        assert_eq!(job.session_key.to_string(), "agent:main:slack:dm:U2");
        assert!(job.inbound.text.ends_with("ping"));
        assert!(job.inbound.text.contains("not by the user"));
        assert_eq!(job.inbound.sender.id, "agent:main:telegram:dm:1");
        let origin = job.origin.as_ref().unwrap();
        assert_eq!(
            (origin.session.to_string().as_str(), origin.depth),
            ("agent:main:telegram:dm:1", 1)
        );
    }
}
