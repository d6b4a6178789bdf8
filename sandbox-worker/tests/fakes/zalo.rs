//! The Zalo Official Account API, faked: `POST /v3.0/oa/message/cs`. Like Zalo it answers
//! HTTP 200 with an `error` code: -216 for a bad `access_token` header, -201 for a body without
//! a recipient or a text of 1-2000 characters, and -230 for a user who has not interacted with
//! the OA in seven days (tests open that with [`super::Fakes::zalo_user_wrote`]).

use std::collections::HashSet;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{record, World};

/// The OA access token the fake accepts.
pub const ZALO_TOKEN: &str = "zalo-oa-access-token-e2e";

#[derive(Default)]
pub(super) struct Zalo {
    /// Users who wrote to the OA recently.
    wrote: Mutex<HashSet<String>>,
}

pub(super) fn routes(router: Router<World>) -> Router<World> {
    router.route("/v3.0/oa/message/cs", post(send))
}

impl super::Fakes {
    /// `user` interacted with the OA just now.
    pub fn zalo_user_wrote(&self, user: &str) {
        self.world
            .zalo
            .wrote
            .lock()
            .unwrap()
            .insert(user.to_string());
    }

    /// Messages the OA API accepted.
    pub fn zalo_sent(&self) -> Vec<super::Call> {
        self.calls("/zalo/cs ok")
    }
}

fn error(code: i64, message: &str) -> Response {
    Json(json!({"error": code, "message": message})).into_response()
}

async fn send(State(world): State<World>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if headers.get("access_token").and_then(|v| v.to_str().ok()) != Some(ZALO_TOKEN) {
        return error(-216, "Access token is invalid");
    }
    let user = body["recipient"]["user_id"].as_str().unwrap_or("");
    let text = body["message"]["text"]
        .as_str()
        .unwrap_or("")
        .chars()
        .count();
    if user.is_empty() || !(1..=2000).contains(&text) {
        return error(-201, "Parameters are invalid");
    }
    if !world.zalo.wrote.lock().unwrap().contains(user) {
        record(&world, "/zalo/cs window".into(), &headers, &body);
        return error(
            -230,
            "User has not interacted with the OA in the past 7 days",
        );
    }
    let n = record(&world, "/zalo/cs ok".into(), &headers, &body);
    Json(json!({"error": 0, "message": "Success",
        "data": {"message_id": format!("fake{n}"), "user_id": user}}))
    .into_response()
}
