//! A `signal-cli` daemon in HTTP mode, faked: `GET /api/v1/events` (server-sent events: each
//! pushed envelope once, as `event: receive`) and `POST /api/v1/rpc` (JSON-RPC 2.0: `send`,
//! `sendTyping`, `getAttachment`). Like signal-cli it answers a request that is not JSON-RPC 2.0
//! with `-32600`, an unknown method with `-32601`, and a `send` with neither `recipient` nor
//! `groupId`, or with nothing to send, with `-32602`.

use std::convert::Infallible;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{record, World};

#[derive(Default)]
pub(super) struct Signal {
    /// Envelopes not yet streamed, oldest first.
    pending: Mutex<Vec<Value>>,
    wake: tokio::sync::Notify,
}

pub(super) fn routes(router: Router<World>) -> Router<World> {
    router
        .route("/api/v1/events", get(events))
        .route("/api/v1/rpc", post(rpc))
}

impl super::Fakes {
    /// A `receive` event for the stream (`{"envelope": …, "account": …}`).
    pub fn push_signal_event(&self, event: Value) {
        let signal = &self.world.signal;
        signal.pending.lock().unwrap().push(event);
        signal.wake.notify_waiters();
    }

    /// `send` calls the daemon accepted.
    pub fn signal_sent(&self) -> Vec<super::Call> {
        self.calls("/signal/send")
    }
}

async fn events(
    State(world): State<World>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let signal = world.signal.clone();
    let stream = futures_util::stream::unfold(signal, |signal| async move {
        loop {
            let ready = {
                let woken = signal.wake.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                let next = {
                    let mut pending = signal.pending.lock().unwrap();
                    (!pending.is_empty()).then(|| pending.remove(0))
                };
                if next.is_none() {
                    woken.await;
                }
                next
            };
            if let Some(event) = ready {
                let event = Event::default().event("receive").data(event.to_string());
                return Some((Ok(event), signal));
            }
        }
    });
    Sse::new(stream)
}

fn rpc_error(id: &Value, code: i64, message: &str) -> Response {
    Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
        .into_response()
}

async fn rpc(
    State(world): State<World>,
    headers: HeaderMap,
    Json(request): Json<Value>,
) -> Response {
    let id = request["id"].clone();
    if request["jsonrpc"] != "2.0" || id.is_null() {
        return rpc_error(&id, -32600, "Invalid Request");
    }
    let params = &request["params"];
    let result = match request["method"].as_str() {
        Some("send") => {
            let to_person = params["recipient"]
                .as_array()
                .is_some_and(|r| !r.is_empty());
            let to_group = params["groupId"].as_str().is_some_and(|g| !g.is_empty());
            let something = params["message"].as_str().is_some_and(|m| !m.is_empty())
                || params["attachments"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty());
            if to_person == to_group || !something {
                return rpc_error(
                    &id,
                    -32602,
                    "Invalid params: a recipient or a groupId, and a message or attachments",
                );
            }
            let n = record(&world, "/signal/send".into(), &headers, params);
            json!({"timestamp": 1764842500000i64 + n as i64, "results": [{"type": "SUCCESS"}]})
        }
        Some("sendTyping") => {
            record(&world, "/signal/typing".into(), &headers, params);
            json!({})
        }
        Some("getAttachment") => json!({"data": "aGVsbG8gZnJvbSBzaWduYWw="}),
        _ => return rpc_error(&id, -32601, "Method not found"),
    };
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}
