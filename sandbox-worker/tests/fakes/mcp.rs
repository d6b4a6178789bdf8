//! A fake MCP server speaking streamable HTTP (protocol 2025-06-18's transport) on loopback:
//! JSON-RPC over `POST /mcp` answered with `application/json`, a session id handed out by
//! `initialize` and required on every later request (400 without it, 404 for an unknown one),
//! 406 without the `Accept` types the spec requires, 405 for the optional `GET` stream. Tools:
//! `add {a, b}` and `fail` (a tool-level error). Every `tools/call` is recorded.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
struct Seen {
    sessions: Mutex<Vec<String>>,
    calls: Mutex<Vec<(String, Value)>>,
}

pub struct FakeMcp {
    pub url: String,
    seen: Arc<Seen>,
}

impl FakeMcp {
    pub async fn start() -> FakeMcp {
        let seen = Arc::new(Seen::default());
        let app = Router::new()
            .route(
                "/mcp",
                post(rpc)
                    .get(|| async { StatusCode::METHOD_NOT_ALLOWED })
                    .delete(|| async { StatusCode::OK }),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeMcp { url, seen }
    }

    /// (tool, arguments) of every call.
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.seen.calls.lock().unwrap().clone()
    }
}

fn reply(id: &Value, result: Value) -> Response {
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

fn rpc_error(id: &Value, code: i64, message: &str) -> Response {
    Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
        .into_response()
}

async fn rpc(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: String) -> Response {
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
        return StatusCode::NOT_ACCEPTABLE.into_response();
    }
    let Ok(message) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}})),
        )
            .into_response();
    };
    let method = message["method"].as_str().unwrap_or("");
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    if method == "initialize" {
        let session = ulid::Ulid::new().to_string();
        seen.sessions.lock().unwrap().push(session.clone());
        let version = message["params"]["protocolVersion"]
            .as_str()
            .unwrap_or("2025-06-18")
            .to_string();
        let mut response = reply(
            &id,
            json!({"protocolVersion": version, "capabilities": {"tools": {}},
                   "serverInfo": {"name": "fake-mcp", "version": "1.0.0"}}),
        );
        response
            .headers_mut()
            .insert("mcp-session-id", session.parse().unwrap());
        return response;
    }
    let Some(session) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) else {
        return (StatusCode::BAD_REQUEST, "Mcp-Session-Id header is required").into_response();
    };
    if !seen.sessions.lock().unwrap().iter().any(|s| s == session) {
        return StatusCode::NOT_FOUND.into_response();
    }
    if message.get("id").is_none() {
        // A notification (`notifications/initialized`, cancellations): accepted, no body.
        return StatusCode::ACCEPTED.into_response();
    }
    match method {
        "ping" => reply(&id, json!({})),
        "tools/list" => reply(
            &id,
            json!({"tools": [
                {"name": "add", "description": "Add two numbers",
                 "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}},
                {"name": "fail", "description": "Always fails",
                 "inputSchema": {"type": "object", "properties": {}}}
            ]}),
        ),
        "tools/call" => {
            let name = message["params"]["name"].as_str().unwrap_or("").to_string();
            let args = message["params"]["arguments"].clone();
            seen.calls
                .lock()
                .unwrap()
                .push((name.clone(), args.clone()));
            match name.as_str() {
                "add" => match (args["a"].as_f64(), args["b"].as_f64()) {
                    (Some(a), Some(b)) => reply(
                        &id,
                        json!({"content": [{"type": "text", "text": format!("{}", a + b)}], "isError": false}),
                    ),
                    _ => rpc_error(&id, -32602, "Invalid params: a and b must be numbers"),
                },
                "fail" => reply(
                    &id,
                    json!({"content": [{"type": "text", "text": "the tool failed on purpose"}], "isError": true}),
                ),
                other => rpc_error(&id, -32602, &format!("Unknown tool: {other}")),
            }
        }
        other => rpc_error(&id, -32601, &format!("Method not found: {other}")),
    }
}
