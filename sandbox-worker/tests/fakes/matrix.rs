//! A Matrix homeserver's client-server API, faked for an application service bot: `POST
//! /_matrix/client/v3/join/<room>` (only rooms the bot was invited to: [`Fakes::matrix_invite`]),
//! the bot's `m.direct` account data (`GET` is `M_NOT_FOUND` until first `PUT`), `PUT
//! …/rooms/<room>/send/m.room.message/<txnId>` (only in joined rooms, `M_FORBIDDEN` otherwise;
//! a repeated txn id is the same event, as a homeserver keeps it), `PUT
//! …/rooms/<room>/typing/<user>`, and media: `POST /_matrix/media/v3/upload` (a `content_uri`)
//! and `GET /_matrix/client/v1/media/download/<server>/<id>` (`M_NOT_FOUND` for unknown media). Every call wants `Bearer` with the registration's `as_token`
//! (`M_UNKNOWN_TOKEN` otherwise). The homeserver's other half, pushing transactions, is the
//! test's (`Stack::put_matrix`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{record, World};

pub const MATRIX_AS_TOKEN: &str = "as-e2e-token-3f9a";
pub const MATRIX_HS_TOKEN: &str = "hs-e2e-token-77c1";
pub const MATRIX_BOT: &str = "@clawgate:example.org";

#[derive(Default)]
pub(super) struct Matrix {
    invited: Mutex<HashSet<String>>,
    joined: Mutex<HashSet<String>>,
    direct: Mutex<Option<Value>>,
    /// Sent events by (room, txn id).
    sent: Mutex<HashMap<(String, String), String>>,
    /// Who else is in each room (joined or invited), besides the bot once it joined.
    members: Mutex<HashMap<String, Vec<String>>>,
    /// Media by `mxc://` URI: its type and bytes.
    media: Mutex<HashMap<String, (String, Vec<u8>)>>,
}

pub(super) fn routes(router: Router<World>) -> Router<World> {
    router
        .route("/_matrix/client/v3/join/{room}", post(join))
        .route(
            "/_matrix/client/v3/user/{user}/account_data/{kind}",
            put(put_account_data).get(get_account_data),
        )
        .route(
            "/_matrix/client/v3/rooms/{room}/send/{kind}/{txn}",
            put(send),
        )
        .route("/_matrix/client/v3/rooms/{room}/typing/{user}", put(typing))
        .route("/_matrix/client/v3/rooms/{room}/members", get(members))
        .route("/_matrix/media/v3/upload", post(upload))
        .route(
            "/_matrix/client/v1/media/download/{server}/{media}",
            get(download),
        )
}

impl super::Fakes {
    /// `inviter` invited the bot to `room`, where `others` already are (what an invite event in
    /// a transaction says happened).
    pub fn matrix_invite(&self, room: &str, inviter: &str, others: &[&str]) {
        let matrix = &self.world.matrix;
        matrix.invited.lock().unwrap().insert(room.into());
        let mut present = vec![inviter.to_string()];
        present.extend(others.iter().map(|o| o.to_string()));
        matrix.members.lock().unwrap().insert(room.into(), present);
    }

    /// Messages the bot sent (edits included: they are `m.room.message` events too).
    pub fn matrix_sent(&self) -> Vec<super::Call> {
        self.calls("/matrix/send")
    }

    /// A file a user uploaded, at `mxc`.
    pub fn matrix_media(&self, mxc: &str, mime: &str, bytes: &[u8]) {
        let media = &self.world.matrix.media;
        media
            .lock()
            .unwrap()
            .insert(mxc.to_string(), (mime.to_string(), bytes.to_vec()));
    }

    /// The bot's `m.direct`, as the homeserver holds it.
    pub fn matrix_direct(&self) -> Option<Value> {
        self.world.matrix.direct.lock().unwrap().clone()
    }
}

fn refuse(status: StatusCode, errcode: &str, error: &str) -> Response {
    (status, Json(json!({"errcode": errcode, "error": error}))).into_response()
}

fn unauthorised(headers: &HeaderMap) -> Option<Response> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    (auth != Some(&format!("Bearer {MATRIX_AS_TOKEN}"))).then(|| {
        refuse(
            StatusCode::UNAUTHORIZED,
            "M_UNKNOWN_TOKEN",
            "Unrecognised access token.",
        )
    })
}

/// The refusal for a call without the bot's token, or about a room the bot is not in.
fn outside(world: &World, headers: &HeaderMap, room: &str) -> Option<Response> {
    unauthorised(headers).or_else(|| {
        (!world.matrix.joined.lock().unwrap().contains(room)).then(|| {
            refuse(
                StatusCode::FORBIDDEN,
                "M_FORBIDDEN",
                &format!("User {MATRIX_BOT} not in room {room}"),
            )
        })
    })
}

async fn join(
    State(world): State<World>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = unauthorised(&headers) {
        return refusal;
    }
    if !world.matrix.invited.lock().unwrap().contains(&room) {
        return refuse(
            StatusCode::FORBIDDEN,
            "M_FORBIDDEN",
            "You are not invited to this room.",
        );
    }
    world.matrix.joined.lock().unwrap().insert(room.clone());
    record(
        &world,
        "/matrix/join".into(),
        &headers,
        &json!({"room": room}),
    );
    Json(json!({"room_id": room})).into_response()
}

async fn get_account_data(
    State(world): State<World>,
    Path((user, kind)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = unauthorised(&headers) {
        return refusal;
    }
    match (
        user == MATRIX_BOT && kind == "m.direct",
        world.matrix.direct.lock().unwrap().clone(),
    ) {
        (true, Some(direct)) => Json(direct).into_response(),
        (true, None) => refuse(
            StatusCode::NOT_FOUND,
            "M_NOT_FOUND",
            "Account data not found",
        ),
        (false, _) => refuse(
            StatusCode::FORBIDDEN,
            "M_FORBIDDEN",
            "Cannot get account data for other users.",
        ),
    }
}

async fn put_account_data(
    State(world): State<World>,
    Path((user, kind)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refusal) = unauthorised(&headers) {
        return refusal;
    }
    if user != MATRIX_BOT || kind != "m.direct" || !body.is_object() {
        return refuse(
            StatusCode::FORBIDDEN,
            "M_FORBIDDEN",
            "Cannot add account data for other users.",
        );
    }
    *world.matrix.direct.lock().unwrap() = Some(body.clone());
    record(&world, "/matrix/m.direct".into(), &headers, &body);
    Json(json!({})).into_response()
}

async fn send(
    State(world): State<World>,
    Path((room, kind, txn)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(content): Json<Value>,
) -> Response {
    if let Some(refusal) = outside(&world, &headers, &room) {
        return refusal;
    }
    if kind != "m.room.message" || content["body"].as_str().is_none() {
        return refuse(StatusCode::BAD_REQUEST, "M_BAD_JSON", "Bad message content");
    }
    let key = (room.clone(), txn);
    if let Some(event) = world.matrix.sent.lock().unwrap().get(&key) {
        return Json(json!({"event_id": event})).into_response();
    }
    let mut recorded = content.clone();
    recorded["room"] = json!(room);
    let n = record(&world, "/matrix/send".into(), &headers, &recorded);
    let event = format!("$sent{n}");
    world.matrix.sent.lock().unwrap().insert(key, event.clone());
    Json(json!({"event_id": event})).into_response()
}

async fn typing(
    State(world): State<World>,
    Path((room, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = unauthorised(&headers) {
        return refusal;
    }
    if user != MATRIX_BOT {
        return refuse(
            StatusCode::FORBIDDEN,
            "M_FORBIDDEN",
            "Cannot set another user's typing state",
        );
    }
    record(
        &world,
        "/matrix/typing".into(),
        &headers,
        &json!({"room": room}),
    );
    Json(json!({})).into_response()
}

async fn upload(
    State(world): State<World>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = unauthorised(&headers) {
        return refusal;
    }
    let mime = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let recorded = json!({"filename": query.get("filename"), "type": mime, "size": body.len()});
    let n = record(&world, "/matrix/upload".into(), &headers, &recorded);
    let mxc = format!("mxc://example.org/upload{n}");
    world
        .matrix
        .media
        .lock()
        .unwrap()
        .insert(mxc.clone(), (mime, body.to_vec()));
    Json(json!({"content_uri": mxc})).into_response()
}

async fn download(
    State(world): State<World>,
    Path((server, media)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = unauthorised(&headers) {
        return refusal;
    }
    let found = world
        .matrix
        .media
        .lock()
        .unwrap()
        .get(&format!("mxc://{server}/{media}"))
        .cloned();
    match found {
        Some((mime, bytes)) => ([("content-type", mime)], bytes).into_response(),
        None => refuse(StatusCode::NOT_FOUND, "M_NOT_FOUND", "Not found"),
    }
}

async fn members(
    State(world): State<World>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = outside(&world, &headers, &room) {
        return refusal;
    }
    let mut present =
        (world.matrix.members.lock().unwrap().get(&room).cloned()).unwrap_or_default();
    present.push(MATRIX_BOT.to_string());
    let chunk: Vec<Value> = present
        .iter()
        .map(|user| {
            json!({"type": "m.room.member", "room_id": room, "state_key": user,
            "sender": user, "content": {"membership": "join"}})
        })
        .collect();
    Json(json!({"chunk": chunk})).into_response()
}
