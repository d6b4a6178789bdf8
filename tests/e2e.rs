//! The whole stack end to end (`tests/stack`): real `clawgate up`, queue and store on the
//! emulator (or SQLite), Docker sandboxes, and fake Telegram, Slack and model servers.

#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;
#[path = "../sandbox-worker/tests/fakes/mod.rs"]
mod fakes;
mod stack;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fakes::Reply;
use serde_json::{json, Value};
use stack::{
    spawn_stack, telegram_dm, workspace_file, write_then_list, Backend, Stack, StackOptions,
};

fn docker_or_skip() -> bool {
    if common::docker_available() {
        return true;
    }
    eprintln!("skipped: no Docker daemon (scripts/test starts one)");
    false
}

async fn telegram_dm_scenario(backend: Backend) {
    let stack = spawn_stack(
        write_then_list(),
        StackOptions {
            backend,
            ..Default::default()
        },
    )
    .await;

    let status = stack
        .post_telegram(&telegram_dm(5001, "make a todo file and list it"))
        .await;
    let answered = stack
        .wait_for(Duration::from_secs(90), |f| !f.sent_messages().is_empty())
        .await;

    assert_eq!(status, 200);
    assert!(
        answered,
        "no reply; clawgate up said:\n{}",
        stack.log_text()
    );
    let sent = stack.fakes.sent_messages();
    assert_eq!(sent.len(), 1);
    assert!(sent[0]
        .path
        .starts_with(&format!("/bot{}/sendMessage", stack::TG_TOKEN)));
    assert_eq!(sent[0].body["chat_id"], 12345);
    assert_eq!(sent[0].body["text"], "Files: todo.txt");
    assert_eq!(
        workspace_file(&stack, "notes/todo.txt").as_deref(),
        Some("buy milk\n"),
        "the file is in the workspace on the host"
    );
    assert_eq!(stack.fakes.model_calls().len(), 3);
    let expected_queue = match backend {
        Backend::Emulator => "queue: sqs ",
        Backend::Sqlite => "queue: sqlite ",
    };
    assert!(
        stack.log_text().contains(expected_queue),
        "{}",
        stack.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telegram_dm_writes_and_lists_a_file_in_docker_and_the_reply_reaches_telegram() {
    if !docker_or_skip() {
        return;
    }
    telegram_dm_scenario(Backend::from_env()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_telegram_scenario_runs_in_one_machine_mode_on_sqlite() {
    if !docker_or_skip() {
        return;
    }
    telegram_dm_scenario(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_mention_in_a_thread_is_answered_in_that_thread() {
    if !docker_or_skip() {
        return;
    }
    let stack = spawn_stack(write_then_list(), StackOptions::default()).await;
    let event = json!({"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": "Ev0E2E0001", "event_time": 1700000200,
        "event": {"type": "app_mention", "user": "U2147483697", "text": "<@U0LAN0Z89> todo please",
                  "ts": "1700000200.000400", "thread_ts": "1700000000.000100", "channel": "C024BE91L",
                  "event_ts": "1700000200.000400"}});

    let status = stack.post_slack(&event).await;
    let answered = stack
        .wait_for(Duration::from_secs(90), |f| !f.slack_posts().is_empty())
        .await;

    assert_eq!(status, 200);
    assert!(
        answered,
        "no reply; clawgate up said:\n{}",
        stack.log_text()
    );
    let post = &stack.fakes.slack_posts()[0];
    assert_eq!(post.auth.as_deref(), Some("Bearer xoxb-e2e"));
    assert_eq!(post.body["channel"], "C024BE91L");
    assert_eq!(post.body["thread_ts"], "1700000000.000100");
    assert_eq!(post.body["text"], "Files: todo.txt");
}

/// Polls the page's API until the job's reply is there; returns every entry seen.
async fn webchat_reply(stack: &Stack, conversation: &str, job: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let page: Value = stack
            .http
            .get(format!(
                "{}/webchat/history?conversation={conversation}&after=0",
                stack.base_url
            ))
            .bearer_auth(stack.token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entries = page["entries"].as_array().unwrap().clone();
        if entries
            .iter()
            .any(|e| e["kind"] == "reply" && e["jobId"] == job)
        {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no WebChat reply; clawgate up said:\n{}", stack.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webchat_message_is_answered_on_the_page_api_with_its_tool_calls() {
    if !docker_or_skip() {
        return;
    }
    let stack = spawn_stack(write_then_list(), StackOptions::default()).await;

    let page = stack.http.get(&stack.base_url).send().await.unwrap();
    let page_status = page.status();
    let page_html = page.text().await.unwrap();
    let sent: Value = stack
        .http
        .post(format!("{}/webchat/send", stack.base_url))
        .bearer_auth(stack.token())
        .json(&json!({"conversation": "e2e-web", "text": "todo file please"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job = sent["jobId"].as_str().unwrap().to_string();
    let entries = webchat_reply(&stack, "e2e-web", &job).await;

    assert_eq!(page_status, 200);
    assert!(page_html.contains("/webchat/send"));
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "user",
            "tool_call",
            "tool_result",
            "tool_call",
            "tool_result",
            "reply"
        ]
    );
    assert_eq!(entries[1]["name"], "write");
    assert_eq!(entries[3]["input"]["command"], "ls notes");
    assert_eq!(entries[5]["text"], "Files: todo.txt");
    assert!(
        stack.fakes.sent_messages().is_empty(),
        "WebChat posts to no channel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webchat_with_a_wrong_or_missing_token_gets_401_and_nothing_is_queued() {
    let stack = spawn_stack(
        Arc::new(|_, _: &Value| Reply::text("should never be asked")),
        StackOptions {
            docker: false,
            gateway_token: Some("right-token-0123456789abcdef".into()),
            ..Default::default()
        },
    )
    .await;
    let send = |token: Option<&'static str>| {
        let mut request = stack
            .http
            .post(format!("{}/webchat/send", stack.base_url))
            .json(&json!({"conversation": "e2e-auth", "text": "hello"}));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send()
    };

    let missing = send(None).await.unwrap().status();
    let wrong = send(Some("wrong-token")).await.unwrap().status();
    let history = stack
        .http
        .get(format!(
            "{}/webchat/history?conversation=e2e-auth",
            stack.base_url
        ))
        .send()
        .await
        .unwrap()
        .status();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with_token: Value = stack
        .http
        .get(format!(
            "{}/webchat/history?conversation=e2e-auth",
            stack.base_url
        ))
        .bearer_auth("right-token-0123456789abcdef")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(
        (missing.as_u16(), wrong.as_u16(), history.as_u16()),
        (401, 401, 401)
    );
    assert!(
        stack.fakes.model_calls().is_empty(),
        "nothing reached the worker"
    );
    assert_eq!(with_token["entries"], json!([]), "nothing was queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_clawgate_up_between_two_messages_keeps_the_session_history() {
    let mut stack = spawn_stack(
        Arc::new(|n, _: &Value| Reply::text(&format!("answer {n}"))),
        StackOptions {
            backend: Backend::Sqlite,
            docker: false,
            gateway_token: None,
            ..Default::default()
        },
    )
    .await;

    stack
        .post_telegram(&telegram_dm(6001, "my favourite colour is blue"))
        .await;
    assert!(
        stack
            .wait_for(Duration::from_secs(30), |f| f.sent_messages().len() == 1)
            .await
    );
    let exit = stack.stop();
    stack.start();
    stack
        .post_telegram(&telegram_dm(6002, "what is my favourite colour?"))
        .await;
    let answered = stack
        .wait_for(Duration::from_secs(30), |f| f.sent_messages().len() == 2)
        .await;

    assert_eq!(exit, Some(0), "Ctrl-C exits cleanly:\n{}", stack.log_text());
    assert!(answered, "{}", stack.log_text());
    let calls = stack.fakes.model_calls();
    let second: Vec<String> = calls[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].to_string())
        .collect();
    assert_eq!(second.len(), 3, "user, assistant, user: {second:?}");
    assert!(second[0].contains("favourite colour is blue"));
    assert!(second[1].contains("answer 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_with_deliver_posts_the_reply_to_the_telegram_chat_its_session_names() {
    let stack = spawn_stack(
        Arc::new(|_, _: &Value| Reply::text("the nightly build is green")),
        StackOptions {
            docker: false,
            gateway_token: Some("hook-token-0123456789abcdef".into()),
            ..Default::default()
        },
    )
    .await;

    let accepted = stack
        .http
        .post(format!("{}/hooks/agent", stack.base_url))
        .bearer_auth("hook-token-0123456789abcdef")
        .json(&json!({"message": "summarise the nightly build",
                      "sessionKey": "agent:main:telegram:dm:12345", "deliver": true}))
        .send()
        .await
        .unwrap()
        .status();
    let delivered = stack
        .wait_for(Duration::from_secs(60), |f| !f.sent_messages().is_empty())
        .await;

    assert_eq!(accepted, 202);
    assert!(
        delivered,
        "no reply; clawgate up said:\n{}",
        stack.log_text()
    );
    let sent = stack.fakes.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["chat_id"], 12345);
    assert_eq!(sent[0].body["text"], "the nightly build is green");
    let asked = &stack.fakes.model_calls()[0].body["messages"];
    assert_eq!(
        asked[0]["content"][0]["text"],
        "summarise the nightly build"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clawgate_chat_sends_through_the_running_stack_and_prints_the_reply() {
    let stack = spawn_stack(
        Arc::new(|_, _: &Value| Reply::text("hello from the model")),
        StackOptions {
            docker: false,
            gateway_token: Some("chat-token-0123456789abcdef".into()),
            ..Default::default()
        },
    )
    .await;

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .arg("--config")
        .arg(&stack.config_path)
        .args(["chat", "hi there", "--timeout", "60", "--url"])
        .arg(&stack.base_url)
        .env_remove("CLAWGATE_GATEWAY_TOKEN")
        .output()
        .await
        .unwrap();

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the model\n"
    );
    let calls = stack.fakes.model_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].body["messages"][0]["content"][0]["text"],
        "hi there"
    );
}

/// The last user text of a model request (Anthropic's wire format).
fn last_user_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| m["content"].to_string())
        .unwrap_or_default()
}

/// Five messages from one chat in a burst, a model that takes a second: every message is
/// answered, one turn at a time, in the order sent.
async fn burst_scenario(backend: Backend) {
    let stack = spawn_stack(
        Arc::new(|_, body: &Value| {
            let asked = last_user_text(body);
            let n = asked
                .split("burst-")
                .nth(1)
                .and_then(|rest| rest.chars().next())
                .unwrap_or('?');
            Reply::text(&format!("answer {n}")).after(Duration::from_millis(800))
        }),
        StackOptions {
            backend,
            docker: false,
            gateway_token: None,
            ..Default::default()
        },
    )
    .await;

    // Back to back, as a user types: all five are queued before the first answer is ready.
    let mut statuses = Vec::new();
    for i in 1..=5 {
        statuses.push(
            stack
                .post_telegram(&stack::telegram_dm_from(
                    stack::BURST_USER,
                    9100 + i,
                    &format!("burst-{i}"),
                ))
                .await,
        );
    }
    let answered = stack
        .wait_for(Duration::from_secs(120), |f| f.sent_messages().len() >= 5)
        .await;

    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(answered, "{}", stack.log_text());
    let texts: Vec<String> = stack
        .fakes
        .sent_messages()
        .iter()
        .map(|m| m.body["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        texts,
        ["answer 1", "answer 2", "answer 3", "answer 4", "answer 5"],
        "in the order sent"
    );
    // One turn at a time: each call saw every earlier answer, and none started before the
    // previous one returned.
    let calls = stack.fakes.model_calls();
    assert_eq!(calls.len(), 5);
    for (i, call) in calls.iter().enumerate() {
        let history = call.body["messages"].as_array().unwrap().len();
        assert_eq!(history, 2 * i + 1, "call {i} saw {history} messages");
    }
    for pair in calls.windows(2) {
        assert!(
            pair[1].at.duration_since(pair[0].at) >= Duration::from_millis(750),
            "two turns of one chat overlapped"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_one_chat_is_answered_in_order_one_turn_at_a_time_on_the_cloud_queue() {
    burst_scenario(Backend::from_env()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_one_chat_is_answered_in_order_one_turn_at_a_time_on_sqlite() {
    burst_scenario(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_public_url_a_dm_is_long_polled_and_a_crash_before_confirming_answers_once() {
    // Arrange: no webhookSecret, so `clawgate up` long-polls the fake Bot API; the fake keeps
    // every update unconfirmed, as if the process died before asking for the next offset.
    let mut stack = spawn_stack(
        Arc::new(|_, body: &Value| {
            let asked = body["messages"].to_string();
            Reply::text(if asked.contains("still there?") {
                "second"
            } else {
                "first"
            })
        }),
        StackOptions {
            backend: Backend::Sqlite,
            docker: false,
            telegram_polling: true,
            ..Default::default()
        },
    )
    .await;
    stack.fakes.hold_confirmations(true);

    // Act: one DM, answered; then a crash and a restart, which polls the same update again.
    stack
        .fakes
        .push_telegram_update(telegram_dm(9101, "hello without a URL"));
    let answered = stack
        .wait_for(Duration::from_secs(60), |f| !f.sent_messages().is_empty())
        .await;
    stack.kill();
    let polls_before = stack.fakes.telegram_polls();
    stack.start();
    let polled_again = stack
        .wait_for(Duration::from_secs(30), |f| {
            f.telegram_polls() > polls_before + 1
        })
        .await;
    stack.fakes.hold_confirmations(false);
    stack
        .fakes
        .push_telegram_update(telegram_dm(9102, "still there?"));
    let second = stack
        .wait_for(Duration::from_secs(60), |f| f.sent_messages().len() >= 2)
        .await;

    // Assert: both answered, the redelivered update not again.
    assert!(answered && polled_again && second, "{}", stack.log_text());
    let texts: Vec<Value> = stack
        .fakes
        .sent_messages()
        .iter()
        .map(|c| c.body["text"].clone())
        .collect();
    assert_eq!(texts, [json!("first"), json!("second")]);
    assert!(stack
        .log_text()
        .contains("long polling, no public URL needed"));
    assert!(
        stack.fakes.calls("/getWebhookInfo").len() >= 2,
        "checked at each start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_public_url_a_slack_mention_comes_over_socket_mode_and_is_acknowledged_once_queued()
{
    let stack = spawn_stack(
        Arc::new(|_, _: &Value| Reply::text("over the socket")),
        StackOptions {
            backend: Backend::Sqlite,
            docker: false,
            slack_socket: true,
            ..Default::default()
        },
    )
    .await;
    let mention = json!({"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": "EvSOCKET01", "event_time": 1700000300,
        "event": {"type": "app_mention", "user": "U2147483697", "text": "<@U0LAN0Z89> hi",
                  "ts": "1700000300.000100", "channel": "C024BE91L", "event_ts": "1700000300.000100"}});

    stack.fakes.push_socket_event("env-1", mention);
    let answered = stack
        .wait_for(Duration::from_secs(60), |f| !f.slack_posts().is_empty())
        .await;

    assert!(answered, "{}", stack.log_text());
    assert_eq!(stack.fakes.slack_posts()[0].body["text"], "over the socket");
    assert_eq!(stack.fakes.socket_acks(), ["env-1"]);
    assert!(stack
        .log_text()
        .contains("Slack: Socket Mode, no public URL needed"));
}
