//! WebChat: a page at `/` and its API, served beside the webhook Router by `clawgate up` and
//! `clawgate gateway` (they hold the state store; the Lambda functions do not).
//!
//! - `POST /webchat/send` `{conversation, text}` queues a job on channel `webchat`, the same
//!   queue and worker path as every channel, and answers 202 `{jobId, sessionKey, seq}`.
//! - `GET /webchat/history?conversation=C&after=N` returns the session's transcript entries
//!   from seq `N`, a page at a time (`more` says another follows): the user's messages, tool
//!   calls and results as the worker checkpoints them, and `reply` entries, which are what the
//!   worker delivered (the answer, a command's answer, an error notice), with their markdown
//!   rendered to safe HTML ([`crate::markdown`]).
//! - `GET /webchat/events?conversation=C&after=N` is the same entries as a server-sent event
//!   stream (`event: entries`), so the page sees tool calls and the reply as they land.
//! - `GET /webchat/conversations` lists this agent's WebChat conversations, newest first.
//! - `POST /webchat/upload` and `GET /webchat/file` move files in and out of the
//!   conversation's workspace ([`crate::webchat_files`]); `send` names uploads in `files`.
//! - The Stop button sends `/stop`, which takes its own queue lane and stops the running job.
//!
//! Decisions (docs/security.md):
//! - Both API calls always need `Authorization: Bearer <token>` (else 401 and nothing queued):
//!   a gateway without a configured token makes one on first run. The page itself is static
//!   and holds no data; it takes the token from the URL fragment `clawgate up` prints once
//!   (`/#token=…`, never sent to the server) or asks for it, and keeps it in the tab's
//!   sessionStorage.
//! - Browsers are held off three ways, each enough alone: a request whose `Origin` is not the
//!   gateway's own is refused (403); `POST` bodies must be `application/json` (415), so no
//!   form or `text/plain` request crosses sites without a CORS preflight, which this gateway
//!   never answers; and on a loopback gateway a `Host` that names no loopback address is
//!   refused (403), so a DNS-rebound name cannot reach it.
//! - A conversation id is chosen by the page (random, kept in localStorage) and must be 1-64
//!   characters of `A-Z a-z 0-9 _ -`; it is the peer of the session key
//!   `agent:<agent>:webchat:dm:<conversation>`.
//! - Updates come over SSE, read by the page with `fetch` (an `EventSource` cannot send the
//!   `Authorization` header, and a token in a URL would land in logs). Behind the stream the
//!   gateway reads the store every [`EVENTS_POLL`]: the store has no cross-process change
//!   feed, and one key-range read per open page is cheap. A stream ends after
//!   [`EVENTS_MAX`]; the page reconnects from where it was.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use infra::config::Secret;
use infra::model::{
    Channel, ChatKind, ChatRef, EntryBody, InboundMessage, JobMessage, ReplyTarget, Sender,
    SessionKey, TranscriptEntry, WebchatTarget,
};
use infra::queue::{JobQueue, JobQueueExt};
use infra::store::StateStore;
use serde::Deserialize;
use serde_json::{json, Value};

/// A message longer than this is refused (413): it is typed by a person.
pub const MAX_MESSAGE_CHARS: usize = 32_000;
/// Most entries one history call returns.
const HISTORY_PAGE: usize = 200;
/// How often an open event stream reads the store for new entries.
const EVENTS_POLL: std::time::Duration = std::time::Duration::from_millis(300);
/// How long one event stream stays open.
const EVENTS_MAX: std::time::Duration = std::time::Duration::from_secs(300);
/// Most conversations `/webchat/conversations` lists.
const CONVERSATIONS: usize = 50;
/// Tool output shown on the page is cut to this many characters.
const SHOWN_OUTPUT_CHARS: usize = 2_000;

const PAGE: &str = include_str!("webchat.html");

/// What the WebChat routes need.
#[derive(Clone)]
pub struct WebChat {
    pub queue: Arc<dyn JobQueue>,
    pub store: Arc<dyn StateStore>,
    pub token: Secret,
    pub agent: String,
    /// The gateway listens on loopback: only loopback host names are served.
    pub loopback_only: bool,
    /// The conversations' workspaces, for uploads and downloads (`clawgate up` only).
    pub files: Option<Arc<dyn crate::webchat_files::SessionFiles>>,
}

/// The page and its API; merge into the webhook Router.
pub fn routes(webchat: WebChat) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/webchat/send", post(send))
        .route("/webchat/history", get(history))
        .route("/webchat/events", get(events))
        .route("/webchat/conversations", get(conversations))
        .route(
            "/webchat/upload",
            post(crate::webchat_files::upload).layer(axum::extract::DefaultBodyLimit::max(
                crate::webchat_files::MAX_UPLOAD_BYTES,
            )),
        )
        .route("/webchat/file", get(crate::webchat_files::file))
        .with_state(Arc::new(webchat))
}

pub(crate) fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// `None` when the request may go on: its host, origin, content type and token pass.
pub(crate) fn check_request(
    webchat: &WebChat,
    headers: &HeaderMap,
    json_body: bool,
) -> Option<Response> {
    gateway_guard(&webchat.token, webchat.loopback_only, headers, json_body)
}

/// The gateway's guard for its own pages' API calls (WebChat, the Control UI): on a loopback
/// gateway only loopback host names, no foreign `Origin`, JSON bodies only, and the token.
pub fn gateway_guard(
    token: &Secret,
    loopback_only: bool,
    headers: &HeaderMap,
    json_body: bool,
) -> Option<Response> {
    let host = crate::header_text(headers, axum::http::header::HOST).unwrap_or("");
    if loopback_only && !is_loopback_host(host) {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "this gateway listens on loopback and answers only loopback host names",
        ));
    }
    if let Some(refused) = crate::browser_guard(headers, json_body) {
        return Some(refused);
    }
    if crate::bearer_matches(headers, token) {
        None
    } else {
        Some(refuse(
            StatusCode::UNAUTHORIZED,
            "bad or missing gateway token (Authorization: Bearer …)",
        ))
    }
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A conversation id: 1-64 characters of `A-Z a-z 0-9 _ -` (also URL-safe as it is).
pub fn valid_conversation(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(crate) fn session_key(webchat: &WebChat, conversation: &str) -> SessionKey {
    SessionKey::dm(&webchat.agent, Channel::Webchat, conversation)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    conversation: String,
    #[serde(default)]
    text: String,
    /// Uploaded files (`POST /webchat/upload`) that go with the message.
    #[serde(default)]
    files: Vec<crate::webchat_files::AttachedFile>,
}

async fn send(State(webchat): State<Arc<WebChat>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = check_request(&webchat, &headers, true) {
        return refused;
    }
    let request: SendRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("malformed request: {e}")),
    };
    if !valid_conversation(&request.conversation) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "conversation must be 1-64 characters of A-Z a-z 0-9 _ -",
        );
    }
    let text = request.text.trim();
    if request.files.len() > infra::model::MAX_MEDIA_PER_MESSAGE {
        return refuse(StatusCode::BAD_REQUEST, "too many files for one message");
    }
    let Some(media) = request
        .files
        .iter()
        .map(crate::webchat_files::AttachedFile::media)
        .collect::<Option<Vec<_>>>()
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "files must be paths /webchat/upload returned",
        );
    };
    if text.is_empty() && media.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "text is empty");
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("text is over {MAX_MESSAGE_CHARS} characters"),
        );
    }
    let key = session_key(&webchat, &request.conversation);
    // Where the page should read from to see this message and what follows it.
    let seq = match webchat.store.get_session(&key).await {
        Ok(meta) => meta.map_or(0, |m| m.next_seq),
        Err(e) => {
            tracing::error!(error = %e, "webchat: state store unavailable");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "state store unavailable");
        }
    };
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let mut inbound = InboundMessage::new(
        Channel::Webchat,
        "default",
        format!("webchat:default:{id}"),
        ChatRef::new(ChatKind::Dm, request.conversation.clone()),
        Sender {
            id: request.conversation.clone(),
            name: Some("webchat".into()),
        },
        text.to_string(),
    );
    inbound.media = media;
    let target = ReplyTarget::Webchat(WebchatTarget {
        conversation: request.conversation,
    });
    let job = JobMessage::new(key.clone(), &webchat.agent, inbound, Some(target));
    match webchat.queue.send(&job).await {
        Ok(_) => (
            StatusCode::ACCEPTED,
            Json(json!({ "jobId": job.job_id, "sessionKey": key.to_string(), "seq": seq })),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "webchat: enqueue failed");
            refuse(StatusCode::SERVICE_UNAVAILABLE, "queue unavailable; retry")
        }
    }
}

#[derive(Deserialize)]
struct HistoryQuery {
    conversation: String,
    #[serde(default)]
    after: u64,
}

/// A history or events request, checked: the guard, the query, the conversation id.
#[allow(clippy::result_large_err)] // the refusal is the response itself, built once
fn read_request(
    webchat: &WebChat,
    headers: &HeaderMap,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(SessionKey, HistoryQuery), Response> {
    if let Some(refused) = check_request(webchat, headers, false) {
        return Err(refused);
    }
    let Ok(Query(query)) = query else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "expected ?conversation=ID&after=SEQ",
        ));
    };
    if !valid_conversation(&query.conversation) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "conversation must be 1-64 characters of A-Z a-z 0-9 _ -",
        ));
    }
    Ok((session_key(webchat, &query.conversation), query))
}

async fn history(
    State(webchat): State<Arc<WebChat>>,
    headers: HeaderMap,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (key, query) = match read_request(&webchat, &headers, query) {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    match webchat
        .store
        .load_transcript(&key, query.after, HISTORY_PAGE)
        .await
    {
        Ok(page) => {
            let next = page
                .next_seq
                .or(page.entries.last().map(|e| e.seq + 1))
                .unwrap_or(query.after);
            let entries: Vec<Value> = page.entries.iter().flat_map(shown).collect();
            let more = page.next_seq.is_some();
            Json(json!({ "entries": entries, "next": next, "more": more })).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "webchat: state store unavailable");
            refuse(StatusCode::SERVICE_UNAVAILABLE, "state store unavailable")
        }
    }
}

fn cut(text: &str) -> String {
    infra::channels::truncate_chars(text, SHOWN_OUTPUT_CHARS)
}

/// `GET /webchat/events`: new entries as server-sent events, from `after` on.
async fn events(
    State(webchat): State<Arc<WebChat>>,
    headers: HeaderMap,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let (key, query) = match read_request(&webchat, &headers, query) {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let opened = tokio::time::Instant::now();
    let stream = futures_util::stream::unfold(
        (webchat, key, query.after),
        move |(webchat, key, after)| async move {
            while opened.elapsed() < EVENTS_MAX {
                match webchat
                    .store
                    .load_transcript(&key, after, HISTORY_PAGE)
                    .await
                {
                    Ok(page) if !page.entries.is_empty() => {
                        let next = page.entries.last().map_or(after, |e| e.seq + 1);
                        let entries: Vec<Value> = page.entries.iter().flat_map(shown).collect();
                        let data = json!({ "entries": entries, "next": next }).to_string();
                        let event = Event::default().event("entries").data(data);
                        return Some((
                            Ok::<_, std::convert::Infallible>(event),
                            (webchat, key, next),
                        ));
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "webchat events: state store unavailable"),
                }
                tokio::time::sleep(EVENTS_POLL).await;
            }
            None
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /webchat/conversations`: this agent's WebChat conversations, newest first, each with
/// its first message as a title.
async fn conversations(State(webchat): State<Arc<WebChat>>, headers: HeaderMap) -> Response {
    if let Some(refused) = check_request(&webchat, &headers, false) {
        return refused;
    }
    let sessions = match webchat.store.list_sessions(&webchat.agent, 500).await {
        Ok(sessions) => sessions,
        Err(e) => {
            tracing::error!(error = %e, "webchat: state store unavailable");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "state store unavailable");
        }
    };
    let mut listed = Vec::new();
    for meta in sessions
        .into_iter()
        .filter(|m| m.channel.as_deref() == Some(Channel::Webchat.as_str()))
        .take(CONVERSATIONS)
    {
        let title = match webchat.store.load_transcript(&meta.key, 0, 4).await {
            Ok(page) => page.entries.iter().find_map(|e| match &e.body {
                EntryBody::User { text, .. } => Some(text.chars().take(60).collect::<String>()),
                _ => None,
            }),
            Err(_) => None,
        };
        listed.push(json!({
            "conversation": meta.peer,
            "title": title,
            "lastActiveMs": meta.last_active_ms,
            "entries": meta.next_seq,
        }));
    }
    Json(json!({ "conversations": listed })).into_response()
}

/// An entry as the pages render it. An assistant's text is not shown: its `reply` copy is.
pub fn shown(entry: &TranscriptEntry) -> Vec<Value> {
    let base = |kind: &str| json!({ "seq": entry.seq, "at": entry.at, "jobId": entry.job_id, "kind": kind });
    let with = |kind: &str, fields: Value| {
        let mut v = base(kind);
        for (k, x) in fields.as_object().into_iter().flatten() {
            v[k] = x.clone();
        }
        v
    };
    match &entry.body {
        EntryBody::User { text, .. } => vec![with("user", json!({ "text": text }))],
        EntryBody::Assistant { tool_calls, .. } => tool_calls
            .iter()
            .map(|c| with("tool_call", json!({ "name": c.name, "input": c.input })))
            .collect(),
        EntryBody::ToolResult {
            name,
            output,
            is_error,
            ..
        } => vec![with(
            "tool_result",
            json!({ "name": name, "text": cut(output), "isError": is_error }),
        )],
        EntryBody::Delivered { text } => vec![with(
            "reply",
            json!({ "text": text, "html": infra::markdown::to_safe_html(text) }),
        )],
        EntryBody::Summary { .. } | EntryBody::Options(_) => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_are_loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST:18789",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]:18789",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:18789",
            "127.0.0.1.evil.example",
            "10.0.0.1:80",
            "",
            "[::2]:1",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
