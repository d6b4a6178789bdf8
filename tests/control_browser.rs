//! The Control UI at `/control` in headless Chromium, against the real stack: a WebChat turn
//! that ran tools in Docker shows as a session whose transcript has collapsible tool calls; a
//! dead-lettered job is redriven and answered, a garbage one discarded; a pairing request is
//! approved; the session's sandbox is recreated; the config shows redacted secrets. Every
//! action is checked in the store, queue or daemon, not only on the page. A screenshot is kept
//! in `target/test-artifacts/control.png`.

mod browser;
#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;
#[path = "../sandbox-worker/tests/fakes/mod.rs"]
mod fakes;
mod stack;

use std::time::Duration;

use infra::model::JobMessage;
use infra::queue::JobQueueExt;
use serde_json::json;
use stack::{spawn_stack, write_then_list, StackOptions, TG_TOKEN};

/// Clicks the button labelled `label` in the row of table `table` that contains `text`.
const CLICK_IN_ROW: &str = "const [table, text, label] = arguments; \
    const row = [...document.querySelectorAll('#' + table + ' tr')].find(r => r.textContent.includes(text)); \
    const button = row && [...row.querySelectorAll('button')].find(b => b.textContent === label); \
    if (!button) return false; button.click(); return true;";

async fn webchat_send(stack: &stack::Stack, conversation: &str, text: &str) {
    let sent = stack
        .http
        .post(format!("{}/webchat/send", stack.base_url))
        .bearer_auth(stack.token())
        .json(&json!({ "conversation": conversation, "text": text }))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_ui_shows_sessions_and_acts_on_dead_letters_pairing_and_sandboxes() {
    if !common::docker_available() {
        return;
    }
    let Some(browser) = browser::browser_or_skip().await else {
        return;
    };
    let stack = spawn_stack(write_then_list(), StackOptions::default()).await;
    let backends = stack.backends().await;
    let wait = Duration::from_secs(90);
    // A turn that ran two tools in a container.
    webchat_send(&stack, "ctl-first", "make a todo file").await;
    assert!(stack.wait_for(wait, |f| f.model_calls().len() >= 3).await);
    // Two dead letters: a job that will be answered once redriven, and garbage.
    let mut job = JobMessage::decode(include_str!("../infra/fixtures/job_v1.json")).unwrap();
    job.job_id = ulid::Ulid::new().to_string();
    job.inbound.event_id = format!("telegram:default:{}", job.job_id);
    let dlq = backends.queue.dead_letters().unwrap();
    dlq.send(&job).await.unwrap();
    dlq.send_raw("{not a job", "g-garbage", "garbage-1")
        .await
        .unwrap();
    backends
        .store
        .request_pairing(
            "telegram",
            "default",
            "555",
            Some("Eve"),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    let pending = backends
        .store
        .list_pairing("telegram", "default")
        .await
        .unwrap();
    let containers_before = stack.containers();

    // Act: open the page, open the session, redrive, discard, approve, recreate.
    browser
        .goto(&format!(
            "{}/control#token={}",
            stack.base_url,
            stack.token()
        ))
        .await;
    let sessions = browser.wait_for_texts("#sessions tr", 2, wait).await;
    let opened = browser
        .execute(CLICK_IN_ROW, json!(["sessions", "ctl-first", "Open"]))
        .await;
    let summaries = browser
        .wait_for_texts("#transcript details summary", 2, wait)
        .await;
    browser.click("#transcript details summary").await;
    let expanded = browser
        .execute(
            "return document.querySelector('#transcript details').open",
            json!([]),
        )
        .await;
    let reply = browser.texts("#transcript .reply").await;
    let letters = browser.wait_for_texts("#dead-letters tr", 3, wait).await;
    let redriven = browser
        .execute(
            CLICK_IN_ROW,
            json!(["dead-letters", "agent:main:telegram", "Redrive"]),
        )
        .await;
    let answered = stack
        .wait_for(wait, |f| !f.sent_messages().is_empty())
        .await;
    let garbage_row = browser.wait_for_exactly("#dead-letters tr", 2, wait).await;
    let discarded = browser
        .execute(
            CLICK_IN_ROW,
            json!(["dead-letters", "(not a job)", "Discard"]),
        )
        .await;
    let approved = browser
        .execute(
            CLICK_IN_ROW,
            json!(["pairing", &pending[0].code, "Approve"]),
        )
        .await;
    let recreated = browser
        .execute(CLICK_IN_ROW, json!(["sandboxes", "ctl-first", "Recreate"]))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let config = browser.texts("#config").await.join("");
    let screenshot = browser.screenshot("control").await;
    let dead_after = dlq.depth().await.unwrap();
    let allowed = backends
        .store
        .is_allowed("telegram", "default", "555")
        .await
        .unwrap();
    let containers_after = stack.containers();

    // Assert: what the page showed, and what each action did for real.
    assert!(
        sessions
            .iter()
            .any(|s| s.contains("agent:main:webchat:dm:ctl-first")),
        "{sessions:?}"
    );
    assert_eq!(opened, true);
    assert!(
        summaries[0].contains("write") && summaries.iter().any(|s| s.contains("exec")),
        "{summaries:?}"
    );
    assert_eq!(expanded, true, "a tool call opens on a click");
    assert_eq!(reply, ["Files: todo.txt"]);
    assert_eq!(
        letters.len(),
        3,
        "a header and two dead letters: {letters:?}"
    );
    assert_eq!(
        (redriven, discarded, approved, recreated),
        (json!(true), json!(true), json!(true), json!(true))
    );
    assert!(
        answered,
        "the redriven job was answered; log:\n{}",
        stack.log_text()
    );
    assert_eq!(garbage_row.len(), 2, "{garbage_row:?}");
    assert_eq!(dead_after.waiting + dead_after.in_flight, 0);
    assert!(allowed, "the approved sender may talk to the bot");
    assert_eq!(containers_before.len(), 1, "{containers_before:?}");
    assert!(
        containers_after
            .iter()
            .all(|c| !containers_before.contains(c)),
        "recreated: {containers_before:?} -> {containers_after:?}"
    );
    assert!(config.contains("<redacted>"), "{config}");
    assert!(
        !config.contains(TG_TOKEN) && !config.contains("sk-ant-e2e"),
        "a secret is shown"
    );
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 5_000);
}
