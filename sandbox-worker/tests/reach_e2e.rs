//! The assistant's reach end to end (issue 18): the worker in-process on SQLite with the model,
//! the channels, a web site, a search API and an MCP server faked on loopback. Each case also
//! checks that a guest session (a Slack channel) is not offered what the owner is.

mod fakes;
mod inprocess;

use std::sync::Arc;
use std::time::Duration;

use fakes::{last_tool_result, Fakes, Reply};
use infra::model::SessionKey;
use infra::queue::JobQueueExt;
use inprocess::{host_config, slack_job, start_worker, telegram_job, InProcess};
use serde_json::{json, Value};

/// The owner's Telegram DM (event `owner`), answered, then a Slack channel's message (a guest
/// session, event `guest`), answered; then the worker stops. Whether both were answered.
async fn owner_then_guest(worker: InProcess, fakes: &Fakes, owner: &str, guest: &str) -> bool {
    worker
        .backends
        .queue
        .send(&telegram_job(owner))
        .await
        .unwrap();
    let owner_answered = fakes
        .wait_for(Duration::from_secs(30), |f| !f.sent_messages().is_empty())
        .await;
    worker.backends.queue.send(&slack_job(guest)).await.unwrap();
    let guest_answered = fakes
        .wait_for(Duration::from_secs(30), |f| !f.slack_posts().is_empty())
        .await;
    worker.shutdown().await;
    owner_answered && guest_answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_s_model_searches_and_reads_a_page_and_a_channel_is_offered_neither() {
    let site = {
        let app = axum::Router::new().route(
            "/news",
            axum::routing::get(|| async {
                axum::response::Html("<h1>Launch</h1><p>It flew.</p><script>x()</script>")
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    };
    let search_api = fakes::search::FakeSearch::start(true).await;
    let asked = format!("http://{site}/news");
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(move |_, body: &Value| {
        let offered = |name: &str| {
            body["tools"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["name"] == name))
        };
        match last_tool_result(body) {
            Some(result) if result.contains("launch result 1](https://example.com/1)") => {
                Reply::tool_use("toolu_web", "web_fetch", json!({"url": asked}))
            }
            Some(result) if result.contains("# Launch") && result.contains("It flew.") => {
                Reply::text("read it")
            }
            Some(result) => Reply::text(&format!("unexpected: {result}")),
            None if offered("web_search") && offered("web_fetch") => {
                Reply::tool_use("toolu_search", "web_search", json!({"query": "launch"}))
            }
            None if offered("web_search") || offered("web_fetch") => Reply::text("half the web"),
            None => Reply::text("no web here"),
        }
    }))
    .await;
    let extra = format!(
        r#"tools: {{ web: {{ search: {{ searxng: {{ baseUrl: "{}" }} }} }} }}"#,
        search_api.base_url
    );
    let config = host_config(&fakes, dir.path(), &extra);
    // The loopback exception is the tests' alone: a worker setting, not a config key.
    let worker = start_worker(&config, dir.path(), |s| s.web_allow_loopback = true).await;

    let answered = owner_then_guest(worker, &fakes, "7300", "Ev0WEBGUEST").await;

    assert!(answered);
    assert_eq!(fakes.sent_messages()[0].body["text"], "read it");
    assert_eq!(search_api.queries(), [("searxng".into(), "launch".into())]);
    assert_eq!(
        fakes.slack_posts()[0].body["text"],
        "no web here",
        "a channel (a guest session) is offered neither web tool"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_skill_is_listed_for_the_owner_and_its_instructions_reach_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("ws/skills/weather");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("SKILL.md"),
        "---\nname: weather\ndescription: Look up the forecast for a city\n---\n\nUse wttr.in and answer in one line.\n",
    )
    .unwrap();
    let fakes = Fakes::start(Arc::new(|_, body: &Value| {
        let listed = body["system"].as_str().is_some_and(|s| {
            s.contains(
                "<name>weather</name><description>Look up the forecast for a city</description>",
            )
        });
        match last_tool_result(body) {
            Some(result) if result.contains("Use wttr.in and answer in one line.") => {
                Reply::text("loaded the skill")
            }
            Some(result) => Reply::text(&format!("unexpected: {result}")),
            None if listed => Reply::tool_use("toolu_skill", "skill", json!({"name": "weather"})),
            None => Reply::text("no skills here"),
        }
    }))
    .await;
    let worker = start_worker(&host_config(&fakes, dir.path(), ""), dir.path(), |_| {}).await;

    let answered = owner_then_guest(worker, &fakes, "7400", "Ev0SKILLGUEST").await;

    assert!(answered);
    assert_eq!(fakes.sent_messages()[0].body["text"], "loaded the skill");
    assert_eq!(
        fakes.slack_posts()[0].body["text"],
        "no skills here",
        "a channel (a guest session) is not shown the owner's skills"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_sub_agent_s_answer_is_announced_in_the_session_that_spawned_it() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, body: &Value| {
        let last = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .map(|m| m.to_string())
            .unwrap_or_default();
        let first = body["messages"][0].to_string();
        match last_tool_result(body) {
            Some(result) if result.contains("\"accepted\"") => Reply::text("spawned"),
            Some(result) => Reply::text(&format!("unexpected: {result}")),
            None if first.contains("via sessions_spawn") => Reply::text("the answer is 42"),
            None if last.contains("has finished") && last.contains("the answer is 42") => {
                Reply::text("your sub-agent says 42")
            }
            None => Reply::tool_use(
                "toolu_spawn",
                "sessions_spawn",
                json!({"task": "work out 6 × 7", "label": "math"}),
            ),
        }
    }))
    .await;
    let worker = start_worker(&host_config(&fakes, dir.path(), ""), dir.path(), |_| {}).await;

    worker
        .backends
        .queue
        .send(&telegram_job("7500"))
        .await
        .unwrap();
    let both = fakes
        .wait_for(Duration::from_secs(30), |f| f.sent_messages().len() >= 2)
        .await;
    let sessions = worker
        .backends
        .store
        .list_sessions("main", 20)
        .await
        .unwrap();
    worker.shutdown().await;

    assert!(both, "{:?}", fakes.sent_messages());
    let texts: Vec<Value> = fakes
        .sent_messages()
        .iter()
        .map(|c| c.body["text"].clone())
        .collect();
    assert_eq!(texts, [json!("spawned"), json!("your sub-agent says 42")]);
    let requester: SessionKey = "agent:main:telegram:dm:12345".parse().unwrap();
    let children: Vec<&SessionKey> = sessions
        .iter()
        .map(|s| &s.key)
        .filter(|k| k.to_string().starts_with("agent:main:subagent:"))
        .collect();
    assert_eq!(children.len(), 1, "{sessions:?}");
    assert!(children[0].spawned_by(&requester));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_s_model_calls_an_mcp_tool_and_its_result_reaches_the_model() {
    let server = fakes::mcp::FakeMcp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, body: &Value| {
        let offered = body["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "mcp__calc__add"));
        match last_tool_result(body) {
            Some(result) if result.contains("source=mcp:calc>>>\n42\n") => {
                Reply::text("the sum is 42")
            }
            Some(result) => Reply::text(&format!("unexpected: {result}")),
            None if offered => {
                Reply::tool_use("toolu_mcp", "mcp__calc__add", json!({"a": 20, "b": 22}))
            }
            None => Reply::text("no MCP here"),
        }
    }))
    .await;
    let extra = format!(
        r#"mcp: {{ servers: {{ calc: {{ url: "{}" }} }} }}"#,
        server.url
    );
    let config = host_config(&fakes, dir.path(), &extra);
    let worker = start_worker(&config, dir.path(), |s| s.web_allow_loopback = true).await;

    let answered = owner_then_guest(worker, &fakes, "7600", "Ev0MCPGUEST").await;

    assert!(answered);
    assert_eq!(fakes.sent_messages()[0].body["text"], "the sum is 42");
    assert_eq!(
        server.calls(),
        [("add".to_string(), json!({"a": 20, "b": 22}))]
    );
    assert_eq!(
        fakes.slack_posts()[0].body["text"],
        "no MCP here",
        "a channel (a guest session) is not offered the owner's MCP tools"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_send_with_a_timeout_returns_the_other_session_s_answer() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, body: &Value| {
        let first = body["messages"][0].to_string();
        match last_tool_result(body) {
            Some(result)
                if result.contains("\"answered\"") && result.contains("pong from main") =>
            {
                Reply::text("main says pong")
            }
            Some(result) => Reply::text(&format!("unexpected: {result}")),
            None if first.contains("via sessions_send") => Reply::text("pong from main"),
            None => Reply::tool_use(
                "toolu_send",
                "sessions_send",
                json!({"sessionKey": "agent:main:main", "message": "ping", "timeoutSeconds": 20}),
            ),
        }
    }))
    .await;
    let worker = start_worker(&host_config(&fakes, dir.path(), ""), dir.path(), |_| {}).await;

    worker
        .backends
        .queue
        .send(&telegram_job("7700"))
        .await
        .unwrap();
    let answered = fakes
        .wait_for(Duration::from_secs(30), |f| !f.sent_messages().is_empty())
        .await;
    worker.shutdown().await;

    assert!(answered);
    assert_eq!(fakes.sent_messages()[0].body["text"], "main says pong");
}
