//! What the fake platforms hold beyond recorded calls: Telegram messages (so `editMessageText`
//! refuses an unknown or unchanged message as Telegram does), files users sent (`getFile` and
//! the file URL), Slack messages for `chat.update`, Slack's external upload flow, private file
//! URLs that need the bot token, and an OpenAI-compatible `/audio/transcriptions`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{record, Fakes, World};

/// A Slack upload: its declared length, and its bytes once they came.
type Upload = (usize, Option<Vec<u8>>);

#[derive(Default)]
pub struct Media {
    next_id: AtomicI64,
    /// Telegram (chat, message id) → text.
    messages: Mutex<HashMap<(i64, i64), String>>,
    /// Telegram file id → (file path, bytes).
    files: Mutex<HashMap<String, (String, Vec<u8>)>>,
    /// Slack ts → text.
    slack_messages: Mutex<HashMap<String, String>>,
    /// Slack upload file id → (declared length, bytes once uploaded).
    uploads: Mutex<HashMap<String, Upload>>,
    /// Slack private file path → bytes.
    private: Mutex<HashMap<String, Vec<u8>>>,
    transcript: Mutex<String>,
}

impl Media {
    fn next(&self) -> i64 {
        1000 + self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    /// A Slack `chat.postMessage`: remembers the text, returns its ts.
    pub fn slack_post(&self, text: &str) -> String {
        let ts = format!("1700000001.{:06}", self.next());
        self.slack_messages
            .lock()
            .unwrap()
            .insert(ts.clone(), text.to_string());
        ts
    }
}

impl Fakes {
    /// A file a Telegram user sent: `getFile` knows `file_id` from now on.
    pub fn telegram_file(&self, file_id: &str, bytes: Vec<u8>) {
        let path = format!("documents/file_{}", self.world.media.next());
        self.world
            .media
            .files
            .lock()
            .unwrap()
            .insert(file_id.to_string(), (path, bytes));
    }

    /// A file a Slack user shared; returns its `url_private_download`.
    pub fn slack_file(&self, name: &str, bytes: Vec<u8>) -> String {
        let path = format!("T061EG9R6-F{}/download/{name}", self.world.media.next());
        self.world
            .media
            .private
            .lock()
            .unwrap()
            .insert(path.clone(), bytes);
        format!("{}/files-pri/{path}", self.base_url)
    }

    /// What `/audio/transcriptions` answers.
    pub fn set_transcript(&self, text: &str) {
        *self.world.media.transcript.lock().unwrap() = text.to_string();
    }

    /// Deletes every Slack message the bot posted, as a user can: `chat.update` then answers
    /// `message_not_found`.
    pub fn delete_slack_messages(&self) {
        self.world.media.slack_messages.lock().unwrap().clear();
    }

    /// Telegram `editMessageText` calls that Telegram accepted.
    pub fn edits(&self) -> Vec<super::Call> {
        self.calls("/editMessageText ok:")
    }
}

pub fn routes(router: Router<World>) -> Router<World> {
    router
        .route("/file/{bot}/{*path}", get(telegram_file))
        .route("/api/chat.update", post(slack_update))
        .route("/api/files.getUploadURLExternal", post(slack_upload_url))
        .route("/upload/v1/{id}", post(slack_upload))
        .route(
            "/api/files.completeUploadExternal",
            post(slack_complete_upload),
        )
        .route("/files-pri/{*path}", get(slack_private))
        .route("/v1/audio/transcriptions", post(transcribe))
}

/// A Bot API request body as JSON: a JSON body as is, multipart form data as its fields (a
/// file field becomes `{filename, content_type, bytes, is_image}`).
pub async fn telegram_body(request: axum::extract::Request) -> Result<Value, Response> {
    let multipart = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !multipart {
        let Json(body) = Json::<Value>::from_request(request, &())
            .await
            .map_err(IntoResponse::into_response)?;
        return Ok(body);
    }
    let fields = read_multipart(request).await?;
    let mut body = json!({});
    for (name, field) in fields {
        body[name] = field;
    }
    Ok(body)
}

async fn read_multipart(request: axum::extract::Request) -> Result<Vec<(String, Value)>, Response> {
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(IntoResponse::into_response)?;
    let mut fields = vec![];
    while let Some(field) = form
        .next_field()
        .await
        .map_err(IntoResponse::into_response)?
    {
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(str::to_string);
        let bytes = field.bytes().await.map_err(IntoResponse::into_response)?;
        let value = match file_name {
            Some(filename) => json!({
                "filename": filename, "content_type": content_type, "bytes": bytes.len(),
                "is_image": bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
            }),
            None => json!(String::from_utf8_lossy(&bytes)),
        };
        fields.push((name, value));
    }
    Ok(fields)
}

/// The `result` of a Bot API method, or Telegram's `description` of a 400.
pub fn telegram_method(media: &Media, method: &str, body: &Value) -> Result<Value, String> {
    let chat = body["chat_id"]
        .as_i64()
        .or_else(|| body["chat_id"].as_str().and_then(|c| c.parse().ok()))
        .unwrap_or(0);
    let message =
        |id: i64| json!({"message_id": id, "date": 0, "chat": {"id": chat, "type": "private"}});
    match method {
        "sendMessage" => {
            let id = media.next();
            let text = body["text"].as_str().unwrap_or("").to_string();
            media
                .messages
                .lock()
                .unwrap()
                .insert((chat, id), text.clone());
            let mut sent = message(id);
            sent["text"] = json!(text);
            Ok(sent)
        }
        "editMessageText" => {
            let id = body["message_id"].as_i64().unwrap_or(0);
            let text = body["text"].as_str().unwrap_or("").to_string();
            let mut messages = media.messages.lock().unwrap();
            let Some(current) = messages.get_mut(&(chat, id)) else {
                return Err("Bad Request: message to edit not found".into());
            };
            if *current == text {
                return Err("Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message".into());
            }
            *current = text.clone();
            let mut edited = message(id);
            edited["text"] = json!(text);
            Ok(edited)
        }
        "sendPhoto" => {
            if body["photo"]["is_image"] != true {
                return Err("Bad Request: IMAGE_PROCESS_FAILED".into());
            }
            let mut sent = message(media.next());
            sent["photo"] =
                json!([{"file_id": "AgACsent", "file_unique_id": "u", "width": 1, "height": 1}]);
            Ok(sent)
        }
        "sendDocument" => {
            if !body["document"].is_object() {
                return Err("Bad Request: there is no document in the request".into());
            }
            let mut sent = message(media.next());
            sent["document"] =
                json!({"file_id": "BQACsent", "file_name": body["document"]["filename"]});
            Ok(sent)
        }
        "getFile" => {
            let id = body["file_id"].as_str().unwrap_or("");
            let files = media.files.lock().unwrap();
            let (path, bytes) = files
                .get(id)
                .ok_or_else(|| "Bad Request: invalid file_id".to_string())?;
            Ok(
                json!({"file_id": id, "file_unique_id": "u", "file_size": bytes.len(), "file_path": path}),
            )
        }
        _ => Ok(json!(true)),
    }
}

async fn telegram_file(
    State(world): State<World>,
    Path((bot, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    record(
        &world,
        format!("/file/{bot}/{path}"),
        &headers,
        &Value::Null,
    );
    let files = world.media.files.lock().unwrap();
    match files.values().find(|(p, _)| *p == path) {
        Some((_, bytes)) if bot.starts_with("bot") => bytes.clone().into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn slack_error(error: &str) -> Response {
    Json(json!({"ok": false, "error": error})).into_response()
}

async fn slack_update(
    State(world): State<World>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    record(&world, "/api/chat.update".into(), &headers, &body);
    let ts = body["ts"].as_str().unwrap_or("");
    let mut messages = world.media.slack_messages.lock().unwrap();
    let Some(text) = messages.get_mut(ts) else {
        return slack_error("message_not_found");
    };
    *text = body["text"].as_str().unwrap_or("").to_string();
    Json(json!({"ok": true, "channel": body["channel"], "ts": ts, "text": body["text"]}))
        .into_response()
}

/// `files.getUploadURLExternal` takes form-encoded arguments only (a JSON body is refused as
/// Slack refuses it).
async fn slack_upload_url(State(world): State<World>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = url_form(&body);
    record(
        &world,
        "/api/files.getUploadURLExternal".into(),
        &headers,
        &json!(form),
    );
    let form_encoded = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let (Some(_), Some(Ok(length))) = (
        form.get("filename"),
        form.get("length").map(|l| l.parse::<usize>()),
    ) else {
        return slack_error("invalid_arguments");
    };
    if !form_encoded {
        return slack_error("invalid_arguments");
    }
    let id = format!("F{}", world.media.next());
    world
        .media
        .uploads
        .lock()
        .unwrap()
        .insert(id.clone(), (length, None));
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    Json(json!({"ok": true, "upload_url": format!("http://{host}/upload/v1/{id}"), "file_id": id}))
        .into_response()
}

async fn slack_upload(
    State(world): State<World>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(
        &world,
        format!("/upload/v1/{id}"),
        &headers,
        &json!({"bytes": body.len()}),
    );
    if headers.get("authorization").is_some() {
        return (
            StatusCode::BAD_REQUEST,
            "the upload URL is pre-signed; no token",
        )
            .into_response();
    }
    let mut uploads = world.media.uploads.lock().unwrap();
    match uploads.get_mut(&id) {
        Some((length, bytes)) if *length == body.len() => {
            *bytes = Some(body.to_vec());
            (StatusCode::OK, format!("OK - {}", body.len())).into_response()
        }
        Some(_) => (StatusCode::BAD_REQUEST, "length mismatch").into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn slack_complete_upload(
    State(world): State<World>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    record(
        &world,
        "/api/files.completeUploadExternal".into(),
        &headers,
        &body,
    );
    let uploads = world.media.uploads.lock().unwrap();
    let files = body["files"].as_array().cloned().unwrap_or_default();
    let all_uploaded = !files.is_empty()
        && files.iter().all(|f| {
            f["id"]
                .as_str()
                .and_then(|id| uploads.get(id))
                .is_some_and(|(_, bytes)| bytes.is_some())
        });
    if !all_uploaded {
        return slack_error("file_not_found");
    }
    Json(json!({"ok": true, "files": files})).into_response()
}

async fn slack_private(
    State(world): State<World>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    record(&world, format!("/files-pri/{path}"), &headers, &Value::Null);
    let authorised = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "Bearer xoxb-e2e" || v == "Bearer xoxb-test");
    if !authorised {
        // Slack serves its login page, not the file, without the token.
        return (StatusCode::OK, "<html>sign in</html>").into_response();
    }
    match world.media.private.lock().unwrap().get(&path) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn transcribe(State(world): State<World>, request: axum::extract::Request) -> Response {
    let headers = request.headers().clone();
    let fields = match read_multipart(request).await {
        Ok(fields) => fields,
        Err(refused) => return refused,
    };
    let body: Value = fields.into_iter().collect::<serde_json::Map<_, _>>().into();
    record(&world, "/v1/audio/transcriptions".into(), &headers, &body);
    if !body["model"].is_string() || !body["file"].is_object() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "model and file are required", "type": "invalid_request_error"}})),
        )
            .into_response();
    }
    Json(json!({"text": world.media.transcript.lock().unwrap().clone()})).into_response()
}

fn url_form(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
