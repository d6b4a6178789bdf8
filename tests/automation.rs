//! Automation end to end, through the real `clawgate up` (its scheduler ticks in-process) and
//! a fake model:
//! - a reminder the model schedules with the `cron` tool from a Telegram chat fires, and its
//!   answer reaches that chat;
//! - the heartbeat (run now with `clawgate cron run`): `HEARTBEAT_OK` delivers nothing, news is
//!   delivered to its target, and `HEARTBEAT.md` is in the beat's prompt;
//! - `/hooks/wake` queues a system event answered under the heartbeat's rule, behind the
//!   gateway token.

#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;
#[path = "../sandbox-worker/tests/fakes/mod.rs"]
mod fakes;
mod stack;

use std::sync::Arc;
use std::time::Duration;

use fakes::{last_tool_result, Reply};
use infra::model::JobStatus;
use infra::store::JobLedger;
use serde_json::{json, Value};
use stack::{spawn_stack, telegram_dm, Backend, Stack, StackOptions};

const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "automation-test-token-0123456789abcdef0123";

fn first_user_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_array())
        .and_then(|blocks| blocks.iter().rev().find(|b| b["type"] == "text"))
        .and_then(|b| b["text"].as_str())
        .unwrap_or("")
        .to_string()
}

/// `clawgate ARGS --state-dir <the stack's>`: the CLI on the running stack's state.
fn clawgate(stack: &Stack, args: &[&str]) -> String {
    let state = stack.state_dir.display().to_string();
    stack.cli(&[args, &["--state-dir", state.as_str()]].concat())
}

/// Waits until the job record of `work` is finished.
async fn finished(stack: &Stack, work: &str) -> JobStatus {
    let store = stack.sqlite_store();
    for _ in 0..600 {
        if let Some(record) = store.get_job(work).await.unwrap() {
            if record.status.is_finished() {
                return record.status;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {work} did not finish:\n{}", stack.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_scheduled_from_chat_with_the_cron_tool_fires_into_that_chat() {
    let stack = spawn_stack(
        Arc::new(|_, body: &Value| {
            let asked = first_user_text(body);
            if asked.starts_with("[Scheduled job") {
                return Reply::text("Time to stand up and stretch!");
            }
            match last_tool_result(body) {
                None => {
                    let at = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
                    Reply::tool_use(
                        "toolu_cron1",
                        "cron",
                        json!({"action": "add", "id": "stretch", "at": at, "message": "remind the owner to stand up and stretch"}),
                    )
                }
                Some(result) => Reply::text(&format!("Scheduled: {result}")),
            }
        }),
        StackOptions {
            backend: Backend::Sqlite,
            docker: false,
            ..StackOptions::default()
        },
    )
    .await;

    stack
        .post_telegram(&telegram_dm(9101, "remind me to stretch in a few seconds"))
        .await;
    let fired = stack
        .wait_for(WAIT, |f| {
            f.sent_messages()
                .iter()
                .any(|m| m.body["text"] == "Time to stand up and stretch!")
        })
        .await;

    assert!(fired, "{}", stack.log_text());
    let sent = stack.fakes.sent_messages();
    assert!(
        sent[0].body["text"]
            .as_str()
            .unwrap()
            .starts_with("Scheduled: "),
        "{}",
        sent[0].body
    );
    let reminder = sent
        .iter()
        .find(|m| m.body["text"] == "Time to stand up and stretch!")
        .unwrap();
    assert_eq!(
        reminder.body["chat_id"], 12345,
        "the chat it was asked from"
    );
    let listed: Value =
        serde_json::from_str(&clawgate(&stack, &["cron", "list", "--json"])).unwrap();
    let job = &listed[0];
    assert_eq!(job["id"], "stretch");
    assert_eq!(job["nextRun"], Value::Null, "a one-shot runs once");
    assert_eq!(job["lastRun"]["slots"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_that_finds_nothing_stays_quiet_and_news_is_delivered() {
    let stack = spawn_stack(
        Arc::new(|n, _: &Value| {
            if n == 1 {
                Reply::text("HEARTBEAT_OK")
            } else {
                Reply::text("Your 3 pm meeting moved to 4 pm.")
            }
        }),
        StackOptions {
            backend: Backend::Sqlite,
            docker: false,
            defaults_extra: r#"heartbeat: { every: "30m", target: "telegram:12345" },"#,
            ..StackOptions::default()
        },
    )
    .await;
    std::fs::create_dir_all(&stack.workspace).unwrap();
    std::fs::write(
        stack.workspace.join("HEARTBEAT.md"),
        "- Check the calendar for changes.",
    )
    .unwrap();

    let quiet = clawgate(&stack, &["cron", "run", "heartbeat-main"]);
    let quiet_status = finished(&stack, quiet.trim().trim_start_matches("queued ")).await;
    let after_quiet = stack.fakes.sent_messages().len();
    let news = clawgate(&stack, &["cron", "run", "heartbeat-main"]);
    let news_status = finished(&stack, news.trim().trim_start_matches("queued ")).await;

    assert_eq!(
        (quiet_status, news_status),
        (JobStatus::Done, JobStatus::Done)
    );
    assert_eq!(after_quiet, 0, "HEARTBEAT_OK is not delivered");
    let sent = stack.fakes.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["text"], "Your 3 pm meeting moved to 4 pm.");
    assert_eq!(sent[0].body["chat_id"], 12345);
    let calls = stack.fakes.model_calls();
    let beat = &calls[0].body;
    assert!(beat["system"]
        .as_str()
        .unwrap()
        .contains("## HEARTBEAT.md\n\n- Check the calendar for changes."));
    assert!(
        first_user_text(beat).contains("HEARTBEAT_OK"),
        "the beat's instruction"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_wake_queues_a_system_event_behind_the_gateway_token() {
    let stack = spawn_stack(
        Arc::new(|_, body: &Value| {
            if first_user_text(body).contains("package") {
                Reply::text("Your package is at the door.")
            } else {
                Reply::text("HEARTBEAT_OK")
            }
        }),
        StackOptions {
            backend: Backend::Sqlite,
            docker: false,
            gateway_token: Some(TOKEN.into()),
            defaults_extra: r#"heartbeat: { target: "telegram:12345" },"#,
            ..StackOptions::default()
        },
    )
    .await;
    let wake = |token: &'static str, body: Value| {
        stack
            .http
            .post(format!("{}/hooks/wake", stack.base_url))
            .bearer_auth(token)
            .json(&body)
            .send()
    };

    let stranger = wake("not-the-token", json!({"text": "hello"}))
        .await
        .unwrap();
    let later = wake(TOKEN, json!({"text": "x", "mode": "next-heartbeat"}))
        .await
        .unwrap();
    let quiet = wake(TOKEN, json!({"text": "Nightly backup finished."}))
        .await
        .unwrap();
    let quiet_job: Value = quiet.json().await.unwrap();
    let quiet_status = finished(&stack, quiet_job["jobId"].as_str().unwrap()).await;
    let after_quiet = stack.fakes.sent_messages().len();
    let news = wake(TOKEN, json!({"text": "The doorbell camera saw a package."}))
        .await
        .unwrap();
    let delivered = stack.wait_for(WAIT, |f| f.sent_messages().len() == 1).await;

    assert_eq!(stranger.status(), 401);
    assert_eq!(later.status(), 400);
    assert_eq!(
        (quiet_status, after_quiet),
        (JobStatus::Done, 0),
        "HEARTBEAT_OK is not delivered"
    );
    assert_eq!(news.status(), 202);
    assert!(delivered, "{}", stack.log_text());
    let sent = stack.fakes.sent_messages();
    assert_eq!(sent.len(), 1, "the quiet event was not delivered");
    assert_eq!(sent[0].body["text"], "Your package is at the door.");
    let calls = stack.fakes.model_calls();
    let event = &calls.last().unwrap().body;
    assert!(first_user_text(event).starts_with("[System event, not typed by the owner]"));
}
