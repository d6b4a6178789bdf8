//! Fake Telegram, Slack, WhatsApp ([`whatsapp`]), Discord ([`discord`]), BlueBubbles
//! ([`bluebubbles`]), signal-cli ([`signal`]), Zalo ([`zalo`]), Google Chat ([`googlechat`]),
//! the Bot Framework ([`msteams`]), a Matrix homeserver ([`matrix`]) and Anthropic APIs on one loopback port. They speak the real wire
//! formats (paths, headers, bodies) and record every call, so tests can assert what the worker
//! sent. The model's answers come from a script that sees the call number and the request.
//! Files, edits and uploads live in [`media`].
#![allow(dead_code)]

pub mod bluebubbles;
pub mod discord;
pub mod googlechat;
pub mod matrix;
pub mod mcp;
mod media;
pub mod msteams;
pub mod search;
pub mod signal;
mod socket_mode;
pub mod whatsapp;
pub mod zalo;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub body: Value,
    pub auth: Option<String>,
    pub at: Instant,
}

/// What the fake model answers.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
    pub delay: Duration,
}

impl Reply {
    pub fn text(text: &str) -> Reply {
        Reply::ok(json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": "fake",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 1, "output_tokens": 1}
        }))
    }

    pub fn tool_use(id: &str, name: &str, input: Value) -> Reply {
        Reply::ok(json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": "fake",
            "content": [{"type": "text", "text": "Let me check."}, {"type": "tool_use", "id": id, "name": name, "input": input}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 1, "output_tokens": 1}
        }))
    }

    pub fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            headers: vec![],
            body,
            delay: Duration::ZERO,
        }
    }

    pub fn error(status: u16, message: &str) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: json!({"type": "error", "error": {"type": "api_error", "message": message}}),
            delay: Duration::ZERO,
        }
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_string()));
        self
    }
}

pub type Script = Arc<dyn Fn(usize, &Value) -> Reply + Send + Sync>;

#[derive(Clone)]
struct World {
    calls: Arc<Mutex<Vec<Call>>>,
    script: Script,
    /// Telegram chats whose sendMessage fails with 500.
    broken_chats: Arc<Mutex<Vec<i64>>>,
    /// Anthropic API keys over their rate limit: every call with one gets a 429.
    limited_keys: Arc<Mutex<Vec<String>>>,
    /// Messages, files and uploads the fake platforms hold ([`media`]).
    media: Arc<media::Media>,
    /// Telegram chats sent a message so far, and a wake-up for those waiting for one.
    answered: Arc<(Mutex<std::collections::HashSet<i64>>, tokio::sync::Notify)>,
    /// Updates waiting for a `getUpdates` long poll.
    updates: Arc<PendingUpdates>,
    /// Slack Socket Mode's envelopes ([`socket_mode`]).
    socket: Arc<socket_mode::SocketMode>,
    /// The WhatsApp Cloud API's state ([`whatsapp`]).
    whatsapp: Arc<whatsapp::Whatsapp>,
    /// Discord's REST and Gateway state ([`discord`]).
    discord: Arc<discord::Discord>,
    /// The signal-cli daemon's pending events ([`signal`]).
    signal: Arc<signal::Signal>,
    /// Who may get Zalo messages ([`zalo`]).
    zalo: Arc<zalo::Zalo>,
    /// The homeserver's rooms and the bot's account data ([`matrix`]).
    matrix: Arc<matrix::Matrix>,
}

/// Telegram's side of long polling: updates kept until a `getUpdates` with a higher offset
/// confirms them, as the Bot API does.
#[derive(Default)]
struct PendingUpdates {
    pending: Mutex<Vec<Value>>,
    wake: tokio::sync::Notify,
    /// Confirmations are not taken (the confirming request "never arrived": a crash).
    hold: std::sync::atomic::AtomicBool,
    /// `getUpdates` calls answered.
    polls: std::sync::atomic::AtomicUsize,
}

pub struct Fakes {
    pub base_url: String,
    world: World,
}

impl Fakes {
    pub async fn start(script: Script) -> Fakes {
        let world = World {
            calls: Arc::default(),
            script,
            broken_chats: Arc::default(),
            limited_keys: Arc::default(),
            media: Arc::default(),
            answered: Arc::default(),
            updates: Arc::default(),
            socket: Arc::default(),
            whatsapp: Arc::default(),
            discord: Arc::default(),
            signal: Arc::default(),
            zalo: Arc::default(),
            matrix: Arc::default(),
        };
        let platforms: [fn(Router<World>) -> Router<World>; 10] = [
            media::routes,
            socket_mode::routes,
            whatsapp::routes,
            discord::routes,
            bluebubbles::routes,
            signal::routes,
            zalo::routes,
            googlechat::routes,
            msteams::routes,
            matrix::routes,
        ];
        let app = platforms
            .into_iter()
            .fold(
                Router::new()
                    .route("/v1/messages", post(anthropic))
                    .route("/v1/chat/completions", post(openai))
                    .route("/{bot}/{method}", post(telegram))
                    .route("/api/chat.postMessage", post(slack)),
                |router, add| add(router),
            )
            .with_state(world.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fakes { base_url, world }
    }

    pub fn break_chat(&self, chat_id: i64) {
        self.world.broken_chats.lock().unwrap().push(chat_id);
    }

    /// Puts Anthropic API key `key` over its rate limit (429, `retry-after: 60`) from now on.
    pub fn rate_limit_key(&self, key: &str) {
        self.world
            .limited_keys
            .lock()
            .unwrap()
            .push(key.to_string());
    }

    pub fn calls(&self, path_contains: &str) -> Vec<Call> {
        self.world
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.path.contains(path_contains))
            .cloned()
            .collect()
    }

    pub fn model_calls(&self) -> Vec<Call> {
        self.calls("/v1/messages")
    }

    pub fn sent_messages(&self) -> Vec<Call> {
        self.calls("/sendMessage")
            .into_iter()
            .filter(|c| c.path.contains("ok:"))
            .collect()
    }

    /// Whether a message went to Telegram chat `chat`, looked up without copying anything (the
    /// `worker_jobs` benchmark polls it every millisecond from each loop).
    /// An update for the next `getUpdates` (long polling).
    pub fn push_telegram_update(&self, update: Value) {
        self.world.updates.pending.lock().unwrap().push(update);
        self.world.updates.wake.notify_waiters();
    }

    /// While true, `getUpdates` confirms nothing: every update comes again, as after a crash
    /// between queueing it and asking for the next offset.
    pub fn hold_confirmations(&self, hold: bool) {
        self.world
            .updates
            .hold
            .store(hold, std::sync::atomic::Ordering::SeqCst);
    }

    /// `getUpdates` calls answered so far.
    pub fn telegram_polls(&self) -> usize {
        self.world
            .updates
            .polls
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until a Telegram message has been sent to `chat`, without polling (a benchmark's
    /// client loops must not take CPU from the worker they measure).
    pub async fn sent_to_chat(&self, chat: i64) {
        let (chats, wake) = &*self.world.answered;
        loop {
            let woken = wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if chats.lock().unwrap().contains(&chat) {
                return;
            }
            woken.await;
        }
    }

    pub fn slack_posts(&self) -> Vec<Call> {
        self.calls("/api/chat.postMessage")
    }

    /// Waits until `check` holds or `within` passes.
    pub async fn wait_for(&self, within: Duration, check: impl Fn(&Fakes) -> bool) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if check(self) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        check(self)
    }
}

fn record(world: &World, path: String, headers: &HeaderMap, body: &Value) -> usize {
    let mut calls = world.calls.lock().unwrap();
    calls.push(Call {
        path,
        body: body.clone(),
        auth: headers
            .get("authorization")
            .or(headers.get("x-api-key"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        at: Instant::now(),
    });
    calls.len()
}

async fn anthropic(
    State(world): State<World>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if headers.get("anthropic-version").is_none() || headers.get("x-api-key").is_none() {
        return (StatusCode::UNAUTHORIZED, Json(json!({"type":"error","error":{"type":"authentication_error","message":"missing headers"}}))).into_response();
    }
    record(&world, "/v1/messages".into(), &headers, &body);
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if world.limited_keys.lock().unwrap().iter().any(|k| k == key) {
        let error = json!({"type": "error", "error": {"type": "rate_limit_error", "message": "This request would exceed the rate limit for your organization"}});
        let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(error)).into_response();
        response
            .headers_mut()
            .insert("retry-after", "60".parse().unwrap());
        return response;
    }
    let n = world
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.path == "/v1/messages")
        .count();
    let reply = (world.script)(n, &body);
    tokio::time::sleep(reply.delay).await;
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap(),
        Json(reply.body),
    )
        .into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// OpenAI-compatible Chat Completions: one text answer, echoing the last user message.
async fn openai(
    State(world): State<World>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    record(&world, "/v1/chat/completions".into(), &headers, &body);
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .map(|m| m["content"].clone())
        .unwrap_or_default();
    Json(json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("echo: {}", last.as_str().unwrap_or(""))}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    }))
    .into_response()
}

async fn telegram(
    State(world): State<World>,
    Path((bot, method)): Path<(String, String)>,
    request: axum::extract::Request,
) -> Response {
    let Some(token) = bot.strip_prefix("bot") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let headers = request.headers().clone();
    let body = match media::telegram_body(request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let broken = body["chat_id"]
        .as_i64()
        .is_some_and(|c| world.broken_chats.lock().unwrap().contains(&c));
    let outcome = if broken { "fail" } else { "ok" };
    record(
        &world,
        format!("/bot{token}/{method} {outcome}:"),
        &headers,
        &body,
    );
    if broken {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"ok": false, "error_code": 500, "description": "Internal Server Error"})),
        )
            .into_response();
    }
    if method == "getUpdates" {
        return get_updates(&world.updates, &body).await;
    }
    let result = match media::telegram_method(&world.media, &method, &body) {
        Ok(result) if method == "sendMessage" => {
            let (chats, wake) = &*world.answered;
            if let Some(chat) = body["chat_id"].as_i64() {
                chats.lock().unwrap().insert(chat);
            }
            wake.notify_waiters();
            result
        }
        Ok(result) => result,
        Err(description) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"ok": false, "error_code": 400, "description": description})),
            )
                .into_response()
        }
    };
    Json(json!({"ok": true, "result": result})).into_response()
}

/// `getUpdates`: confirms what lies below `offset`, then answers what is left, waiting up to
/// `timeout` seconds (at most 1 here, to keep tests quick) for something to arrive.
async fn get_updates(updates: &PendingUpdates, body: &Value) -> Response {
    let offset = body["offset"].as_i64().unwrap_or(0);
    let wait = Duration::from_secs(body["timeout"].as_u64().unwrap_or(0).min(1));
    let take = || {
        let mut pending = updates.pending.lock().unwrap();
        if !updates.hold.load(std::sync::atomic::Ordering::SeqCst) {
            pending.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
        }
        pending.clone()
    };
    let woken = updates.wake.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    let mut ready = take();
    if ready.is_empty() {
        let _ = tokio::time::timeout(wait, woken).await;
        ready = take();
    }
    updates
        .polls
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Json(json!({"ok": true, "result": ready})).into_response()
}

async fn slack(
    State(world): State<World>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    record(&world, "/api/chat.postMessage".into(), &headers, &body);
    let ts = world.media.slack_post(body["text"].as_str().unwrap_or(""));
    Json(json!({"ok": true, "channel": body["channel"], "ts": ts, "message": {"text": body["text"]}})).into_response()
}

/// The last `tool_result` the model was sent, if the latest user turn carries one.
pub fn last_tool_result(body: &Value) -> Option<String> {
    let last = body["messages"].as_array()?.last()?;
    last["content"]
        .as_array()?
        .iter()
        .rev()
        .find(|b| b["type"] == "tool_result")
        .map(|b| b["content"].as_str().unwrap_or("").to_string())
}
