//! The WebChat page in headless Chromium over WebDriver, against the real stack: send a message
//! and watch the tool calls and the reply arrive (over the event stream), markdown rendered
//! with hostile HTML left as text, a pending reply shown after a reload, a second conversation,
//! the whole history of a long conversation on load, an uploaded picture the model sees, and
//! the Stop button ending a long `exec`. A screenshot is kept in
//! `target/test-artifacts/webchat.png`.

mod browser;
#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;
#[path = "../sandbox-worker/tests/fakes/mod.rs"]
mod fakes;
mod stack;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fakes::{last_tool_result, Reply};
use infra::model::{EntryBody, SessionKey, TranscriptEntry};
use serde_json::{json, Value};
use stack::{process_running, spawn_stack, StackOptions};

const MARKDOWN_REPLY: &str = "**Bold** answer:\n\n```sh\necho <b>x</b>\n```\n\n<img src=x onerror=\"window.pwned=1\"> [bad](javascript:window.pwned=2)";

/// "make a todo file": a write, an ls, then the listing. "show markdown": a markdown reply
/// with hostile HTML in it. "take your time": a reply after 4 s.
fn script() -> fakes::Script {
    Arc::new(|_, body: &Value| {
        // The text of the latest user turn (a string, or text blocks beside tool results).
        let last_user = body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .map(|m| match &m["content"] {
                Value::String(text) => text.clone(),
                blocks => blocks
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|b| b["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            })
            .unwrap_or_default();
        match (last_tool_result(body), last_user.as_str()) {
            (_, text) if text.contains("show markdown") => Reply::text(MARKDOWN_REPLY),
            (_, text) if text.contains("take your time") => {
                Reply::text("done waiting").after(Duration::from_secs(4))
            }
            (None, _) => Reply::tool_use(
                &format!("toolu_{}", ulid::Ulid::new()),
                "write",
                json!({"path": "notes/todo.txt", "content": "buy milk\n"}),
            ),
            (Some(result), _) if result.starts_with("wrote") => Reply::tool_use(
                &format!("toolu_{}", ulid::Ulid::new()),
                "exec",
                json!({"command": "ls notes"}),
            ),
            (Some(result), _) => {
                let report: Value =
                    serde_json::from_str(&result).unwrap_or(json!({"stdout": result}));
                Reply::text(&format!(
                    "Files: {}",
                    report["stdout"].as_str().unwrap_or("").trim()
                ))
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webchat_page_streams_tool_calls_and_renders_safe_markdown() {
    if !common::docker_available() {
        return;
    }
    let Some(browser) = browser::browser_or_skip().await else {
        return;
    };
    let stack = spawn_stack(script(), StackOptions::default()).await;
    let wait = Duration::from_secs(90);

    // A tool-using turn, seen as it streams in.
    browser.goto(&stack.page_url()).await;
    browser.type_into("#input", "make a todo file").await;
    browser.click("#send").await;
    let replies = browser.wait_for_texts(".msg.reply", 1, wait).await;
    let users = browser.texts(".msg.user").await;
    let tool_calls = browser.texts(".msg.tool-call").await;
    let tool_results = browser.texts(".msg.tool-result").await;
    // Markdown with hostile HTML in it.
    browser.type_into("#input", "show markdown").await;
    browser.click("#send").await;
    let replies_after = browser.wait_for_texts(".msg.reply", 2, wait).await;
    let code = browser.texts(".msg.reply pre code").await;
    let strong = browser.texts(".msg.reply strong").await;
    let injected = browser
        .execute(
            "return [window.pwned === undefined, document.querySelectorAll('.msg.reply img, .msg.reply script').length, [...document.querySelectorAll('.msg.reply a')].map(a => a.getAttribute('href'))]",
            json!([]),
        )
        .await;
    let screenshot = browser.screenshot("webchat").await;

    assert_eq!(replies, ["Files: todo.txt"], "log:\n{}", stack.log_text());
    assert_eq!(users, ["make a todo file"]);
    assert_eq!(tool_calls.len(), 2, "{tool_calls:?}");
    assert!(tool_calls[0].contains("write") && tool_calls[0].contains("notes/todo.txt"));
    assert!(tool_calls[1].contains("exec") && tool_calls[1].contains("ls notes"));
    assert!(tool_results[1].contains("todo.txt"), "{tool_results:?}");
    assert_eq!(replies_after.len(), 2);
    assert_eq!(strong, ["Bold"]);
    assert_eq!(
        code,
        ["echo <b>x</b>"],
        "the code block shows its text, tags and all"
    );
    assert!(
        replies_after[1].contains("<img src=x onerror=\"window.pwned=1\">"),
        "{replies_after:?}"
    );
    assert_eq!(
        injected,
        json!([true, 0, ["#"]]),
        "nothing injected ran or loaded"
    );
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 5_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reload_the_page_shows_the_whole_history_and_the_pending_reply() {
    let Some(browser) = browser::browser_or_skip().await else {
        return;
    };
    let stack = spawn_stack(
        script(),
        StackOptions {
            docker: false,
            ..StackOptions::default()
        },
    )
    .await;
    let backends = stack.backends().await;
    browser.goto(&stack.page_url()).await;
    let conversation = browser
        .execute(
            "return localStorage.getItem('clawgate.conversation')",
            json!([]),
        )
        .await
        .as_str()
        .unwrap()
        .to_string();
    // A long conversation already in the store: 260 messages, more than one history page.
    let key = SessionKey::dm("main", infra::model::Channel::Webchat, &conversation);
    for seq in 0..260 {
        let entry = TranscriptEntry {
            seq,
            at: Utc::now(),
            job_id: Some(format!("old-{seq}")),
            body: EntryBody::User {
                text: format!("old message {seq}"),
                sender: None,
            },
        };
        backends
            .store
            .append_transcript(&key, "main", &entry)
            .await
            .unwrap();
    }

    browser.reload().await;
    let loaded = browser
        .wait_for_texts(".msg.user", 260, Duration::from_secs(30))
        .await;
    browser.type_into("#input", "take your time").await;
    browser.click("#send").await;
    let sent = browser
        .wait_for_texts(".msg.user", 261, Duration::from_secs(10))
        .await;
    browser.reload().await;
    let pending = browser
        .wait_for_texts(".pending", 1, Duration::from_secs(10))
        .await;
    let answered = browser
        .wait_for_texts(".msg.reply", 1, Duration::from_secs(30))
        .await;
    let pending_after = browser.texts(".pending").await;
    browser.click("#new-conversation").await;
    let fresh = browser.texts(".msg").await;
    let listed = browser
        .wait_for_texts("#conversations li", 2, Duration::from_secs(10))
        .await;

    assert_eq!(loaded.len(), 260, "the whole history, not one page of it");
    assert_eq!(sent.len(), 261, "the sent message streamed in");
    assert_eq!(loaded[0], "old message 0");
    assert_eq!(loaded[259], "old message 259");
    assert_eq!(
        pending.len(),
        1,
        "the reply being worked on is shown after a reload"
    );
    assert_eq!(answered, ["done waiting"]);
    assert!(pending_after.is_empty());
    assert!(
        fresh.is_empty(),
        "a new conversation starts empty: {fresh:?}"
    );
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.contains(&"old message 0".to_string()), "{listed:?}");
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_picture_reaches_the_model_and_the_stop_button_ends_a_long_run() {
    let Some(browser) = browser::browser_or_skip().await else {
        return;
    };
    let stack = spawn_stack(
        Arc::new(|_, body: &Value| {
            let last_user = body["messages"]
                .as_array()
                .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
                .map(|m| m["content"].to_string())
                .unwrap_or_default();
            match last_tool_result(body) {
                _ if last_user.contains("[image attached") => Reply::text("I see a picture."),
                None if last_user.contains("long task") => Reply::tool_use(
                    "toolu_long",
                    "exec",
                    json!({"command": "sleep 32.3; echo late"}),
                ),
                _ => Reply::text("the stopped run must not ask again"),
            }
        }),
        StackOptions {
            docker: false,
            ..StackOptions::default()
        },
    )
    .await;
    let picture = stack.state_dir.with_file_name("cat.png");
    std::fs::write(&picture, PNG).unwrap();
    let wait = Duration::from_secs(60);
    browser.goto(&stack.page_url()).await;

    // A picture, attached and sent with a question.
    browser.type_into("#file", picture.to_str().unwrap()).await;
    let attached = browser.texts("#attached").await;
    browser
        .type_into("#input", "what is in this picture?")
        .await;
    browser.click("#send").await;
    let replies = browser.wait_for_texts(".msg.reply", 1, wait).await;
    let shown = browser.texts(".msg.user").await;
    // A long run, seen over the event stream, then stopped.
    browser.type_into("#input", "start the long task").await;
    browser.click("#send").await;
    let calls = browser.wait_for_texts(".msg.tool-call", 1, wait).await;
    let deadline = std::time::Instant::now() + wait;
    while !process_running("sleep 32.3") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stop_shown = browser
        .execute("return !document.getElementById('stop').hidden", json!([]))
        .await;
    let clicked = std::time::Instant::now();
    browser.click("#stop").await;
    let after_stop = browser.wait_for_texts(".msg.reply", 2, wait).await;
    eprintln!(
        "stopped and confirmed {:?} after the click",
        clicked.elapsed()
    );
    let stop_hidden = browser
        .execute("return document.getElementById('stop').hidden", json!([]))
        .await;

    assert_eq!(attached, ["cat.png"]);
    assert_eq!(replies, ["I see a picture."], "log:\n{}", stack.log_text());
    assert!(
        shown[0].starts_with("what is in this picture?\n[image attached"),
        "{shown:?}"
    );
    let first = &stack.fakes.model_calls()[0].body;
    let blocks = first["messages"][0]["content"].as_array().unwrap();
    assert!(
        blocks
            .iter()
            .any(|b| b["type"] == "image" && b["source"]["media_type"] == "image/png"),
        "{blocks:?}"
    );
    let saved: Vec<_> = std::fs::read_dir(stack.workspace.join("inbound"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        saved.len() == 1 && saved[0].starts_with("up-") && saved[0].ends_with("-cat.png"),
        "{saved:?}"
    );
    assert!(calls[0].contains("sleep 32.3"), "{calls:?}");
    assert_eq!(stop_shown, json!(true), "Stop shows while a run is going");
    assert_eq!(after_stop[1], "⏹ Stopped.");
    assert_eq!(stop_hidden, json!(true));
    assert!(!process_running("sleep 32.3"), "the stopped exec is gone");
    assert_eq!(stack.fakes.model_calls().len(), 2);
}
