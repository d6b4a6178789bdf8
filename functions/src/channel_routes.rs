//! The channel routes: each finds its channel's account (a 404 when the channel is not
//! configured) and hands the request to [`webhook`], the one path every channel takes: verify,
//! parse, queue each job, answer. The channels whose verification needs I/O first (a key set
//! to refresh, Matrix's membership) do it here, before.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use infra::channels::oauth::bearer_kid;
use infra::channels::{Parsed, Refusal, WebhookChannel, WebhookRequest};

use crate::{enqueue, reply, Ingress};

pub(crate) async fn telegram_default(
    state: State<Arc<Ingress>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    telegram(state, Path("default".to_string()), headers, body).await
}

pub(crate) async fn telegram(
    State(ingress): State<Arc<Ingress>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match ingress.telegram.get(&account) {
        Some(bot) => webhook(&ingress, bot, WebhookRequest::new(&headers, &body)).await,
        None => reply(
            StatusCode::NOT_FOUND,
            format!("telegram account {account:?} is not configured"),
        ),
    }
}

pub(crate) async fn slack(
    State(ingress): State<Arc<Ingress>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match &ingress.slack {
        Some(app) => webhook(&ingress, app, WebhookRequest::new(&headers, &body)).await,
        None => reply(StatusCode::NOT_FOUND, "slack is not configured"),
    }
}

pub(crate) async fn whatsapp(
    State(ingress): State<Arc<Ingress>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match &ingress.whatsapp {
        Some(app) => webhook(&ingress, app, WebhookRequest::new(&headers, &body)).await,
        None => reply(StatusCode::NOT_FOUND, "whatsapp is not configured"),
    }
}

pub(crate) async fn discord(
    State(ingress): State<Arc<Ingress>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match &ingress.discord {
        Some(app) => webhook(&ingress, app, WebhookRequest::new(&headers, &body)).await,
        None => reply(StatusCode::NOT_FOUND, "discord is not configured"),
    }
}

/// Google Chat and Teams: the key set refreshed first when the token names a key it lacks
/// (verification itself needs no I/O).
pub(crate) async fn googlechat(
    State(ingress): State<Arc<Ingress>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(app) = &ingress.googlechat else {
        return reply(StatusCode::NOT_FOUND, "googlechat is not configured");
    };
    let request = WebhookRequest::new(&headers, &body);
    app.keys.refresh_for(bearer_kid(&request).as_deref()).await;
    webhook(&ingress, app.as_ref(), request).await
}

/// Matrix: the homeserver's token first, then the transaction's membership (joins, the bot's
/// `m.direct`), which needs the homeserver; then its messages on the contract. When the
/// homeserver cannot be reached the answer is 503 and it sends the transaction again.
pub(crate) async fn matrix(
    State(ingress): State<Arc<Ingress>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(app) = &ingress.matrix else {
        return reply(StatusCode::NOT_FOUND, "matrix is not configured");
    };
    let request = WebhookRequest {
        headers: &headers,
        query: query.as_deref(),
        body: &body,
    };
    if let Err(refusal) = app.verify_homeserver(&request) {
        return refused(refusal);
    }
    match app.apply_membership(&body).await {
        Ok(direct) => webhook(&ingress, &app.transaction(&direct), request).await,
        Err(e) => {
            tracing::warn!(error = %e, "a matrix transaction's membership could not be applied");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "the homeserver could not be asked; send the transaction again",
            )
        }
    }
}

pub(crate) async fn msteams(
    State(ingress): State<Arc<Ingress>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(bot) = &ingress.msteams else {
        return reply(StatusCode::NOT_FOUND, "msteams is not configured");
    };
    let request = WebhookRequest::new(&headers, &body);
    bot.keys.refresh_for(bearer_kid(&request).as_deref()).await;
    webhook(&ingress, bot.as_ref(), request).await
}

pub(crate) async fn zalo(
    State(ingress): State<Arc<Ingress>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match &ingress.zalo {
        Some(app) => webhook(&ingress, app, WebhookRequest::new(&headers, &body)).await,
        None => reply(StatusCode::NOT_FOUND, "zalo is not configured"),
    }
}

/// BlueBubbles' webhook: its shared secret is the server password in the query.
pub(crate) async fn bluebubbles(
    State(ingress): State<Arc<Ingress>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(app) = &ingress.bluebubbles else {
        return reply(StatusCode::NOT_FOUND, "bluebubbles is not configured");
    };
    let request = WebhookRequest {
        headers: &headers,
        query: query.as_deref(),
        body: &body,
    };
    webhook(&ingress, app, request).await
}

/// Meta's subscription check: `hub.challenge` echoed as plain text when `hub.verify_token`
/// matches, else 403.
pub(crate) async fn whatsapp_handshake(
    State(ingress): State<Arc<Ingress>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(app) = &ingress.whatsapp else {
        return reply(StatusCode::NOT_FOUND, "whatsapp is not configured");
    };
    let get = |name: &str| query.get(name).map(String::as_str);
    match app.handshake(
        get("hub.mode"),
        get("hub.verify_token"),
        get("hub.challenge"),
    ) {
        Ok(challenge) => reply(StatusCode::OK, challenge),
        Err(Refusal::NotConfigured(why)) => reply(StatusCode::SERVICE_UNAVAILABLE, why),
        Err(Refusal::Unauthorized(why)) => reply(StatusCode::FORBIDDEN, why),
    }
}

/// A refused request's answer: 401, or 503 when the secret to check it is not configured.
fn refused(refusal: Refusal) -> Response {
    let status = match refusal {
        Refusal::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Refusal::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    reply(status, refusal.to_string())
}

/// Every channel's webhook, after its route found the account: verify, parse, queue, answer.
/// A batch is queued in order; if one fails the channel gets a 503 and redelivers the
/// request, and the dedup ids drop what was already queued.
pub(crate) async fn webhook(
    ingress: &Ingress,
    channel: &dyn WebhookChannel,
    request: WebhookRequest<'_>,
) -> Response {
    let (body, now) = (request.body, Utc::now());
    if let Err(refusal) = channel.verify(&request, now) {
        return refused(refusal);
    }
    match channel.parse(body, now) {
        Ok(Parsed::Queue { jobs, ack }) => {
            for job in &jobs {
                let queued = enqueue(ingress.queue.as_ref(), job).await;
                if queued.status() != StatusCode::OK {
                    return queued;
                }
            }
            match ack {
                Some(body) => Json(body).into_response(),
                None => reply(StatusCode::OK, "queued"),
            }
        }
        Ok(Parsed::Ignored(why)) => reply(StatusCode::OK, format!("ignored: {why}")),
        Ok(Parsed::Answer(body)) => Json(body).into_response(),
        Err(e) => reply(StatusCode::BAD_REQUEST, e.to_string()),
    }
}
