//! `POST /hooks/agent`, OpenClaw's agent hook: a script queues a job with the gateway token,
//! optionally delivered to the chat a session key names.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use infra::config::RouteFacts;
use infra::model::{
    Channel, ChatKind, ChatRef, InboundMessage, JobMessage, ReplyTarget, Sender, SessionKey,
};
use serde::Deserialize;
use serde_json::json;

use crate::{bearer_matches, browser_guard, enqueue, reply, Ingress};

/// `POST /hooks/agent`, OpenClaw's agent hook: `{message, agentId?, sessionKey?, deliver?}`.
///
/// Decisions:
/// - Without `sessionKey` the run gets a session of its own (`hook:<id>`); with one, it continues
///   that session, and the key's agent is the agent (an `agentId` that differs is refused).
/// - `agentId` must be an agent the config names ([`infra::config::Config::agent_ids`]), so a typo is a 400
///   rather than a run under the default agent's tools and sandbox.
/// - `deliver: true` posts the reply to the chat the `sessionKey` names (a Telegram chat or
///   topic through the bot that serves the agent, a Slack channel, thread or DM, a WebChat
///   conversation); a key that names no chat is refused. Without it the reply stays in the
///   session's transcript. OpenClaw's `channel`/`to` overrides are not supported: they are
///   unknown fields, so a request using them is refused rather than half-honoured.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HookRequest {
    message: String,
    agent_id: Option<String>,
    session_key: Option<String>,
    #[serde(default)]
    deliver: bool,
}

/// The hooks' gate: closed without a gateway token, no browsers, the bearer token required.
/// The refusal, or `None` to go on.
pub(crate) fn refuse_hook(ingress: &Ingress, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &ingress.hooks_token else {
        return Some(reply(
            StatusCode::NOT_FOUND,
            "hooks are off: set gateway.token to enable /hooks/agent and /hooks/wake",
        ));
    };
    if let Some(refused) = browser_guard(headers, true) {
        return Some(refused);
    }
    if !bearer_matches(headers, token) {
        return Some(reply(
            StatusCode::UNAUTHORIZED,
            "bad or missing bearer token",
        ));
    }
    None
}

pub(crate) async fn hook(
    State(ingress): State<Arc<Ingress>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = refuse_hook(&ingress, &headers) {
        return refused;
    }
    let request: HookRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                format!("malformed hook request: {e}"),
            )
        }
    };
    let job = match hook_job(&ingress, request) {
        Ok(job) => job,
        Err(why) => return reply(StatusCode::BAD_REQUEST, why),
    };
    match enqueue(ingress.queue.as_ref(), &job).await {
        r if r.status() == StatusCode::OK => {
            (StatusCode::ACCEPTED, Json(json!({ "jobId": job.job_id }))).into_response()
        }
        other => other,
    }
}

/// The job a hook asks for, or why it cannot be run.
fn hook_job(ingress: &Ingress, request: HookRequest) -> Result<JobMessage, String> {
    if request.message.trim().is_empty() {
        return Err("message is empty".into());
    }
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let session = match request.session_key {
        Some(key) => key.parse::<SessionKey>().map_err(|e| e.to_string())?,
        None => SessionKey::Hook { id: id.clone() },
    };
    let agent = match (&session, request.agent_id) {
        (SessionKey::Main { agent } | SessionKey::Peer { agent, .. }, Some(asked))
            if *agent != asked =>
        {
            return Err(format!(
                "agentId {asked:?} is not the agent of sessionKey {session} ({agent:?})"
            ))
        }
        (_, Some(asked)) => asked,
        (session, None) => session.agent(&ingress.default_agent).to_string(),
    };
    if !ingress.agents.contains(&agent) {
        let known: Vec<&str> = ingress.agents.iter().map(String::as_str).collect();
        return Err(format!(
            "unknown agent {agent:?}; the config names {}",
            known.join(", ")
        ));
    }
    let (account, reply_to) = if request.deliver {
        let (account, target) = delivery(ingress, &session, &agent)?;
        (account, Some(target))
    } else {
        ("hooks".to_string(), None)
    };
    let inbound = InboundMessage::new(
        Channel::Hook,
        &account,
        format!("hook:hooks:{id}"),
        ChatRef::new(ChatKind::Dm, session.to_string()),
        Sender {
            id: "hook".into(),
            name: None,
        },
        request.message,
    );
    Ok(JobMessage::new(session, &agent, inbound, reply_to))
}

/// Where `deliver` sends the reply, and through which account of its channel.
fn delivery(
    ingress: &Ingress,
    session: &SessionKey,
    agent: &str,
) -> Result<(String, ReplyTarget), String> {
    let target = ReplyTarget::for_session(session).ok_or_else(|| {
        format!(
            "deliver needs a sessionKey that names a chat (agent:<id>:telegram:dm:<chat id>, \
             agent:<id>:slack:channel:<id>, agent:<id>:webchat:dm:<conversation>, …); \
             {session} names none"
        )
    })?;
    let account = match &target {
        // A bot whose messages from this chat route to the agent: the chat is with that bot,
        // not with any other.
        ReplyTarget::Telegram(t) => {
            let (peer_kind, topic) = match session {
                SessionKey::Peer { kind, .. } => {
                    (*kind, t.message_thread_id.map(|n| n.to_string()))
                }
                _ => (ChatKind::Dm, None),
            };
            let chat = t.chat_id.to_string();
            let mut serving: Vec<&String> = ingress
                .telegram
                .iter()
                .filter(|(name, bot)| {
                    let facts = RouteFacts {
                        channel: Channel::Telegram,
                        account: name,
                        peer_kind,
                        peer_id: &chat,
                        topic: topic.as_deref(),
                        team_id: None,
                    };
                    bot.account.routes.route(&facts).agent == agent
                })
                .map(|(name, _)| name)
                .collect();
            serving.sort_by_key(|name| (name.as_str() != "default", name.as_str()));
            serving
                .first()
                .map(|name| name.to_string())
                .ok_or_else(|| format!("deliver: no Telegram bot serves agent {agent:?}"))?
        }
        ReplyTarget::Slack(_) => ingress
            .slack
            .as_ref()
            .map(|s| s.account.account.clone())
            .ok_or("deliver: slack is not configured")?,
        ReplyTarget::Webchat(_) => "default".to_string(),
        ReplyTarget::Googlechat(_) => ingress
            .googlechat
            .as_ref()
            .map(|g| g.account.account.clone())
            .ok_or("deliver: googlechat is not configured")?,
        ReplyTarget::Matrix(_) => ingress
            .matrix
            .as_ref()
            .map(|m| m.account.account.clone())
            .ok_or("deliver: matrix is not configured")?,
        ReplyTarget::Msteams(_) => ingress
            .msteams
            .as_ref()
            .map(|t| t.account.account.clone())
            .ok_or("deliver: msteams is not configured")?,
        ReplyTarget::Zalo(_) => ingress
            .zalo
            .as_ref()
            .map(|z| z.account.account.clone())
            .ok_or("deliver: zalo is not configured")?,
        ReplyTarget::Signal(_) => ingress
            .signal
            .as_ref()
            .map(|c| c.account.account.clone())
            .ok_or("deliver: signal is not configured")?,
        ReplyTarget::Bluebubbles(_) => ingress
            .bluebubbles
            .as_ref()
            .map(|b| b.account.account.clone())
            .ok_or("deliver: bluebubbles is not configured")?,
        ReplyTarget::Discord(_) => ingress
            .discord
            .as_ref()
            .map(|d| d.account.account.clone())
            .ok_or("deliver: discord is not configured")?,
        ReplyTarget::Whatsapp(_) => ingress
            .whatsapp
            .as_ref()
            .map(|w| w.account.account.clone())
            .ok_or("deliver: whatsapp is not configured")?,
    };
    Ok((account, target))
}
