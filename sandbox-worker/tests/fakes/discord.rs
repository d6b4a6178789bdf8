//! Discord, faked: the REST API under `/api/v10` (channel messages and edits with the bot token,
//! typing, DM channels, `GET /gateway/bot`, and an interaction's webhook: its deferred
//! original, edited while LOADING, then follow-ups) and the Gateway WebSocket at
//! `/discord/gateway` (Hello, Identify or Resume, heartbeats ACKed, READY, MESSAGE_CREATE
//! dispatches with sequence numbers; a Resume replays what came after the client's sequence
//! number, as Discord does). Like Discord it refuses a bad bot token (401 / close 4004),
//! messages over 2000 characters (50035), an unknown interaction token (10015), and an
//! Identify without the message-content intent (close 4014).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{record, World};

pub const DISCORD_TOKEN: &str = "MTE1.fake.discord-bot-token";
/// The bot's user id (and the application id).
pub const DISCORD_BOT: &str = "1150000000000000001";
const LOADING: u64 = 1 << 7;

#[derive(Default)]
pub(super) struct Discord {
    /// MESSAGE_CREATE payloads, in order; event `i` has sequence number `i + 2` (READY is 1).
    events: Mutex<Vec<Value>>,
    wake: tokio::sync::Notify,
    /// Where each known session started (its first event's index).
    sessions: Mutex<HashMap<String, usize>>,
    /// A Resume replays the whole session, ignoring the client's sequence number: what a
    /// client that crashed before recording its progress would get.
    replay_all: AtomicBool,
    identifies: AtomicUsize,
    resumes: AtomicUsize,
    /// Interaction tokens deferred, with their original's content and flags.
    originals: Mutex<HashMap<String, (String, u64)>>,
    next_id: AtomicUsize,
}

pub(super) fn routes(router: Router<World>) -> Router<World> {
    router
        .route("/api/v10/gateway/bot", get(gateway_bot))
        .route(
            "/api/v10/channels/{channel}/messages",
            post(channel_message),
        )
        .route(
            "/api/v10/channels/{channel}/messages/{id}",
            patch(edit_channel_message),
        )
        .route("/api/v10/channels/{channel}/typing", post(typing))
        .route("/api/v10/users/@me/channels", post(open_dm))
        .route("/api/v10/webhooks/{app}/{token}", post(followup))
        .route(
            "/api/v10/webhooks/{app}/{token}/messages/{id}",
            get(original).patch(edit_webhook_message),
        )
        .route(
            "/api/v10/applications/{app}/commands",
            axum::routing::put(register),
        )
        .route(
            "/api/v10/applications/{app}/guilds/{guild}/commands",
            axum::routing::put(register),
        )
        .route("/discord/gateway", get(gateway))
}

impl super::Fakes {
    /// A `MESSAGE_CREATE` for the Gateway to dispatch.
    pub fn push_discord_message(&self, d: Value) {
        let discord = &self.world.discord;
        discord.events.lock().unwrap().push(d);
        discord.wake.notify_waiters();
    }

    /// Discord acknowledged an interaction with a deferred response: its original exists,
    /// "thinking…".
    pub fn discord_deferred(&self, token: &str) {
        let discord = &self.world.discord;
        discord
            .originals
            .lock()
            .unwrap()
            .insert(token.to_string(), (String::new(), LOADING));
    }

    /// The original response of interaction `token`: its content and flags.
    pub fn discord_original(&self, token: &str) -> Option<(String, u64)> {
        self.world
            .discord
            .originals
            .lock()
            .unwrap()
            .get(token)
            .cloned()
    }

    /// While true, a Resume replays the whole session (the client's progress was lost).
    pub fn discord_replay_all(&self, on: bool) {
        self.world.discord.replay_all.store(on, Ordering::SeqCst);
    }

    /// Identifies and Resumes the Gateway has taken.
    pub fn discord_sign_ins(&self) -> (usize, usize) {
        let d = &self.world.discord;
        (
            d.identifies.load(Ordering::SeqCst),
            d.resumes.load(Ordering::SeqCst),
        )
    }

    /// Messages posted in channels (with the bot token).
    pub fn discord_channel_messages(&self) -> Vec<super::Call> {
        self.calls("/discord/channel-message")
    }
}

fn error(status: StatusCode, code: i64, message: &str) -> Response {
    (status, Json(json!({"message": message, "code": code}))).into_response()
}

fn bot_authorised(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bot {DISCORD_TOKEN}"))
}

/// A message body: JSON, or multipart with `payload_json` and a file.
async fn message_body(request: Request) -> Result<(HeaderMap, Value), Response> {
    let headers = request.headers().clone();
    let multipart = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !multipart {
        let bytes = axum::body::to_bytes(request.into_body(), 10 << 20)
            .await
            .map_err(|_| {
                error(
                    StatusCode::BAD_REQUEST,
                    50109,
                    "The request body contains invalid JSON.",
                )
            })?;
        let body = serde_json::from_slice(&bytes).map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                50109,
                "The request body contains invalid JSON.",
            )
        })?;
        return Ok((headers, body));
    }
    use axum::extract::FromRequest;
    let mut form = axum::extract::Multipart::from_request(request, &())
        .await
        .map_err(|_| error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body"))?;
    let (mut payload, mut file) = (Value::Null, None);
    while let Ok(Some(field)) = form.next_field().await {
        match field.name().unwrap_or("") {
            "payload_json" => {
                payload = serde_json::from_str(&field.text().await.unwrap_or_default())
                    .unwrap_or_default()
            }
            "files[0]" => {
                let name = field.file_name().unwrap_or("").to_string();
                file = Some((name, field.bytes().await.map(|b| b.len()).unwrap_or(0)));
            }
            _ => {}
        }
    }
    if let Some((name, bytes)) = file {
        payload["file"] = json!({"name": name, "bytes": bytes});
    }
    Ok((headers, payload))
}

fn too_long(body: &Value) -> bool {
    body["content"]
        .as_str()
        .is_some_and(|c| c.chars().count() > 2000)
}

fn next_id(world: &World) -> String {
    format!(
        "13{:017}",
        world.discord.next_id.fetch_add(1, Ordering::SeqCst)
    )
}

async fn gateway_bot(headers: HeaderMap) -> Response {
    if !bot_authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
    }
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    Json(json!({"url": format!("ws://{host}/discord/gateway"), "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}))
    .into_response()
}

async fn channel_message(
    State(world): State<World>,
    Path(channel): Path<String>,
    request: Request,
) -> Response {
    let (headers, body) = match message_body(request).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    if !bot_authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
    }
    if too_long(&body) {
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    }
    let mut recorded = body.clone();
    recorded["channel"] = json!(channel);
    record(
        &world,
        "/discord/channel-message".into(),
        &headers,
        &recorded,
    );
    Json(json!({"id": next_id(&world), "channel_id": channel, "content": body["content"]}))
        .into_response()
}

async fn edit_channel_message(
    State(world): State<World>,
    Path((channel, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !bot_authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
    }
    record(
        &world,
        format!("/discord/channel-edit {channel}/{id}"),
        &headers,
        &body,
    );
    Json(json!({"id": id, "channel_id": channel, "content": body["content"]})).into_response()
}

async fn typing(
    State(world): State<World>,
    Path(channel): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !bot_authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
    }
    record(
        &world,
        format!("/discord/typing {channel}"),
        &headers,
        &Value::Null,
    );
    StatusCode::NO_CONTENT.into_response()
}

async fn open_dm(
    State(world): State<World>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !bot_authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
    }
    record(&world, "/discord/open-dm".into(), &headers, &body);
    let user = body["recipient_id"].as_str().unwrap_or("0");
    Json(json!({"id": format!("9{user}"), "type": 1, "recipients": [{"id": user}]})).into_response()
}

async fn original(
    State(world): State<World>,
    Path((_, token, id)): Path<(String, String, String)>,
) -> Response {
    match (
        id.as_str(),
        world.discord.originals.lock().unwrap().get(&token),
    ) {
        ("@original", Some((content, flags))) => {
            Json(json!({"id": format!("orig-{token}"), "content": content, "flags": flags}))
                .into_response()
        }
        _ => error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook"),
    }
}

async fn edit_webhook_message(
    State(world): State<World>,
    Path((_, token, id)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let (headers, body) = match message_body(request).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    if too_long(&body) {
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    }
    let mut originals = world.discord.originals.lock().unwrap();
    let Some(original) = originals.get_mut(&token) else {
        return error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook");
    };
    if id == "@original" || id == format!("orig-{token}") {
        *original = (body["content"].as_str().unwrap_or("").to_string(), 0);
    }
    drop(originals);
    record(
        &world,
        format!("/discord/interaction-edit {id}"),
        &headers,
        &body,
    );
    Json(json!({"id": id, "content": body["content"]})).into_response()
}

async fn followup(
    State(world): State<World>,
    Path((_, token)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (headers, body) = match message_body(request).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    if !world.discord.originals.lock().unwrap().contains_key(&token) {
        return error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook");
    }
    if too_long(&body) {
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    }
    record(
        &world,
        "/discord/interaction-followup".into(),
        &headers,
        &body,
    );
    Json(json!({"id": next_id(&world), "content": body["content"]})).into_response()
}

/// Bulk-overwrites the application's commands: each needs a lowercase name of 1-32 characters
/// and a description of 1-100, or Discord refuses the lot (50035).
async fn register(
    State(world): State<World>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !bot_authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
    }
    let Some(commands) = body.as_array() else {
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    };
    let valid = commands.iter().all(|c| {
        let name = c["name"].as_str().unwrap_or("");
        let description = c["description"].as_str().unwrap_or("").chars().count();
        (1..=32).contains(&name.len())
            && name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch == '-' || ch == '_')
            && (1..=100).contains(&description)
    });
    if !valid {
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    }
    record(&world, "/discord/commands".into(), &headers, &body);
    let registered: Vec<Value> = commands
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c["id"] = json!(next_id(&world));
            c
        })
        .collect();
    Json(Value::Array(registered)).into_response()
}

async fn gateway(
    State(world): State<World>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    upgrade
        .on_upgrade(move |socket| serve(socket, world.discord.clone(), host))
        .into_response()
}

async fn send(socket: &mut WebSocket, value: Value) -> bool {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.to_string().into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

async fn serve(mut socket: WebSocket, discord: Arc<Discord>, host: String) {
    if !send(
        &mut socket,
        json!({"op": 10, "d": {"heartbeat_interval": 1000}}),
    )
    .await
    {
        return;
    }
    let Some(Ok(Message::Text(first))) = socket.recv().await else {
        return;
    };
    let first: Value = serde_json::from_str(first.as_str()).unwrap_or_default();
    let d = &first["d"];
    // The index of the next event this connection sends.
    let mut next = match first["op"].as_u64() {
        Some(2) => {
            if d["token"] != DISCORD_TOKEN {
                return close(socket, 4004, "Authentication failed.").await;
            }
            let intents = d["intents"].as_u64().unwrap_or(0);
            if intents & (1 << 15) == 0 || intents & (1 << 12) == 0 {
                return close(socket, 4014, "Disallowed intent(s).").await;
            }
            // The session starts with the events that come after it; it is counted only once
            // it exists, so a test that waits for the count can push events it will get.
            let session = format!("sess-{}", ulid::Ulid::new());
            let start = discord.events.lock().unwrap().len();
            discord
                .sessions
                .lock()
                .unwrap()
                .insert(session.clone(), start);
            discord.identifies.fetch_add(1, Ordering::SeqCst);
            let ready = json!({"op": 0, "t": "READY", "s": 1, "d": {"v": 10, "session_id": session,
                "resume_gateway_url": format!("ws://{host}/discord/gateway"),
                "user": {"id": DISCORD_BOT, "username": "clawgate", "bot": true}, "guilds": []}});
            if !send(&mut socket, ready).await {
                return;
            }
            start
        }
        Some(6) => {
            let session = d["session_id"].as_str().unwrap_or("");
            let Some(start) = discord.sessions.lock().unwrap().get(session).copied() else {
                let _ = send(&mut socket, json!({"op": 9, "d": false})).await;
                return;
            };
            if d["token"] != DISCORD_TOKEN {
                return close(socket, 4004, "Authentication failed.").await;
            }
            discord.resumes.fetch_add(1, Ordering::SeqCst);
            let seq = d["seq"].as_u64().unwrap_or(0) as usize;
            if discord.replay_all.load(Ordering::SeqCst) {
                start
            } else {
                seq.saturating_sub(1).max(start)
            }
        }
        _ => return close(socket, 4003, "Not authenticated.").await,
    };
    let mut resumed = first["op"] == 6;
    loop {
        let woken = discord.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let due: Vec<Value> = discord.events.lock().unwrap()[next..].to_vec();
        for d in due {
            let event = json!({"op": 0, "t": "MESSAGE_CREATE", "s": next + 2, "d": d});
            next += 1;
            if !send(&mut socket, event).await {
                return;
            }
        }
        if resumed {
            resumed = false;
            if !send(
                &mut socket,
                json!({"op": 0, "t": "RESUMED", "s": null, "d": {}}),
            )
            .await
            {
                return;
            }
        }
        tokio::select! {
            _ = &mut woken => {}
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    if frame["op"] == 1 && !send(&mut socket, json!({"op": 11})).await {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}
