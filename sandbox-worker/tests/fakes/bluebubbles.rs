//! A BlueBubbles server, faked: `POST /api/v1/message/text`, `POST /api/v1/message/attachment`
//! and `GET /api/v1/attachment/<guid>/download`. Like BlueBubbles it wants the server password
//! as the `password` query parameter (401 otherwise), a `chatGuid` of the form
//! `<service>;<-|+>;<id>`, a `tempGuid`, and a non-empty message (400 otherwise).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{record, World};

/// The server password the fake accepts.
pub const BLUEBUBBLES_PASSWORD: &str = "bb-e2e password&1";

pub(super) fn routes(router: Router<World>) -> Router<World> {
    router
        .route("/api/v1/message/text", post(send_text))
        .route("/api/v1/attachment/{guid}/download", get(download))
}

impl super::Fakes {
    /// Texts the server sent.
    pub fn bluebubbles_sent(&self) -> Vec<super::Call> {
        self.calls("/bluebubbles/text")
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let body = json!({"status": status.as_u16(), "message": message,
        "error": {"type": "Bad Request", "message": message}});
    (status, Json(body)).into_response()
}

fn authorised(query: &HashMap<String, String>) -> bool {
    query.get("password").map(String::as_str) == Some(BLUEBUBBLES_PASSWORD)
}

fn is_chat_guid(guid: &str) -> bool {
    let parts: Vec<&str> = guid.splitn(3, ';').collect();
    matches!(parts.as_slice(), [service, "-" | "+", id] if !service.is_empty() && !id.is_empty())
}

async fn send_text(
    State(world): State<World>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorised(&query) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "You are not authorized to access this resource",
        );
    }
    let chat = body["chatGuid"].as_str().unwrap_or("");
    let text = body["message"].as_str().unwrap_or("");
    if !is_chat_guid(chat) || text.is_empty() || body["tempGuid"].as_str().is_none_or(str::is_empty)
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "chatGuid, tempGuid and message are required",
        );
    }
    let n = record(&world, "/bluebubbles/text".into(), &headers, &body);
    Json(json!({"status": 200, "message": "Message sent!",
        "data": {"guid": format!("FAKE-{n}"), "text": text, "isFromMe": true}}))
    .into_response()
}

async fn download(
    Path(guid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !authorised(&query) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "You are not authorized to access this resource",
        );
    }
    format!("attachment {guid}").into_response()
}
