//! Slack's Socket Mode, faked: `POST /api/apps.connections.open` (an app-level `xapp-` token
//! required, as Slack does) answers a `ws://` URL on this server; the socket says `hello`, then
//! sends each queued envelope, and keeps every envelope until it is acknowledged with
//! `{"envelope_id"}`: a new connection gets the unacknowledged ones again, as Slack retries.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::World;

#[derive(Default)]
pub(super) struct SocketMode {
    /// Envelopes not yet acknowledged, oldest first.
    pending: Mutex<Vec<Value>>,
    wake: tokio::sync::Notify,
    acked: Mutex<Vec<String>>,
    /// Acknowledgements are recorded but not taken (the client "crashed" before sending them):
    /// the envelopes come again on the next connection.
    hold: std::sync::atomic::AtomicBool,
}

pub(super) fn routes(router: Router<World>) -> Router<World> {
    router
        .route("/api/apps.connections.open", post(open))
        .route("/link", get(link))
}

impl super::Fakes {
    /// An Events API payload to deliver over Socket Mode, in its envelope.
    pub fn push_socket_event(&self, envelope_id: &str, payload: Value) {
        let envelope = json!({"envelope_id": envelope_id, "type": "events_api",
            "accepts_response_payload": false, "retry_attempt": 0, "retry_reason": "",
            "payload": payload});
        let socket = &self.world.socket;
        socket.pending.lock().unwrap().push(envelope);
        socket.wake.notify_waiters();
    }

    /// While true, acknowledgements are not taken: every envelope comes again on the next
    /// connection, as after a crash between queueing it and acknowledging it.
    pub fn hold_socket_acks(&self, hold: bool) {
        self.world
            .socket
            .hold
            .store(hold, std::sync::atomic::Ordering::SeqCst);
    }

    /// The envelope ids acknowledged so far.
    pub fn socket_acks(&self) -> Vec<String> {
        self.world.socket.acked.lock().unwrap().clone()
    }
}

async fn open(State(_): State<World>, headers: HeaderMap) -> Json<Value> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    Json(match token {
        Some(t) if t.starts_with("xapp-") => {
            json!({"ok": true, "url": format!("ws://{host}/link")})
        }
        Some(_) => json!({"ok": false, "error": "not_allowed_token_type"}),
        None => json!({"ok": false, "error": "not_authed"}),
    })
}

async fn link(State(world): State<World>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .on_upgrade(move |socket| serve(socket, world.socket.clone()))
        .into_response()
}

async fn serve(mut socket: WebSocket, mode: Arc<SocketMode>) {
    let hello = json!({"type": "hello", "num_connections": 1,
        "connection_info": {"app_id": "A1"}, "debug_info": {"host": "fake"}});
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut sent: HashSet<String> = HashSet::new();
    loop {
        let woken = mode.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let due: Vec<Value> = mode
            .pending
            .lock()
            .unwrap()
            .iter()
            .filter(|e| !sent.contains(e["envelope_id"].as_str().unwrap_or("")))
            .cloned()
            .collect();
        for envelope in due {
            sent.insert(envelope["envelope_id"].as_str().unwrap_or("").to_string());
            if socket
                .send(Message::Text(envelope.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
        tokio::select! {
            _ = &mut woken => {}
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let ack: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    if let Some(id) = ack["envelope_id"].as_str() {
                        mode.acked.lock().unwrap().push(id.to_string());
                        if !mode.hold.load(std::sync::atomic::Ordering::SeqCst) {
                            mode.pending.lock().unwrap().retain(|e| e["envelope_id"] != id);
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}
