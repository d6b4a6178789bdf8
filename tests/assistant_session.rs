//! The assistant's session layer end to end, through the real `clawgate up` and a fake model:
//! - `bindings`: a Slack channel routed to a second agent with its own workspace and persona;
//!   `agents list` and `sandbox explain` name the binding;
//! - `/think` and `/model` changing the next request, and a guest session refused both;
//! - memory: a note written in one session found by `memory_search` in another; the silent
//!   memory flush before a compaction by tokens (and before `/compact`), which never reaches
//!   the transcript or the user; memory tools absent from a guest session;
//! - the same memory found by a second `clawgate up` process, sharing only the table, queue
//!   and workspace, on the AWS emulator.

#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;
#[path = "../sandbox-worker/tests/fakes/mod.rs"]
mod fakes;
mod stack;

use std::sync::Arc;
use std::time::Duration;

use fakes::{last_tool_result, Reply};
use infra::model::SessionKey;
use infra::store::TranscriptStore;
use serde_json::{json, Value};
use stack::{spawn_stack, telegram_dm, telegram_dm_from, Backend, Stack, StackOptions, BURST_USER};

const WAIT: Duration = Duration::from_secs(60);

/// The latest text a user message of an Anthropic request carries (consecutive user entries
/// share one message, so it is that message's last text block).
fn last_user_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .filter(|m| m["role"] == "user")
        .find_map(|m| {
            m["content"]
                .as_array()?
                .iter()
                .rev()
                .find(|b| b["type"] == "text")?["text"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn tool_names(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn slack_mention(event_id: &str, text: &str) -> Value {
    json!({"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": event_id, "event_time": 1700000300,
        "event": {"type": "app_mention", "user": "U2147483697", "text": text,
                  "ts": "1700000300.000100", "channel": "C024BE91L", "event_ts": "1700000300.000100"}})
}

async fn say(stack: &Stack, update_id: i64, text: &str) {
    let before = stack.fakes.sent_messages().len();
    assert_eq!(
        stack.post_telegram(&telegram_dm(update_id, text)).await,
        200
    );
    assert!(
        stack
            .wait_for(WAIT, |f| f.sent_messages().len() > before)
            .await,
        "no reply to {text:?}:\n{}",
        stack.log_text()
    );
}

/// A DM from the second approved sender (a session of its own); returns the reply to it.
async fn ask_as_second_user(stack: &Stack, update_id: i64, text: &str) -> String {
    let update = telegram_dm_from(BURST_USER, update_id, text);
    assert_eq!(stack.post_telegram(&update).await, 200);
    let to_them = |f: &fakes::Fakes| {
        f.sent_messages()
            .into_iter()
            .find(|m| m.body["chat_id"] == BURST_USER)
    };
    assert!(
        stack.wait_for(WAIT, |f| to_them(f).is_some()).await,
        "{}",
        stack.log_text()
    );
    let reply = to_them(&stack.fakes).unwrap();
    reply.body["text"].as_str().unwrap_or("").to_string()
}

fn last_sent(stack: &Stack) -> String {
    let sent = stack.fakes.sent_messages();
    sent.last().unwrap().body["text"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_routes_a_slack_channel_to_a_second_agent_with_its_own_workspace() {
    let ops_ws = tempfile::tempdir().unwrap();
    std::fs::write(
        ops_ws.path().join("SOUL.md"),
        "I am Ops, the on-call helper.",
    )
    .unwrap();
    let stack = spawn_stack(
        Arc::new(|_, _: &Value| Reply::text("on it")),
        StackOptions {
            backend: Backend::Sqlite,
            docker: false,
            agents_extra: format!(
                r#"list: [{{ id: "main", default: true }}, {{ id: "ops", workspace: "{}" }}],"#,
                ops_ws.path().display()
            ),
            extra: r#"bindings: [{ agentId: "ops", match: { channel: "slack", peer: { kind: "channel", id: "C024BE91L" } } }],"#.into(),
            ..StackOptions::default()
        },
    )
    .await;
    std::fs::create_dir_all(&stack.workspace).unwrap();
    std::fs::write(stack.workspace.join("SOUL.md"), "I am Main.").unwrap();

    assert_eq!(
        stack
            .post_slack(&slack_mention("EvBIND01", "<@U0LAN0Z89> disk full?"))
            .await,
        200
    );
    assert!(
        stack.wait_for(WAIT, |f| f.slack_posts().len() == 1).await,
        "{}",
        stack.log_text()
    );
    say(&stack, 8101, "hello").await;
    let agents: Value = serde_json::from_str(&stack.cli(&["agents", "list", "--json"])).unwrap();
    let explained = stack.cli(&[
        "sandbox",
        "explain",
        "--session",
        "agent:ops:slack:channel:C024BE91L:thread:1700000300.000100",
    ]);

    let calls = stack.fakes.model_calls();
    let (channel, dm) = (&calls[0].body, &calls[1].body);
    let system = |b: &Value| b["system"].as_str().unwrap().to_string();
    assert!(
        system(channel).starts_with("You are a personal assistant (ops), answering through slack."),
        "{}",
        system(channel)
    );
    assert!(
        system(channel).contains("I am Ops, the on-call helper.")
            && !system(channel).contains("I am Main.")
    );
    assert!(
        system(dm).starts_with("You are a personal assistant (main)")
            && system(dm).contains("I am Main.")
    );
    assert!(!system(dm).contains("I am Ops"));
    for owner_only in ["memory_search", "memory_get", "cron"] {
        assert!(
            !tool_names(channel).contains(&owner_only.to_string()),
            "{owner_only} is not offered to a group"
        );
        assert!(
            tool_names(dm).contains(&owner_only.to_string()),
            "{owner_only} in the owner's DM"
        );
    }
    let ops = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "ops")
        .unwrap();
    assert_eq!(
        ops["routes"][0],
        "bindings[0] channel=slack peer=channel:C024BE91L"
    );
    assert!(
        explained
            .contains("routed by:  bindings[0] (peer match: channel=slack peer=channel:C024BE91L)"),
        "{explained}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn think_and_model_change_the_next_request_and_a_guest_can_change_neither() {
    let stack = spawn_stack(
        Arc::new(|_, _: &Value| Reply::text("thought about it")),
        StackOptions {
            backend: Backend::Sqlite,
            docker: false,
            ..StackOptions::default()
        },
    )
    .await;

    say(&stack, 8201, "/think high").await;
    let think_answer = last_sent(&stack);
    say(&stack, 8202, "/model anthropic/claude-other").await;
    let model_answer = last_sent(&stack);
    say(&stack, 8203, "/model openai/gpt-nowhere").await;
    let unreachable = last_sent(&stack);
    say(&stack, 8204, "hello").await;
    say(&stack, 8205, "/status").await;
    let status = last_sent(&stack);
    // A Slack channel is a guest session: everyone in it can write to the agent.
    let mention = slack_mention(
        "EvMODEL01",
        "<@U0LAN0Z89> /model anthropic/claude-expensive",
    );
    assert_eq!(stack.post_slack(&mention).await, 200);
    assert!(
        stack.wait_for(WAIT, |f| f.slack_posts().len() == 1).await,
        "{}",
        stack.log_text()
    );
    let guest_answer = stack.fakes.slack_posts()[0].body["text"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let store = stack.sqlite_store();
    let channel: SessionKey = "agent:main:slack:channel:C024BE91L:thread:1700000300.000100"
        .parse()
        .unwrap();
    let guest = store.get_session(&channel).await.unwrap();

    assert_eq!(think_answer, "Thinking: high. The next message uses it.");
    assert_eq!(
        model_answer,
        "Model for this session: anthropic/claude-other. The next message uses it."
    );
    assert!(
        unreachable.starts_with("No model \"openai/gpt-nowhere\" can be reached"),
        "{unreachable}"
    );
    let calls = stack.fakes.model_calls();
    assert_eq!(calls.len(), 1, "commands never reach the model");
    let request = &calls[0].body;
    assert_eq!(request["model"], "claude-other");
    assert_eq!(
        request["thinking"],
        json!({"type": "enabled", "budget_tokens": 32000})
    );
    assert_eq!(request["max_tokens"], 4096 + 32000);
    assert!(
        status.contains("Model: anthropic/claude-other") && status.contains("Thinking: high"),
        "{status}"
    );
    assert!(
        guest_answer.starts_with("Only the owner can change this"),
        "{guest_answer}"
    );
    assert!(
        guest.as_ref().is_none_or(|g| g.options.is_default()),
        "{guest:?}"
    );
}

/// The fake model of the memory scenario (see the test).
fn memory_model(_: usize, body: &Value) -> Reply {
    let id = || format!("toolu_{}", ulid::Ulid::new());
    let system = body["system"].as_str().unwrap_or("");
    if system.starts_with("Summarise") {
        return Reply::text("Summary: the user chatted.");
    }
    let asked = last_user_text(body);
    let today = chrono::Utc::now().date_naive();
    match (asked.as_str(), last_tool_result(body)) {
        (a, None) if a.starts_with("Pre-compaction memory flush") => Reply::tool_use(
            &id(),
            "write",
            json!({"path": format!("memory/{today}.md"), "content": "Flushed: the cat is called Tom.\n"}),
        ),
        (a, Some(_)) if a.starts_with("Pre-compaction memory flush") => Reply::text("NO_REPLY"),
        ("remember the door code is 4711", None) => Reply::tool_use(
            &id(),
            "write",
            json!({"path": "memory/notes.md", "content": "The garage door code is 4711.\n"}),
        ),
        ("what is the door code?", None) => {
            Reply::tool_use(&id(), "memory_search", json!({"query": "door code"}))
        }
        ("what is the door code?", Some(found)) => Reply::text(&format!("From memory: {found}")),
        // A big context: the provider counts 5000 prompt tokens for this answer.
        ("big", _) => Reply::ok(json!({
            "id": "msg_big", "type": "message", "role": "assistant", "model": "fake",
            "content": [{"type": "text", "text": "that was a lot"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 5000, "output_tokens": 10}
        })),
        _ => Reply::text("ok"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_written_flushed_before_compaction_and_found_from_another_session() {
    let stack = spawn_stack(
        Arc::new(memory_model),
        StackOptions {
            backend: Backend::Sqlite,
            docker: false,
            // Compaction at 1000 tokens: the "big" answer's 5000 pass it.
            defaults_extra: "contextTokens: 2000, compaction: { reserveTokensFloor: 1000 },",
            ..StackOptions::default()
        },
    )
    .await;

    say(&stack, 8301, "remember the door code is 4711").await;
    for (i, text) in ["one", "two", "three", "four", "five", "big"]
        .iter()
        .enumerate()
    {
        say(&stack, 8302 + i as i64, text).await;
    }
    let before_compaction = stack.fakes.model_calls().len();
    say(&stack, 8310, "after big").await;
    let replies_after_big = last_sent(&stack);
    say(&stack, 8311, "/compact").await;
    let compacted = last_sent(&stack);
    // Another session: a second approved sender's DM.
    let second_user_answer = ask_as_second_user(&stack, 8312, "what is the door code?").await;

    let calls = stack.fakes.model_calls();
    let kinds: Vec<String> = calls[before_compaction..]
        .iter()
        .map(|c| {
            let system = c.body["system"].as_str().unwrap_or("");
            if system.starts_with("Summarise") {
                "summary".to_string()
            } else if last_tool_result(&c.body).is_some() {
                "after-tool".to_string()
            } else if last_user_text(&c.body).starts_with("Pre-compaction memory flush") {
                "flush".to_string()
            } else {
                format!("answer:{}", last_user_text(&c.body))
            }
        })
        .collect();
    assert_eq!(
        &kinds[..4],
        ["flush", "after-tool", "summary", "answer:after big"],
        "the flush (a write, then NO_REPLY) comes right before the summary"
    );
    assert_eq!(
        &kinds[4..7],
        ["flush", "after-tool", "summary"],
        "/compact flushes once too"
    );
    assert_eq!(replies_after_big, "ok");
    assert!(
        compacted.starts_with("Compacted: the conversation up to entry"),
        "{compacted}"
    );
    let today = chrono::Utc::now().date_naive();
    let flushed =
        std::fs::read_to_string(stack.workspace.join(format!("memory/{today}.md"))).unwrap();
    assert!(flushed.contains("the cat is called Tom"));
    let store = stack.sqlite_store();
    let owner_dm = SessionKey::dm("main", infra::model::Channel::Telegram, "12345");
    let history =
        serde_json::to_string(&store.load_transcript_from(&owner_dm, 0).await.unwrap()).unwrap();
    assert!(
        !history.contains("Pre-compaction") && !history.contains("NO_REPLY"),
        "the flush stays out of the transcript"
    );
    assert!(stack
        .fakes
        .sent_messages()
        .iter()
        .all(|m| m.body["text"] != "NO_REPLY"));
    let text = second_user_answer;
    assert!(
        text.starts_with("From memory:")
            && text.contains("4711")
            && text.contains("memory/notes.md"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_finds_the_memory_the_first_wrote_on_the_emulator() {
    if Backend::from_env() != Backend::Emulator {
        eprintln!("skipped: needs the AWS emulator (AWS_ENDPOINT_URL)");
        return;
    }
    let mut stack = spawn_stack(
        Arc::new(memory_model),
        StackOptions {
            backend: Backend::Emulator,
            docker: false,
            ..StackOptions::default()
        },
    )
    .await;
    say(&stack, 8401, "remember the door code is 4711").await;

    // Instance two: its own process and state directory; only the table, the queue and the
    // workspace (EFS on AWS) are shared.
    stack.stop();
    stack.state_dir = stack.state_dir.with_file_name("state-instance-2");
    stack.start();
    let answer = ask_as_second_user(&stack, 8402, "what is the door code?").await;

    assert!(
        answer.contains("4711") && answer.contains("memory/notes.md"),
        "{answer}"
    );
}
