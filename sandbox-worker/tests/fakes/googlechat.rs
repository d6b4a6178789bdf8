//! Google, faked for a Chat app: the key set (`GET /googlechat/jwks`, the test key's public half),
//! the OAuth token endpoint (`POST /googlechat/token`: a JWT-bearer grant whose assertion must be
//! signed by the service account's key and carry its email, the `chat.bot` scope and this
//! endpoint as audience, else `invalid_grant`), and the Chat API (`POST
//! /v1/spaces/<space>/messages`, `GET /v1/spaces:findDirectMessage`) which wants the token it
//! issued (401 otherwise) and a text of 1-4096 characters (400).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Value};

use super::{record, World};

/// The Google key set the test key signs for.
pub const GOOGLE_JWKS: &str = include_str!("../../../infra/fixtures/googlechat/jwks.json");
/// The test key (Google's stand-in, and the service account's).
pub const GOOGLE_TEST_KEY: &str =
    include_str!("../../../infra/fixtures/googlechat/test-signing-key.pem");
/// The service account's email.
pub const CHAT_SERVICE_ACCOUNT: &str = "clawgate@e2e-project.iam.gserviceaccount.com";
const ISSUED: &str = "ya29.fake-chat-bot-token";

pub(super) fn routes(router: Router<World>) -> Router<World> {
    router
        .route(
            "/googlechat/jwks",
            get(|| async { ([("content-type", "application/json")], GOOGLE_JWKS) }),
        )
        .route("/googlechat/token", post(token))
        .route("/v1/spaces/{space}/messages", post(create_message))
        .route("/v1/spaces:findDirectMessage", get(find_dm))
}

impl super::Fakes {
    /// Messages the Chat API created.
    pub fn googlechat_sent(&self) -> Vec<super::Call> {
        self.calls("/googlechat/messages")
    }
}

/// The test key's public half, as the token endpoint checks assertions with it.
fn decoding_key() -> jsonwebtoken::DecodingKey {
    let jwks: Value = serde_json::from_str(GOOGLE_JWKS).unwrap();
    let key = &jwks["keys"][0];
    jsonwebtoken::DecodingKey::from_rsa_components(
        key["n"].as_str().unwrap(),
        key["e"].as_str().unwrap(),
    )
    .unwrap()
}

async fn token(
    State(world): State<World>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[format!("http://{host}/googlechat/token")]);
    validation.set_issuer(&[CHAT_SERVICE_ACCOUNT]);
    let granted = form.get("grant_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        && form
            .get("assertion")
            .and_then(|a| jsonwebtoken::decode::<Value>(a, &decoding_key(), &validation).ok())
            .is_some_and(|t| t.claims["scope"] == "https://www.googleapis.com/auth/chat.bot");
    record(
        &world,
        format!("/googlechat/token granted={granted}"),
        &headers,
        &json!({}),
    );
    if !granted {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})),
        )
            .into_response();
    }
    Json(json!({"access_token": ISSUED, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

fn authorised(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {ISSUED}"))
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"code": status.as_u16(), "message": message, "status": "INVALID_ARGUMENT"}}))).into_response()
}

async fn create_message(
    State(world): State<World>,
    Path(space): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorised(&headers) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials.",
        );
    }
    let length = body["text"].as_str().map_or(0, |t| t.chars().count());
    if !(1..=4096).contains(&length) {
        return refuse(StatusCode::BAD_REQUEST, "Invalid message text");
    }
    let mut recorded = body.clone();
    recorded["space"] = json!(format!("spaces/{space}"));
    recorded["messageReplyOption"] = json!(query.get("messageReplyOption"));
    let n = record(&world, "/googlechat/messages".into(), &headers, &recorded);
    Json(json!({"name": format!("spaces/{space}/messages/fake{n}"), "text": body["text"]}))
        .into_response()
}

async fn find_dm(Query(query): Query<HashMap<String, String>>, headers: HeaderMap) -> Response {
    if !authorised(&headers) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials.",
        );
    }
    match query.get("name").and_then(|n| n.strip_prefix("users/")) {
        Some(user) => {
            Json(json!({"name": format!("spaces/DM{user}"), "spaceType": "DIRECT_MESSAGE"}))
                .into_response()
        }
        None => refuse(StatusCode::BAD_REQUEST, "name must be users/<id>"),
    }
}
