//! The `cron` tool: the agent schedules, lists, changes, removes and runs its own jobs, so
//! "remind me at 5" works from chat. The scheduler (`infra::cron`) runs them.
//!
//! Decisions:
//! - Offered in owner sessions only (the worker decides), and every job it touches is this
//!   agent's: a job runs with the owner's trust, so only the owner may make one.
//! - A new job answers in the chat it was asked from unless it says otherwise; the model may
//!   name `none` or `last` instead, never an arbitrary chat of another channel account.
//! - At most [`MAX_JOBS_PER_AGENT`] jobs per agent, and intervals of a minute or more
//!   (`infra::model::MIN_INTERVAL`): a model in a loop cannot flood the queue.

use std::sync::Arc;

use chrono::Utc;
use infra::cron::JobSpec;
use infra::model::CronDelivery;
use infra::queue::JobQueue;
use infra::store::StateStore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ExtraTools, ToolOutcome};
use crate::llm::ToolSpec;

/// The most jobs one agent may have.
pub const MAX_JOBS_PER_AGENT: usize = 50;

/// The cron tool of one session.
pub struct CronTools {
    pub store: Arc<dyn StateStore>,
    pub queue: Arc<dyn JobQueue>,
    pub agent: String,
    /// Where a new job answers by default: the chat the session is in.
    pub here: CronDelivery,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdInput {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateInput {
    id: String,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    message: Option<String>,
}

fn input<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ToolOutcome> {
    serde_json::from_value(value).map_err(|e| ToolOutcome::error(format!("cron input: {e}")))
}

impl CronTools {
    async fn act(&self, mut input_value: Value) -> Result<ToolOutcome, ToolOutcome> {
        let store_error = |e: infra::store::StoreError| {
            ToolOutcome::error(format!("the schedule store failed: {e}"))
        };
        let action = input_value
            .as_object_mut()
            .and_then(|o| o.remove("action"))
            .and_then(|a| a.as_str().map(str::to_string))
            .ok_or_else(|| {
                ToolOutcome::error("cron needs an action: add, list, update, remove or run")
            })?;
        let mine = |job: Option<infra::model::CronJob>| job.filter(|j| j.agent == self.agent);
        match action.as_str() {
            "add" => {
                let spec: JobSpec = input(input_value)?;
                let now = Utc::now();
                let job = spec
                    .build(&self.agent, self.here.clone(), now)
                    .map_err(ToolOutcome::error)?;
                if matches!(job.deliver, CronDelivery::Chat { .. }) && job.deliver != self.here {
                    return Err(ToolOutcome::error("a job answers here, in the last chat (deliver: \"last\"), or nowhere (\"none\"); other chats are set with `clawgate cron add`"));
                }
                let all = self.store.list_cron().await.map_err(store_error)?;
                if all.iter().any(|j| j.id == job.id) {
                    return Err(ToolOutcome::error(format!(
                        "a job {:?} exists: pick another id or update it",
                        job.id
                    )));
                }
                if all.iter().filter(|j| j.agent == self.agent).count() >= MAX_JOBS_PER_AGENT {
                    return Err(ToolOutcome::error(format!("this agent has {MAX_JOBS_PER_AGENT} jobs, the most allowed; remove one first")));
                }
                self.store.put_cron(&job).await.map_err(store_error)?;
                Ok(ToolOutcome::ok(
                    json!({
                        "scheduled": job.id,
                        "schedule": job.schedule.describe(),
                        "nextRun": job.next_run,
                    })
                    .to_string(),
                ))
            }
            "list" => {
                let jobs: Vec<Value> = self
                    .store
                    .list_cron()
                    .await
                    .map_err(store_error)?
                    .into_iter()
                    .filter(|j| j.agent == self.agent)
                    .map(|j| json!({
                        "id": j.id, "schedule": j.schedule.describe(), "nextRun": j.next_run,
                        "enabled": j.enabled, "message": j.message,
                        "lastRun": j.last_run.map(|r| json!({"slot": r.slot, "lateSeconds": r.late_secs(), "skipped": r.skipped})),
                    }))
                    .collect();
                Ok(ToolOutcome::ok(json!({ "jobs": jobs }).to_string()))
            }
            "update" => {
                let change: UpdateInput = input(input_value)?;
                let mut job = mine(self.store.get_cron(&change.id).await.map_err(store_error)?)
                    .ok_or_else(|| ToolOutcome::error(format!("no job {:?}", change.id)))?;
                if let Some(message) = change.message {
                    job.message = message;
                }
                if let Some(enabled) = change.enabled {
                    job.enabled = enabled;
                    if enabled && job.next_run.is_none() {
                        job.next_run = job.schedule.next_after(Utc::now());
                    }
                }
                job.check().map_err(ToolOutcome::error)?;
                self.store.put_cron(&job).await.map_err(store_error)?;
                Ok(ToolOutcome::ok(format!(
                    "updated {}: enabled {}, next run {:?}",
                    job.id, job.enabled, job.next_run
                )))
            }
            "remove" => {
                let IdInput { id } = input(input_value)?;
                mine(self.store.get_cron(&id).await.map_err(store_error)?)
                    .ok_or_else(|| ToolOutcome::error(format!("no job {id:?}")))?;
                self.store.remove_cron(&id).await.map_err(store_error)?;
                Ok(ToolOutcome::ok(format!("removed {id}")))
            }
            "run" => {
                let IdInput { id } = input(input_value)?;
                let job = mine(self.store.get_cron(&id).await.map_err(store_error)?)
                    .ok_or_else(|| ToolOutcome::error(format!("no job {id:?}")))?;
                let work = infra::cron::run_now(
                    self.store.as_ref(),
                    self.queue.as_ref(),
                    &job,
                    Utc::now(),
                )
                .await
                .map_err(|e| ToolOutcome::error(format!("could not queue the run: {e}")))?;
                Ok(ToolOutcome::ok(format!("queued a run of {id} ({work})")))
            }
            other => Err(ToolOutcome::error(format!(
                "unknown cron action {other:?}: use add, list, update, remove or run"
            ))),
        }
    }
}

#[async_trait::async_trait]
impl ExtraTools for CronTools {
    fn specs(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "cron".into(),
            description: "Schedule work for later: reminders, recurring checks, daily briefs. action \"add\" takes exactly one of at (an RFC 3339 time, or HH:MM in tz), every (20m, 1h, 1d) or cron (5 fields, in tz), a message (what you will be told when it runs), and optionally id, tz (IANA, default UTC), session (isolated or main) and deliver (here by default; \"last\" or \"none\"). Also \"list\", \"update\" {id, enabled?, message?}, \"remove\" {id}, \"run\" {id} (now).".into(),
            input_schema: json!({"type": "object", "properties": {
                "action": {"type": "string", "enum": ["add", "list", "update", "remove", "run"]},
                "id": {"type": "string"},
                "at": {"type": "string"}, "every": {"type": "string"}, "cron": {"type": "string"},
                "tz": {"type": "string"}, "message": {"type": "string"},
                "session": {"type": "string", "enum": ["isolated", "main"]},
                "deliver": {"type": "string"},
                "enabled": {"type": "boolean"}
            }, "required": ["action"], "additionalProperties": false}),
        }]
    }

    async fn run(&self, name: &str, input: &Value) -> Option<ToolOutcome> {
        if name != "cron" {
            return None;
        }
        Some(match self.act(input.clone()).await {
            Ok(outcome) | Err(outcome) => outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infra::model::{ReplyTarget, TelegramTarget};
    use infra::queue::sqlite::SqliteQueue;
    use infra::store::sqlite::SqliteStore;

    fn here(chat: i64) -> CronDelivery {
        CronDelivery::Chat {
            account: "default".into(),
            target: ReplyTarget::Telegram(TelegramTarget {
                chat_id: chat,
                message_thread_id: None,
                reply_to_message_id: None,
            }),
        }
    }

    fn tools(dir: &std::path::Path, agent: &str) -> CronTools {
        CronTools {
            store: Arc::new(SqliteStore::open(&dir.join("state.db")).unwrap()),
            queue: Arc::new(
                SqliteQueue::open(
                    &dir.join("queue.db"),
                    "jobs",
                    std::time::Duration::from_secs(30),
                    None,
                )
                .unwrap(),
            ),
            agent: agent.into(),
            here: here(12345),
        }
    }

    async fn call(tools: &CronTools, input: Value) -> ToolOutcome {
        tools.run("cron", &input).await.unwrap()
    }

    #[tokio::test]
    async fn a_job_made_from_chat_answers_in_that_chat_and_belongs_to_its_agent() {
        let dir = tempfile::tempdir().unwrap();
        let main = tools(dir.path(), "main");

        let made = call(
            &main,
            json!({"action": "add", "id": "tea", "every": "1h", "message": "tea time"}),
        )
        .await;

        assert!(!made.is_error, "{}", made.output);
        let job = main.store.get_cron("tea").await.unwrap().unwrap();
        assert_eq!(
            (job.agent.as_str(), job.deliver.clone()),
            ("main", here(12345))
        );
        assert!(call(&main, json!({"action": "list"}))
            .await
            .output
            .contains("tea time"));
    }

    #[tokio::test]
    async fn the_tool_refuses_what_would_cross_a_boundary_or_flood_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let (main, ops) = (tools(dir.path(), "main"), tools(dir.path(), "ops"));
        call(
            &main,
            json!({"action": "add", "id": "mine", "every": "1h", "message": "x"}),
        )
        .await;

        let refusals = [
            call(
                &main,
                json!({"action": "add", "every": "1h", "message": "x", "deliver": "telegram:999"}),
            )
            .await,
            call(
                &main,
                json!({"action": "add", "every": "5s", "message": "x"}),
            )
            .await,
            call(
                &main,
                json!({"action": "add", "cron": "0 8 * *", "message": "x"}),
            )
            .await,
            call(
                &main,
                json!({"action": "add", "at": "2001-01-01T00:00:00Z", "message": "x"}),
            )
            .await,
            call(
                &main,
                json!({"action": "add", "id": "../../etc", "every": "1h", "message": "x"}),
            )
            .await,
            call(
                &main,
                json!({"action": "add", "every": "1h", "at": "09:00", "message": "x"}),
            )
            .await,
            call(&ops, json!({"action": "remove", "id": "mine"})).await,
            call(&ops, json!({"action": "run", "id": "mine"})).await,
            call(
                &ops,
                json!({"action": "update", "id": "mine", "enabled": false}),
            )
            .await,
            call(&main, json!({"action": "explode"})).await,
            call(&main, json!({"every": "1h"})).await,
        ];
        for i in 0..MAX_JOBS_PER_AGENT {
            call(
                &main,
                json!({"action": "add", "id": format!("j{i}"), "every": "1h", "message": "x"}),
            )
            .await;
        }
        let over = call(
            &main,
            json!({"action": "add", "id": "one-more", "every": "1h", "message": "x"}),
        )
        .await;

        for (i, outcome) in refusals.iter().enumerate() {
            assert!(outcome.is_error, "refusal {i}: {}", outcome.output);
        }
        assert!(
            main.store.get_cron("mine").await.unwrap().unwrap().enabled,
            "another agent cannot touch it"
        );
        assert!(
            over.is_error && over.output.contains("the most allowed"),
            "{}",
            over.output
        );
        assert_eq!(
            main.queue.depth().await.unwrap().waiting,
            0,
            "nothing was queued"
        );
    }
}
