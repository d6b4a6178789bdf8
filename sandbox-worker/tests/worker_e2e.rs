//! The worker end to end: a real queue and store (SQLite files), real Docker for tool calls,
//! the worker in-process or as its own binary, and fake Telegram, Slack and Anthropic APIs that
//! record every call.

mod common;
mod fakes;
mod inprocess;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use infra::config::Config;
use infra::model::{EntryBody, JobMessage, JobStatus};
use infra::queue::sqlite::SqliteQueue;
use infra::queue::{JobQueue, JobQueueExt};
use infra::setup::open_backends;
use sandbox_worker::worker::work_id;
use serde_json::{json, Value};

use fakes::{last_tool_result, Fakes, Reply, Script};
use inprocess::{config_text, host_config, slack_job, start_worker, telegram_job, InProcess};

fn docker_sandbox(sb: &common::Sandbox) -> String {
    format!(
        r#"mode: "all", scope: "session", workspaceAccess: "rw", workspaceRoot: "{}", docker: {{ image: "{}", containerPrefix: "{}" }}"#,
        sb.dir.path().join("sbx").display(),
        common::TEST_IMAGE,
        sb.prefix
    )
}

/// Calls a tool first, then answers with the tool's output.
fn tool_then_answer(command: &'static str) -> Script {
    Arc::new(move |_, body: &Value| match last_tool_result(body) {
        Some(output) => {
            let report: Value = serde_json::from_str(&output).unwrap_or(json!({"stdout": output}));
            Reply::text(&format!(
                "Done: {}",
                report["stdout"].as_str().unwrap_or("").trim()
            ))
        }
        None => Reply::tool_use(
            &format!("toolu_{}", ulid::Ulid::new()),
            "exec",
            json!({"command": command}),
        ),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telegram_dm_is_answered_in_its_chat_after_a_tool_call_in_docker() {
    if !common::docker_available() {
        return;
    }
    let sb = common::Sandbox::new();
    let fakes = Fakes::start(tool_then_answer(
        "echo hello from uid $(id -u) > hello.txt; cat hello.txt",
    ))
    .await;
    let config = Config::parse(&config_text(
        &fakes,
        &sb.workspace(),
        &docker_sandbox(&sb),
        "",
    ))
    .unwrap();
    let worker = start_worker(&config, sb.dir.path(), |_| {}).await;
    let job = telegram_job("1001");

    worker.backends.queue.send(&job).await.unwrap();
    let answered = fakes
        .wait_for(Duration::from_secs(60), |f| !f.sent_messages().is_empty())
        .await;
    let record = worker.backends.store.get_job(work_id(&job)).await.unwrap();
    worker.shutdown().await;

    assert!(
        answered,
        "no reply; model calls: {:?}",
        fakes.model_calls().len()
    );
    let sent = fakes.sent_messages();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].path.starts_with("/bot123456:TESTTOKEN/sendMessage"));
    assert_eq!(sent[0].body["chat_id"], 12345);
    assert_eq!(sent[0].body["reply_parameters"]["message_id"], 77);
    assert_eq!(
        sent[0].body["text"], "Done: hello from uid 1000",
        "uid 1000 means it ran in the container"
    );
    assert_eq!(
        std::fs::read_to_string(sb.workspace().join("hello.txt")).unwrap(),
        "hello from uid 1000\n"
    );
    let calls = fakes.model_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].auth.as_deref(), Some("sk-ant-test-key"));
    assert!(calls[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "exec"));
    assert_eq!(record.unwrap().status, JobStatus::Done);
    assert!(
        !fakes.calls("sendChatAction").is_empty(),
        "typing was shown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_thread_message_is_answered_in_the_thread() {
    if !common::docker_available() {
        return;
    }
    let sb = common::Sandbox::new();
    let fakes = Fakes::start(tool_then_answer("echo in-container; id -u")).await;
    let config = Config::parse(&config_text(
        &fakes,
        &sb.workspace(),
        &docker_sandbox(&sb),
        "",
    ))
    .unwrap();
    let worker = start_worker(&config, sb.dir.path(), |_| {}).await;

    worker.backends.queue.send(&slack_job("Ev1")).await.unwrap();
    let answered = fakes
        .wait_for(Duration::from_secs(60), |f| !f.slack_posts().is_empty())
        .await;
    worker.shutdown().await;

    assert!(answered);
    let post = &fakes.slack_posts()[0];
    assert_eq!(post.auth.as_deref(), Some("Bearer xoxb-test-token"));
    assert_eq!(post.body["channel"], "C024BE91L");
    assert_eq!(post.body["thread_ts"], "1700000000.000100");
    assert_eq!(post.body["text"], "Done: in-container\n1000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_delivered_twice_gets_one_reply() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, _: &Value| Reply::text("hi there"))).await;
    let config = host_config(&fakes, dir.path(), "");
    let worker = start_worker(&config, dir.path(), |_| {}).await;
    let first = telegram_job("2002");
    // A channel retry after the queue's dedup window: a new job for the same event.
    let mut retry = telegram_job("2002");
    retry.job_id = ulid::Ulid::new().to_string();

    worker.backends.queue.send(&first).await.unwrap();
    assert!(
        fakes
            .wait_for(Duration::from_secs(20), |f| f.sent_messages().len() == 1)
            .await
    );
    worker
        .backends
        .queue
        .send_raw(
            &retry.encode().unwrap(),
            "agent:main:telegram:dm:12345",
            "after-the-window",
        )
        .await
        .unwrap();
    // Let the retry be received and handled.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let left = worker
        .backends
        .queue
        .receive(10, Duration::ZERO)
        .await
        .unwrap();
    worker.shutdown().await;

    assert_eq!(fakes.sent_messages().len(), 1, "one reply only");
    assert_eq!(
        fakes.model_calls().len(),
        1,
        "the model was not asked twice"
    );
    assert!(
        left.is_empty(),
        "the duplicate was acked, not left to come back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_answers_429_then_succeeds_is_waited_for_as_advised() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|n, _: &Value| {
        if n == 1 {
            Reply::error(429, "Number of requests has exceeded your rate limit")
                .header("retry-after", "1")
        } else {
            Reply::text("sorry for the wait")
        }
    }))
    .await;
    let config = host_config(&fakes, dir.path(), "");
    let worker = start_worker(&config, dir.path(), |_| {}).await;

    worker
        .backends
        .queue
        .send(&telegram_job("3003"))
        .await
        .unwrap();
    let answered = fakes
        .wait_for(Duration::from_secs(20), |f| f.sent_messages().len() == 1)
        .await;
    worker.shutdown().await;

    assert!(answered);
    let calls = fakes.model_calls();
    assert_eq!(calls.len(), 2);
    let waited = calls[1].at - calls[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}, not the advised 1 s"
    );
    assert_eq!(fakes.sent_messages()[0].body["text"], "sorry for the wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_always_fails_gets_the_user_a_short_error_and_a_failed_record() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, _: &Value| Reply::error(500, "overloaded"))).await;
    let config = host_config(&fakes, dir.path(), "");
    let worker = start_worker(&config, dir.path(), |_| {}).await;
    let job = telegram_job("4004");

    worker.backends.queue.send(&job).await.unwrap();
    let answered = fakes
        .wait_for(Duration::from_secs(20), |f| f.sent_messages().len() == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let record = worker
        .backends
        .store
        .get_job(work_id(&job))
        .await
        .unwrap()
        .unwrap();
    let left = worker
        .backends
        .queue
        .receive(10, Duration::from_secs(3))
        .await
        .unwrap();
    worker.shutdown().await;

    assert!(answered);
    let text = fakes.sent_messages()[0].body["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("couldn't get an answer from the model"),
        "{text}"
    );
    assert!(!text.contains("sk-ant"), "no secret in the reply");
    assert_eq!(
        fakes.model_calls().len(),
        3,
        "the retry policy's three attempts"
    );
    assert_eq!(record.status, JobStatus::Failed);
    assert!(record.detail.unwrap().contains("500"));
    assert!(
        left.is_empty(),
        "the failed job was acked, not lost silently and not retried forever"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_job_is_dead_lettered_after_max_receives_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, _: &Value| Reply::text("ok"))).await;
    fakes.break_chat(666);
    let config = host_config(&fakes, dir.path(), "");
    let worker = start_worker(&config, dir.path(), |s| s.concurrency = 2).await;
    let mut poison = telegram_job("5005");
    poison.session_key = "agent:main:telegram:dm:666".parse().unwrap();
    if let Some(infra::model::ReplyTarget::Telegram(t)) = poison.reply_to.as_mut() {
        t.chat_id = 666;
    }

    worker.backends.queue.send(&poison).await.unwrap();
    worker.backends.queue.send(&slack_job("Ev5")).await.unwrap();
    let served = fakes
        .wait_for(Duration::from_secs(20), |f| f.slack_posts().len() == 1)
        .await;
    let dlq = SqliteQueue::open(
        &dir.path().join("queue.db"),
        infra::setup::SQLITE_DEAD_LETTER_QUEUE,
        Duration::from_secs(30),
        None,
    )
    .unwrap();
    let mut dead = Vec::new();
    for _ in 0..40 {
        dead = dlq.receive(1, Duration::from_millis(500)).await.unwrap();
        if !dead.is_empty() {
            break;
        }
    }
    worker.shutdown().await;

    assert!(served, "the healthy job was answered");
    assert_eq!(
        dead.len(),
        1,
        "the poison job reached the dead-letter queue"
    );
    assert_eq!(
        JobMessage::decode(&dead[0].body).unwrap().job_id,
        poison.job_id
    );
    let attempts = fakes.calls("sendMessage fail").len();
    assert_eq!(attempts, 3, "one attempt per receive, maxReceiveCount = 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_sender_under_pairing_gets_a_code_and_no_model_call_until_approved() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, _: &Value| Reply::text("hello, friend"))).await;
    let text = config_text(&fakes, &dir.path().join("ws"), r#"mode: "off""#, "").replace(
        r#"dmPolicy: "allowlist", allowFrom: [12345] },"#,
        r#"dmPolicy: "pairing" },"#,
    );
    let config = Config::parse(&text).unwrap();
    assert_eq!(
        config.channels.telegram.as_ref().unwrap().dm_policy,
        infra::config::DmPolicy::Pairing
    );
    let worker = start_worker(&config, dir.path(), |_| {}).await;

    worker
        .backends
        .queue
        .send(&telegram_job("6006"))
        .await
        .unwrap();
    assert!(
        fakes
            .wait_for(Duration::from_secs(20), |f| f.sent_messages().len() == 1)
            .await
    );
    let code_message = fakes.sent_messages()[0].body["text"]
        .as_str()
        .unwrap()
        .to_string();
    let pending = worker
        .backends
        .store
        .list_pairing("telegram", "default")
        .await
        .unwrap();
    let calls_before = fakes.model_calls().len();
    // What `clawgate pairing approve telegram <code>` does.
    worker
        .backends
        .store
        .approve_pairing("telegram", "default", &pending[0].code)
        .await
        .unwrap()
        .unwrap();
    worker
        .backends
        .queue
        .send(&telegram_job("6007"))
        .await
        .unwrap();
    let answered = fakes
        .wait_for(Duration::from_secs(20), |f| f.sent_messages().len() == 2)
        .await;
    worker.shutdown().await;

    assert!(code_message.contains(&pending[0].code), "{code_message}");
    assert!(code_message.contains("clawgate pairing approve telegram"));
    assert_eq!(pending[0].peer, "12345");
    assert_eq!(calls_before, 0, "no model call for an unknown sender");
    assert!(answered);
    assert_eq!(fakes.sent_messages()[1].body["text"], "hello, friend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlist_answers_listed_senders_and_disabled_answers_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, _: &Value| Reply::text("hi"))).await;
    let text = config_text(&fakes, &dir.path().join("ws"), r#"mode: "off""#, "").replace(
        r#"dmPolicy: "allowlist", allowFrom: ["U2147483697"],"#,
        r#"dmPolicy: "disabled","#,
    );
    let config = Config::parse(&text).unwrap();
    assert_eq!(
        config.channels.slack.as_ref().unwrap().dm_policy,
        infra::config::DmPolicy::Disabled
    );
    let worker = start_worker(&config, dir.path(), |_| {}).await;
    let listed = telegram_job("11001");
    let mut stranger = telegram_job("11002");
    stranger.inbound.sender.id = "999".into();
    let mut slack_dm = slack_job("Ev11");
    slack_dm.inbound.chat.kind = infra::model::ChatKind::Dm;

    for job in [&stranger, &slack_dm, &listed] {
        worker.backends.queue.send(job).await.unwrap();
    }
    let answered = fakes
        .wait_for(Duration::from_secs(20), |f| f.sent_messages().len() == 1)
        .await;
    let mut finished = 0;
    for _ in 0..40 {
        finished = 0;
        for job in [&stranger, &slack_dm, &listed] {
            if let Some(r) = worker.backends.store.get_job(work_id(job)).await.unwrap() {
                finished += usize::from(r.status == JobStatus::Done);
            }
        }
        if finished == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.shutdown().await;

    assert!(answered);
    assert_eq!(
        finished, 3,
        "ignored messages are finished and acked, not retried"
    );
    assert_eq!(
        fakes.sent_messages().len(),
        1,
        "only the listed sender is answered"
    );
    assert_eq!(fakes.sent_messages()[0].body["chat_id"], 12345);
    assert!(fakes.slack_posts().is_empty(), "Slack DMs are disabled");
    assert_eq!(
        fakes.model_calls().len(),
        1,
        "no model call for ignored senders"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_commands_are_answered_without_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, _: &Value| Reply::text("model answer"))).await;
    let config = host_config(&fakes, dir.path(), "");
    let worker = start_worker(&config, dir.path(), |_| {}).await;
    let mut hello = telegram_job("7000");
    hello.inbound.text = "remember: blue".into();
    let mut status = telegram_job("7001");
    status.inbound.text = "/status@clawgate_bot".into();
    let mut reset = telegram_job("7002");
    reset.inbound.text = "/new".into();
    let mut after = telegram_job("7003");
    after.inbound.text = "what colour?".into();

    for (i, job) in [hello, status, reset, after].into_iter().enumerate() {
        worker.backends.queue.send(&job).await.unwrap();
        assert!(
            fakes
                .wait_for(Duration::from_secs(20), |f| f.sent_messages().len()
                    == i + 1)
                .await
        );
    }
    worker.shutdown().await;

    let texts: Vec<String> = fakes
        .sent_messages()
        .iter()
        .map(|c| c.body["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        texts[1].contains("Model: anthropic/claude-test")
            && texts[1].contains("Transcript: 2 entries"),
        "{}",
        texts[1]
    );
    assert_eq!(texts[2], "Started a new conversation.");
    let calls = fakes.model_calls();
    assert_eq!(calls.len(), 2, "commands never reach the model");
    let last_messages = calls[1].body["messages"].as_array().unwrap();
    assert_eq!(
        last_messages.len(),
        1,
        "after /new the model sees only the new message: {last_messages:?}"
    );
    assert_eq!(last_messages[0]["content"][0]["text"], "what colour?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_from_a_second_telegram_bot_is_answered_by_that_bot() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, _: &Value| Reply::text("from work"))).await;
    let text = config_text(&fakes, &dir.path().join("ws"), r#"mode: "off""#, "").replacen(
        r#"allowFrom: [12345] },"#,
        r#"allowFrom: [12345], accounts: { work: { botToken: "999:WORKTOKEN" } } },"#,
        1,
    );
    let config = Config::parse(&text).unwrap();
    let worker = start_worker(&config, dir.path(), |_| {}).await;
    let mut job = telegram_job("7100");
    job.inbound.account = "work".into();
    job.inbound.event_id = "telegram:work:7100".into();

    worker.backends.queue.send(&job).await.unwrap();
    let answered = fakes
        .wait_for(Duration::from_secs(20), |f| !f.sent_messages().is_empty())
        .await;
    worker.shutdown().await;

    assert!(answered);
    let sent = fakes.sent_messages();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].path.starts_with("/bot999:WORKTOKEN/"),
        "{}",
        sent[0].path
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_compatible_model_answers_through_the_same_worker() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, _: &Value| {
        Reply::error(500, "the anthropic fake must not be called")
    }))
    .await;
    let text = config_text(&fakes, &dir.path().join("ws"), r#"mode: "off""#, "")
        .replace("anthropic/claude-test", "openai/qwen2.5-coder")
        .replace(
            "providers: {",
            &format!(
                r#"providers: {{ openai: {{ apiKey: "sk-openai-test", baseUrl: "{}/v1" }},"#,
                fakes.base_url
            ),
        );
    let config = Config::parse(&text).unwrap();
    let worker = start_worker(&config, dir.path(), |_| {}).await;

    worker
        .backends
        .queue
        .send(&telegram_job("10010"))
        .await
        .unwrap();
    let answered = fakes
        .wait_for(Duration::from_secs(20), |f| f.sent_messages().len() == 1)
        .await;
    worker.shutdown().await;

    assert!(answered);
    let call = &fakes.calls("/v1/chat/completions")[0];
    assert_eq!(call.auth.as_deref(), Some("Bearer sk-openai-test"));
    assert_eq!(call.body["model"], "qwen2.5-coder");
    assert_eq!(call.body["messages"][0]["role"], "system");
    assert!(call.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["function"]["name"] == "exec"));
    assert_eq!(
        fakes.sent_messages()[0].body["text"],
        "echo: list the files"
    );
    assert!(fakes.model_calls().is_empty());
}

// ---- the worker as its own process: crash and shutdown ----

/// A worker process, killed however the test ends: an orphaned worker would run forever and
/// keep the test runner's output pipe open.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn id(&self) -> u32 {
        self.0.id()
    }

    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()
    }

    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_worker_binary(config: &Path, state: &Path, id: &str, drain_seconds: f64) -> WorkerProcess {
    WorkerProcess(
        Command::new(env!("CARGO_BIN_EXE_sandbox-worker"))
            .arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(state)
            .args([
                "--worker-id",
                id,
                "--drain-seconds",
                &drain_seconds.to_string(),
                "--concurrency",
                "2",
            ])
            .env("RUST_LOG", "info")
            .env_remove("ANTHROPIC_API_KEY")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(state.join(format!("{id}.log"))).unwrap())
            .spawn()
            .unwrap(),
    )
}

fn count_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_a_tool_call_is_resumed_without_rerunning_the_tool() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    // Call 1 asks for the tool; call 2 (the first after the tool) hangs so the test can kill
    // the worker there; any later call answers.
    let fakes = Fakes::start(Arc::new(|n, body: &Value| {
        match (n, last_tool_result(body)) {
            (_, None) => Reply::tool_use(
                "toolu_count",
                "exec",
                json!({"command": "echo ran >> count.txt"}),
            ),
            (2, Some(_)) => Reply::text("too late").after(Duration::from_secs(120)),
            (_, Some(_)) => Reply::text("counted"),
        }
    }))
    .await;
    let config_path = dir.path().join("clawgate.json");
    std::fs::write(&config_path, config_text(&fakes, &ws, r#"mode: "off""#, "")).unwrap();
    let config = Config::load(Some(&config_path)).unwrap().0;
    let backends = open_backends(&config, dir.path()).await.unwrap();
    let job = telegram_job("8008");
    backends.queue.send(&job).await.unwrap();

    let mut first = spawn_worker_binary(&config_path, dir.path(), "worker-a", 30.0);
    let reached = fakes
        .wait_for(Duration::from_secs(30), |f| f.model_calls().len() == 2)
        .await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert!(reached, "worker a never got past the tool call");
    assert_eq!(count_lines(&ws.join("count.txt")), 1);

    let mut second = spawn_worker_binary(&config_path, dir.path(), "worker-b", 30.0);
    let answered = fakes
        .wait_for(Duration::from_secs(30), |f| f.sent_messages().len() == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let record = backends
        .store
        .get_job(work_id(&job))
        .await
        .unwrap()
        .unwrap();
    unsafe { libc::kill(second.id() as i32, libc::SIGTERM) };
    second.wait().unwrap();

    assert!(answered, "worker b did not finish the job");
    assert_eq!(
        count_lines(&ws.join("count.txt")),
        1,
        "the finished tool call ran again"
    );
    assert_eq!(fakes.sent_messages().len(), 1);
    assert_eq!(fakes.sent_messages()[0].body["text"], "counted");
    assert_eq!(record.status, JobStatus::Done);
    assert_eq!(record.lease_owner.as_deref(), Some("worker-b"));
    assert_eq!(record.attempt, 2);
    let transcript = backends
        .store
        .load_transcript_from(&job.session_key, 0)
        .await
        .unwrap();
    let tool_results = transcript
        .iter()
        .filter(|e| matches!(e.body, EntryBody::ToolResult { .. }))
        .count();
    assert_eq!(tool_results, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_between_two_tool_calls_of_one_turn_runs_only_the_unfinished_one() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let fakes = Fakes::start(Arc::new(|_, body: &Value| match last_tool_result(body) {
        None => Reply::ok(json!({
            "id": "msg", "type": "message", "role": "assistant", "model": "fake", "stop_reason": "tool_use",
            "content": [
                {"type": "tool_use", "id": "toolu_a", "name": "exec", "input": {"command": "echo a >> a.txt"}},
                {"type": "tool_use", "id": "toolu_b", "name": "exec", "input": {"command": "echo b >> b.txt; sleep 5"}}
            ],
            "usage": {"input_tokens": 1, "output_tokens": 1}
        })),
        Some(_) => Reply::text("both done"),
    }))
    .await;
    let config_path = dir.path().join("clawgate.json");
    std::fs::write(&config_path, config_text(&fakes, &ws, r#"mode: "off""#, "")).unwrap();
    let config = Config::load(Some(&config_path)).unwrap().0;
    let backends = open_backends(&config, dir.path()).await.unwrap();
    backends.queue.send(&telegram_job("8108")).await.unwrap();

    let mut first = spawn_worker_binary(&config_path, dir.path(), "worker-a", 30.0);
    let mut reached = false;
    for _ in 0..300 {
        if count_lines(&ws.join("b.txt")) == 1 {
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(reached, "worker a never started the second call");
    let mut second = spawn_worker_binary(&config_path, dir.path(), "worker-b", 30.0);
    let answered = fakes
        .wait_for(Duration::from_secs(60), |f| f.sent_messages().len() == 1)
        .await;
    unsafe { libc::kill(second.id() as i32, libc::SIGTERM) };
    second.wait().unwrap();

    assert!(answered);
    assert_eq!(
        count_lines(&ws.join("a.txt")),
        1,
        "the finished first call ran again"
    );
    assert_eq!(
        count_lines(&ws.join("b.txt")),
        2,
        "the unfinished second call runs again"
    );
    assert_eq!(fakes.sent_messages()[0].body["text"], "both done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_job_releases_it_and_another_worker_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|n, _: &Value| {
        if n == 1 {
            Reply::text("from the first worker").after(Duration::from_secs(60))
        } else {
            Reply::text("from the second worker")
        }
    }))
    .await;
    let config_path = dir.path().join("clawgate.json");
    let text = config_text(&fakes, &dir.path().join("ws"), r#"mode: "off""#, "").replace(
        "visibilityTimeoutSeconds: 2",
        "visibilityTimeoutSeconds: 30",
    );
    std::fs::write(&config_path, text).unwrap();
    let config = Config::load(Some(&config_path)).unwrap().0;
    let backends = open_backends(&config, dir.path()).await.unwrap();
    let job = telegram_job("9009");
    backends.queue.send(&job).await.unwrap();

    let mut first = spawn_worker_binary(&config_path, dir.path(), "worker-a", 0.5);
    assert!(
        fakes
            .wait_for(Duration::from_secs(30), |f| f.model_calls().len() == 1)
            .await
    );
    let stopping = std::time::Instant::now();
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    let status = first.wait().unwrap();
    let stopped_in = stopping.elapsed();
    let mut second = spawn_worker_binary(&config_path, dir.path(), "worker-b", 30.0);
    // Visibility is 30 s: only a released message comes back this fast.
    let answered = fakes
        .wait_for(Duration::from_secs(15), |f| f.sent_messages().len() == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    unsafe { libc::kill(second.id() as i32, libc::SIGTERM) };
    second.wait().unwrap();
    let record = backends
        .store
        .get_job(work_id(&job))
        .await
        .unwrap()
        .unwrap();

    assert!(status.success(), "worker a exited with {status}");
    assert!(
        stopped_in < Duration::from_secs(5),
        "drain took {stopped_in:?}"
    );
    assert!(answered, "the released job was not finished by worker b");
    assert_eq!(
        fakes.sent_messages()[0].body["text"],
        "from the second worker"
    );
    assert_eq!(record.lease_owner.as_deref(), Some("worker-b"));
    assert_eq!(record.status, JobStatus::Done);
}

/// Waits until `check` holds for the job's record (up to 20 s).
async fn wait_for_record(
    worker: &InProcess,
    job: &JobMessage,
    check: impl Fn(&infra::model::JobRecord) -> bool,
) -> Option<infra::model::JobRecord> {
    for _ in 0..200 {
        if let Some(r) = worker.backends.store.get_job(work_id(job)).await.unwrap() {
            if check(&r) {
                return Some(r);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_over_the_rate_limit_gets_one_notice_then_silence() {
    // Limits count in fixed one-minute windows: start early in one, so all four land in it.
    let into_minute = chrono::Utc::now().timestamp() % 60;
    if into_minute > 40 {
        tokio::time::sleep(Duration::from_secs((61 - into_minute) as u64)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, _: &Value| Reply::text("answer"))).await;
    let config = host_config(
        &fakes,
        dir.path(),
        "limits: { senderMessagesPerMinute: 2 },",
    );
    let worker = start_worker(&config, dir.path(), |_| {}).await;
    let jobs: Vec<JobMessage> = (0..4).map(|i| telegram_job(&format!("rate-{i}"))).collect();

    for job in &jobs {
        // One at a time, so the order of the counts is the order sent.
        worker.backends.queue.send(job).await.unwrap();
        wait_for_record(&worker, job, |r| r.status == JobStatus::Done).await;
    }
    worker.shutdown().await;

    let texts: Vec<String> = fakes
        .sent_messages()
        .iter()
        .map(|m| m.body["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(&texts[..2], ["answer", "answer"]);
    assert!(
        texts[2].contains("more than 2 messages a minute"),
        "{}",
        texts[2]
    );
    assert_eq!(fakes.model_calls().len(), 2, "no model call over the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_stops_before_its_next_side_effect() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, body: &Value| match last_tool_result(body) {
        None => Reply::tool_use(
            "toolu_slow",
            "exec",
            json!({"command": "sleep 3; echo done"}),
        ),
        Some(_) => Reply::text("this must never be said"),
    }))
    .await;
    let config = host_config(&fakes, dir.path(), "");
    let worker = start_worker(&config, dir.path(), |s| s.worker_id = "w-lease".into()).await;
    let job = telegram_job("lease-1");

    worker.backends.queue.send(&job).await.unwrap();
    assert!(
        fakes
            .wait_for(Duration::from_secs(20), |f| f.model_calls().len() == 1)
            .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another worker takes the job over while the tool runs (this one stalled, say).
    let store = &worker.backends.store;
    store.release_job(work_id(&job), "w-lease").await.unwrap();
    let taken = store
        .claim_job(work_id(&job), "thief", Duration::from_secs(120))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let record = store.get_job(work_id(&job)).await.unwrap().unwrap();
    worker.shutdown().await;

    assert!(matches!(taken, infra::store::Claim::Claimed(_)));
    assert_eq!(
        fakes.model_calls().len(),
        1,
        "no model call after the lease was lost"
    );
    assert!(
        fakes.sent_messages().is_empty(),
        "no reply from the worker that lost it"
    );
    assert_eq!(record.lease_owner.as_deref(), Some("thief"));
    assert_eq!(record.status, JobStatus::Running, "left to the new holder");
}

/// A transcript where an earlier job asked for a tool call and died before it ran.
async fn seed_open_tool_call(worker: &InProcess) {
    let key = telegram_job("seed").session_key;
    let entries = [
        infra::model::EntryBody::User {
            text: "run the backup".into(),
            sender: None,
        },
        infra::model::EntryBody::Assistant {
            text: None,
            tool_calls: vec![infra::model::ToolCall {
                id: "toolu_old".into(),
                name: "exec".into(),
                input: json!({"command": "backup.sh"}),
            }],
            model: None,
            usage: None,
            reasoning: vec![],
        },
    ];
    for (seq, body) in entries.into_iter().enumerate() {
        let entry = infra::model::TranscriptEntry {
            seq: seq as u64,
            at: chrono::Utc::now(),
            job_id: Some("dead-lettered-job".into()),
            body,
        };
        worker
            .backends
            .store
            .append_transcript(&key, "main", &entry)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_an_earlier_job_left_open_are_closed_before_the_next_message() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, _: &Value| Reply::text("ok"))).await;
    let config = host_config(&fakes, dir.path(), "");
    let worker = start_worker(&config, dir.path(), |_| {}).await;
    seed_open_tool_call(&worker).await;
    let mut hello = telegram_job("open-1");
    hello.inbound.text = "hello again".into();

    worker.backends.queue.send(&hello).await.unwrap();
    let answered = fakes
        .wait_for(Duration::from_secs(20), |f| !f.sent_messages().is_empty())
        .await;
    worker.shutdown().await;

    assert!(answered);
    let messages = fakes.model_calls()[0].body["messages"].clone();
    let roles: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"], "{messages}");
    let closing = messages[2]["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_result")
        .expect("the open call is answered first");
    assert_eq!(closing["tool_use_id"], "toolu_old");
    assert_eq!(closing["is_error"], true);
    assert!(messages[2].to_string().contains("hello again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_closes_an_open_tool_call_and_starts_clean() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, _: &Value| Reply::text("fresh"))).await;
    let config = host_config(&fakes, dir.path(), "");
    let worker = start_worker(&config, dir.path(), |_| {}).await;
    seed_open_tool_call(&worker).await;
    let mut reset = telegram_job("new-1");
    reset.inbound.text = "/new".into();
    let mut ask = telegram_job("new-2");
    ask.inbound.text = "what now?".into();

    worker.backends.queue.send(&reset).await.unwrap();
    worker.backends.queue.send(&ask).await.unwrap();
    let answered = fakes
        .wait_for(Duration::from_secs(20), |f| f.sent_messages().len() == 2)
        .await;
    let stored = worker
        .backends
        .store
        .load_transcript_from(&reset.session_key, 0)
        .await
        .unwrap();
    worker.shutdown().await;

    assert!(answered);
    assert!(matches!(
        &stored[2].body,
        infra::model::EntryBody::ToolResult { call_id, is_error: true, .. } if call_id == "toolu_old"
    ));
    assert!(matches!(
        stored[3].body,
        infra::model::EntryBody::Summary { .. }
    ));
    let messages = fakes.model_calls()[0].body["messages"].clone();
    assert_eq!(messages.as_array().unwrap().len(), 1, "{messages}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_text_posted_to_slack_cannot_ping_the_channel_or_disguise_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, _: &Value| {
        Reply::text("<!channel> urgent: <https://evil.example|slack.com/login> & <@U0ADMIN>")
    }))
    .await;
    let config = host_config(&fakes, dir.path(), "");
    let worker = start_worker(&config, dir.path(), |_| {}).await;

    worker
        .backends
        .queue
        .send(&slack_job("EvEsc"))
        .await
        .unwrap();
    let posted = fakes
        .wait_for(Duration::from_secs(20), |f| !f.slack_posts().is_empty())
        .await;
    worker.shutdown().await;

    assert!(posted);
    let text = fakes.slack_posts()[0].body["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        text,
        "&lt;!channel&gt; urgent: &lt;https://evil.example|slack.com/login&gt; &amp; &lt;@U0ADMIN&gt;"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_from_a_channel_member_is_refused_and_stops_nothing() {
    // A Slack channel is a guest session: even a sender the owner allows in DMs has no power
    // there, and `/stop` is the owner's.
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(Arc::new(|_, _: &Value| Reply::text("model answer"))).await;
    let config = host_config(&fakes, dir.path(), "");
    let worker = start_worker(&config, dir.path(), |_| {}).await;
    let mut stop = slack_job("Ev0STOPGUEST");
    stop.inbound.text = "/stop".into();

    worker.backends.queue.send(&stop).await.unwrap();
    let answered = fakes
        .wait_for(Duration::from_secs(20), |f| !f.slack_posts().is_empty())
        .await;
    let stopped = worker
        .backends
        .store
        .stop_requested(&stop.session_key)
        .await
        .unwrap();
    worker.shutdown().await;

    assert!(answered, "the refusal is said in the thread");
    let text = fakes.slack_posts()[0].body["text"].to_string();
    assert!(text.contains("Only the owner can stop"), "{text}");
    assert_eq!(
        stopped, None,
        "no stop was recorded for the channel's session"
    );
    assert!(fakes.model_calls().is_empty());
}
