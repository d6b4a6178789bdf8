//! The Bot Framework, faked for a Teams bot: its OpenID metadata (`GET /msteams/openid`, whose
//! `jwks_uri` is `/msteams/keys`: the test key's public half, endorsed for `msteams`), the
//! Entra token endpoint (`POST /msteams/token`: `client_credentials` for the bot's id and
//! secret with the Bot Connector scope, else `invalid_client`), and the Bot Connector at the
//! service URL `/msteams/service/` (`POST …/v3/conversations/<id>/activities[/<replyToId>]`
//! and `PUT …/activities/<id>`), which wants the token it issued (401 otherwise), a known
//! activity type (400 `BadSyntax`), and a message text of at most 28 000 bytes (413).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Value};

use super::{record, World};

/// The bot's Microsoft App ID and client secret.
pub const MSTEAMS_APP_ID: &str = "0d3e5f6a-7b8c-4d9e-8f0a-1b2c3d4e5f6a";
pub const MSTEAMS_APP_PASSWORD: &str = "e2e~teams~secret";
const ISSUED: &str = "eyJ0eXAi.fake-bot-connector-token";

pub(super) fn routes(router: Router<World>) -> Router<World> {
    router
        .route("/msteams/openid", get(openid))
        .route("/msteams/keys", get(keys))
        .route("/msteams/token", post(token))
        .route(
            "/msteams/service/v3/conversations/{conversation}/activities",
            post(send),
        )
        .route(
            "/msteams/service/v3/conversations/{conversation}/activities/{activity}",
            post(reply).put(update),
        )
}

impl super::Fakes {
    /// Message activities the Connector took (new ones; `replyTo` names the one answered).
    pub fn msteams_sent(&self) -> Vec<super::Call> {
        self.calls("/msteams/activities")
    }

    /// The service URL the fake Connector answers at.
    pub fn msteams_service_url(&self) -> String {
        format!("{}/msteams/service/", self.base_url)
    }
}

async fn openid(headers: HeaderMap) -> Json<Value> {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Json(json!({"issuer": "https://api.botframework.com",
        "authorization_endpoint": "https://invalid.botframework.com",
        "jwks_uri": format!("http://{host}/msteams/keys"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"]}))
}

async fn keys() -> Json<Value> {
    let mut jwks: Value = serde_json::from_str(super::googlechat::GOOGLE_JWKS).unwrap();
    jwks["keys"][0]["endorsements"] = json!(["msteams", "webchat"]);
    Json(jwks)
}

async fn token(
    State(world): State<World>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str);
    let granted = field("grant_type") == Some("client_credentials")
        && field("client_id") == Some(MSTEAMS_APP_ID)
        && field("client_secret") == Some(MSTEAMS_APP_PASSWORD)
        && field("scope") == Some("https://api.botframework.com/.default");
    record(
        &world,
        format!("/msteams/token granted={granted}"),
        &headers,
        &json!({}),
    );
    if !granted {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided."})),
        )
            .into_response();
    }
    Json(
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
        "access_token": ISSUED}),
    )
    .into_response()
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// The Connector's checks on an activity; the refusal, if any.
fn refused(headers: &HeaderMap, activity: &Value) -> Option<Response> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {ISSUED}")) {
        return Some(refuse(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Authorization has been denied for this request.",
        ));
    }
    match activity["type"].as_str() {
        Some("typing") => None,
        Some("message") => {
            let text = activity["text"].as_str().unwrap_or_default();
            (text.len() > 28_000).then(|| {
                refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "MessageSizeTooBig",
                    "Message size too big",
                )
            })
        }
        _ => Some(refuse(
            StatusCode::BAD_REQUEST,
            "BadSyntax",
            "Activity type is missing or not supported",
        )),
    }
}

/// A new activity, or one in reply to `reply_to`.
fn create(
    world: &World,
    conversation: &str,
    reply_to: Option<&str>,
    headers: &HeaderMap,
    activity: Value,
) -> Response {
    if let Some(refusal) = refused(headers, &activity) {
        return refusal;
    }
    let mut recorded = activity.clone();
    recorded["conversation"] = json!(conversation);
    recorded["replyTo"] = json!(reply_to);
    let kind = if activity["type"] == "typing" {
        "/msteams/typing"
    } else {
        "/msteams/activities"
    };
    let n = record(world, kind.into(), headers, &recorded);
    (
        StatusCode::CREATED,
        Json(json!({"id": format!("1733308{n:06}")})),
    )
        .into_response()
}

async fn send(
    State(world): State<World>,
    Path(conversation): Path<String>,
    headers: HeaderMap,
    Json(activity): Json<Value>,
) -> Response {
    create(&world, &conversation, None, &headers, activity)
}

async fn reply(
    State(world): State<World>,
    Path((conversation, activity_id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(activity): Json<Value>,
) -> Response {
    create(
        &world,
        &conversation,
        Some(&activity_id),
        &headers,
        activity,
    )
}

async fn update(
    State(world): State<World>,
    Path((conversation, activity_id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(activity): Json<Value>,
) -> Response {
    if let Some(refusal) = refused(&headers, &activity) {
        return refusal;
    }
    let mut recorded = activity.clone();
    recorded["conversation"] = json!(conversation);
    recorded["updated"] = json!(activity_id);
    record(&world, "/msteams/updates".into(), &headers, &recorded);
    Json(json!({"id": activity_id})).into_response()
}
