//! The WhatsApp Cloud API (Graph API), faked: `POST /<version>/<phone number id>/messages`,
//! `POST /<version>/<phone number id>/media`, `GET /<version>/<media id>` and the media URL it
//! answers. Like Meta it refuses a bad access token (code 190), a body without
//! `messaging_product: "whatsapp"` or over 4096 characters (code 100), and a free-form message
//! to a user who has not written in the last 24 hours (code 131047, the customer-service
//! window), which tests open with [`super::Fakes::whatsapp_customer_wrote`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{record, World};

/// The access token the fake accepts.
pub const WHATSAPP_TOKEN: &str = "EAAGe2eTOKEN";
const WINDOW: Duration = Duration::from_secs(24 * 3600);

#[derive(Default)]
pub(super) struct Whatsapp {
    /// When each `wa_id` last wrote.
    wrote: Mutex<HashMap<String, Instant>>,
    /// Media by id: MIME type and bytes (uploads, and files "users sent").
    media: Mutex<HashMap<String, (String, Vec<u8>)>>,
}

pub(super) fn routes(router: Router<World>) -> Router<World> {
    router
        .route("/v21.0/{phone}/messages", post(messages))
        .route("/v21.0/{phone}/media", post(upload))
        .route("/v21.0/{media}", get(media_url))
        .route("/whatsapp-media/{media}", get(media_file))
}

impl super::Fakes {
    /// `wa_id` wrote just now: free-form messages to it are accepted for 24 hours.
    pub fn whatsapp_customer_wrote(&self, wa_id: &str) {
        let whatsapp = &self.world.whatsapp;
        whatsapp
            .wrote
            .lock()
            .unwrap()
            .insert(wa_id.to_string(), Instant::now());
    }

    /// A file a user sent, fetchable by `media_id`.
    pub fn whatsapp_media(&self, media_id: &str, mime: &str, bytes: &[u8]) {
        let whatsapp = &self.world.whatsapp;
        whatsapp
            .media
            .lock()
            .unwrap()
            .insert(media_id.to_string(), (mime.to_string(), bytes.to_vec()));
    }

    /// Messages the Cloud API accepted.
    pub fn whatsapp_sent(&self) -> Vec<super::Call> {
        self.calls("/whatsapp/messages ok")
    }
}

fn error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "OAuthException", "code": code,
        "fbtrace_id": "AbCdEfGh"}});
    (status, Json(body)).into_response()
}

fn authorised(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {WHATSAPP_TOKEN}"))
}

async fn messages(
    State(world): State<World>,
    Path(phone): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorised(&headers) {
        record(&world, "/whatsapp/messages refused".into(), &headers, &body);
        return error(StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token.");
    }
    let to = body["to"].as_str().unwrap_or("");
    let text_len = body["text"]["body"].as_str().map(|t| t.chars().count());
    let invalid = body["messaging_product"] != "whatsapp"
        || to.is_empty()
        || !to.chars().all(|c| c.is_ascii_digit())
        || text_len.is_some_and(|n| n == 0 || n > 4096)
        || phone.is_empty();
    if invalid {
        record(&world, "/whatsapp/messages invalid".into(), &headers, &body);
        return error(StatusCode::BAD_REQUEST, 100, "Invalid parameter");
    }
    let open = world
        .whatsapp
        .wrote
        .lock()
        .unwrap()
        .get(to)
        .is_some_and(|at| at.elapsed() < WINDOW);
    if !open {
        record(&world, "/whatsapp/messages window".into(), &headers, &body);
        return error(
            StatusCode::BAD_REQUEST,
            131047,
            "Re-engagement message: more than 24 hours have passed since the recipient last replied",
        );
    }
    let n = record(&world, "/whatsapp/messages ok".into(), &headers, &body);
    Json(
        json!({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": format!("wamid.FAKE{n}")}]}),
    )
    .into_response()
}

async fn upload(State(world): State<World>, headers: HeaderMap, mut form: Multipart) -> Response {
    if !authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token.");
    }
    let (mut product, mut mime, mut file) = (None, None, None);
    while let Ok(Some(field)) = form.next_field().await {
        match field.name().unwrap_or("") {
            "messaging_product" => product = field.text().await.ok(),
            "type" => mime = field.text().await.ok(),
            "file" => file = field.bytes().await.ok(),
            _ => {}
        }
    }
    let (Some("whatsapp"), Some(mime), Some(file)) = (product.as_deref(), mime, file) else {
        return error(StatusCode::BAD_REQUEST, 100, "Invalid parameter");
    };
    let id = format!("{}", 7_000_000 + file.len());
    let summary = json!({"type": mime, "bytes": file.len(), "id": id});
    record(&world, "/whatsapp/media".into(), &headers, &summary);
    world
        .whatsapp
        .media
        .lock()
        .unwrap()
        .insert(id.clone(), (mime, file.to_vec()));
    Json(json!({"id": id})).into_response()
}

async fn media_url(
    State(world): State<World>,
    Path(media): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token.");
    }
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let found = world.whatsapp.media.lock().unwrap().get(&media).cloned();
    match found {
        Some((mime, bytes)) => Json(json!({"messaging_product": "whatsapp",
            "url": format!("http://{host}/whatsapp-media/{media}"), "mime_type": mime,
            "sha256": "unused", "file_size": bytes.len(), "id": media}))
        .into_response(),
        None => error(StatusCode::NOT_FOUND, 100, "Unsupported get request."),
    }
}

async fn media_file(
    State(world): State<World>,
    Path(media): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match world.whatsapp.media.lock().unwrap().get(&media) {
        Some((_, bytes)) => Bytes::from(bytes.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
