//! `sessions_spawn` (OpenClaw's semantics): run a task in a new, isolated session
//! `agent:<id>:subagent:<id>` as an ordinary queued job, and announce its answer back into the
//! session that spawned it when it ends. It returns at once (`status: "accepted"`) with the
//! child's session key and job id; the announcement is a new job in the requester's session,
//! marked as written by an agent, whose reply reaches the chat the spawning turn answered.
//!
//! Bounds (docs/security.md), checked on every call:
//! - Owner sessions only: a sub-agent runs with the owner's trust (its key is an owner
//!   session's), so a guest could otherwise launder a task through one.
//! - Depth: a spawned job is one hop deeper than its requester (the same count `sessions_send`
//!   keeps); past `agents.defaults.subagents.maxSpawnDepth` (1: sub-agents spawn none) it is
//!   refused. Count: `maxSpawnsPerHour` per requesting session, in the store.
//! - Another agent only when `tools.agentToAgent` allows it. A sub-agent session is not the
//!   agent's main session, so `sandbox.mode: "non-main"` sandboxes it.
//! - The requester sees its children under `sessionToolsVisibility: "spawned"`: the child's
//!   key ends in a digest of the requester's ([`SessionKey::spawned_by`]).

use std::sync::Arc;
use std::time::Duration;

use infra::config::{Config, Trust};
use infra::model::{
    Channel, ChatKind, ChatRef, InboundMessage, JobMessage, JobOrigin, ReplyTarget, Sender,
    SessionKey, SpawnRequest,
};
use infra::queue::{JobQueue, JobQueueExt};
use infra::store::StateStore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::sessions::{Caller, MAX_SEND_CHARS};
use super::{ExtraTools, ToolOutcome, ToolSpec};

/// `sessions_spawn` for one job.
pub struct SpawnTools {
    pub store: Arc<dyn StateStore>,
    pub queue: Arc<dyn JobQueue>,
    pub config: Arc<Config>,
    pub caller: Caller,
    /// The spawning job's account and chat: where the announcement's reply goes.
    pub account: String,
    pub reply_to: Option<ReplyTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Input {
    task: String,
    label: Option<String>,
    agent_id: Option<String>,
}

impl SpawnTools {
    async fn spawn(&self, input: Input) -> Result<String, String> {
        let caller = &self.caller;
        if caller.trust != Trust::Owner {
            return Err("sessions_spawn is for the owner's sessions; this is a guest session (a group, a channel, a hook or an open DM)".into());
        }
        let task = input.task.trim();
        if task.is_empty() || task.chars().count() > MAX_SEND_CHARS {
            return Err(format!("the task must be 1 to {MAX_SEND_CHARS} characters"));
        }
        let agent = input.agent_id.unwrap_or_else(|| caller.agent.clone());
        if !self.config.agent_ids().contains(agent.as_str()) {
            return Err(format!("no agent {agent:?} in the config"));
        }
        if agent != caller.agent && !caller.agent_to_agent.allows(&agent) {
            return Err(format!(
                "spawning agent {agent:?} from agent {:?} needs tools.agentToAgent to allow it",
                caller.agent
            ));
        }
        let limits = &self.config.agents.defaults.subagents;
        let depth = caller.depth + 1;
        if depth > limits.max_spawn_depth {
            return Err(format!(
                "not spawned: this session is {} hop(s) from a channel message, and sub-agents may nest {} deep (agents.defaults.subagents.maxSpawnDepth)",
                caller.depth, limits.max_spawn_depth
            ));
        }
        let key = format!("spawn:{}", caller.session);
        let hour = Duration::from_secs(3600);
        if !super::within_rate(self.store.as_ref(), &key, hour, limits.max_spawns_per_hour).await? {
            return Err(format!(
                "not spawned: this session may spawn {} sub-agents an hour (agents.defaults.subagents.maxSpawnsPerHour)",
                limits.max_spawns_per_hour
            ));
        }
        let child = SessionKey::subagent(&agent, &caller.session);
        let label = input
            .label
            .map(|l| infra::channels::truncate_chars(l.trim(), 80));
        let inbound = InboundMessage::new(
            Channel::Hook,
            "subagent",
            format!("hook:sessions_spawn:{}", ulid::Ulid::new()),
            ChatRef::new(ChatKind::Dm, child.to_string()),
            Sender {
                id: caller.session.to_string(),
                name: Some(format!("session {}", caller.session)),
            },
            format!(
                "[A task from session {} (agent {}) via sessions_spawn. It was written by an agent, not by the user. Do it and answer with the result: your answer is announced back to that session.]\n\n{task}",
                caller.session, caller.agent
            ),
        );
        let mut job = JobMessage::new(child.clone(), &agent, inbound, None);
        job.origin = Some(JobOrigin {
            session: caller.session.clone(),
            agent: caller.agent.clone(),
            depth,
        });
        job.spawn = Some(SpawnRequest {
            requester: caller.session.clone(),
            requester_agent: caller.agent.clone(),
            account: self.account.clone(),
            reply_to: self.reply_to.clone(),
            label: label.clone(),
        });
        self.queue.send(&job).await.map_err(|e| e.to_string())?;
        Ok(json!({
            "status": "accepted",
            "runId": job.job_id,
            "childSessionKey": child.to_string(),
            "label": label,
            "note": "the sub-agent's answer will arrive in this session as a new message when it is done"
        })
        .to_string())
    }
}

/// The job that announces a finished sub-agent's `answer` in the session that spawned it, or
/// `None` for a job no session spawned. Its event id derives from the sub-agent's job, so a
/// redelivered sub-agent job announces once (the queue and the job ledger drop the repeat).
pub fn announcement(job: &JobMessage, answer: &str) -> Option<JobMessage> {
    let spawn = job.spawn.as_ref()?;
    let label = spawn
        .label
        .as_deref()
        .map(|l| format!(" \"{l}\""))
        .unwrap_or_default();
    let inbound = InboundMessage::new(
        Channel::Hook,
        &spawn.account,
        format!("hook:sessions_spawn:announce:{}", job.job_id),
        ChatRef::new(ChatKind::Dm, spawn.requester.to_string()),
        Sender {
            id: job.session_key.to_string(),
            name: Some(format!("sub-agent {}", job.session_key)),
        },
        format!(
            "[The sub-agent{label} you spawned ({}) has finished. Its answer follows; it was written by an agent, not by the user. Tell the user what matters.]\n\n{}",
            job.session_key,
            infra::channels::truncate_chars(answer, MAX_SEND_CHARS)
        ),
    );
    let mut announce = JobMessage::new(
        spawn.requester.clone(),
        &spawn.requester_agent,
        inbound,
        spawn.reply_to.clone(),
    );
    announce.origin = Some(JobOrigin {
        session: job.session_key.clone(),
        agent: job.agent_id.clone(),
        depth: job.origin.as_ref().map_or(1, |o| o.depth),
    });
    Some(announce)
}

#[async_trait::async_trait]
impl ExtraTools for SpawnTools {
    fn specs(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "sessions_spawn".into(),
            description: "Start a sub-agent on a task in a new, isolated session. Returns at once; the sub-agent's answer arrives in this session as a new message when it is done.".into(),
            input_schema: json!({"type": "object", "properties": {
                "task": {"type": "string", "description": "what the sub-agent should do, with everything it needs to know"},
                "label": {"type": "string", "description": "a short name for it"},
                "agentId": {"type": "string", "description": "another agent to run it (tools.agentToAgent must allow it)"}
            }, "required": ["task"], "additionalProperties": false}),
        }]
    }

    async fn run(&self, name: &str, input: &Value) -> Option<ToolOutcome> {
        if name != "sessions_spawn" {
            return None;
        }
        let input: Input = match sandbox_agent::file_tools::parse("sessions_spawn", input) {
            Ok(input) => input,
            Err(e) => return Some(ToolOutcome::error(e)),
        };
        Some(match self.spawn(input).await {
            Ok(text) => ToolOutcome::ok(text),
            Err(text) => ToolOutcome::error(text),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infra::config::{AgentToAgent, SessionToolsVisibility};
    use infra::queue::sqlite::SqliteQueue;
    use infra::store::sqlite::SqliteStore;

    fn tools(dir: &std::path::Path, config: &str, session: &str, depth: u32) -> SpawnTools {
        let config = Arc::new(Config::parse(config).unwrap());
        let session: SessionKey = session.parse().unwrap();
        SpawnTools {
            store: Arc::new(SqliteStore::open(&dir.join("s.db")).unwrap()),
            queue: Arc::new(
                SqliteQueue::open(&dir.join("q.db"), "jobs", Duration::from_secs(30), None)
                    .unwrap(),
            ),
            caller: Caller {
                agent: "main".into(),
                trust: config.session_trust(&session).0,
                sandboxed: true,
                visibility: SessionToolsVisibility::Spawned,
                agent_to_agent: AgentToAgent::default(),
                depth,
                session,
            },
            config,
            account: "default".into(),
            reply_to: None,
        }
    }

    async fn spawn(tools: &SpawnTools, task: &str) -> ToolOutcome {
        tools
            .run("sessions_spawn", &json!({"task": task}))
            .await
            .unwrap()
    }

    async fn queued(tools: &SpawnTools) -> Vec<JobMessage> {
        tools
            .queue
            .receive_jobs(10, Duration::ZERO)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.job)
            .collect()
    }

    #[tokio::test]
    async fn a_guest_cannot_spawn_and_a_sub_agent_cannot_spawn_again() {
        let dir = tempfile::tempdir().unwrap();
        let guest = tools(dir.path(), "{}", "agent:main:telegram:group:-100", 0);
        let nested = tools(dir.path(), "{}", "agent:main:telegram:dm:1", 1);

        let by_guest = spawn(&guest, "read the owner's mail").await;
        let by_child = spawn(&nested, "spawn another").await;

        assert!(by_guest.is_error && by_guest.output.contains("owner's sessions"));
        assert!(by_child.is_error && by_child.output.contains("maxSpawnDepth"));
        assert!(queued(&guest).await.is_empty());
    }

    #[tokio::test]
    async fn a_spawn_is_a_queued_job_in_a_child_session_and_the_hourly_count_holds() {
        let dir = tempfile::tempdir().unwrap();
        let config = r#"{ agents: { defaults: { subagents: { maxSpawnsPerHour: 1 } } } }"#;
        let tools = tools(dir.path(), config, "agent:main:telegram:dm:1", 0);

        let first = spawn(&tools, "summarise the news").await;
        let second = spawn(&tools, "and again").await;

        assert!(!first.is_error, "{}", first.output);
        let accepted: Value = serde_json::from_str(&first.output).unwrap();
        assert!(second.is_error && second.output.contains("maxSpawnsPerHour"));
        let jobs = queued(&tools).await;
        assert_eq!(jobs.len(), 1);
        let child = &jobs[0];
        assert_eq!(accepted["childSessionKey"], child.session_key.to_string());
        assert!(child.session_key.spawned_by(&tools.caller.session));
        assert!(child.inbound.text.ends_with("summarise the news"));
        assert_eq!(child.origin.as_ref().map(|o| o.depth), Some(1));
        let spawn = child.spawn.as_ref().unwrap();
        assert_eq!(spawn.requester, tools.caller.session);

        let announce = announcement(child, "done: three stories").unwrap();
        assert_eq!(announce.session_key, tools.caller.session);
        assert!(announce.inbound.text.contains("done: three stories"));
        assert_eq!(
            announce.dedup_id(),
            format!("hook:sessions_spawn:announce:{}", child.job_id)
        );
    }
}
