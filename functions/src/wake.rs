//! `POST /hooks/wake` (OpenClaw's shape): `{text, mode?}` queues a system event into the
//! default agent's main session, answered under the heartbeat's rule: a reply that only
//! acknowledges (`HEARTBEAT_OK`) is not delivered; anything else goes to the heartbeat's
//! `target`. Same gate as `/hooks/agent` (the gateway token as a bearer token).
//!
//! Decisions:
//! - `mode` is OpenClaw's; only `now` (the default) is built: the event runs at once. The
//!   other mode, `next-heartbeat`, is refused with a 400 rather than run at the wrong time.
//! - A `last` target needs the store to find the owner's last chat; a gateway without one
//!   (the webhook Lambda) keeps the answer in the session's transcript and says so in the log.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use infra::config::Config;
use infra::model::{
    Channel, ChatKind, ChatRef, CronDelivery, HeartbeatRule, InboundMessage, JobMessage, Sender,
    SessionKey,
};
use serde::Deserialize;
use serde_json::json;

use crate::hooks::refuse_hook;
use crate::{enqueue, reply, Ingress};

/// The longest event text accepted.
pub const MAX_WAKE_CHARS: usize = 8_000;

/// How a wake event is answered: the heartbeat's target and acknowledgement rule.
#[derive(Debug, Clone)]
pub struct WakeRule {
    pub agent: String,
    pub deliver: CronDelivery,
    pub rule: HeartbeatRule,
}

impl WakeRule {
    pub fn from_config(config: &Config) -> WakeRule {
        let beat = &config.agents.defaults.heartbeat;
        WakeRule {
            agent: config.default_agent().to_string(),
            deliver: infra::cron::parse_delivery(&beat.target).unwrap_or(CronDelivery::None),
            rule: HeartbeatRule {
                ack_max_chars: beat.ack_max_chars,
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WakeRequest {
    text: String,
    #[serde(default)]
    mode: Option<String>,
}

pub async fn wake(
    State(ingress): State<Arc<Ingress>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = refuse_hook(&ingress, &headers) {
        return refused;
    }
    let request: WakeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                format!("malformed wake request: {e}"),
            )
        }
    };
    match request.mode.as_deref() {
        None | Some("now") => {}
        Some(other) => {
            return reply(
                StatusCode::BAD_REQUEST,
                format!("mode {other:?} is not supported: use \"now\" (the default)"),
            )
        }
    }
    let text = request.text.trim();
    if text.is_empty() || text.chars().count() > MAX_WAKE_CHARS {
        return reply(
            StatusCode::BAD_REQUEST,
            format!("text must be 1 to {MAX_WAKE_CHARS} characters"),
        );
    }
    let wake = &ingress.wake;
    let (account, reply_to) = match &wake.deliver {
        CronDelivery::None => ("hooks".to_string(), None),
        CronDelivery::Chat { account, target } => (account.clone(), Some(target.clone())),
        CronDelivery::Last => match &ingress.store {
            Some(store) => match infra::cron::last_chat(store.as_ref(), &wake.agent).await {
                Ok(target) => ("default".to_string(), target),
                Err(e) => {
                    return reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("the store is unreachable: {e}"),
                    )
                }
            },
            None => {
                tracing::info!("wake: no store here to find the last chat; the answer stays in the main session");
                ("hooks".to_string(), None)
            }
        },
    };
    let session = SessionKey::main(&wake.agent);
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let inbound = InboundMessage::new(
        Channel::Hook,
        &account,
        format!("wake:{id}"),
        ChatRef::new(ChatKind::Dm, session.to_string()),
        Sender {
            id: "wake".into(),
            name: Some("system event".into()),
        },
        format!("[System event, not typed by the owner]\n{text}"),
    );
    let mut job = JobMessage::new(session, &wake.agent, inbound, reply_to);
    // The answer's `jobId` is the job record's key, as for scheduled runs.
    job.job_id = job.inbound.event_id.clone();
    job.heartbeat = Some(wake.rule);
    match enqueue(ingress.queue.as_ref(), &job).await {
        r if r.status() == StatusCode::OK => {
            (StatusCode::ACCEPTED, Json(json!({ "jobId": job.job_id }))).into_response()
        }
        other => other,
    }
}
