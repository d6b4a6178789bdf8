//! The README's quick start as a new user runs it: no config file, `OPENAI_BASE_URL` exported
//! and nothing else, `clawgate up`, then `clawgate chat`. The model (a fake OpenAI-compatible
//! server, the only fake) asks for `cat /etc/os-release`; the answer has to come from inside
//! the sandbox image that `up` built itself from the compiled-in `Dockerfile.sandbox`.
//!
//! No registry is reachable here, so the image's Debian base is made locally (debootstrap, then
//! `docker import`) and named with `CLAWGATE_SANDBOX_BASE`, as a user without a registry would.
//! `--port 0` and `--url` only keep the test off the user's real port.

#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

const LOCAL_BASE: &str = "clawgate-test/debian-base:bookworm";
const SANDBOX_IMAGE: &str = "clawgate-sandbox:bookworm-slim";
const MODEL_ID: &str = "qwen-local";

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().expect("docker")
}

/// A minimal Debian bookworm as a local image, made once per machine.
fn local_debian_base() -> Option<&'static str> {
    if docker(&["image", "inspect", LOCAL_BASE]).status.success() {
        return Some(LOCAL_BASE);
    }
    if Command::new("debootstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        let required = std::env::var("CLAWGATE_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "CLAWGATE_REQUIRE_DOCKER=1 but debootstrap is missing (scripts/test installs it)"
        );
        eprintln!("skipped: no debootstrap to make a local Debian base");
        return None;
    }
    let root = tempfile::tempdir().unwrap();
    let rootfs = root.path().join("rootfs");
    let made = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&rootfs)
        .output()
        .expect("debootstrap");
    assert!(
        made.status.success(),
        "debootstrap: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let import = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C '{}' -c . | docker import - {LOCAL_BASE}",
            rootfs.display()
        ))
        .output()
        .expect("docker import");
    assert!(import.status.success(), "docker import failed");
    Some(LOCAL_BASE)
}

/// Moves a sandbox image this test did not make out of the way, and puts it back on drop, so
/// `up` meets no image, as on a fresh machine.
struct ImageAside {
    saved: Option<String>,
}

impl ImageAside {
    fn take() -> ImageAside {
        let inspect = docker(&[
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"clawgate.base\"}}",
            SANDBOX_IMAGE,
        ]);
        // None when absent, or this test's own from an earlier run (the build reuses its
        // cached layers); else a user's image, tagged aside.
        let ours = String::from_utf8_lossy(&inspect.stdout).trim() == LOCAL_BASE;
        let saved = (inspect.status.success() && !ours).then(|| {
            let aside = format!(
                "clawgate-sandbox:saved-by-quick-start-{}",
                std::process::id()
            );
            assert!(docker(&["tag", SANDBOX_IMAGE, &aside]).status.success());
            aside
        });
        let _ = docker(&["rmi", "-f", SANDBOX_IMAGE]);
        ImageAside { saved }
    }
}

impl Drop for ImageAside {
    fn drop(&mut self) {
        if let Some(aside) = &self.saved {
            let _ = docker(&["tag", aside, SANDBOX_IMAGE]);
            let _ = docker(&["rmi", aside]);
        }
    }
}

/// An OpenAI-compatible server: lists one model, answers the first turn with an `exec` tool
/// call and the second with the tool's output. It refuses what a real server refuses: an
/// unknown model, a body without messages.
async fn fake_openai() -> (String, Arc<Mutex<Vec<Value>>>) {
    async fn models() -> Json<Value> {
        Json(json!({ "object": "list", "data": [
            { "id": MODEL_ID, "object": "model", "created": 0, "owned_by": "local" },
            { "id": "other-model", "object": "model", "created": 0, "owned_by": "local" }
        ]}))
    }
    async fn completions(
        State(calls): State<Arc<Mutex<Vec<Value>>>>,
        Json(body): Json<Value>,
    ) -> Response {
        if body["model"] != MODEL_ID || !body["messages"].is_array() {
            let error = json!({ "error": { "message": format!("model {} not found", body["model"]), "type": "invalid_request_error" } });
            return (StatusCode::NOT_FOUND, Json(error)).into_response();
        }
        let turn = {
            let mut calls = calls.lock().unwrap();
            calls.push(body.clone());
            calls.len()
        };
        let message = if turn == 1 {
            json!({ "role": "assistant", "content": null, "tool_calls": [{
                "id": "call_os", "type": "function",
                "function": { "name": "exec", "arguments": "{\"command\":\"cat /etc/os-release\"}" }
            }]})
        } else {
            let output = body["messages"]
                .as_array()
                .and_then(|m| m.iter().rev().find(|m| m["role"] == "tool"))
                .map(|m| m["content"].as_str().unwrap_or_default().to_string())
                .unwrap_or_default();
            json!({ "role": "assistant", "content": format!("The sandbox says: {output}") })
        };
        Json(json!({
            "id": format!("chatcmpl-{turn}"), "object": "chat.completion", "created": 0,
            "model": MODEL_ID,
            "choices": [{ "index": 0, "message": message,
                          "finish_reason": if turn == 1 { "tool_calls" } else { "stop" } }],
            "usage": { "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15 }
        }))
        .into_response()
    }
    let calls = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(completions))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

/// A user's fresh shell: a new HOME and none of this machine's clawgate settings.
fn fresh_user(command: &mut Command, home: &Path, openai_base_url: &str, base: &str) {
    for name in [
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "CLAWGATE_CONFIG",
        "CLAWGATE_MODEL",
        "CLAWGATE_GATEWAY_TOKEN",
        "AWS_ENDPOINT_URL",
        "TELEGRAM_BOT_TOKEN",
        "SLACK_BOT_TOKEN",
    ] {
        command.env_remove(name);
    }
    command
        .env("HOME", home)
        .env("OPENAI_BASE_URL", openai_base_url)
        .env("CLAWGATE_SANDBOX_BASE", base);
}

/// Removes the sandbox containers of one conversation, however the test ends.
struct Containers(String);

impl Drop for Containers {
    fn drop(&mut self) {
        let listed = docker(&["ps", "-aq", "--filter", "label=clawgate.sandbox"]);
        for id in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
            let scope = docker(&[
                "inspect",
                "--format",
                "{{index .Config.Labels \"clawgate.scope\"}}",
                id,
            ]);
            if String::from_utf8_lossy(&scope.stdout).contains(&self.0) {
                let _ = docker(&["rm", "-f", id]);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_quick_start_reaches_a_tool_call_in_the_sandbox_it_built() {
    if !common::docker_available() {
        return;
    }
    let Some(base) = local_debian_base() else {
        return;
    };
    let _aside = ImageAside::take();
    let home = tempfile::tempdir().unwrap();
    let (openai_url, calls) = fake_openai().await;
    let conversation = format!("qs{}", ulid::Ulid::new().to_string().to_lowercase());
    let _containers = Containers(conversation.clone());

    // Act 1: `clawgate up`, which must build the missing image before it says it is up.
    let mut up = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    fresh_user(&mut up, home.path(), &openai_url, base);
    let mut up = up
        .args(["up", "--port", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("clawgate up");
    let stderr = up.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut report = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(900);
    while !report.iter().any(|l: &String| l.contains("Ctrl-C to stop")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => report.push(line),
            Err(_) => {
                let _ = up.kill();
                panic!("`up` did not come up:\n{}", report.join("\n"));
            }
        }
    }
    let report_text = report.join("\n");
    let url = report
        .iter()
        .find_map(|l| l.split("WebChat at ").nth(1))
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| panic!("{report_text}"));

    // Act 2: `clawgate chat`, as the README says, in the same user's shell.
    let mut chat = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    fresh_user(&mut chat, home.path(), &openai_url, base);
    let chat = tokio::task::spawn_blocking(move || {
        chat.args(["chat", "--url", &url, "--conversation", &conversation])
            .arg("what is in /etc/os-release?")
            .output()
            .expect("clawgate chat")
    })
    .await
    .unwrap();
    let _ = up.kill();
    let _ = up.wait();

    // Assert: the model came from the server's list, the image was built here from the local
    // base, and the tool ran inside it.
    assert!(
        report_text.contains(&format!("✓ model openai/{MODEL_ID} (the first of 2")),
        "{report_text}"
    );
    assert!(
        report_text.contains(&format!(
            "✓ Docker sandboxes (image {SANDBOX_IMAGE}, built now)"
        )),
        "{report_text}"
    );
    let label = docker(&[
        "image",
        "inspect",
        "--format",
        "{{index .Config.Labels \"clawgate.base\"}}",
        SANDBOX_IMAGE,
    ]);
    assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), base);
    let stdout = String::from_utf8_lossy(&chat.stdout);
    let chat_err = String::from_utf8_lossy(&chat.stderr);
    assert!(chat.status.success(), "{chat_err}\n{report_text}");
    assert!(chat_err.contains("🔧 exec"), "{chat_err}");
    assert!(stdout.contains("VERSION_CODENAME=bookworm"), "{stdout}");
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 2, "{calls:?}");
}
