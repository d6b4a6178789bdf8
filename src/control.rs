//! The Control UI at `/control`, served by `clawgate up` and `clawgate gateway` beside WebChat:
//! sessions and their transcripts, jobs waiting and in flight, the dead-letter queue (redrive,
//! discard), sandboxes (recreate, prune), pairing requests (approve) and the effective config
//! with its secrets redacted. In the spirit of OpenClaw's Control UI, over the same queue and
//! store as `clawgate status`.
//!
//! Decisions:
//! - Every API call passes the WebChat guard (`functions::webchat::gateway_guard`): the gateway
//!   token, no foreign `Origin`, JSON bodies, loopback host names on a loopback gateway. The
//!   page is static and holds nothing until it has the token.
//! - The page puts every value in with `textContent`; the only HTML it shows is a reply's
//!   markdown, rendered and defused by the gateway (`infra::markdown`).
//! - "Recreate" removes the container: the next tool call of its session makes it afresh. Only
//!   containers labelled as clawgate sandboxes can be named; anything else is refused.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use infra::config::{Config, Secret};
use infra::model::SessionKey;
use infra::queue::admin;
use infra::setup::Backends;
use serde::Deserialize;
use serde_json::{json, Value};

const PAGE: &str = include_str!("control.html");
/// Transcript entries one session view reads at most.
const TRANSCRIPT_LIMIT: usize = 2_000;

/// What the Control UI's routes need.
pub struct Control {
    pub config: Arc<Config>,
    pub backends: Backends,
    pub token: Secret,
    pub loopback_only: bool,
}

pub fn routes(control: Control) -> Router {
    Router::new()
        .route("/control", get(|| async { Html(PAGE) }))
        .route("/control/api/overview", get(overview))
        .route("/control/api/session", get(session))
        .route("/control/api/{action}", post(act))
        .with_state(Arc::new(control))
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    answer(status, json!({ "error": message.to_string() }))
}

fn guard(control: &Control, headers: &HeaderMap, json_body: bool) -> Option<Response> {
    functions::webchat::gateway_guard(&control.token, control.loopback_only, headers, json_body)
}

async fn overview(State(control): State<Arc<Control>>, headers: HeaderMap) -> Response {
    if let Some(refused) = guard(&control, &headers, false) {
        return refused;
    }
    let mut snapshot = crate::status_cmd::snapshot(&control.config, &control.backends, 50).await;
    snapshot["deadLetters"]["messages"] =
        match admin::list_dead_letters(&*control.backends.queue, 50).await {
            Ok(list) => json!(list),
            Err(admin::AdminError::NoDeadLetterQueue) => json!([]),
            Err(e) => json!({ "error": e.to_string() }),
        };
    snapshot["config"] = control.config.redacted_json();
    answer(StatusCode::OK, snapshot)
}

#[derive(Deserialize)]
struct SessionQuery {
    key: String,
}

async fn session(
    State(control): State<Arc<Control>>,
    headers: HeaderMap,
    query: Result<Query<SessionQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(refused) = guard(&control, &headers, false) {
        return refused;
    }
    let Ok(Query(query)) = query else {
        return error(StatusCode::BAD_REQUEST, "expected ?key=SESSION_KEY");
    };
    let Ok(key) = query.key.parse::<SessionKey>() else {
        return error(StatusCode::BAD_REQUEST, "not a session key");
    };
    let store = &control.backends.store;
    let mut entries = Vec::new();
    let mut after = 0;
    while entries.len() < TRANSCRIPT_LIMIT {
        match store.load_transcript(&key, after, 500).await {
            Ok(page) => {
                entries.extend(page.entries.iter().flat_map(functions::webchat::shown));
                match page.next_seq {
                    Some(next) => after = next,
                    None => break,
                }
            }
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
        }
    }
    answer(
        StatusCode::OK,
        json!({ "key": key.to_string(), "entries": entries }),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ActRequest {
    message_id: Option<String>,
    channel: Option<String>,
    account: Option<String>,
    code: Option<String>,
    container: Option<String>,
}

async fn act(
    State(control): State<Arc<Control>>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = guard(&control, &headers, true) {
        return refused;
    }
    let request: ActRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed request: {e}")),
    };
    match perform(&control, &action, request).await {
        Ok(body) => {
            tracing::info!(action = %action, "control UI action");
            answer(StatusCode::OK, body)
        }
        Err((status, message)) => error(status, message),
    }
}

/// A refused or failed action: its status and why.
type Refusal = (StatusCode, String);

fn required(field: Option<String>, name: &str) -> Result<String, Refusal> {
    field
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .ok_or_else(|| (StatusCode::BAD_REQUEST, format!("{name} is required")))
}

fn unavailable(e: impl std::fmt::Display) -> Refusal {
    (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

async fn perform(control: &Control, action: &str, request: ActRequest) -> Result<Value, Refusal> {
    let queue = &*control.backends.queue;
    match action {
        "dlq-redrive" | "dlq-discard" => {
            let id = required(request.message_id, "messageId")?;
            let done = if action == "dlq-redrive" {
                admin::redrive(queue, &id).await
            } else {
                admin::discard(queue, &id).await
            };
            match done {
                Ok(()) => Ok(json!({ "done": action, "messageId": id })),
                Err(e @ admin::AdminError::NotFound(_)) => {
                    Err((StatusCode::NOT_FOUND, e.to_string()))
                }
                Err(e) => Err(unavailable(e)),
            }
        }
        "pairing-approve" => {
            let channel = required(request.channel, "channel")?;
            let code = required(request.code, "code")?;
            let account = request.account.unwrap_or_else(|| "default".into());
            match control
                .backends
                .store
                .approve_pairing(&channel, &account, &code)
                .await
            {
                Ok(Some(approved)) => Ok(json!({ "approved": approved.peer })),
                Ok(None) => Err((
                    StatusCode::NOT_FOUND,
                    "no pending request with that code (it may have expired)".into(),
                )),
                Err(e) => Err(unavailable(e)),
            }
        }
        "sandbox-recreate" => {
            let name = required(request.container, "container")?;
            recreate(&control.config, &name).await
        }
        "sandbox-prune" => crate::sandbox_cmd::prune(&control.config, false)
            .await
            .map(|removed| json!({ "removed": removed }))
            .map_err(unavailable),
        _ => Err((StatusCode::NOT_FOUND, "no such action".into())),
    }
}

/// Removes one clawgate sandbox container, refusing any other name.
async fn recreate(config: &Config, name: &str) -> Result<Value, Refusal> {
    let mode = config.agent_profile(config.default_agent()).sandbox.mode;
    let docker = crate::sandbox_cmd::runtime()
        .docker(mode)
        .await
        .map_err(unavailable)?;
    let ours = docker
        .list(None)
        .await
        .map_err(unavailable)?
        .into_iter()
        .any(|c| c.name == name);
    if !ours {
        return Err((
            StatusCode::NOT_FOUND,
            "no clawgate sandbox container by that name".into(),
        ));
    }
    docker.remove(name).await.map_err(unavailable)?;
    Ok(json!({ "removed": name }))
}
