//! `clawgate doctor` against a healthy setup, then with one fault injected at a time: a bad
//! model key, a wrong Telegram webhook URL, Docker down, the image missing, the queue
//! unreachable, a job in the dead-letter queue. Each run must find exactly that one problem,
//! with its fix, and exit 1; the healthy run finds none and exits 0.
//!
//! Fakes speak the real wire formats (Anthropic's model list, the Bot API, Slack's Web API) and
//! refuse what the real services refuse (a wrong key, a wrong token).

#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

const GOOD_KEY: &str = "sk-ant-good-key";
const BOT_TOKEN: &str = "4242:DOCTORTOKEN";
const SLACK_TOKEN: &str = "xoxb-doctor";
const RIGHT_WEBHOOK: &str = "https://bot.example/telegram";

/// The fake providers; `webhook` is what Telegram says is registered.
async fn fakes(webhook: Arc<Mutex<String>>) -> String {
    async fn models(headers: HeaderMap) -> Response {
        if headers.get("anthropic-version").is_none() {
            return (StatusCode::BAD_REQUEST, Json(json!({"type": "error", "error": {"type": "invalid_request_error", "message": "anthropic-version header is required"}}))).into_response();
        }
        if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(GOOD_KEY) {
            return (StatusCode::UNAUTHORIZED, Json(json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}))).into_response();
        }
        Json(json!({"data": [{"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"}],
                    "has_more": false, "first_id": "claude-sonnet-4-5", "last_id": "claude-sonnet-4-5"}))
        .into_response()
    }
    async fn telegram(
        State(webhook): State<Arc<Mutex<String>>>,
        UrlPath((bot, method)): UrlPath<(String, String)>,
    ) -> Response {
        if bot != format!("bot{BOT_TOKEN}") {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
            )
                .into_response();
        }
        let result = match method.as_str() {
            "getMe" => {
                json!({"id": 4242, "is_bot": true, "first_name": "Claw", "username": "clawgate_bot"})
            }
            "getWebhookInfo" => {
                json!({"url": *webhook.lock().unwrap(), "has_custom_certificate": false,
                                       "pending_update_count": 3, "max_connections": 40})
            }
            _ => {
                return (
                    StatusCode::NOT_FOUND,
                    Json(json!({"ok": false, "error_code": 404, "description": "Not Found"})),
                )
                    .into_response()
            }
        };
        Json(json!({"ok": true, "result": result})).into_response()
    }
    async fn auth_test(headers: HeaderMap) -> Json<Value> {
        let bearer = format!("Bearer {SLACK_TOKEN}");
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
            return Json(json!({"ok": false, "error": "invalid_auth"}));
        }
        Json(
            json!({"ok": true, "url": "https://team.slack.com/", "team": "Team", "user": "clawgate", "team_id": "T1", "user_id": "U1", "bot_id": "B1"}),
        )
    }
    let app = Router::new()
        .route("/v1/models", get(models))
        .route("/{bot}/{method}", post(telegram))
        .route("/api/auth.test", post(auth_test))
        .with_state(webhook);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

struct Setup<'a> {
    fake: &'a str,
    key: &'a str,
    image: &'a str,
    queue: &'a str,
}

fn config_text(s: &Setup<'_>) -> String {
    format!(
        r#"{{ agents: {{ defaults: {{ sandbox: {{ mode: "all", docker: {{ image: "{image}" }} }} }} }},
             models: {{ providers: {{ anthropic: {{ apiKey: "{key}", baseUrl: "{fake}" }} }} }},
             channels: {{
               telegram: {{ botToken: "{BOT_TOKEN}", webhookSecret: "doctor-secret-1", webhookUrl: "{RIGHT_WEBHOOK}", apiBase: "{fake}" }},
               slack: {{ botToken: "{SLACK_TOKEN}", signingSecret: "doctor-signing", apiBase: "{fake}" }} }},
             {queue} }}"#,
        image = s.image,
        key = s.key,
        fake = s.fake,
        queue = s.queue,
    )
}

/// Runs `clawgate doctor --json` and returns its exit code and findings.
fn doctor(dir: &Path, config: &str, env: &[(&str, &str)]) -> (i32, Vec<Value>) {
    let path = dir.join("clawgate.json5");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    for name in [
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "CLAWGATE_MODEL",
        "TELEGRAM_BOT_TOKEN",
        "SLACK_BOT_TOKEN",
        "AWS_ENDPOINT_URL",
        "CLAWGATE_CONFIG_PARAMETER",
        "DOCKER_HOST",
    ] {
        command.env_remove(name);
    }
    let out = command
        .env("HOME", dir)
        .envs(env.iter().copied())
        .arg("--config")
        .arg(&path)
        .args(["doctor", "--json", "--state-dir"])
        .arg(dir.join("state"))
        .output()
        .unwrap();
    let findings: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), findings)
}

fn problems(findings: &[Value]) -> Vec<&Value> {
    findings
        .iter()
        .filter(|f| f["level"] == "problem")
        .collect()
}

/// Asserts the run found exactly one problem, in `check`, with a fix that says `fix`.
fn only_problem(run: &(i32, Vec<Value>), check: &str, fix: &str) {
    let (code, findings) = run;
    let found = problems(findings);
    assert_eq!(*code, 1, "{findings:#?}");
    assert_eq!(found.len(), 1, "{findings:#?}");
    assert!(
        found[0]["check"].as_str().unwrap().starts_with(check),
        "{findings:#?}"
    );
    assert!(
        found[0]["fix"].as_str().unwrap().contains(fix),
        "{findings:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_finds_each_injected_fault_with_its_fix() {
    if !common::docker_available() {
        return;
    }
    let image = common::test_image();
    let dir = tempfile::tempdir().unwrap();
    let webhook = Arc::new(Mutex::new(RIGHT_WEBHOOK.to_string()));
    let fake = fakes(webhook.clone()).await;
    let healthy = Setup {
        fake: &fake,
        key: GOOD_KEY,
        image,
        queue: "",
    };
    let run = |setup: &Setup<'_>, env: &'static [(&'static str, &'static str)]| {
        let (dir, config) = (dir.path().to_path_buf(), config_text(setup));
        tokio::task::spawn_blocking(move || doctor(&dir, &config, env))
    };

    let well = run(&healthy, &[]).await.unwrap();
    let bad_key = run(
        &Setup {
            key: "sk-ant-revoked",
            ..healthy
        },
        &[],
    )
    .await
    .unwrap();
    *webhook.lock().unwrap() = "https://old.example/hook".into();
    let wrong_webhook = run(&healthy, &[]).await.unwrap();
    *webhook.lock().unwrap() = RIGHT_WEBHOOK.into();
    let docker_down = run(
        &healthy,
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    )
    .await
    .unwrap();
    let no_image = run(
        &Setup {
            image: "clawgate-test/absent:none",
            ..healthy
        },
        &[],
    )
    .await
    .unwrap();
    let unreachable = run(
        &Setup { queue: r#"queue: { backend: "sqs", url: "http://127.0.0.1:9/000000000000/jobs.fifo" },"#, ..healthy },
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9"), ("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1")],
    )
    .await
    .unwrap();
    // A job that kept failing, in the SQLite dead-letter queue `up` would use.
    let config = infra::config::Config::parse(&config_text(&healthy)).unwrap();
    let backends = infra::setup::open_backends(&config, &dir.path().join("state"))
        .await
        .unwrap();
    backends
        .queue
        .send_raw("{\"not\": \"a job\"}", "g-doctor", "doctor-1")
        .await
        .unwrap();
    let held = backends
        .queue
        .receive(1, Duration::from_secs(2))
        .await
        .unwrap();
    backends
        .queue
        .dead_letter(&held[0], "kept failing")
        .await
        .unwrap();
    let dead_letter = run(&healthy, &[]).await.unwrap();

    assert_eq!(well.0, 0, "{:#?}", well.1);
    assert!(problems(&well.1).is_empty(), "{:#?}", well.1);
    let checks: Vec<&str> = well.1.iter().filter_map(|f| f["check"].as_str()).collect();
    for expected in [
        "config",
        "model anthropic/claude-sonnet-4-5",
        "telegram default",
        "slack",
        "docker",
        "queue",
        "dead-letter queue",
        "store",
    ] {
        assert!(
            checks.contains(&expected),
            "{expected} not checked: {checks:?}"
        );
    }
    only_problem(&bad_key, "model", "ANTHROPIC_API_KEY");
    only_problem(
        &wrong_webhook,
        "telegram default",
        &format!("clawgate telegram set-webhook --url {RIGHT_WEBHOOK}"),
    );
    only_problem(&docker_down, "docker", "start Docker");
    only_problem(
        &no_image,
        "sandbox image clawgate-test/absent:none",
        "clawgate sandbox build --tag clawgate-test/absent:none",
    );
    only_problem(&unreachable, "queue", "queue.url");
    only_problem(&dead_letter, "dead-letter queue", "clawgate dlq list");
    let text = serde_json::to_string(&bad_key.1).unwrap();
    assert!(
        !text.contains("sk-ant-revoked") && !text.contains(BOT_TOKEN),
        "a secret leaked: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_dlq_read_and_change_the_same_queue_and_store() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config_path = dir.path().join("clawgate.json5");
    let text = r#"{ agents: { defaults: { sandbox: { mode: "off" } } }, channels: { telegram: { botToken: "1:x" } } }"#;
    std::fs::write(&config_path, text).unwrap();
    let config = infra::config::Config::parse(text).unwrap();
    let backends = infra::setup::open_backends(&config, &state).await.unwrap();
    let queue = &backends.queue;
    queue.send_raw("{}", "g-wait", "wait-1").await.unwrap();
    queue.send_raw("{}", "g-dead", "dead-1").await.unwrap();
    let held = queue.receive(2, Duration::from_secs(2)).await.unwrap();
    let dead = held.iter().find(|d| d.group == "g-dead").unwrap();
    queue.dead_letter(dead, "kept failing").await.unwrap();
    let waiting = held.iter().find(|d| d.group == "g-wait").unwrap();
    queue.release(&waiting.receipt).await.unwrap();
    backends
        .store
        .request_pairing(
            "telegram",
            "default",
            "777",
            Some("Grace"),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    let clawgate = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_clawgate"))
            .env("HOME", dir.path())
            .env_remove("AWS_ENDPOINT_URL")
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    let (_, status) = clawgate(&["status", "--json"]);
    let (_, listed) = clawgate(&["dlq", "list", "--json"]);
    let listed: Vec<Value> = serde_json::from_str(&listed).unwrap();
    let id = listed[0]["messageId"].as_str().unwrap().to_string();
    let (redrive_code, _) = clawgate(&["dlq", "redrive", &id]);
    let (again_code, _) = clawgate(&["dlq", "discard", &id]);
    let (_, after) = clawgate(&["status", "--json"]);

    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        status["queue"]["depth"],
        json!({"waiting": 1, "inFlight": 0})
    );
    assert_eq!(
        status["deadLetters"]["depth"],
        json!({"waiting": 1, "inFlight": 0})
    );
    assert_eq!(status["pairing"][0]["peer"], "777");
    assert_eq!(status["sandboxes"]["mode"], "off");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["reason"], "kept failing");
    assert_eq!(redrive_code, Some(0));
    assert_eq!(
        again_code,
        Some(1),
        "a redriven message is no longer there to discard"
    );
    let after: Value = serde_json::from_str(&after).unwrap();
    assert_eq!(
        after["queue"]["depth"],
        json!({"waiting": 2, "inFlight": 0})
    );
    assert_eq!(
        after["deadLetters"]["depth"],
        json!({"waiting": 0, "inFlight": 0})
    );
}
